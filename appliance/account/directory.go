package account

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sealpost/sealpost/appliance/store"
)

// directory is the admin console's view of all users, held in memory so
// that searching, filtering and paging 100,000 users costs a pass over small
// structs instead of unsealing every record. It is loaded at start and kept
// up to date after each committed change; the store stays the truth.
type directory struct {
	mu       sync.RWMutex
	byID     map[string]*Summary
	sorted   []*Summary     // by Email
	byStatus map[Status]int // kept with every change: the list shows it on every page
}

// Summary is what the user list shows of a user.
type Summary struct {
	ID               string
	Email            string
	Name             string
	Roles            []Role
	Group            string
	Status           Status
	LastSignIn       time.Time
	Created          time.Time
	InvitesUsed      int
	MessagesSent     int64
	MessagesReceived int64
	StorageBytes     int64
	search           string // lower-case email, aliases and name
}

func summarize(u User) *Summary {
	return &Summary{ID: u.ID, Email: u.Email, Name: u.Name, Roles: slices.Clone(u.Roles), Group: u.Group,
		Status: u.Status, LastSignIn: u.LastSignIn, Created: u.Created,
		search: strings.ToLower(u.Email + " " + strings.Join(u.Aliases, " ") + " " + u.Name)}
}

func loadDirectory(st *store.Store, usage *store.Counter[Usage]) (*directory, error) {
	d := &directory{byID: map[string]*Summary{}, byStatus: map[Status]int{}}
	invites := map[string]int{}
	err := st.View(func(tx *store.Tx) error {
		err := tx.Scan([]byte(userPrefix), func(_, value []byte) error {
			var u User
			if err := json.Unmarshal(value, &u); err != nil {
				return err
			}
			d.byID[u.ID] = summarize(u)
			return nil
		})
		if err != nil {
			return err
		}
		err = usage.Each(tx, func(id string, u Usage) error {
			if e := d.byID[id]; e != nil {
				e.addUsage(u)
			}
			return nil
		})
		if err != nil {
			return err
		}
		return tx.Scan([]byte(invitePrefix), func(key, _ []byte) error {
			uid, _, _ := strings.Cut(string(key[len(invitePrefix):]), "/")
			invites[uid]++
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	for id, n := range invites {
		if e := d.byID[id]; e != nil {
			e.InvitesUsed = n
		}
	}
	for _, e := range d.byID {
		d.sorted = append(d.sorted, e)
		d.byStatus[e.Status]++
	}
	slices.SortFunc(d.sorted, func(a, b *Summary) int { return strings.Compare(a.Email, b.Email) })
	return d, nil
}

// put adds or replaces a user's entry.
func (d *directory) put(u User) {
	e := summarize(u)
	d.mu.Lock()
	defer d.mu.Unlock()
	if old := d.byID[u.ID]; old != nil {
		e.InvitesUsed = old.InvitesUsed
		e.MessagesSent, e.MessagesReceived, e.StorageBytes = old.MessagesSent, old.MessagesReceived, old.StorageBytes
		i := d.index(old.Email, old.ID)
		d.sorted = slices.Delete(d.sorted, i, i+1)
		d.byStatus[old.Status]--
	}
	d.byID[u.ID] = e
	d.byStatus[e.Status]++
	i, _ := slices.BinarySearchFunc(d.sorted, e.Email, func(a *Summary, email string) int { return strings.Compare(a.Email, email) })
	d.sorted = slices.Insert(d.sorted, i, e)
}

func (d *directory) index(email, id string) int {
	i, _ := slices.BinarySearchFunc(d.sorted, email, func(a *Summary, email string) int { return strings.Compare(a.Email, email) })
	for ; i < len(d.sorted); i++ {
		if d.sorted[i].ID == id {
			return i
		}
	}
	return slices.IndexFunc(d.sorted, func(s *Summary) bool { return s.ID == id })
}

// addUsage counts a committed change of a user's usage.
func (d *directory) addUsage(id string, u Usage) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e := d.byID[id]; e != nil {
		e.addUsage(u)
	}
}

func (e *Summary) addUsage(u Usage) {
	e.MessagesSent += u.Sent
	e.MessagesReceived += u.Received
	e.StorageBytes += u.Bytes
}

func (d *directory) invited(inviterID string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e := d.byID[inviterID]; e != nil {
		e.InvitesUsed++
	}
}

// Query selects users for the list.
type Query struct {
	Text   string // in the address, an alias or the name
	Role   Role   // empty: any
	Group  string // empty: any
	Status Status // empty: any
	Offset int
	Limit  int // default 50, at most 200
}

// Page is one page of the user list.
type Page struct {
	Users []Summary
	Total int // users matching the query
}

func (d *directory) query(q Query) Page {
	if q.Limit <= 0 {
		q.Limit = 50
	}
	q.Limit = min(q.Limit, 200)
	q.Offset = max(q.Offset, 0)
	text := strings.ToLower(strings.TrimSpace(q.Text))
	d.mu.RLock()
	defer d.mu.RUnlock()
	var p Page
	for _, e := range d.sorted {
		if text != "" && !strings.Contains(e.search, text) ||
			q.Role != "" && !slices.Contains(e.Roles, q.Role) ||
			q.Group != "" && e.Group != q.Group ||
			q.Status != "" && e.Status != q.Status {
			continue
		}
		if p.Total >= q.Offset && len(p.Users) < q.Limit {
			c := *e
			c.Roles = slices.Clone(e.Roles)
			c.StorageBytes = max(0, c.StorageBytes) // the sum can dip below 0 only transiently
			p.Users = append(p.Users, c)
		}
		p.Total++
	}
	return p
}

// counts is how many users have each status.
func (d *directory) counts() map[Status]int {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return maps.Clone(d.byStatus)
}

// ListUsers returns one page of the user list.
func (s *Service) ListUsers(q Query) Page { return s.dir.query(q) }

// CountUsers is how many users have each status.
func (s *Service) CountUsers() map[Status]int { return s.dir.counts() }
