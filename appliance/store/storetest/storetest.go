// Package storetest opens a real keyring and encrypted store for tests of
// the packages built on them. There is no fake store: tests run against
// Badger with encryption on, as the appliance does.
package storetest

import (
	"path/filepath"
	"testing"

	"github.com/rs/zerolog"

	"github.com/sealpost/sealpost/appliance/keyring"
	"github.com/sealpost/sealpost/appliance/store"
)

// Open opens (or creates) the keyring and store under dir, closed when the
// test ends. Opening the same dir again after a close reopens the data.
func Open(t testing.TB, dir string) (*store.Store, *keyring.Keyring) {
	t.Helper()
	keys, err := keyring.Open(filepath.Join(dir, "k"), filepath.Join(dir, "data"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(filepath.Join(dir, "data"), keys, store.Options{Logger: zerolog.Nop()})
	if err != nil {
		keys.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close(); keys.Close() })
	return st, keys
}
