package mailer

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/rs/zerolog"

	"github.com/sealpost/sealpost/appliance/keyring"
	"github.com/sealpost/sealpost/appliance/store"
	"github.com/sealpost/sealpost/appliance/store/storetest"
	"github.com/sealpost/sealpost/mailer/smtptest"
)

// openStore opens a keyring and store under dir (reopenable).
func openStore(t testing.TB, dir string) *store.Store {
	t.Helper()
	st, _ := storetest.Open(t, dir)
	return st
}

func newTestQueue(st *store.Store, relay Relay) *Queue {
	q := NewQueue(st, func(context.Context) (Sender, error) { return relay, nil }, zerolog.Nop())
	q.Backoff = func(int) time.Duration { return 20 * time.Millisecond }
	return q
}

func enqueue(t testing.TB, q *Queue, n int, domain string) []string {
	t.Helper()
	var ids []string
	for i := range n {
		id := fmt.Sprintf("n%06d", i)
		env := Envelope{ID: id, FromAddress: "no-reply@clinic.test", To: fmt.Sprintf("user%d@%s", i, domain), Hostname: "h.test"}
		msg := []byte(fmt.Sprintf("Subject: notification %s\r\n\r\nbody\r\n", id))
		if err := q.Enqueue(context.Background(), KindNewMessage, env, msg); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

// runQueue runs q until the test ends.
func runQueue(t *testing.T, q *Queue) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { q.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
}

func waitState(t *testing.T, q *Queue, id, state string) Item {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		it, err := q.Get(id)
		if err == nil && it.State == state {
			return it
		}
		if time.Now().After(deadline) {
			t.Fatalf("notification %s is %+v (%v), want %s", id, it, err, state)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestQueueDelivers(t *testing.T) {
	t.Parallel()
	relay := smtptest.Start(t, smtptest.Options{})
	q := newTestQueue(openStore(t, t.TempDir()), relayFor(relay, "starttls"))
	ids := enqueue(t, q, 30, "outside.test")
	runQueue(t, q)
	if got := relay.Wait(30, 15*time.Second); len(got) != 30 {
		t.Fatalf("relay received %d of 30", len(got))
	}
	for _, id := range ids {
		it := waitState(t, q, id, StateSent)
		if it.Message != nil || !strings.HasPrefix(it.Reply, "250") || it.Attempts != 1 {
			t.Errorf("%s after delivery: %+v", id, it)
		}
	}
	if list, _ := q.List(100); len(list) != 0 {
		t.Errorf("queue list after delivery: %v", list)
	}
	if got := relay.Messages()[0].From; !strings.HasPrefix(got, "bounces+n") {
		t.Errorf("envelope sender %q is not the VERP address", got)
	}
}

func TestQueueRetriesTemporaryThenSends(t *testing.T) {
	t.Parallel()
	relay := smtptest.Start(t, smtptest.Options{})
	var mu sync.Mutex
	refusals := 2
	relay.Reply(func(stage string) error {
		mu.Lock()
		defer mu.Unlock()
		if stage == "rcpt" && refusals > 0 {
			refusals--
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}
		}
		return nil
	})
	q := newTestQueue(openStore(t, t.TempDir()), relayFor(relay, "starttls"))
	ids := enqueue(t, q, 1, "outside.test")
	runQueue(t, q)
	it := waitState(t, q, ids[0], StateSent)
	if it.Attempts != 3 || len(relay.Messages()) != 1 {
		t.Errorf("after two 451s: attempts %d, received %d", it.Attempts, len(relay.Messages()))
	}
}

func TestQueuePermanentFailure(t *testing.T) {
	t.Parallel()
	relay := smtptest.Start(t, smtptest.Options{})
	relay.Reply(func(stage string) error {
		if stage == "rcpt" {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
		}
		return nil
	})
	q := newTestQueue(openStore(t, t.TempDir()), relayFor(relay, "starttls"))
	ids := enqueue(t, q, 1, "outside.test")
	runQueue(t, q)
	it := waitState(t, q, ids[0], StateFailed)
	time.Sleep(100 * time.Millisecond) // would be several retries, were it retried
	if it, _ = q.Get(ids[0]); it.Attempts != 1 || !strings.Contains(it.LastError, "550 5.1.1 no such user") {
		t.Errorf("after a 550: %+v", it)
	}
	list, _ := q.List(10)
	if len(list) != 1 || list[0].State != StateFailed || list[0].Message != nil {
		t.Errorf("queue list shows %+v", list)
	}

	// Retry after the cause is fixed; then drop is refused for a sent one.
	relay.Reply(nil)
	if err := q.Retry(context.Background(), ids[0]); err != nil {
		t.Fatal(err)
	}
	waitState(t, q, ids[0], StateSent)
	if err := q.Drop(context.Background(), ids[0]); err == nil {
		t.Error("dropping a delivered notification succeeded")
	}
}

func TestQueueGivesUpAfterLifetime(t *testing.T) {
	t.Parallel()
	q := newTestQueue(openStore(t, t.TempDir()), Relay{Host: "127.0.0.1", Port: 1, Security: "starttls", DialTimeout: time.Second})
	var mu sync.Mutex
	now := time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)
	q.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	q.Backoff = func(int) time.Duration { return time.Hour }
	ids := enqueue(t, q, 1, "outside.test")
	runQueue(t, q)
	deadline := time.Now().Add(10 * time.Second)
	for {
		it, _ := q.Get(ids[0])
		if it.State == StateFailed {
			if !strings.Contains(it.LastError, "gave up after 120h0m0s") {
				t.Errorf("last error %q", it.LastError)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still %+v", it)
		}
		if it.Attempts > 0 { // a failed attempt: move the clock past the next one
			mu.Lock()
			now = now.Add(25 * time.Hour)
			mu.Unlock()
			q.poke()
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestQueueSurvivesRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	relay := smtptest.Start(t, smtptest.Options{})
	keys, err := keyring.Open(filepath.Join(dir, "k"), filepath.Join(dir, "data"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(filepath.Join(dir, "data"), keys, store.Options{Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	ids := enqueue(t, newTestQueue(st, relayFor(relay, "starttls")), 10, "outside.test")
	st.Close()
	keys.Close()

	q := newTestQueue(openStore(t, dir), relayFor(relay, "starttls"))
	runQueue(t, q)
	for _, id := range ids {
		waitState(t, q, id, StateSent)
	}
	if n := len(relay.Messages()); n != 10 {
		t.Errorf("received %d, want 10", n)
	}
}

func TestQueuePerDomainLimit(t *testing.T) {
	t.Parallel()
	for _, direct := range []bool{false, true} {
		t.Run(fmt.Sprintf("direct=%v", direct), func(t *testing.T) {
			t.Parallel()
			peer := smtptest.Start(t, smtptest.Options{})
			var mu sync.Mutex
			inflight, peak := 0, 0
			peer.Reply(func(stage string) error {
				if stage != "mail" {
					return nil
				}
				mu.Lock()
				inflight++
				peak = max(peak, inflight)
				mu.Unlock()
				time.Sleep(30 * time.Millisecond)
				mu.Lock()
				inflight--
				mu.Unlock()
				return nil
			})
			q := newTestQueue(openStore(t, t.TempDir()), relayFor(peer, "starttls"))
			if direct {
				// Direct delivery brings its own limit per domain.
				z := newZone()
				z.hosts["one-domain.test"] = []string{"127.0.0.1"}
				d := directFor(z, peer.Port)
				d.PerDomain = 2
				q.sender = func(context.Context) (Sender, error) { return d, nil }
			} else {
				q.PerDomain = 2
			}
			enqueue(t, q, 12, "one-domain.test")
			runQueue(t, q)
			if got := peer.Wait(12, 15*time.Second); len(got) != 12 {
				t.Fatalf("received %d", len(got))
			}
			mu.Lock()
			defer mu.Unlock()
			if peak != 2 {
				t.Errorf("%d deliveries at once to one domain, limit 2", peak)
			}
		})
	}
}

func TestQueueWaitsBeforeRetrying(t *testing.T) {
	t.Parallel()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close() // nothing listens: every attempt fails at once
	q := newTestQueue(openStore(t, t.TempDir()), Relay{Host: "127.0.0.1", Port: port, Security: "starttls", DialTimeout: time.Second})
	q.Backoff = DefaultBackoff
	ids := enqueue(t, q, 1, "outside.test")
	runQueue(t, q)
	time.Sleep(2 * time.Second)
	it, err := q.Get(ids[0])
	if err != nil {
		t.Fatal(err)
	}
	if it.Attempts != 1 || it.State != StateQueued || time.Until(it.NextAttempt) < 30*time.Second {
		t.Fatalf("after one failure: %d attempts, next in %s; want 1 attempt and the next a minute later",
			it.Attempts, time.Until(it.NextAttempt).Round(time.Second))
	}
}
