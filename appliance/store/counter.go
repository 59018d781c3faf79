package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"
)

// Counter is a per-id record that many transactions change at once without
// conflicting: folder counts of a busy mailbox, a sender's usage. Each
// change is a delta record of its own, written without reading anything,
// so concurrent changes commit side by side; reading sums the base record
// and the deltas. Fold merges an id's deltas into its base, which Run does
// for ids that collect many and, now and then, for all.
type Counter[T any] struct {
	base, delta string            // key prefixes: base+id; delta+id+"/"+unique
	add         func(sum *T, d T) // sum += d

	mu    sync.Mutex
	dirty map[string]int // committed deltas not yet folded, by id
	hot   chan struct{}  // an id reached FoldAt
}

// FoldAt is how many deltas an id collects before Run folds it at once.
const FoldAt = 32

// NewCounter makes a counter with its base records under base and its
// deltas under delta; neither prefix may be a prefix of the other's keys.
func NewCounter[T any](base, delta string, add func(sum *T, d T)) *Counter[T] {
	return &Counter[T]{base: base, delta: delta, add: add, dirty: map[string]int{}, hot: make(chan struct{}, 1)}
}

// idOf is the id a delta key belongs to (ids hold no "/").
func (c *Counter[T]) idOf(key []byte) (string, bool) {
	id, _, ok := strings.Cut(string(key[len(c.delta):]), "/")
	return id, ok
}

func (c *Counter[T]) baseKey(id string) []byte     { return []byte(c.base + id) }
func (c *Counter[T]) deltaPrefix(id string) []byte { return []byte(c.delta + id + "/") }

// Add records d for id inside tx; id must not contain "/".
func (c *Counter[T]) Add(tx *Tx, id string, d T) error {
	if id == "" || strings.Contains(id, "/") {
		return fmt.Errorf("counter: id %q is empty or contains /", id)
	}
	key := fmt.Appendf(c.deltaPrefix(id), "%016x%08x", time.Now().UnixNano(), rand.Uint32())
	if err := PutJSON(tx, key, d); err != nil {
		return err
	}
	tx.OnDone(func(committed bool) {
		if committed {
			c.mark(id)
		}
	})
	return nil
}

func (c *Counter[T]) mark(id string) {
	c.mu.Lock()
	c.dirty[id]++
	hot := c.dirty[id] >= FoldAt
	c.mu.Unlock()
	if hot {
		select {
		case c.hot <- struct{}{}:
		default:
		}
	}
}

// Get is id's base plus its deltas, as tx sees them.
func (c *Counter[T]) Get(tx *Tx, id string) (T, error) {
	sum, _, err := c.sum(tx, id, 0)
	return sum, err
}

// sum is id's base plus up to limit of its deltas (0: all), with the keys
// of the deltas it added.
func (c *Counter[T]) sum(tx *Tx, id string, limit int) (T, [][]byte, error) {
	var keys [][]byte
	sum, err := GetJSON[T](tx, c.baseKey(id))
	if err != nil && !errors.Is(err, ErrNotFound) {
		return sum, nil, err
	}
	err = tx.Scan(c.deltaPrefix(id), func(key, value []byte) error {
		var d T
		if err := json.Unmarshal(value, &d); err != nil {
			return fmt.Errorf("counter delta: %w", err)
		}
		c.add(&sum, d)
		if keys = append(keys, key); len(keys) == limit {
			return ErrStop
		}
		return nil
	})
	return sum, keys, err
}

// Each calls fn with every id that has a base or deltas, and its sum: a
// pass over all of them (loading the admin console's directory).
func (c *Counter[T]) Each(tx *Tx, fn func(id string, sum T) error) error {
	sums := map[string]*T{}
	var order []string
	at := func(id string) *T {
		if s := sums[id]; s != nil {
			return s
		}
		s := new(T)
		sums[id] = s
		order = append(order, id)
		return s
	}
	err := tx.Scan([]byte(c.base), func(key, value []byte) error {
		var b T
		if err := json.Unmarshal(value, &b); err != nil {
			return fmt.Errorf("counter base: %w", err)
		}
		c.add(at(string(key[len(c.base):])), b)
		return nil
	})
	if err != nil {
		return err
	}
	err = tx.Scan([]byte(c.delta), func(key, value []byte) error {
		id, ok := c.idOf(key)
		if !ok {
			return nil
		}
		var d T
		if err := json.Unmarshal(value, &d); err != nil {
			return fmt.Errorf("counter delta: %w", err)
		}
		c.add(at(id), d)
		return nil
	})
	if err != nil {
		return err
	}
	for _, id := range order {
		if err := fn(id, *sums[id]); err != nil {
			return err
		}
	}
	return nil
}

// foldBatch bounds how many ids one folding transaction takes, foldMax
// how many deltas of one id.
const (
	foldBatch = 100
	foldMax   = 1000
)

// Fold merges the deltas of ids into their bases, foldBatch ids per
// transaction.
func (c *Counter[T]) Fold(ctx context.Context, st *Store, ids []string) error {
	for len(ids) > 0 {
		batch := ids[:min(foldBatch, len(ids))]
		ids = ids[len(batch):]
		folded := map[string]int{}
		err := st.Update(ctx, func(tx *Tx) error {
			clear(folded)
			for _, id := range batch {
				n, err := c.foldTx(tx, id)
				if err != nil {
					return err
				}
				folded[id] = n
			}
			return nil
		})
		if err != nil {
			return err
		}
		c.mu.Lock()
		for id, n := range folded {
			// Nothing left to fold (n == 0) also clears a count that a
			// delta folded before its commit was counted left behind.
			if c.dirty[id] -= n; n == 0 || c.dirty[id] <= 0 {
				delete(c.dirty, id)
			}
		}
		c.mu.Unlock()
	}
	return nil
}

// foldTx folds id in tx and says how many deltas it merged: at most
// foldMax, the rest in a later fold (partial folds add up too).
func (c *Counter[T]) foldTx(tx *Tx, id string) (int, error) {
	sum, deltas, err := c.sum(tx, id, foldMax)
	if err != nil || len(deltas) == 0 {
		return 0, err
	}
	if err := PutJSON(tx, c.baseKey(id), sum); err != nil {
		return 0, err
	}
	for _, k := range deltas {
		if err := tx.Delete(k); err != nil {
			return 0, err
		}
	}
	return len(deltas), nil
}

// Run folds until ctx ends: an id as soon as it has FoldAt deltas, every
// id with deltas every interval, and at the start whatever an earlier run
// left (it finds those by a pass over the deltas).
func (c *Counter[T]) Run(ctx context.Context, st *Store, interval time.Duration, onErr func(error)) {
	var left []string
	err := st.View(func(tx *Tx) error {
		seen := map[string]bool{}
		return tx.iterateKeys([]byte(c.delta), func(key []byte) {
			if id, ok := c.idOf(key); ok && !seen[id] {
				seen[id] = true
				left = append(left, id)
			}
		})
	})
	if err == nil {
		err = c.Fold(ctx, st, left)
	}
	if err != nil && ctx.Err() == nil {
		onErr(err)
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		all := false
		select {
		case <-ctx.Done():
			return
		case <-c.hot:
		case <-tick.C:
			all = true
		}
		if err := c.Fold(ctx, st, c.due(all)); err != nil && ctx.Err() == nil {
			onErr(err)
		}
	}
}

// due lists the ids to fold: those with FoldAt deltas, or all with any.
func (c *Counter[T]) due(all bool) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ids []string
	for id, n := range c.dirty {
		if all || n >= FoldAt {
			ids = append(ids, id)
		}
	}
	return ids
}
