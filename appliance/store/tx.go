package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/sealpost/sealpost/appliance/fault"
	"github.com/sealpost/sealpost/appliance/keyring"
)

// ErrNotFound means no record has the key.
var ErrNotFound = errors.New("store: not found")

// sysPrefix holds the store's own records (schema version); callers cannot
// write there.
var sysPrefix = []byte("\x00sys/")

// Tx is a transaction. It is valid only inside the function given to View or
// Update.
type Tx struct {
	txn        *badger.Txn
	keys       Keys
	writable   bool
	st         *Store
	done       []func(committed bool)
	before     []func() error
	committing bool // BeforeCommit hooks are running
	turnDone   []func(committed bool)
	memo       map[string]any
}

// Memo returns what fn computed under key earlier in this transaction, or
// computes it now: a cache for values derived from records that one
// transaction reads several times (the settings). Code that writes those
// records calls Forget. Values must be treated as read-only.
func (tx *Tx) Memo(key string, fn func() (any, error)) (any, error) {
	if v, ok := tx.memo[key]; ok {
		return v, nil
	}
	v, err := fn()
	if err != nil {
		return nil, err
	}
	if tx.memo == nil {
		tx.memo = map[string]any{}
	}
	tx.memo[key] = v
	return v, nil
}

// Forget drops what Memo keeps under key.
func (tx *Tx) Forget(key string) { delete(tx.memo, key) }

// Writable reports whether the transaction may write (Update, not View).
func (tx *Tx) Writable() bool { return tx.writable }

// Store is the store the transaction belongs to.
func (tx *Tx) Store() *Store { return tx.st }

// OnDone registers f to run once the transaction has committed (true) or
// was given up (false: fn failed or panicked, or the commit did not go
// through, including a conflict before fn runs again). It runs right after
// the commit, before Update waits for the fsync, in registration order,
// except that those a BeforeCommit hook registers run first (they end the
// commit's turn, which the others must not wait inside).
func (tx *Tx) OnDone(f func(committed bool)) {
	if tx.committing {
		tx.turnDone = append(tx.turnDone, f)
		return
	}
	tx.done = append(tx.done, f)
}

// BeforeCommit registers f to run after the transaction's function has
// returned without error, just before the commit, in registration order;
// f may still write. An error from f gives the transaction up and is
// returned by Update. Work that must happen in commit order (numbering the
// audit trail) goes here, so that it holds its turn only for the commit.
func (tx *Tx) BeforeCommit(f func() error) { tx.before = append(tx.before, f) }

func (tx *Tx) finish(committed bool) {
	done := append(tx.turnDone, tx.done...)
	tx.done, tx.turnDone = nil, nil
	for _, f := range done {
		f(committed)
	}
}

// Get returns a copy of the value stored under key, or ErrNotFound.
func (tx *Tx) Get(key []byte) ([]byte, error) {
	item, err := tx.txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get: %w", err)
	}
	sealed, err := item.ValueCopy(nil)
	if err != nil {
		return nil, fmt.Errorf("get: %w", err)
	}
	return tx.open(key, sealed)
}

// Version is the commit version of the record under key, or 0 when there
// is none: a cheap test of whether a record changed since a value derived
// from it was cached, without reading or unsealing it. A record this
// transaction wrote itself has the transaction's read version, which a
// committed record can have too, so caches must not trust Version for keys
// the transaction changed.
func (tx *Tx) Version(key []byte) (uint64, error) {
	item, err := tx.txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("get: %w", err)
	}
	return item.Version(), nil
}

func (tx *Tx) open(key, sealed []byte) ([]byte, error) {
	value, err := tx.keys.Unseal(keyring.PurposeRecord, sealed, key)
	if err != nil {
		return nil, fault.E(fault.Internal, "a stored record does not authenticate", fmt.Errorf("record %q: %w", printable(key), err))
	}
	return value, nil
}

// Put stores value under key.
func (tx *Tx) Put(key, value []byte) error {
	if bytes.HasPrefix(key, sysPrefix) {
		return fmt.Errorf("put: key prefix %q is reserved", sysPrefix)
	}
	return tx.put(key, value)
}

func (tx *Tx) put(key, value []byte) error {
	if !tx.writable {
		return errors.New("put in a read-only transaction")
	}
	if len(key) == 0 {
		return errors.New("put: empty key")
	}
	sealed, err := tx.keys.Seal(keyring.PurposeRecord, value, key)
	if err != nil {
		return err
	}
	if err := tx.txn.Set(bytes.Clone(key), sealed); err != nil {
		if errors.Is(err, badger.ErrTxnTooBig) {
			return fault.E(fault.TooLarge, "too much data in one transaction", err)
		}
		return fmt.Errorf("put: %w", err)
	}
	return nil
}

// Delete removes key; deleting a missing key is not an error.
func (tx *Tx) Delete(key []byte) error {
	if !tx.writable {
		return errors.New("delete in a read-only transaction")
	}
	if bytes.HasPrefix(key, sysPrefix) {
		return fmt.Errorf("delete: key prefix %q is reserved", sysPrefix)
	}
	if err := tx.txn.Delete(bytes.Clone(key)); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	return nil
}

// Scan calls fn for every record whose key starts with prefix, in key order.
// key and value are copies that fn may keep. If fn returns ErrStop, Scan
// stops and returns nil; any other error stops it and is returned.
func (tx *Tx) Scan(prefix []byte, fn func(key, value []byte) error) error {
	return tx.ScanFrom(prefix, prefix, fn)
}

// ScanFrom is Scan starting at the first key at or after start (for
// pagination); start must begin with prefix.
func (tx *Tx) ScanFrom(prefix, start []byte, fn func(key, value []byte) error) error {
	return tx.iterate(prefix, start, false, nil, fn)
}

// ScanBefore is Scan in reverse key order, starting at the last key before
// before (exclusive); an empty before starts at the prefix's last key. It
// pages backwards through an index.
func (tx *Tx) ScanBefore(prefix, before []byte, fn func(key, value []byte) error) error {
	seek := before
	if len(seek) == 0 {
		// The largest key with the prefix sorts before prefix+0xff….
		seek = append(bytes.Clone(prefix), 0xff, 0xff, 0xff, 0xff)
	}
	return tx.iterate(prefix, seek, true, before, fn)
}

// iterate calls fn for the records under prefix from seek on, in key order
// or its reverse, skipping the key skip and the store's own records.
func (tx *Tx) iterate(prefix, seek []byte, reverse bool, skip []byte, fn func(key, value []byte) error) error {
	opts := badger.DefaultIteratorOptions
	opts.Prefix = prefix
	opts.Reverse = reverse
	it := tx.txn.NewIterator(opts)
	defer it.Close()
	for it.Seek(seek); it.ValidForPrefix(prefix); it.Next() {
		item := it.Item()
		key := item.KeyCopy(nil)
		if len(skip) > 0 && bytes.Equal(key, skip) || bytes.HasPrefix(key, sysPrefix) && !bytes.HasPrefix(prefix, sysPrefix) {
			continue
		}
		sealed, err := item.ValueCopy(nil)
		if err != nil {
			return fmt.Errorf("scan: %w", err)
		}
		value, err := tx.open(key, sealed)
		if err != nil {
			return err
		}
		if err := fn(key, value); err != nil {
			if errors.Is(err, ErrStop) {
				return nil
			}
			return err
		}
	}
	return nil
}

// iterateKeys calls fn with every key under prefix, reading no values.
func (tx *Tx) iterateKeys(prefix []byte, fn func(key []byte)) error {
	opts := badger.DefaultIteratorOptions
	opts.Prefix, opts.PrefetchValues = prefix, false
	it := tx.txn.NewIterator(opts)
	defer it.Close()
	for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
		fn(it.Item().KeyCopy(nil))
	}
	return nil
}

// ErrStop ends a Scan early without an error.
var ErrStop = errors.New("store: stop scan")

// GetJSON reads the JSON record under key into a T.
func GetJSON[T any](tx *Tx, key []byte) (T, error) {
	var v T
	data, err := tx.Get(key)
	if err != nil {
		return v, err
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return v, fmt.Errorf("decode %q: %w", printable(key), err)
	}
	return v, nil
}

// PutJSON stores v as JSON under key.
func PutJSON(tx *Tx, key []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %q: %w", printable(key), err)
	}
	return tx.Put(key, data)
}

// printable shows a key in errors without control bytes.
func printable(key []byte) string {
	return fmt.Sprintf("%q", bytes.ToValidUTF8(key, []byte("?")))
}
