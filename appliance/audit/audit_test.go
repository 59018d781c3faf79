package audit

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sealpost/sealpost/appliance/store"
	"github.com/sealpost/sealpost/appliance/store/storetest"
)

func setup(t *testing.T) (*store.Store, *Trail) {
	t.Helper()
	st, keys := storetest.Open(t, t.TempDir())
	var mu sync.Mutex
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	return st, New(keys, func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(time.Second)
		return now
	})
}

func TestAppendListVerify(t *testing.T) {
	t.Parallel()
	st, trail := setup(t)
	ctx := context.Background()
	for i := range 5 {
		err := st.Update(ctx, func(tx *store.Tx) error {
			return trail.Append(tx, Event{Actor: "cli", Action: "settings.change", Object: "settings/x", Detail: map[string]string{"n": string(rune('a' + i))}})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	st.View(func(tx *store.Tx) error {
		events, err := List(tx, 1, 10)
		if err != nil || len(events) != 4 || events[0].Seq != 2 || events[3].Detail["n"] != "e" {
			t.Errorf("List after 1: %+v %v", events, err)
		}
		if n, err := trail.Verify(tx); err != nil || n != 5 {
			t.Errorf("Verify = %d, %v", n, err)
		}
		return nil
	})
}

// TestTamperingDetected edits, removes and forges events through the store
// (as someone with the key and the disk could) and expects Verify to object.
func TestTamperingDetected(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		tamper func(tx *store.Tx) error
		want   string
	}{
		{"edited detail", func(tx *store.Tx) error {
			e, _ := store.GetJSON[Event](tx, eventKey(2))
			e.Detail["n"] = "forged"
			return store.PutJSON(tx, eventKey(2), e)
		}, "event 2 was changed"},
		{"removed from the middle", func(tx *store.Tx) error { return tx.Delete(eventKey(2)) }, "event 2 is missing"},
		{"removed from the end", func(tx *store.Tx) error { return tx.Delete(eventKey(3)) }, "were removed"},
		{"reordered", func(tx *store.Tx) error {
			a, _ := store.GetJSON[Event](tx, eventKey(1))
			b, _ := store.GetJSON[Event](tx, eventKey(2))
			a.Seq, b.Seq = 2, 1
			store.PutJSON(tx, eventKey(1), b)
			return store.PutJSON(tx, eventKey(2), a)
		}, "changed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st, trail := setup(t)
			ctx := context.Background()
			for range 3 {
				st.Update(ctx, func(tx *store.Tx) error {
					return trail.Append(tx, Event{Actor: "cli", Action: "test", Detail: map[string]string{"n": "x"}})
				})
			}
			if err := st.Update(ctx, tt.tamper); err != nil {
				t.Fatal(err)
			}
			st.View(func(tx *store.Tx) error {
				if _, err := trail.Verify(tx); err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("Verify = %v, want %q", err, tt.want)
				}
				return nil
			})
		})
	}
}

func TestNewestPages(t *testing.T) {
	t.Parallel()
	st, trail := setup(t)
	err := st.Update(context.Background(), func(tx *store.Tx) error {
		for i := range 7 {
			if err := trail.Append(tx, Event{Actor: "cli", Action: fmt.Sprintf("a%d", i+1)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		skip  uint64
		limit int
		want  string
	}{{0, 3, "a7 a6 a5"}, {3, 3, "a4 a3 a2"}, {6, 3, "a1"}, {7, 3, ""}, {0, 10, "a7 a6 a5 a4 a3 a2 a1"}} {
		var got []string
		err := st.View(func(tx *store.Tx) error {
			evs, err := Newest(tx, tt.skip, tt.limit)
			for _, e := range evs {
				got = append(got, e.Action)
			}
			return err
		})
		if err != nil || strings.Join(got, " ") != tt.want {
			t.Errorf("Newest(%d, %d) = %q, %v; want %q", tt.skip, tt.limit, got, err, tt.want)
		}
	}
}

// TestConcurrentAppends: audited transactions from many goroutines at once
// all commit (none gives up on a conflict over the head), and the chain
// they make verifies with no gap.
func TestConcurrentAppends(t *testing.T) {
	t.Parallel()
	st, trail := setup(t)
	const writers, each = 64, 10
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				errs <- st.Update(context.Background(), func(tx *store.Tx) error {
					if err := tx.Put(fmt.Appendf(nil, "test/%d/%d", w, i), []byte("x")); err != nil {
						return err
					}
					if err := trail.Append(tx, Event{Actor: "cli", Action: "first"}); err != nil {
						return err
					}
					time.Sleep(time.Millisecond) // work between appends, as real flows do
					return trail.Append(tx, Event{Actor: "cli", Action: "second"})
				})
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("an audited write failed: %v", err)
		}
	}
	// A transaction that fails after appending leaves no trace in the chain.
	failed := st.Update(context.Background(), func(tx *store.Tx) error {
		if err := trail.Append(tx, Event{Actor: "cli", Action: "rolled-back"}); err != nil {
			return err
		}
		return fmt.Errorf("give up")
	})
	if failed == nil {
		t.Fatal("the failing update succeeded")
	}
	err := st.View(func(tx *store.Tx) error {
		n, err := trail.Verify(tx)
		if err == nil && n != writers*each*2 {
			return fmt.Errorf("%d events, want %d", n, writers*each*2)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestAppendersOverlap: a transaction that has appended an event does not
// hold up another audited transaction while it does the rest of its work;
// only the commits take turns. The second transaction commits while the
// first is still running, and the chain numbers them in commit order.
func TestAppendersOverlap(t *testing.T) {
	t.Parallel()
	st, trail := setup(t)
	ctx := context.Background()
	appended, secondDone := make(chan struct{}), make(chan error, 1)
	var first error
	var wg sync.WaitGroup
	wg.Go(func() {
		first = st.Update(ctx, func(tx *store.Tx) error {
			if err := trail.Append(tx, Event{Actor: "cli", Action: "first"}); err != nil {
				return err
			}
			close(appended)
			select {
			case err := <-secondDone:
				secondDone <- err
				return err
			case <-time.After(10 * time.Second):
				return fmt.Errorf("the second transaction waited for the first one's work")
			}
		})
	})
	<-appended
	secondDone <- st.Update(ctx, func(tx *store.Tx) error {
		return trail.Append(tx, Event{Actor: "cli", Action: "second"})
	})
	wg.Wait()
	if first != nil {
		t.Fatal(first)
	}
	if err := <-secondDone; err != nil {
		t.Fatal(err)
	}
	st.View(func(tx *store.Tx) error {
		events, err := List(tx, 0, 10)
		if err != nil || len(events) != 2 || events[0].Action != "second" || events[1].Action != "first" {
			t.Errorf("events %+v, %v; want second then first", events, err)
		}
		if n, err := trail.Verify(tx); err != nil || n != 2 {
			t.Errorf("Verify = %d, %v", n, err)
		}
		return nil
	})
}

// TestAuditedWorkAfterCommit: a callback that runs once an audited
// transaction committed may itself run an audited transaction (the chain's
// turn ends before the other callbacks run).
func TestAuditedWorkAfterCommit(t *testing.T) {
	t.Parallel()
	st, trail := setup(t)
	ctx := context.Background()
	done := make(chan error, 1)
	go func() {
		done <- st.Update(ctx, func(tx *store.Tx) error {
			tx.OnDone(func(committed bool) {
				if committed {
					if err := st.Update(ctx, func(tx *store.Tx) error {
						return trail.Append(tx, Event{Actor: "system", Action: "after"})
					}); err != nil {
						t.Error(err)
					}
				}
			})
			return trail.Append(tx, Event{Actor: "cli", Action: "first"})
		})
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("an audited update inside a commit callback waited for the chain forever")
	}
	st.View(func(tx *store.Tx) error {
		if n, err := trail.Verify(tx); err != nil || n != 2 {
			t.Errorf("Verify = %d, %v", n, err)
		}
		return nil
	})
}
