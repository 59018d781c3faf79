package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/rs/zerolog"
)

// TestFailedSyncIsSticky: once an fsync fails, that write and every later
// one fail, and the store reports itself unhealthy.
func TestFailedSyncIsSticky(t *testing.T) {
	t.Parallel()
	calls := 0
	g := newGroupSync(func() error {
		calls++
		if calls == 2 {
			return errors.New("EIO")
		}
		return nil
	})
	if err := g.wait(); err != nil {
		t.Fatalf("first sync: %v", err)
	}
	if err := g.wait(); err == nil || !strings.Contains(err.Error(), "could not save data") {
		t.Fatalf("failing sync: %v", err)
	}
	if err := g.wait(); err == nil {
		t.Fatal("a write after a failed sync succeeded")
	}
	if calls != 2 {
		t.Errorf("sync retried after failing: %d calls", calls)
	}
	if g.failed() == nil {
		t.Error("failed() does not report the error")
	}
}

// TestGroupSyncCoversEveryCommit: each waiter returns only after a sync that
// started after its commit, and concurrent waiters share syncs.
func TestGroupSyncCoversEveryCommit(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	committed, durable, syncs := 0, 0, 0
	g := newGroupSync(func() error {
		mu.Lock()
		covered := committed // what is on disk once this sync ends
		syncs++
		mu.Unlock()
		time.Sleep(200 * time.Microsecond) // an fsync
		mu.Lock()
		durable = max(durable, covered)
		mu.Unlock()
		return nil
	})
	const writers, rounds = 64, 20
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for range rounds {
				mu.Lock()
				committed++
				mine := committed
				mu.Unlock()
				if err := g.wait(); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if durable < mine {
					t.Errorf("acknowledged commit %d while only %d were durable", mine, durable)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if syncs >= writers*rounds/2 {
		t.Errorf("%d syncs for %d commits: commits are not grouped", syncs, writers*rounds)
	}
	t.Logf("%d commits, %d syncs", writers*rounds, syncs)
}

// syncRecorder replaces a logSync's file sync and records, per sync, the
// names of the files it synced.
type syncRecorder struct {
	mu     sync.Mutex
	rounds [][]string
	cur    []string
}

func (r *syncRecorder) install(t *testing.T, l *logSync) {
	t.Helper()
	inner := l.syncFile
	l.syncFile = func(f *os.File) error {
		r.mu.Lock()
		r.cur = append(r.cur, filepath.Base(f.Name()))
		r.mu.Unlock()
		return inner(f)
	}
}

// round runs one sync of l and returns what it synced, sorted.
func (r *syncRecorder) round(t *testing.T, l *logSync) []string {
	t.Helper()
	if err := l.sync(); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	got := r.cur
	r.cur = nil
	slices.Sort(got)
	r.rounds = append(r.rounds, got)
	return got
}

// TestLogSyncFollowsRotation plays Badger's file life cycle in a plain
// directory: every sync covers the newest log of each kind and each log
// created since the previous sync (plus the directory then), and forgets a
// log once a sync has covered it after a newer one appeared.
func TestLogSyncFollowsRotation(t *testing.T) {
	t.Parallel()
	for _, watcher := range []string{"inotify", "relist"} {
		t.Run(watcher, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			touch := func(name string) {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(name), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			touch("00001.mem")
			touch("000001.vlog")
			touch("000001.sst")
			touch("MANIFEST")
			l, err := openLogSync(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer l.close()
			if watcher == "relist" {
				l.watch.close()
				l.watch = relistAlways{}
			} else if _, ok := l.watch.(relistAlways); ok {
				t.Skip("SKIP: no inotify on this system; the relist case covers the logic")
			}
			base := filepath.Base(dir)
			var r syncRecorder
			r.install(t, l)
			steps := []struct {
				name   string
				before func()
				want   string
			}{
				{"first sync: everything, and the directory", nil, "00001.mem 000001.vlog " + base},
				{"steady state: the newest of each kind", nil, "00001.mem 000001.vlog"},
				{"memtable rotated: old and new log, directory", func() { touch("00002.mem"); touch("000002.sst") }, "00001.mem 00002.mem 000001.vlog " + base},
				{"the old log is forgotten", nil, "00002.mem 000001.vlog"},
				{"two rotations of each between syncs", func() {
					touch("00003.mem")
					touch("000002.vlog")
					touch("00004.mem")
					touch("000003.vlog")
				}, "00002.mem 00003.mem 00004.mem 000001.vlog 000002.vlog 000003.vlog " + base},
				{"a log created and deleted between syncs is skipped", func() {
					touch("00005.mem")
					os.Remove(filepath.Join(dir, "00004.mem"))
					os.Remove(filepath.Join(dir, "00005.mem"))
					touch("00006.mem")
				}, "00004.mem 00006.mem 000003.vlog " + base},
				{"a deleted newest log stays open and synced", func() { os.Remove(filepath.Join(dir, "00006.mem")) }, "00006.mem 000003.vlog"},
			}
			for _, step := range steps {
				if step.before != nil {
					step.before()
				}
				want := strings.Fields(step.want)
				slices.Sort(want)
				if got := strings.Join(r.round(t, l), " "); got != strings.Join(want, " ") {
					t.Errorf("%s: synced %q, want %q", step.name, got, step.want)
				}
			}
		})
	}
}

// TestLogSyncWithBadger runs real Badger with 1 MiB memtables and value-log
// files, so both rotate many times, and checks with the file names Badger
// really uses that every rotated log was synced in a sync that already knew
// its successor; then that GC keeps every value, and a reopen finds them.
func TestLogSyncWithBadger(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s, err := Open(e.dataDir, e.keys, Options{Logger: zerolog.Nop(), memTableSize: 256 << 10, valueLogFileSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var r syncRecorder
	r.install(t, s.logs)
	ctx := context.Background()
	const writers, perWriter = 8, 400
	write := func(gen int) {
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				for i := range perWriter {
					key := fmt.Appendf(nil, "k/%d/%04d", w, i)
					// Half in the tree, half in the value log.
					value := fmt.Appendf(nil, "%s@%d:%s", key, gen, strings.Repeat("x", 500+1000*(i%2)))
					if err := s.Update(ctx, func(tx *Tx) error { return tx.Put(key, value) }); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
	}
	const generations = 2
	for gen := 1; gen <= generations; gen++ {
		write(gen)
	}

	// Replay the rounds: which logs each sync covered.
	var all [2]map[uint64]bool
	var confirmed [2]map[uint64]bool
	for k := range all {
		all[k], confirmed[k] = map[uint64]bool{}, map[uint64]bool{}
	}
	r.mu.Lock()
	rounds := append(r.rounds, r.cur)
	r.mu.Unlock()
	for _, round := range rounds {
		var newest [2]uint64
		for _, name := range round {
			if kind, id, ok := logKind(name); ok {
				all[kind][id] = true
				newest[kind] = max(newest[kind], id)
			}
		}
		for _, name := range round {
			if kind, id, ok := logKind(name); ok && id < newest[kind] {
				confirmed[kind][id] = true
			}
		}
	}
	for kind, name := range []string{"memtable", "value"} {
		if len(all[kind]) < 3 {
			t.Errorf("only %d %s logs seen: the test did not rotate them", len(all[kind]), name)
		}
		last := slices.Max(slices.Collect(maps.Keys(all[kind])))
		for id := range all[kind] {
			if id != last && !confirmed[kind][id] {
				t.Errorf("%s log %d was never synced after its successor appeared", name, id)
			}
		}
	}
	st := s.Stats()
	t.Logf("%d memtable logs, %d value logs, %d commits in %d syncs", len(all[0]), len(all[1]), st.Commits, st.Syncs)
	if st.Commits < generations*writers*perWriter || st.Syncs == 0 || st.Syncs >= st.Commits {
		t.Errorf("stats %+v", st)
	}

	// A compaction that drops the first generation tells GC what is stale.
	if err := s.db.Flatten(1); err != nil {
		t.Fatal(err)
	}
	// Store.gc relies on this: Badger deletes a collected value-log file
	// only once no iterator is open, so that gc can sync the moved entries
	// first.
	vlogs := func() int {
		names, err := filepath.Glob(filepath.Join(s.dir, "*.vlog"))
		if err != nil {
			t.Fatal(err)
		}
		return len(names)
	}
	before := vlogs()
	txn := s.db.NewTransaction(false)
	it := txn.NewIterator(badger.IteratorOptions{})
	if err := s.db.RunValueLogGC(0.5); err != nil {
		t.Fatalf("value-log GC: %v", err)
	}
	during := vlogs()
	it.Close()
	txn.Discard()
	if after := vlogs(); during != before || after != before-1 {
		t.Errorf("value-log files: %d before GC, %d while an iterator is open, %d after: the deletion is not deferred", before, during, after)
	}
	if _, err := s.gc(); err != nil {
		t.Errorf("gc: %v", err)
	}
	check := func(s *Store) {
		t.Helper()
		err := s.View(func(tx *Tx) error {
			n := 0
			err := tx.Scan([]byte("k/"), func(key, value []byte) error {
				n++
				if !bytes.HasPrefix(value, fmt.Appendf(key, "@%d:", generations)) {
					t.Errorf("%s = %.20q…", key, value)
				}
				return nil
			})
			if n != writers*perWriter {
				t.Errorf("%d records, want %d", n, writers*perWriter)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	check(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	check(e.open(t))
}
