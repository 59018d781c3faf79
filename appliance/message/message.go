// Package message keeps secure messages: drafts, sending, mailboxes with
// folders, the delivery slip, reading, reply and forward, recall and expiry.
//
// It guarantees that every message's subject, text and attachments are
// sealed under the message's own random data key, which only the content
// key of the keyring unwraps; that recall and expiry delete that wrapped key
// (crypto-shredding), after which no code path can open the content; that
// only participants of a message ever get its content (administrators get
// none of other people's mail); that every send, open, download, recall and
// expiry is audited in the transaction that makes it; and that notifications
// never carry content.
package message

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/sealpost/sealpost/appliance/account"
	"github.com/sealpost/sealpost/appliance/attachment"
	"github.com/sealpost/sealpost/appliance/audit"
	"github.com/sealpost/sealpost/appliance/fault"
	"github.com/sealpost/sealpost/appliance/keyring"
	"github.com/sealpost/sealpost/appliance/store"
)

// Folder is where a message sits in one user's mailbox.
type Folder string

// The folders.
const (
	Inbox   Folder = "inbox"
	Sent    Folder = "sent"
	Drafts  Folder = "drafts"
	Archive Folder = "archive"
	Trash   Folder = "trash"
)

// Folders lists the folders in the order the portal shows them.
var Folders = []Folder{Inbox, Sent, Drafts, Archive, Trash}

// ParseFolder accepts a folder's name.
func ParseFolder(s string) (Folder, bool) {
	for _, f := range append(Folders, Shared) {
		if string(f) == s {
			return f, true
		}
	}
	return "", false
}

// Roles of a participant.
const (
	RoleSender = "sender"
	RoleTo     = "to"
	RoleCc     = "cc"
	RoleBcc    = "bcc"
)

// Participant is a sender or a recipient.
type Participant struct {
	UserID  string `json:"user_id,omitempty"`
	Address string `json:"address"`
	Name    string `json:"name,omitempty"`
	Kind    string `json:"kind"` // sender, to, cc, bcc
}

// Label is the name, or the address when there is none.
func (p Participant) Label() string {
	if p.Name != "" {
		return p.Name
	}
	return p.Address
}

// Restrictions limit what recipients may do with a message.
type Restrictions struct {
	NoReply   bool `json:"no_reply,omitempty"`
	NoForward bool `json:"no_forward,omitempty"`
	NoPrint   bool `json:"no_print,omitempty"` // no print view and no downloads
}

// Formats of a body.
const (
	FormatHTML = "html"
	FormatText = "text"
)

// attachmentRef is an attachment as the record keeps it: the name is
// sealed with the content.
type attachmentRef struct {
	ID   string `json:"id"` // the blob id
	Size int64  `json:"size"`
	Type string `json:"type"`
	Name []byte `json:"name"` // sealed
}

// record is a message (or a draft) as stored. Subject, preview and
// attachment names are sealed under the message's data key; the body is a
// record of its own so that lists never read it.
type record struct {
	ID         string          `json:"id"`
	Thread     string          `json:"thread"`
	Parent     string          `json:"parent,omitempty"`
	ParentKind string          `json:"parent_kind,omitempty"` // reply, forward
	SenderID   string          `json:"sender_id"`
	From       Participant     `json:"from"`
	Recipients []Participant   `json:"recipients"`
	Draft      bool            `json:"draft,omitempty"`
	Created    time.Time       `json:"created"`
	Sent       time.Time       `json:"sent,omitzero"`
	Expires    time.Time       `json:"expires,omitzero"`
	Restrict   Restrictions    `json:"restrict"`
	ReadNotify bool            `json:"read_notify,omitempty"`
	Format     string          `json:"format"`
	Subject    []byte          `json:"subject"`
	Preview    []byte          `json:"preview"`
	Passcode   []byte          `json:"passcode,omitempty"` // drafts: sealed passcode for new recipients
	RawTo      string          `json:"raw_to,omitempty"`   // drafts: the recipients as typed
	RawCc      string          `json:"raw_cc,omitempty"`
	RawBcc     string          `json:"raw_bcc,omitempty"`
	Attach     []attachmentRef `json:"attach,omitempty"`
	BodySize   int             `json:"body_size"`

	// After recall or expiry: the content key is gone; what remains is the
	// subject (kept for the notice recipients see) and why.
	Gone         string    `json:"gone,omitempty"` // "", "recalled", "expired"
	GoneAt       time.Time `json:"gone_at,omitzero"`
	RecallReason string    `json:"recall_reason,omitempty"`
	KeptSubject  string    `json:"kept_subject,omitempty"`

	// SharedIn is the registration filter whose users may read this sent
	// message (share_sent), if any.
	SharedIn string `json:"shared_in,omitempty"`
}

// size is what the message costs its participants' storage.
func (r record) size() int64 {
	n := int64(r.BodySize)
	for _, a := range r.Attach {
		n += a.Size
	}
	return n
}

// entry is one message in one user's mailbox.
type entry struct {
	ID        string    `json:"id"`
	Folder    Folder    `json:"folder"`
	Back      Folder    `json:"back,omitempty"` // where a trashed message came from
	Role      string    `json:"role"`
	Read      bool      `json:"read"`
	Starred   bool      `json:"starred,omitempty"`
	Date      time.Time `json:"date"` // the sort key: sent, or last saved for drafts
	TrashedAt time.Time `json:"trashed_at,omitzero"`
}

// Slip is one recipient's line of a delivery slip.
type Slip struct {
	UserID       string     `json:"user_id"`
	Address      string     `json:"address"`
	Name         string     `json:"name,omitempty"`
	Kind         string     `json:"kind"`
	Notification string     `json:"notification,omitempty"` // the mailer's id
	Notified     time.Time  `json:"notified,omitzero"`
	FirstOpened  time.Time  `json:"first_opened,omitzero"`
	Opens        int        `json:"opens"`
	Downloads    []Download `json:"downloads,omitempty"`
	// Filled in when shown: what became of the notification.
	Delivery   string    `json:"-"` // queued, delivered, bounced
	DeliveryAt time.Time `json:"-"`
	Detail     string    `json:"-"`
}

// Download is one download of one attachment.
type Download struct {
	Attachment string    `json:"attachment"`
	At         time.Time `json:"at"`
}

// Counts are the messages and unread messages of a folder.
type Counts struct {
	Total  int `json:"total"`
	Unread int `json:"unread"`
}

// Store keys.
const (
	recordPrefix  = "msg/m/"
	bodyPrefix    = "msg/b/"
	keyPrefix     = "msg/k/"
	slipPrefix    = "msg/s/"   // + message + "/" + user
	threadPrefix  = "msg/t/"   // + thread + "/" + time + "/" + message
	contactPrefix = "msg/x/"   // + user + "/" + user: they exchanged messages
	expiryPrefix  = "msg/exp/" // + time + "/" + message
	entryPrefix   = "mbox/e/"  // + user + "/" + message
	indexPrefix   = "mbox/i/"  // + user + "/" + folder + "/" + reversed time + "/" + message
	countsPrefix  = "mbox/n/"  // + user: folder counts (a store.Counter)
	countsDelta   = "mbox/nd/" // + user + "/" + unique: changes to them
	trashPrefix   = "mbox/t/"  // + time + "/" + user + "/" + message
)

func recordKey(id string) []byte     { return []byte(recordPrefix + id) }
func bodyKey(id string) []byte       { return []byte(bodyPrefix + id) }
func dataKeyKey(id string) []byte    { return []byte(keyPrefix + id) }
func slipKey(id, uid string) []byte  { return []byte(slipPrefix + id + "/" + uid) }
func contactKey(a, b string) []byte  { return []byte(contactPrefix + a + "/" + b) }
func entryKey(uid, id string) []byte { return []byte(entryPrefix + uid + "/" + id) }
func folderPrefix(uid string, f Folder) []byte {
	return []byte(indexPrefix + uid + "/" + string(f) + "/")
}

func stamp(t time.Time) string { return fmt.Sprintf("%020d", t.UnixNano()) }

// reversed sorts newest first.
func reversed(t time.Time) string { return fmt.Sprintf("%020d", math.MaxInt64-t.UnixNano()) }

func indexKey(uid string, e entry) []byte {
	return append(folderPrefix(uid, e.Folder), reversed(e.Date)+"/"+e.ID...)
}
func threadKey(thread string, t time.Time, id string) []byte {
	return []byte(threadPrefix + thread + "/" + stamp(t) + "/" + id)
}
func expiryKey(t time.Time, id string) []byte { return []byte(expiryPrefix + stamp(t) + "/" + id) }
func trashKey(t time.Time, uid, id string) []byte {
	return []byte(trashPrefix + stamp(t) + "/" + uid + "/" + id)
}

// newID is a random message id.
func newID() string { return "m" + strings.ToLower(rand.Text()[:20]) }

// validID refuses anything that is not a message id, before it reaches a
// store key.
func validID(id string) bool {
	if len(id) != 21 || id[0] != 'm' {
		return false
	}
	for _, c := range id[1:] {
		if !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}

// Notice is a notification about a message. It never holds content:
// Subject is shown only when the administrator turned that on.
type Notice struct {
	Kind          string // "new_message", "first_open", "recall"
	To            string
	ToName        string
	UserID        string // the recipient's user id
	Guest         bool   // an outside recipient: the notice offers unsubscribing
	SenderName    string
	RecipientName string
	Subject       string
	Link          string
	// Register: the link first registers the recipient, within ValidFor.
	Register bool
	ValidFor string
}

// Notifier queues a notification inside the caller's transaction and
// returns its id, so that the delivery slip can follow it. The mailer
// implements it.
type Notifier interface {
	NotifyMessage(tx *store.Tx, n Notice) (id string, err error)
}

// Delivery tells what became of a notification: "queued", "delivered" or
// "bounced", when, and the peer's words for a bounce.
type Delivery func(notificationID string) (state string, at time.Time, detail string)

// Options are what a Service needs.
type Options struct {
	Store    *store.Store
	Keys     *keyring.Keyring
	Blobs    *attachment.Blobs
	Accounts *account.Service
	Audit    *audit.Trail
	Notifier Notifier
	Delivery Delivery
	Logger   zerolog.Logger
	BaseURL  func() string
	Now      func() time.Time
}

// Service is the message domain.
type Service struct {
	st       *store.Store
	keys     *keyring.Keyring
	blobs    *attachment.Blobs
	accounts *account.Service
	trail    *audit.Trail
	notifier Notifier
	delivery Delivery
	log      zerolog.Logger
	baseURL  func() string
	now      func() time.Time

	mu   sync.Mutex
	subs map[string]map[chan Event]struct{}

	senders sync.Map // user id → *sync.Mutex: one quota-counted send of a user at a time
	counts  *store.Counter[map[Folder]Counts]
}

// sending runs a send of uid's in a store update. Sends of one user commit
// side by side: what they all change (Sent counts, usage, the audit
// trail) takes no turns. Only an invitation under a quota needs one: the
// quota is a count of earlier invitations, which two concurrent sends
// would both read as not yet used up. Such a send is told so by
// needQuotaTurn and runs again holding uid's turn, taken before the
// transaction starts (its snapshot must be fresh) and given back at the
// commit, before the fsync wait.
func (s *Service) sending(ctx context.Context, uid string, fn func(tx *store.Tx) error) error {
	err := s.st.Update(ctx, fn)
	if !errors.Is(err, errQuotaTurn) {
		return err
	}
	v, _ := s.senders.LoadOrStore(uid, &sync.Mutex{})
	m := v.(*sync.Mutex)
	m.Lock()
	var once sync.Once
	unlock := func() { once.Do(m.Unlock) }
	defer unlock()
	return s.st.Update(ctx, func(tx *store.Tx) error {
		tx.OnDone(func(committed bool) {
			if committed {
				unlock()
			}
		})
		if _, err := tx.Memo(quotaTurnKey, func() (any, error) { return true, nil }); err != nil {
			return err
		}
		return fn(tx)
	})
}

// errQuotaTurn says a send must run again holding its sender's turn.
var errQuotaTurn = errors.New("message: the send invites under a quota")

const quotaTurnKey = "message.quota-turn"

// needQuotaTurn is errQuotaTurn unless tx's send holds its sender's turn.
func needQuotaTurn(tx *store.Tx) error {
	if held, _ := tx.Memo(quotaTurnKey, func() (any, error) { return false, nil }); held.(bool) {
		return nil
	}
	return errQuotaTurn
}

// New makes the message domain.
func New(opts Options) *Service {
	s := &Service{st: opts.Store, keys: opts.Keys, blobs: opts.Blobs, accounts: opts.Accounts,
		trail: opts.Audit, notifier: opts.Notifier, delivery: opts.Delivery, log: opts.Logger,
		baseURL: opts.BaseURL, now: opts.Now, subs: map[string]map[chan Event]struct{}{},
		counts: store.NewCounter(countsPrefix, countsDelta, addCounts)}
	if s.now == nil {
		s.now = time.Now
	}
	if s.baseURL == nil {
		s.baseURL = func() string { return "https://localhost:8443" }
	}
	return s
}

// Link is the portal address of a message.
func Link(id string) string { return "/mail/m/" + id }

// errNotFound is the one answer for a message the user may not see, so
// that ids of other people's messages reveal nothing.
var errNotFound = fault.E(fault.NotFound, "There is no such message.", nil)

func (s *Service) audit(tx *store.Tx, actor, action, object string, detail map[string]string) error {
	return s.trail.Append(tx, audit.Event{Actor: actor, Action: action, Object: object, Detail: detail})
}

func getRecord(tx *store.Tx, id string) (record, error) {
	if !validID(id) {
		return record{}, errNotFound
	}
	r, err := store.GetJSON[record](tx, recordKey(id))
	if errors.Is(err, store.ErrNotFound) {
		return r, errNotFound
	}
	return r, err
}

func getEntry(tx *store.Tx, uid, id string) (entry, error) {
	if !validID(id) {
		return entry{}, errNotFound
	}
	e, err := store.GetJSON[entry](tx, entryKey(uid, id))
	if errors.Is(err, store.ErrNotFound) {
		return e, errNotFound
	}
	return e, err
}

// dataKey unwraps a message's key; a shredded key is Gone.
func (s *Service) dataKey(tx *store.Tx, id string) (*keyring.DataKey, error) {
	wrapped, err := tx.Get(dataKeyKey(id))
	if errors.Is(err, store.ErrNotFound) {
		return nil, errGone
	}
	if err != nil {
		return nil, err
	}
	return s.keys.UnwrapDataKey(wrapped)
}

var errGone = fault.E(fault.NotFound, "This message was recalled or has expired; its content is gone.", nil)

func aad(id, part string) []byte { return []byte("msg/" + id + "/" + part) }

func open(dk *keyring.DataKey, id, part string, sealed []byte) (string, error) {
	if len(sealed) == 0 {
		return "", nil
	}
	b, err := dk.Open(sealed, aad(id, part))
	if err != nil {
		return "", fmt.Errorf("open message %s %s: %w", id, part, err)
	}
	return string(b), nil
}

// gone reports whether a message is recalled or expired, expiring it on
// read when the sweeper has not yet.
func (s *Service) gone(r record) string {
	if r.Gone != "" {
		return r.Gone
	}
	if !r.Expires.IsZero() && !s.now().Before(r.Expires) {
		return "expired"
	}
	return ""
}

// putEntry writes a mailbox entry and its folder index, replacing old
// (zero for a new entry), and keeps the counts.
func (s *Service) putEntry(tx *store.Tx, uid string, old *entry, e entry) error {
	delta := map[Folder]Counts{}
	if old != nil {
		if err := tx.Delete(indexKey(uid, *old)); err != nil {
			return err
		}
		delta[old.Folder] = countOf(*old, -1)
	}
	nc := delta[e.Folder]
	nc.add(countOf(e, 1))
	delta[e.Folder] = nc
	if err := store.PutJSON(tx, entryKey(uid, e.ID), e); err != nil {
		return err
	}
	if err := tx.Put(indexKey(uid, e), nil); err != nil {
		return err
	}
	return s.counts.Add(tx, uid, delta)
}

// countOf is what e adds to its folder's counts, times sign.
func countOf(e entry, sign int) Counts {
	c := Counts{Total: sign}
	if !e.Read {
		c.Unread = sign
	}
	return c
}

func (c *Counts) add(d Counts) { c.Total += d.Total; c.Unread += d.Unread }

// addCounts sums folder counts (the mailbox counter's addition).
func addCounts(sum *map[Folder]Counts, d map[Folder]Counts) {
	if *sum == nil {
		*sum = map[Folder]Counts{}
	}
	for f, dc := range d {
		c := (*sum)[f]
		c.add(dc)
		(*sum)[f] = c
	}
}

// dropEntry removes a message from a user's mailbox.
func (s *Service) dropEntry(tx *store.Tx, uid string, e entry) error {
	for _, k := range [][]byte{indexKey(uid, e), entryKey(uid, e.ID)} {
		if err := tx.Delete(k); err != nil {
			return err
		}
	}
	if !e.TrashedAt.IsZero() {
		if err := tx.Delete(trashKey(e.TrashedAt, uid, e.ID)); err != nil {
			return err
		}
	}
	return s.counts.Add(tx, uid, map[Folder]Counts{e.Folder: countOf(e, -1)})
}

func (s *Service) countsOf(tx *store.Tx, uid string) (map[Folder]Counts, error) {
	c, err := s.counts.Get(tx, uid)
	if c == nil {
		c = map[Folder]Counts{}
	}
	return c, err
}

// Counts are the totals and unread messages of each of a user's folders.
func (s *Service) Counts(uid string) (map[Folder]Counts, error) {
	var c map[Folder]Counts
	err := s.st.View(func(tx *store.Tx) error {
		var err error
		c, err = s.countsOf(tx, uid)
		return err
	})
	return c, err
}
