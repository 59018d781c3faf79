// Package store is the only user of Badger. It keeps every record encrypted
// twice: Badger encrypts its files (AES-CTR under the store key from the
// keyring, with the index and block caches it needs for that), and every
// value is sealed with AES-256-GCM under the record key with the record's own
// key as associated data, so a value cannot be read, changed or moved to
// another key unnoticed. A write returns only once it is durable: concurrent
// writers share one fsync (group commit), and a failed fsync fails the write
// and marks the store unhealthy for good.
//
// No Badger type crosses the API, so another ordered, transactional
// key-value engine can replace Badger.
package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/rs/zerolog"

	"github.com/sealpost/sealpost/appliance/fault"
	"github.com/sealpost/sealpost/appliance/keyring"
)

// DirName is the store's directory inside the data directory.
const DirName = "store"

// Keys is what the store needs from the keyring.
type Keys interface {
	// StoreEncryptionKey returns Badger's 32-byte encryption key.
	StoreEncryptionKey() []byte
	Seal(p keyring.Purpose, plaintext, aad []byte) ([]byte, error)
	Unseal(p keyring.Purpose, sealed, aad []byte) ([]byte, error)
}

var _ Keys = (*keyring.Keyring)(nil)

// Options tune the store. The zero value is fine.
type Options struct {
	Logger zerolog.Logger
	// GCInterval is how often value-log garbage collection runs; default 10
	// minutes.
	GCInterval time.Duration
	// BlockCacheSize and IndexCacheSize are Badger's caches in bytes; default
	// 16 MiB each (a fixed cost: 64 MiB each made a 100,000-notification
	// drain add 53 MiB of memory, 16 MiB each 38 MiB, with mailbox pages
	// and intake no slower). Encryption needs both, so zero means the
	// default.
	BlockCacheSize, IndexCacheSize int64
	// BeforeMigrate, if set, runs once before Migrate applies pending
	// migrations (from the stored schema version to the newest); an error
	// stops Migrate before any change.
	BeforeMigrate func(from, to int) error

	// Smaller Badger files, for tests that need file rotation.
	memTableSize, valueLogFileSize int64
}

// Store is an open store.
type Store struct {
	db     *badger.DB
	keys   Keys
	log    zerolog.Logger
	dir    string
	logs   *logSync
	sync   *groupSync
	before func(from, to int) error

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
	stop      chan struct{}
	gcDone    chan struct{}
}

// Open opens (or creates) the store in dataDir/store with the keyring's
// keys.
func Open(dataDir string, keys Keys, opts Options) (*Store, error) {
	dir := filepath.Join(dataDir, DirName)
	blockCache, indexCache := opts.BlockCacheSize, opts.IndexCacheSize
	if blockCache <= 0 {
		blockCache = 16 << 20
	}
	if indexCache <= 0 {
		indexCache = 16 << 20
	}
	bopts := badger.DefaultOptions(dir).
		WithEncryptionKey(keys.StoreEncryptionKey()).
		// Both caches must be above zero with encryption on: without the
		// index cache Badger panics at its first memtable flush.
		WithIndexCacheSize(indexCache).
		WithBlockCacheSize(blockCache).
		// Durability comes from the group commit (commit.go), not a sync per
		// transaction.
		WithSyncWrites(false).
		// Values are sealed, so they are random bytes: compressing them
		// wastes CPU. Values above 1 KiB go to the value log, which keeps the
		// tree small and writes them once.
		WithCompression(options.None).
		WithValueThreshold(1 << 10).
		WithNumVersionsToKeep(1).
		WithLogger(newBadgerLogger(opts.Logger)).
		WithMetricsEnabled(false)
	if opts.memTableSize > 0 {
		bopts = bopts.WithMemTableSize(opts.memTableSize)
	}
	if opts.valueLogFileSize > 0 {
		bopts = bopts.WithValueLogFileSize(opts.valueLogFileSize)
	}
	db, err := badger.Open(bopts)
	if err != nil {
		return nil, openError(dir, err)
	}
	logs, err := openLogSync(dir)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	s := &Store{
		db: db, keys: keys, log: opts.Logger, dir: dir, logs: logs, before: opts.BeforeMigrate,
		sync: newGroupSync(logs.sync), stop: make(chan struct{}), gcDone: make(chan struct{}),
	}
	interval := opts.GCInterval
	if interval <= 0 {
		interval = 10 * time.Minute
	}
	go s.collectGarbage(interval)
	return s, nil
}

func openError(dir string, err error) error {
	msg := err.Error()
	switch {
	case errors.Is(err, badger.ErrEncryptionKeyMismatch) || strings.Contains(msg, "Encryption key mismatch"):
		return fault.E(fault.Invalid, fmt.Sprintf(
			"the store in %s was encrypted with another key; use the key file and keyring that belong to this data", dir), err)
	case strings.Contains(msg, "Cannot acquire directory lock"):
		return fault.E(fault.Unavailable, fmt.Sprintf("another sealpost process is using %s; stop it first", dir), err)
	}
	return fmt.Errorf("open store %s: %w", dir, err)
}

// Close stops garbage collection and closes Badger, which flushes its
// memtable. It is safe to call more than once, and on a nil *Store.
func (s *Store) Close() error {
	if s == nil {
		return nil
	}
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		close(s.stop)
		<-s.gcDone
		s.closeErr = errors.Join(s.db.Close(), s.logs.close())
	})
	return s.closeErr
}

var errClosed = fault.E(fault.Unavailable, "the store is closed", nil)

// Healthy returns nil while writes can be made durable.
func (s *Store) Healthy() error {
	if s.closed.Load() {
		return errClosed
	}
	return s.sync.failed()
}

// Size returns the bytes on disk of the tree (LSM) and of the value log, as
// Badger last measured them (about once a minute).
func (s *Store) Size() (tree, valueLog int64) { return s.db.Size() }

// Stats are cheap numbers for metrics.
type Stats struct {
	TreeBytes, ValueLogBytes int64 // as Size
	// Commits made durable (or failed) and syncs started since Open;
	// Commits/Syncs is how many writes share one fsync.
	Commits, Syncs uint64
}

// Stats returns the store's numbers.
func (s *Store) Stats() Stats {
	tree, vlog := s.db.Size()
	return Stats{TreeBytes: tree, ValueLogBytes: vlog, Commits: s.sync.waits.Load(), Syncs: s.sync.syncs()}
}

// collectGarbage rewrites value-log files that are mostly stale.
func (s *Store) collectGarbage(interval time.Duration) {
	defer close(s.gcDone)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		rewritten, err := s.gc()
		if err != nil {
			s.log.Warn().Err(err).Msg("value log garbage collection")
		}
		if rewritten > 0 {
			s.log.Info().Int("files", rewritten).Msg("value log garbage collected")
		}
	}
}

// gc runs value-log garbage collection until nothing is worth rewriting.
//
// Badger moves a file's live entries with unsynced writes and then deletes
// the file; a power loss in between would lose them. An open iterator makes
// Badger defer the deletion until it closes, so each round holds one and
// syncs before letting go.
func (s *Store) gc() (rewritten int, err error) {
	for rewritten < 100 {
		select {
		case <-s.stop:
			return rewritten, nil
		default:
		}
		txn := s.db.NewTransaction(false)
		it := txn.NewIterator(badger.IteratorOptions{})
		err = s.db.RunValueLogGC(0.5)
		if err == nil {
			err = s.sync.wait()
		}
		it.Close()
		txn.Discard()
		if errors.Is(err, badger.ErrNoRewrite) || errors.Is(err, badger.ErrRejected) {
			return rewritten, nil
		}
		if err != nil {
			return rewritten, err
		}
		rewritten++
	}
	return rewritten, nil
}

// View runs fn in a read-only transaction.
func (s *Store) View(fn func(tx *Tx) error) error {
	if s.closed.Load() {
		return errClosed
	}
	return s.db.View(func(txn *badger.Txn) error {
		tx := &Tx{txn: txn, keys: s.keys, st: s}
		defer tx.finish(false)
		return fn(tx)
	})
}

// attempt runs fn once in a new transaction and commits it, telling the
// transaction's OnDone callbacks what became of it (also when fn panics).
func (s *Store) attempt(fn func(tx *Tx) error) (err error) {
	txn := s.db.NewTransaction(true)
	tx := &Tx{txn: txn, keys: s.keys, writable: true, st: s}
	committed := false
	defer func() {
		if r := recover(); r != nil {
			txn.Discard()
			tx.finish(false)
			panic(r)
		}
		tx.finish(committed)
	}()
	if err := fn(tx); err != nil {
		txn.Discard()
		return errFn{err}
	}
	tx.committing = true
	for _, f := range tx.before {
		if err := f(); err != nil {
			txn.Discard()
			return errFn{err}
		}
	}
	err = txn.Commit()
	committed = err == nil
	return err
}

// errFn carries fn's own error out of attempt, to be returned as it is.
type errFn struct{ error }

func (e errFn) Unwrap() error { return e.error }

// maxConflictRetries bounds how often Update reruns fn after a conflict.
const maxConflictRetries = 32

// Update runs fn in a read-write transaction and commits it. It returns only
// once the commit is durable on disk; concurrent updates share one fsync. If
// another transaction changed what fn read, fn runs again (a few times), so
// fn must not have effects outside the transaction.
func (s *Store) Update(ctx context.Context, fn func(tx *Tx) error) error {
	if err := s.Healthy(); err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		err := s.attempt(fn)
		var fnErr errFn
		switch {
		case errors.As(err, &fnErr):
			return fnErr.error
		case err == nil:
			return s.sync.wait()
		case errors.Is(err, badger.ErrConflict) && attempt < maxConflictRetries:
			// Back off a random, growing while so that contenders spread out.
			time.Sleep(time.Duration(rand.Int64N(int64(attempt+1) * int64(time.Millisecond))))
		case errors.Is(err, badger.ErrConflict):
			return fault.E(fault.Conflict, "the data changed while saving; try again", err)
		default:
			return fmt.Errorf("commit: %w", err)
		}
	}
}

// badgerLogger sends Badger's warnings and errors to zerolog; its info and
// debug messages are dropped. Badger never logs values, but a few messages
// name a key (iterator and stream errors): those are logged without their
// arguments, since keys can hold addresses.
type badgerLogger struct{ l zerolog.Logger }

func newBadgerLogger(l zerolog.Logger) badgerLogger {
	return badgerLogger{l.With().Str("engine", "badger").Logger()}
}

func (b badgerLogger) Errorf(f string, a ...any)   { b.log(b.l.Error(), f, a) }
func (b badgerLogger) Warningf(f string, a ...any) { b.log(b.l.Warn(), f, a) }
func (badgerLogger) Infof(string, ...any)          {}
func (badgerLogger) Debugf(string, ...any)         {}

func (badgerLogger) log(e *zerolog.Event, f string, a []any) {
	if strings.Contains(strings.ToLower(f), "key") {
		e.Bool("redacted", true).Msg(strings.TrimSpace(f))
		return
	}
	e.Msg(strings.TrimSpace(fmt.Sprintf(f, a...)))
}

// Compact rewrites the whole tree so that deleted and overwritten records
// are dropped from disk, then collects value-log garbage. Run it after
// destroying keys (crypto-shredding) when the old records must be gone from
// the files too, not only unreachable.
//
// Badger's Flatten alone neither flushes the memtable nor compacts a tree
// that fits in level 0, where a small store keeps everything. DropPrefix
// does both (it blocks writes meanwhile), so Compact writes a marker record
// and drops it, which pushes level 0 down, then flattens.
func (s *Store) Compact() error {
	marker := append(bytes.Clone(sysPrefix), "compact/marker"...)
	err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(marker, []byte{1}) })
	if err == nil {
		err = s.db.DropPrefix(marker)
	}
	if err == nil {
		err = s.db.Flatten(2)
	}
	if err != nil {
		return fmt.Errorf("compact: %w", err)
	}
	if err := s.sync.wait(); err != nil {
		return fmt.Errorf("compact: %w", err)
	}
	if _, err := s.gc(); err != nil {
		return fmt.Errorf("compact: %w", err)
	}
	return nil
}

// Versions calls fn for every version of every record under prefix that
// is still on disk, deleted or overwritten ones included, with its value
// as stored (sealed; nil for a deletion). It is for tests and forensics:
// it shows what a stolen disk would still hold.
func (s *Store) Versions(prefix []byte, fn func(key, sealed []byte) error) error {
	return s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.AllVersions = true
		opts.Prefix = prefix
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			var v []byte
			if !item.IsDeletedOrExpired() {
				var err error
				if v, err = item.ValueCopy(nil); err != nil {
					return err
				}
			}
			if err := fn(item.KeyCopy(nil), v); err != nil {
				return err
			}
		}
		return nil
	})
}
