package store

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func newCounter() *Counter[int64] {
	return NewCounter("test/n/", "test/nd/", func(sum *int64, d int64) { *sum += d })
}

func counterValue(t *testing.T, s *Store, c *Counter[int64], id string) int64 {
	t.Helper()
	var v int64
	if err := s.View(func(tx *Tx) error {
		var err error
		v, err = c.Get(tx, id)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestCounterAddsDoNotConflict: two transactions adding to the same id at
// once both commit at their first try (a read-modify-write of one record
// would make the second run again), and the sum is right.
func TestCounterAddsDoNotConflict(t *testing.T) {
	t.Parallel()
	s := newEnv(t).open(t)
	c := newCounter()
	ctx := context.Background()
	var runs atomic.Int32
	added, otherDone := make(chan struct{}), make(chan error, 1)
	var first error
	var wg sync.WaitGroup
	wg.Go(func() {
		first = s.Update(ctx, func(tx *Tx) error {
			runs.Add(1)
			if err := c.Add(tx, "ann", 2); err != nil {
				return err
			}
			if runs.Load() == 1 {
				close(added)
				if err := <-otherDone; err != nil {
					return err
				}
			}
			return nil
		})
	})
	<-added
	otherDone <- s.Update(ctx, func(tx *Tx) error { return c.Add(tx, "ann", 3) })
	wg.Wait()
	if first != nil {
		t.Fatal(first)
	}
	if n := runs.Load(); n != 1 {
		t.Errorf("the first transaction ran %d times: the adds conflicted", n)
	}
	if v := counterValue(t, s, c, "ann"); v != 5 {
		t.Errorf("sum %d, want 5", v)
	}
}

// TestCounterFoldAndRun: Fold merges deltas without changing the sum; Run
// folds an id that collects FoldAt deltas at once, leftovers of an
// earlier run at the start, and the rest on its tick; Each sums every id.
func TestCounterFoldAndRun(t *testing.T) {
	t.Parallel()
	s := newEnv(t).open(t)
	c := newCounter()
	ctx := context.Background()
	add := func(id string, n int, d int64) {
		t.Helper()
		for range n {
			if err := s.Update(ctx, func(tx *Tx) error { return c.Add(tx, id, d) }); err != nil {
				t.Fatal(err)
			}
		}
	}
	deltas := func(id string) int {
		t.Helper()
		n := 0
		s.View(func(tx *Tx) error {
			return tx.iterateKeys(c.deltaPrefix(id), func([]byte) { n++ })
		})
		return n
	}
	add("ann", 5, 1)
	add("bob", 3, -2)
	if err := c.Fold(ctx, s, []string{"ann", "nobody"}); err != nil {
		t.Fatal(err)
	}
	if v, n := counterValue(t, s, c, "ann"), deltas("ann"); v != 5 || n != 0 {
		t.Errorf("after Fold: ann %d with %d deltas, want 5 with 0", v, n)
	}
	if v, n := counterValue(t, s, c, "bob"), deltas("bob"); v != -6 || n != 3 {
		t.Errorf("bob %d, %d deltas; want -6, 3 (not folded)", v, n)
	}

	// A new counter on the same store is a restart: bob's deltas are left over.
	c = newCounter()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(runCtx, s, time.Hour, func(err error) { t.Error(err) })
	}()
	defer func() { stop(); <-done }()
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !ok(); {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting until %s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFor("bob's leftovers are folded", func() bool { return deltas("bob") == 0 })
	add("cid", FoldAt-1, 1)
	time.Sleep(100 * time.Millisecond)
	if n := deltas("cid"); n != FoldAt-1 {
		t.Errorf("cid has %d deltas before reaching FoldAt, want %d", n, FoldAt-1)
	}
	add("cid", 1, 1)
	waitFor("cid is folded on reaching FoldAt", func() bool { return deltas("cid") == 0 })
	if v := counterValue(t, s, c, "cid"); v != FoldAt {
		t.Errorf("cid %d, want %d", v, FoldAt)
	}
	add("dan", 2, 7)
	got := map[string]int64{}
	s.View(func(tx *Tx) error {
		return c.Each(tx, func(id string, sum int64) error { got[id] = sum; return nil })
	})
	want := map[string]int64{"ann": 5, "bob": -6, "cid": FoldAt, "dan": 14}
	for id, v := range want {
		if got[id] != v {
			t.Errorf("Each: %s = %d, want %d (all: %v)", id, got[id], v, got)
		}
	}
	if len(got) != len(want) {
		t.Errorf("Each gave %v, want %v", got, want)
	}
}

// TestCounterBounds: an id with "/" is refused (it would read another
// id's deltas), and a fold merges at most foldMax deltas of an id at a
// time, the rest in the next, with the sum right throughout.
func TestCounterBounds(t *testing.T) {
	t.Parallel()
	s := newEnv(t).open(t)
	c := newCounter()
	ctx := context.Background()
	if err := s.Update(ctx, func(tx *Tx) error { return c.Add(tx, "a/b", 1) }); err == nil {
		t.Error("an id with / was accepted")
	}
	if err := s.Update(ctx, func(tx *Tx) error {
		for range foldMax + 5 {
			if err := c.Add(tx, "ann", 1); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for want := foldMax + 5; want > 0; want = max(0, want-foldMax) {
		if v := counterValue(t, s, c, "ann"); v != foldMax+5 {
			t.Fatalf("sum %d with deltas left, want %d", v, foldMax+5)
		}
		if err := c.Fold(ctx, s, []string{"ann"}); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	s.View(func(tx *Tx) error { return tx.iterateKeys(c.deltaPrefix("ann"), func([]byte) { n++ }) })
	if v := counterValue(t, s, c, "ann"); v != foldMax+5 || n != 0 {
		t.Errorf("after two folds: sum %d, %d deltas left; want %d and 0", v, n, foldMax+5)
	}
}
