package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/sealpost/sealpost/appliance/fault"
)

// Group commit.
//
// Badger with SyncWrites batches concurrent commits in its write goroutine,
// but then syncs the write-ahead log once per transaction of the batch
// (writeToLSM), so durable writes stay near one per fsync (measured here:
// 2,054 writes/s with one writer, 5,222 with 64). Instead, commits go to
// Badger unsynced, and each committer then waits for a sync that started
// after its commit returned: whoever finds no sync running starts one for
// everybody waiting, so N concurrent commits cost about two fsyncs, not N.
//
// db.Sync is not enough for that sync: it covers only the newest memtable
// log and value-log file, while a commit may have landed in a file that was
// rotated out before the sync began (a full memtable waits for its flush,
// unsynced, for as long as the flush takes). logSync covers those files too.

// groupSync makes commits durable in groups.
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

	waits atomic.Uint64 // calls to wait: commits made durable (or failed)
}

func newGroupSync(syncFn func() error) *groupSync {
	g := &groupSync{syncFn: syncFn}
	g.cond = sync.NewCond(&g.mu)
	return g
}

// wait returns once a sync that started after the call has finished.
func (g *groupSync) wait() error {
	g.waits.Add(1)
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

// syncs returns the number of syncs started.
func (g *groupSync) syncs() uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.started
}

// logSync makes Badger's logs durable: the memtables' write-ahead logs
// (NNNNN.mem) and the value log (NNNNNN.vlog). What it relies on, from the
// Badger source (v4.9.6): one goroutine writes both logs, and only to the
// newest file of each kind; it creates the next file before writing to it;
// a .mem file is deleted only after its memtable is in a synced table, and
// a .vlog file only after value-log GC moved its live entries (Store.gc
// syncs those before the deletion). Tables, MANIFEST and KEYREGISTRY Badger
// syncs itself.
//
// So a sync must cover the newest file of each kind and every file created
// since the previous sync; once a newer file exists when a sync starts, the
// older one gets no more writes, and after that sync it can be forgotten.
// logSync keeps the files that may still need a sync open, learns of new
// ones from a directory watcher (inotify on Linux: no directory listing per
// sync, which costs about 0.1 ms per 200 tables), and syncs the directory
// when a file is new.
//
// Only one sync runs at a time (groupSync), so logSync needs no lock.
type logSync struct {
	dir      string
	dirFile  *os.File
	watch    dirWatcher
	files    map[string]*os.File // nil until the first sync lists the directory
	syncFile func(*os.File) error
	// floor is, per kind, the newest log at the end of the previous sync:
	// older ones hold nothing unsynced, so a listing may skip them.
	floor [2]uint64
}

// dirWatcher reports the names of the files created in a directory since
// its last call, or relist when it cannot tell (no watcher on this system,
// or its queue overflowed).
type dirWatcher interface {
	created() (names []string, relist bool)
	close() error
}

// relistAlways is the watcher for systems without inotify: every sync lists
// the directory.
type relistAlways struct{}

func (relistAlways) created() ([]string, bool) { return nil, true }
func (relistAlways) close() error              { return nil }

func openLogSync(dir string) (*logSync, error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	w, err := watchDir(dir)
	if err != nil {
		// The store still works: every sync lists the directory instead.
		w = relistAlways{}
	}
	return &logSync{dir: dir, dirFile: d, watch: w, syncFile: datasync}, nil
}

// logKind returns the kind of a Badger log file (0 memtable log, 1 value
// log) and its id.
func logKind(name string) (kind int, id uint64, ok bool) {
	for kind, ext := range []string{".mem", ".vlog"} {
		if digits, found := strings.CutSuffix(name, ext); found {
			id, err := strconv.ParseUint(digits, 10, 64)
			return kind, id, err == nil
		}
	}
	return 0, 0, false
}

func (l *logSync) sync() error {
	names, relist := l.watch.created()
	if relist || l.files == nil {
		var err error
		if names, err = l.dirFile.Readdirnames(-1); err != nil {
			return fmt.Errorf("list %s: %w", l.dir, err)
		}
		// Readdirnames continues where it stopped; rewind for the next time.
		if _, err := l.dirFile.Seek(0, 0); err != nil {
			return fmt.Errorf("list %s: %w", l.dir, err)
		}
		if l.files == nil {
			l.files = map[string]*os.File{}
		}
	}
	fresh := false
	for _, name := range names {
		kind, id, ok := logKind(name)
		if !ok || id < l.floor[kind] || l.files[name] != nil {
			continue
		}
		f, err := os.Open(filepath.Join(l.dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue // already flushed into a synced table, or collected
		}
		if err != nil {
			return fmt.Errorf("open %s: %w", name, err)
		}
		l.files[name] = f
		fresh = true
	}
	var newest [2]uint64
	for name, f := range l.files {
		if err := l.syncFile(f); err != nil {
			return fmt.Errorf("sync %s: %w", name, err)
		}
		kind, id, _ := logKind(name)
		newest[kind] = max(newest[kind], id)
	}
	if fresh {
		if err := l.syncFile(l.dirFile); err != nil {
			return fmt.Errorf("sync %s: %w", l.dir, err)
		}
	}
	for name, f := range l.files {
		if kind, id, _ := logKind(name); id < newest[kind] {
			f.Close()
			delete(l.files, name)
		}
	}
	l.floor = newest
	return nil
}

func (l *logSync) close() error {
	errs := []error{l.watch.close(), l.dirFile.Close()}
	for name, f := range l.files {
		errs = append(errs, f.Close())
		delete(l.files, name)
	}
	return errors.Join(errs...)
}
