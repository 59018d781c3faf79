// Package audit keeps the audit trail: every sign-in, every open of a message,
// every admin change becomes an event in the encrypted store. Events form a
// hash chain: each carries a MAC (under the keyring's audit key) over its own
// content and the previous event's MAC, so removing, reordering or editing an
// event breaks the chain, and only the appliance can extend it.
package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/sealpost/sealpost/appliance/keyring"
	"github.com/sealpost/sealpost/appliance/store"
)

// Event is one audited action. Detail must never hold message content,
// passwords or tokens.
type Event struct {
	Seq    uint64            `json:"seq"`
	Time   time.Time         `json:"time"`
	Actor  string            `json:"actor"`  // who: "cli", "system", "user:<id>"
	Action string            `json:"action"` // what: "settings.change"
	Object string            `json:"object"` // on what: "settings/mail.relay_host"
	Detail map[string]string `json:"detail,omitempty"`
	Prev   []byte            `json:"prev,omitempty"` // the previous event's MAC
	MAC    []byte            `json:"mac"`
}

var headKey = []byte("audit/head")

const eventPrefix = "audit/e/"

func eventKey(seq uint64) []byte { return fmt.Appendf(nil, "%s%020d", eventPrefix, seq) }

type head struct {
	Seq uint64 `json:"seq"`
	MAC []byte `json:"mac"`
}

// Trail appends to and verifies the audit trail.
type Trail struct {
	keys *keyring.Keyring
	now  func() time.Time
}

// New returns a trail; now is the clock (time.Now in production).
func New(keys *keyring.Keyring, now func() time.Time) *Trail {
	return &Trail{keys: keys, now: now}
}

// chain is the head of one store's trail, held in memory so that
// concurrent audited transactions do not all read (and so conflict on) the
// head record. Append only collects a transaction's events; just before
// the commit the transaction takes the chain, numbers and MACs them, and
// holds it until the commit is through, so events are numbered in commit
// order with no gaps while the turn lasts only for the commit itself. The
// head record is still written with every event, for Verify and the next
// start.
type chain struct {
	mu     sync.Mutex
	loaded bool
	head   head
}

// chains holds one chain per open store.
var chains sync.Map // *store.Store → *chain

func chainOf(st *store.Store) *chain {
	c, _ := chains.LoadOrStore(st, &chain{})
	return c.(*chain)
}

// pendingKey is where a transaction keeps the events it appended.
const pendingKey = "audit.pending"

// Append adds e to the trail inside the caller's transaction, so the event
// is durable exactly when the change it records is. Its time is now; its
// number and MAC are given at the commit.
func (t *Trail) Append(tx *store.Tx, e Event) error {
	if !tx.Writable() {
		return errors.New("audit: append in a read-only transaction")
	}
	v, _ := tx.Memo(pendingKey, func() (any, error) {
		p := &[]Event{}
		tx.BeforeCommit(func() error { return t.chainUp(tx, *p) })
		return p, nil
	})
	p := v.(*[]Event)
	e.Time = t.now().UTC()
	e.Detail = maps.Clone(e.Detail)
	*p = append(*p, e)
	return nil
}

// chainUp numbers the transaction's events after the chain's head and
// writes them; the chain stays taken until the commit is through.
func (t *Trail) chainUp(tx *store.Tx, events []Event) error {
	c := chainOf(tx.Store())
	c.mu.Lock()
	next := c.head
	tx.OnDone(func(committed bool) {
		if committed {
			c.head = next
		}
		c.mu.Unlock()
	})
	if !c.loaded {
		h, err := store.GetJSON[head](tx, headKey)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("read audit head: %w", err)
		}
		c.head, c.loaded, next = h, true, h
	}
	for _, e := range events {
		e.Seq, e.Prev, e.MAC = next.Seq+1, next.MAC, nil
		e.MAC = t.keys.MAC(keyring.PurposeAudit, canonical(e))
		if err := store.PutJSON(tx, eventKey(e.Seq), e); err != nil {
			return err
		}
		next = head{Seq: e.Seq, MAC: e.MAC}
	}
	return store.PutJSON(tx, headKey, next)
}

// canonical is the byte string an event's MAC covers: the event without its
// MAC, as JSON (map keys are sorted by encoding/json).
func canonical(e Event) []byte {
	e.MAC = nil
	data, _ := json.Marshal(e)
	return data
}

// List returns up to limit events after seq after, oldest first.
func List(tx *store.Tx, after uint64, limit int) ([]Event, error) {
	var out []Event
	err := tx.ScanFrom([]byte(eventPrefix), eventKey(after+1), func(_, value []byte) error {
		var e Event
		if err := json.Unmarshal(value, &e); err != nil {
			return err
		}
		out = append(out, e)
		if len(out) >= limit {
			return store.ErrStop
		}
		return nil
	})
	return out, err
}

// Verify walks the whole chain and reports the first event that does not
// fit: a changed event, a gap, or a head that does not match the last event.
func (t *Trail) Verify(tx *store.Tx) (count uint64, err error) {
	var prev []byte
	var seq uint64
	err = tx.Scan([]byte(eventPrefix), func(key, value []byte) error {
		var e Event
		if err := json.Unmarshal(value, &e); err != nil {
			return fmt.Errorf("audit event %s is unreadable: %w", key, err)
		}
		seq++
		if e.Seq != seq {
			return fmt.Errorf("audit event %d is missing (found %d)", seq, e.Seq)
		}
		if string(e.Prev) != string(prev) || !t.keys.VerifyMAC(keyring.PurposeAudit, canonical(e), e.MAC) {
			return fmt.Errorf("audit event %d was changed or its chain is broken", e.Seq)
		}
		prev = e.MAC
		return nil
	})
	if err != nil {
		return seq, err
	}
	h, err := store.GetJSON[head](tx, headKey)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return seq, err
	}
	if h.Seq != seq || string(h.MAC) != string(prev) {
		return seq, fmt.Errorf("the audit trail ends at event %d but its head says %d: events were removed", seq, h.Seq)
	}
	return seq, nil
}

// Count is how many events the trail holds (the sequence number of the
// newest).
func Count(tx *store.Tx) (uint64, error) {
	h, err := store.GetJSON[head](tx, headKey)
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil
	}
	return h.Seq, err
}

// Newest returns up to limit events, newest first, skipping the newest
// skip: pages of the trail for the viewer.
func Newest(tx *store.Tx, skip uint64, limit int) ([]Event, error) {
	n, err := Count(tx)
	if err != nil || skip >= n {
		return nil, err
	}
	last := n - skip // the newest event of the page
	first := uint64(1)
	if last > uint64(limit) {
		first = last - uint64(limit) + 1
	}
	events, err := List(tx, first-1, int(last-first+1))
	slices.Reverse(events)
	return events, err
}
