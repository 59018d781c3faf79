package mailer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/sealpost/sealpost/appliance/store"
)

// Sender delivers one message; Relay and Direct are.
type Sender interface {
	Send(ctx context.Context, from string, to []string, msg []byte) (string, error)
}

// domainLimiter is a Sender that limits deliveries at once per recipient
// domain (Direct does; a relay is one destination and needs no such limit).
type domainLimiter interface {
	DomainLimit() int
}

// Item states.
const (
	StateQueued = "queued"
	StateSent   = "sent"
	StateFailed = "failed"
)

// Item is one queued notification. Its message is kept (sealed, like every
// record) until it is sent, so that a failed one can be retried; once sent,
// only the outcome remains, for the delivery slip.
type Item struct {
	ID          string    `json:"id"`
	Kind        Kind      `json:"kind"`
	To          string    `json:"to"`
	ReturnPath  string    `json:"return_path"`
	State       string    `json:"state"`
	Created     time.Time `json:"created"`
	NextAttempt time.Time `json:"next_attempt"`
	Attempts    int       `json:"attempts"`
	LastError   string    `json:"last_error,omitempty"`
	Reply       string    `json:"reply,omitempty"`
	Done        time.Time `json:"done,omitzero"`
	Message     []byte    `json:"message,omitempty"`
}

// Domain is the recipient's domain.
func (it Item) Domain() string { return it.To[strings.LastIndexByte(it.To, '@')+1:] }

const (
	itemPrefix = "mailq/item/"
	duePrefix  = "mailq/due/"
)

func itemKey(id string) []byte { return []byte(itemPrefix + id) }

// dueKey orders queued items by their next attempt; its value is the
// recipient domain.
func dueKey(at time.Time, id string) []byte {
	return fmt.Appendf(nil, "%s%020d/%s", duePrefix, at.UnixNano(), id)
}

// Queue is the persistent outbound queue. A notification is enqueued in a
// durable transaction, attempted by a bounded pool of workers, and marked
// sent only after the peer's 250. If the appliance dies between that 250
// and the record of it, the notification is sent again after the restart:
// a rare duplicate, never a loss.
type Queue struct {
	st     *store.Store
	sender func(context.Context) (Sender, error) // the current delivery path
	log    zerolog.Logger

	// Now is the clock; Backoff the wait before attempt n+1 after n failed.
	Now      func() time.Time
	Backoff  func(attempts int) time.Duration
	Lifetime time.Duration // give up after this long (default 5 days)
	Workers  int           // deliveries at once (default 16)

	// PerDomain limits deliveries at once to one recipient domain when the
	// sender does not set its own limit (default: Workers, no limit).
	PerDomain int

	mu       sync.Mutex
	cursor   []byte    // the first due key of the last scan: where the next one starts
	rescan   time.Time // when the cursor was last reset
	inflight map[string]bool
	domains  map[string]int
	wake     chan struct{}
	metrics  queueMetrics
}

type queueMetrics struct {
	queued     prometheus.Gauge
	deliveries *prometheus.CounterVec
}

// NewQueue returns a queue over the store that delivers through what
// sender returns at each attempt (so settings changes apply at once).
func NewQueue(st *store.Store, sender func(context.Context) (Sender, error), log zerolog.Logger) *Queue {
	return &Queue{
		st: st, sender: sender, log: log,
		Now: time.Now, Backoff: DefaultBackoff, Lifetime: 5 * 24 * time.Hour, Workers: 16,
		inflight: map[string]bool{}, domains: map[string]int{}, wake: make(chan struct{}, 1),
		metrics: queueMetrics{
			queued: prometheus.NewGauge(prometheus.GaugeOpts{Name: "sealpost_mail_queue_length", Help: "Notifications waiting to be delivered."}),
			deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sealpost_mail_deliveries_total",
				Help: "Delivery attempts by result: sent, temporary (will retry) or permanent (given up)."}, []string{"result"}),
		},
	}
}

// Collectors are the queue's metrics.
func (q *Queue) Collectors() []prometheus.Collector {
	return []prometheus.Collector{q.metrics.queued, q.metrics.deliveries}
}

// DefaultBackoff doubles from one minute up to an hour, with ±25 % jitter so
// that a backlog does not retry in lockstep.
func DefaultBackoff(attempts int) time.Duration {
	d := time.Minute << min(attempts-1, 6)
	d = min(d, time.Hour)
	return time.Duration(float64(d) * (0.75 + rand.Float64()/2))
}

// Enqueue stores a notification durably and wakes the workers.
func (q *Queue) Enqueue(ctx context.Context, kind Kind, env Envelope, msg []byte) error {
	err := q.st.Update(ctx, func(tx *store.Tx) error { return q.Add(tx, kind, env, msg) })
	if err != nil {
		return err
	}
	q.Committed(1)
	return nil
}

// Add queues a notification inside the caller's transaction, so that the
// flow that sends it and the notification are durable together. After the
// commit, call Committed.
func (q *Queue) Add(tx *store.Tx, kind Kind, env Envelope, msg []byte) error {
	return q.put(tx, Item{ID: env.ID, Kind: kind, To: env.To, ReturnPath: env.ReturnPath(), Message: msg})
}

// KindPassThrough is mail the gateway passes on unchanged: no policy made
// it secure. It is not a notification and has no template.
const KindPassThrough Kind = "pass_through"

// AddPassThrough queues a message that passes through the gateway
// unchanged, for one recipient, inside the caller's transaction. Its
// envelope sender is the original one, so bounces go back to the person
// who wrote it, not to the appliance.
func (q *Queue) AddPassThrough(tx *store.Tx, id, from, to string, msg []byte) error {
	return q.put(tx, Item{ID: id, Kind: KindPassThrough, To: to, ReturnPath: from, Message: msg})
}

// put stores a new item, due now.
func (q *Queue) put(tx *store.Tx, it Item) error {
	now := q.Now().UTC()
	it.State, it.Created, it.NextAttempt = StateQueued, now, now
	if _, err := tx.Get(itemKey(it.ID)); err == nil {
		return fmt.Errorf("enqueue: item %s exists", it.ID)
	}
	if err := store.PutJSON(tx, itemKey(it.ID), it); err != nil {
		return err
	}
	return tx.Put(dueKey(now, it.ID), []byte(it.Domain()))
}

// Committed counts n notifications added in a committed transaction and
// wakes the workers.
func (q *Queue) Committed(n int) {
	q.metrics.queued.Add(float64(n))
	q.poke()
}

func (q *Queue) poke() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// Run delivers due notifications until ctx ends, then waits for the
// deliveries in flight.
func (q *Queue) Run(ctx context.Context) {
	if n, err := q.countQueued(); err == nil {
		q.metrics.queued.Set(float64(n))
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	slots := make(chan struct{}, max(1, q.Workers))
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	// Notifications added in other packages' transactions are counted
	// here, by a recount now and then.
	recount := time.NewTicker(time.Minute)
	defer recount.Stop()
	for {
		select {
		case <-recount.C:
			if n, err := q.countQueued(); err == nil {
				q.metrics.queued.Set(float64(n))
			}
		default:
		}
		due, err := q.due(4 * cap(slots))
		if err != nil {
			q.log.Error().Err(err).Msg("read the mail queue")
		}
		perDomain := q.domainLimit(ctx, cap(slots))
		for _, it := range due {
			if !q.claim(it, perDomain) {
				continue
			}
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				q.release(it)
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-slots }()
				defer q.release(it)
				q.attempt(ctx, it.ID)
			}()
		}
		select {
		case <-ctx.Done():
			return
		case <-q.wake:
		case <-tick.C:
		}
	}
}

// dueRef is a queued item's id and domain, all the scheduler holds.
type dueRef struct{ ID, Domain string }

// due returns up to limit items whose next attempt has come and that are
// not in flight, oldest first. Memory stays bounded by limit, however long
// the backlog.
//
// The scan starts where the previous one found its first entry: delivered
// items leave deleted keys at the front of the index, and stepping over
// them on every scan would cost time in proportion to all that was ever
// sent. New entries are never due before that point (they are due now or
// later); a full scan every minute covers a clock that went back.
func (q *Queue) due(limit int) ([]dueRef, error) {
	now := q.Now().UnixNano()
	q.mu.Lock()
	if time.Since(q.rescan) > time.Minute {
		q.cursor, q.rescan = nil, time.Now()
	}
	start := q.cursor
	q.mu.Unlock()
	if start == nil {
		start = []byte(duePrefix)
	}
	var out []dueRef
	var first []byte
	err := q.st.View(func(tx *store.Tx) error {
		return tx.ScanFrom([]byte(duePrefix), start, func(key, domain []byte) error {
			rest := string(key[len(duePrefix):])
			at, id, _ := strings.Cut(rest, "/")
			// Base 10 explicitly: the zero-padded number would read as octal.
			ns, err := strconv.ParseInt(at, 10, 64)
			if err != nil {
				return fmt.Errorf("mail queue index: bad key %q", key)
			}
			if ns > now {
				return store.ErrStop
			}
			if first == nil {
				first = key
			}
			q.mu.Lock()
			busy := q.inflight[id]
			q.mu.Unlock()
			if busy {
				return nil
			}
			// The entry's value is the recipient domain, so that scheduling
			// never reads the notifications themselves.
			ref := dueRef{ID: id, Domain: string(domain)}
			if ref.Domain == "" {
				it, err := store.GetJSON[Item](tx, itemKey(id))
				if err != nil {
					return nil // a dangling index entry; attempt cleans it
				}
				ref.Domain = it.Domain()
			}
			out = append(out, ref)
			if len(out) >= limit {
				return store.ErrStop
			}
			return nil
		})
	})
	if first != nil {
		q.mu.Lock()
		q.cursor = first
		q.mu.Unlock()
	}
	return out, err
}

// domainLimit is how many deliveries at once may go to one domain.
func (q *Queue) domainLimit(ctx context.Context, workers int) int {
	if s, err := q.sender(ctx); err == nil {
		if l, ok := s.(domainLimiter); ok {
			return max(1, l.DomainLimit())
		}
	}
	if q.PerDomain > 0 {
		return q.PerDomain
	}
	return workers
}

func (q *Queue) claim(it dueRef, perDomain int) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.inflight[it.ID] || q.domains[it.Domain] >= perDomain {
		return false
	}
	q.inflight[it.ID] = true
	q.domains[it.Domain]++
	return true
}

func (q *Queue) release(it dueRef) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.inflight, it.ID)
	if q.domains[it.Domain]--; q.domains[it.Domain] <= 0 {
		delete(q.domains, it.Domain)
	}
	q.poke() // a slot is free: look for more work now, not at the next tick
}

// attempt delivers one item and records the outcome.
func (q *Queue) attempt(ctx context.Context, id string) {
	var it Item
	err := q.st.View(func(tx *store.Tx) error {
		var err error
		it, err = store.GetJSON[Item](tx, itemKey(id))
		return err
	})
	if err != nil || it.State != StateQueued {
		return
	}
	reply, sendErr := "", error(nil)
	sender, err := q.sender(ctx)
	if err != nil {
		sendErr = &DeliveryError{Err: err}
	} else {
		reply, sendErr = sender.Send(ctx, it.ReturnPath, []string{it.To}, it.Message)
	}
	if ctx.Err() != nil && sendErr != nil {
		return // shutting down: the item stays due and is tried after the restart
	}
	now := q.Now().UTC()
	oldDue := dueKey(it.NextAttempt, it.ID)
	it.Attempts++
	result := "sent"
	var de *DeliveryError
	switch {
	case sendErr == nil:
		it.State, it.Reply, it.Done, it.Message, it.LastError = StateSent, reply, now, nil, ""
	case errors.As(sendErr, &de) && de.Permanent:
		it.State, it.LastError, it.Done = StateFailed, sendErr.Error(), now
		result = "permanent"
	case now.Sub(it.Created) >= q.Lifetime:
		it.State, it.Done = StateFailed, now
		it.LastError = fmt.Sprintf("gave up after %s: %v", q.Lifetime, sendErr)
		result = "permanent"
	default:
		it.LastError = sendErr.Error()
		it.NextAttempt = now.Add(q.Backoff(it.Attempts))
		result = "temporary"
	}
	err = q.st.Update(context.WithoutCancel(ctx), func(tx *store.Tx) error {
		if err := tx.Delete(oldDue); err != nil {
			return err
		}
		if it.State == StateQueued {
			if err := tx.Put(dueKey(it.NextAttempt, it.ID), []byte(it.Domain())); err != nil {
				return err
			}
		}
		return store.PutJSON(tx, itemKey(it.ID), it)
	})
	if err != nil {
		q.log.Error().Err(err).Str("notification_id", it.ID).Msg("record delivery outcome")
		return
	}
	q.metrics.deliveries.WithLabelValues(result).Inc()
	if it.State != StateQueued {
		q.metrics.queued.Dec()
	}
	q.log.Info().Str("notification_id", it.ID).Str("kind", string(it.Kind)).Str("to_domain", it.Domain()).
		Str("result", result).Int("attempts", it.Attempts).Msg("notification delivery")
}

func (q *Queue) countQueued() (int, error) {
	n := 0
	err := q.st.View(func(tx *store.Tx) error {
		return tx.Scan([]byte(duePrefix), func(_, _ []byte) error { n++; return nil })
	})
	return n, err
}

// Get returns one item.
func (q *Queue) Get(id string) (Item, error) {
	var it Item
	err := q.st.View(func(tx *store.Tx) error {
		var err error
		it, err = store.GetJSON[Item](tx, itemKey(id))
		return err
	})
	return it, err
}

// List returns up to limit items that are queued or failed, without their
// messages, oldest first.
func (q *Queue) List(limit int) ([]Item, error) {
	var out []Item
	err := q.st.View(func(tx *store.Tx) error {
		return tx.Scan([]byte(itemPrefix), func(_, value []byte) error {
			var it Item
			if err := json.Unmarshal(value, &it); err != nil {
				return err
			}
			if it.State == StateSent {
				return nil
			}
			it.Message = nil
			out = append(out, it)
			if len(out) >= limit {
				return store.ErrStop
			}
			return nil
		})
	})
	return out, err
}

// Retry makes a queued or failed item due now.
func (q *Queue) Retry(ctx context.Context, id string) error {
	err := q.st.Update(ctx, func(tx *store.Tx) error {
		it, err := store.GetJSON[Item](tx, itemKey(id))
		if err != nil {
			return err
		}
		switch it.State {
		case StateSent:
			return fmt.Errorf("notification %s was already delivered", id)
		}
		if err := tx.Delete(dueKey(it.NextAttempt, id)); err != nil {
			return err
		}
		it.State, it.NextAttempt = StateQueued, q.Now().UTC()
		if err := tx.Put(dueKey(it.NextAttempt, id), []byte(it.Domain())); err != nil {
			return err
		}
		return store.PutJSON(tx, itemKey(id), it)
	})
	if err == nil {
		q.poke()
	}
	return err
}

// Drop removes a queued or failed item and its message.
func (q *Queue) Drop(ctx context.Context, id string) error {
	wasQueued := false
	err := q.st.Update(ctx, func(tx *store.Tx) error {
		it, err := store.GetJSON[Item](tx, itemKey(id))
		if err != nil {
			return err
		}
		if it.State == StateSent {
			return fmt.Errorf("notification %s was already delivered", id)
		}
		wasQueued = it.State == StateQueued
		if err := tx.Delete(dueKey(it.NextAttempt, id)); err != nil {
			return err
		}
		return tx.Delete(itemKey(id))
	})
	if err == nil && wasQueued {
		q.metrics.queued.Dec()
	}
	return err
}
