// Package store is the only user of Badger. It keeps every record encrypted
// twice: Badger encrypts its files (AES-CTR under the store key from the
// keyring), and every value is sealed with AES-256-GCM under the record key
// with the record's own key as associated data, so a value cannot be read,
// changed or moved to another key unnoticed. A write returns only once it is
// durable: concurrent writers share one fsync (group commit), and a failed
// fsync fails the write and marks the store unhealthy for good.
//
// No Badger type crosses the API, so another ordered, transactional
// key-value engine can replace Badger.
package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/rs/zerolog"

	"github.com/sealpost/sealpost/appliance/fault"
	"github.com/sealpost/sealpost/appliance/keyring"
)

// DirName is the store's directory inside the data directory.
const DirName = "store"

// Options tune the store. The zero value is fine.
type Options struct {
	Logger     zerolog.Logger
	GCInterval time.Duration // value-log garbage collection; default 10 minutes
}

// Store is an open store.
type Store struct {
	db   *badger.DB
	keys *keyring.Keyring
	log  zerolog.Logger
	dir  string
	sync *groupSync

	closeOnce sync.Once
	stop      chan struct{}
	gcDone    chan struct{}
}

// Open opens (or creates) the store in dataDir/store with the keyring's
// keys.
func Open(dataDir string, keys *keyring.Keyring, opts Options) (*Store, error) {
	dir := filepath.Join(dataDir, DirName)
	bopts := badger.DefaultOptions(dir).
		WithEncryptionKey(keys.StoreEncryptionKey()).
		// Both caches must be above zero with encryption on: without the
		// index cache Badger panics at its first memtable flush.
		WithIndexCacheSize(64 << 20).
		WithBlockCacheSize(64 << 20).
		// Durability comes from the group commit's db.Sync, not a sync per
		// transaction.
		WithSyncWrites(false).
		// Values are sealed, so they are random bytes: compressing them
		// wastes CPU. Values above 1 KiB go to the value log, which keeps the
		// tree small and writes them once.
		WithCompression(options.None).
		WithValueThreshold(1 << 10).
		WithNumVersionsToKeep(1).
		WithLogger(badgerLogger{opts.Logger}).
		WithMetricsEnabled(false)
	db, err := badger.Open(bopts)
	if err != nil {
		return nil, openError(dir, err)
	}
	s := &Store{db: db, keys: keys, log: opts.Logger, dir: dir, stop: make(chan struct{}), gcDone: make(chan struct{})}
	s.sync = newGroupSync(db.Sync)
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
	case strings.Contains(msg, "Encryption key mismatch"):
		return fault.E(fault.Invalid, fmt.Sprintf("the store in %s was encrypted with another key; use the key file and keyring that belong to this data", dir), err)
	case strings.Contains(msg, "Cannot acquire directory lock"):
		return fault.E(fault.Unavailable, fmt.Sprintf("another sealpost process is using %s; stop it first", dir), err)
	}
	return fmt.Errorf("open store %s: %w", dir, err)
}

// Close stops garbage collection and closes Badger. It is safe to call more
// than once.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.stop)
		<-s.gcDone
		err = s.db.Close()
	})
	return err
}

// Healthy returns nil while writes can be made durable.
func (s *Store) Healthy() error {
	if s.db.IsClosed() {
		return errors.New("store closed")
	}
	return s.sync.failed()
}

// Size returns the bytes on disk of the tree (LSM) and of the value log.
func (s *Store) Size() (tree, valueLog int64) { return s.db.Size() }

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
		rewritten := 0
		for rewritten < 100 {
			err := s.db.RunValueLogGC(0.5)
			if err != nil {
				if !errors.Is(err, badger.ErrNoRewrite) && !errors.Is(err, badger.ErrRejected) {
					s.log.Warn().Err(err).Msg("value log garbage collection")
				}
				break
			}
			rewritten++
		}
		if rewritten > 0 {
			s.log.Info().Int("files", rewritten).Msg("value log garbage collected")
		}
	}
}

// View runs fn in a read-only transaction.
func (s *Store) View(fn func(tx *Tx) error) error {
	return s.db.View(func(txn *badger.Txn) error {
		return fn(&Tx{txn: txn, keys: s.keys})
	})
}

// maxConflictRetries bounds how often Update reruns fn after a conflict.
const maxConflictRetries = 32

// Update runs fn in a read-write transaction and commits it. It returns only
// once the commit is durable on disk; concurrent updates share one fsync. If
// another transaction changed what fn read, fn runs again (a few times).
func (s *Store) Update(ctx context.Context, fn func(tx *Tx) error) error {
	if err := s.sync.failed(); err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		txn := s.db.NewTransaction(true)
		if err := fn(&Tx{txn: txn, keys: s.keys, writable: true}); err != nil {
			txn.Discard()
			return err
		}
		err := txn.Commit()
		switch {
		case err == nil:
			return s.sync.wait()
		case errors.Is(err, badger.ErrConflict) && attempt < maxConflictRetries:
			// Back off a random, growing while so that contenders spread out.
			time.Sleep(time.Duration(rand.Int64N(int64(attempt+1) * int64(time.Millisecond))))
			continue
		case errors.Is(err, badger.ErrConflict):
			return fault.E(fault.Conflict, "the data changed while saving; try again", err)
		default:
			return fmt.Errorf("commit: %w", err)
		}
	}
}

// badgerLogger sends Badger's messages to zerolog. Badger logs file and table
// events, never values.
type badgerLogger struct{ l zerolog.Logger }

func (b badgerLogger) Errorf(f string, a ...any) {
	b.l.Error().Msg(strings.TrimSpace(fmt.Sprintf(f, a...)))
}
func (b badgerLogger) Warningf(f string, a ...any) {
	b.l.Warn().Msg(strings.TrimSpace(fmt.Sprintf(f, a...)))
}
func (b badgerLogger) Infof(f string, a ...any) {
	b.l.Debug().Msg(strings.TrimSpace(fmt.Sprintf(f, a...)))
}
func (b badgerLogger) Debugf(f string, a ...any) {
	b.l.Trace().Msg(strings.TrimSpace(fmt.Sprintf(f, a...)))
}
