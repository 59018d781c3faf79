package store

import (
	"sync"

	"github.com/sealpost/sealpost/appliance/fault"
)

// groupSync makes commits durable in groups. Badger with SyncWrites fsyncs
// once per transaction (writeToLSM syncs the WAL for each request in a
// batch), which caps durable writes at one per fsync. Instead, commits go to
// Badger unsynced, and each committer then waits for a db.Sync that started
// after its commit: whoever finds no sync running starts one for everybody
// waiting, so N concurrent commits cost about two fsyncs, not N.
//
// A failed sync is sticky: after fsyncgate, pages that failed to reach the
// disk may be dropped from the cache, so a later successful fsync proves
// nothing. Every waiter and every later write gets the error.
type groupSync struct {
	syncFn func() error

	mu      sync.Mutex
	cond    *sync.Cond
	started uint64 // syncs started
	done    uint64 // the last sync that finished
	running bool
	err     error
}

func newGroupSync(syncFn func() error) *groupSync {
	g := &groupSync{syncFn: syncFn}
	g.cond = sync.NewCond(&g.mu)
	return g
}

// wait returns once a sync that started after the call has finished.
func (g *groupSync) wait() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	target := g.started + 1
	for {
		if g.err != nil {
			return g.err
		}
		if g.done >= target {
			return nil
		}
		if !g.running {
			g.running = true
			g.started++
			seq := g.started
			g.mu.Unlock()
			err := g.syncFn()
			g.mu.Lock()
			g.running = false
			if err != nil {
				g.err = fault.E(fault.Unavailable, "the appliance could not save data to disk", err)
			}
			g.done = seq
			g.cond.Broadcast()
			continue
		}
		g.cond.Wait()
	}
}

// failed returns the sticky sync error, if any.
func (g *groupSync) failed() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.err
}
