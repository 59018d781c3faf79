package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/rs/zerolog"
	"golang.org/x/crypto/acme/autocert"

	"github.com/sealpost/sealpost/appliance/keyring"
)

// env is a key file and data directory with an unlocked keyring.
type env struct {
	keyFile, dataDir string
	keys             *keyring.Keyring
}

func newEnv(t testing.TB) env {
	t.Helper()
	dir := t.TempDir()
	e := env{keyFile: filepath.Join(dir, "sealpost.key"), dataDir: filepath.Join(dir, "data")}
	k, err := keyring.Open(e.keyFile, e.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	e.keys = k
	return e
}

func (e env) open(t testing.TB) *Store {
	t.Helper()
	s, err := Open(e.dataDir, e.keys, Options{Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func put(t testing.TB, s *Store, key, value string) {
	t.Helper()
	if err := s.Update(context.Background(), func(tx *Tx) error { return tx.Put([]byte(key), []byte(value)) }); err != nil {
		t.Fatal(err)
	}
}

func get(t testing.TB, s *Store, key string) (string, error) {
	t.Helper()
	var v []byte
	err := s.View(func(tx *Tx) error {
		var err error
		v, err = tx.Get([]byte(key))
		return err
	})
	return string(v), err
}

func TestGetPutDeleteScan(t *testing.T) {
	t.Parallel()
	s := newEnv(t).open(t)
	ctx := context.Background()
	for _, kv := range [][2]string{{"user/b", "2"}, {"user/a", "1"}, {"user/c", "3"}, {"users", "x"}, {"msg/1", "m"}} {
		put(t, s, kv[0], kv[1])
	}
	if v, err := get(t, s, "user/a"); err != nil || v != "1" {
		t.Errorf("Get user/a = %q, %v", v, err)
	}
	if _, err := get(t, s, "user/zz"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get missing = %v, want ErrNotFound", err)
	}

	var keys []string
	s.View(func(tx *Tx) error {
		return tx.Scan([]byte("user/"), func(k, v []byte) error {
			keys = append(keys, string(k)+"="+string(v))
			return nil
		})
	})
	if got := strings.Join(keys, ","); got != "user/a=1,user/b=2,user/c=3" {
		t.Errorf("Scan user/ = %s", got)
	}
	keys = nil
	s.View(func(tx *Tx) error {
		return tx.ScanFrom([]byte("user/"), []byte("user/b"), func(k, _ []byte) error {
			keys = append(keys, string(k))
			return ErrStop
		})
	})
	if strings.Join(keys, ",") != "user/b" {
		t.Errorf("ScanFrom user/b with ErrStop = %v", keys)
	}

	if err := s.Update(ctx, func(tx *Tx) error { return tx.Delete([]byte("user/b")) }); err != nil {
		t.Fatal(err)
	}
	if _, err := get(t, s, "user/b"); !errors.Is(err, ErrNotFound) {
		t.Errorf("after Delete: %v", err)
	}

	// A failing function rolls everything back.
	boom := errors.New("boom")
	err := s.Update(ctx, func(tx *Tx) error {
		tx.Put([]byte("user/a"), []byte("changed"))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Errorf("Update returned %v, want boom", err)
	}
	if v, _ := get(t, s, "user/a"); v != "1" {
		t.Errorf("a failed Update changed user/a to %q", v)
	}

	// Reserved keys and read-only transactions are refused.
	if err := s.Update(ctx, func(tx *Tx) error { return tx.Put([]byte("\x00sys/schema"), []byte("99")) }); err == nil {
		t.Error("Put into the reserved prefix succeeded")
	}
	if err := s.View(func(tx *Tx) error { return tx.Put([]byte("x"), []byte("y")) }); err == nil {
		t.Error("Put in View succeeded")
	}

	// Typed helpers.
	type user struct{ Name string }
	if err := s.Update(ctx, func(tx *Tx) error { return PutJSON(tx, []byte("json/1"), user{"Ada"}) }); err != nil {
		t.Fatal(err)
	}
	s.View(func(tx *Tx) error {
		u, err := GetJSON[user](tx, []byte("json/1"))
		if err != nil || u.Name != "Ada" {
			t.Errorf("GetJSON = %+v, %v", u, err)
		}
		return nil
	})
}

// TestConflictRetry: concurrent read-modify-write transactions on one key
// all succeed thanks to the retry, and none is lost.
func TestConflictRetry(t *testing.T) {
	t.Parallel()
	s := newEnv(t).open(t)
	put(t, s, "counter", "0")
	var wg sync.WaitGroup
	const n = 20
	for range n {
		wg.Go(func() {
			err := s.Update(context.Background(), func(tx *Tx) error {
				v, err := tx.Get([]byte("counter"))
				if err != nil {
					return err
				}
				var c int
				fmt.Sscan(string(v), &c)
				return tx.Put([]byte("counter"), []byte(fmt.Sprint(c+1)))
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if v, _ := get(t, s, "counter"); v != fmt.Sprint(n) {
		t.Errorf("counter = %s, want %d", v, n)
	}
}

// TestPrivacyCanary writes records holding a random word in keys and values,
// closes the store, and reads every byte under the data directory: the word
// must not be there. A control proves the scanner finds a plain word.
func TestPrivacyCanary(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// Small memtables and value-log files, so that several are flushed or
	// rotated while the store is open (and the preallocated files are small
	// enough to read quickly).
	s, err := Open(e.dataDir, e.keys, Options{Logger: zerolog.Nop(), memTableSize: 256 << 10, valueLogFileSize: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	word := canaryWord()
	ctx := context.Background()
	filler := strings.Repeat("lorem ipsum ", 200)
	for i := range 3000 {
		err := s.Update(ctx, func(tx *Tx) error {
			// Small values stay in the tree, larger ones go to the value log.
			if err := tx.Put(fmt.Appendf(nil, "small/%s/%05d", word, i), []byte("<"+word+">")); err != nil {
				return err
			}
			return tx.Put(fmt.Appendf(nil, "msg/%s/%05d", word, i), []byte(filler+word+filler))
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	put(t, s, "big/"+word, strings.Repeat(word, 10_000))
	if tables, _ := filepath.Glob(filepath.Join(s.dir, "*.sst")); len(tables) == 0 {
		t.Error("no memtable was flushed into a table while the store was open")
	}
	// The files of a running store (write-ahead logs included), then those
	// of a closed one.
	if found := filesContaining(t, e.dataDir, word); len(found) > 0 {
		t.Errorf("the canary word is readable in %v while the store is open", found)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if found := filesContaining(t, e.dataDir, word); len(found) > 0 {
		t.Errorf("the canary word is readable in %v", found)
	}
	// Control: the scanner finds the word in a plain file, also where it
	// crosses the boundary between two pieces it reads.
	t.Run("control", func(t *testing.T) {
		control := filepath.Join(e.dataDir, "store", "control")
		data := make([]byte, 3<<20)
		copy(data[1<<20-5:], word)
		if err := os.WriteFile(control, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if found := filesContaining(t, e.dataDir, word); len(found) != 1 || found[0] != control {
			t.Errorf("the scanner does not find a plain canary: %v", found)
		}
	})
}

func canaryWord() string {
	b := make([]byte, 8)
	rand.Read(b)
	return "canary" + hex.EncodeToString(b)
}

// fileContains reads the file at path in pieces, with an overlap so that a
// word across two pieces is found too.
func fileContains(path string, word []byte) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	buf := make([]byte, 0, 1<<20)
	for {
		n, err := f.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if bytes.Contains(buf, word) {
			return true, nil
		}
		if err == io.EOF {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		keep := min(len(buf), len(word)-1)
		buf = buf[:copy(buf, buf[len(buf)-keep:])]
	}
}

func filesContaining(t *testing.T, root, word string) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		ok, err := fileContains(path, []byte(word))
		if ok {
			found = append(found, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// TestWrongKeyRefused: the store opened with another keyring's store key is
// refused clearly, and no file's content changes (Badger rewrites its
// MANIFEST in place with the same bytes).
func TestWrongKeyRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.open(t)
	put(t, s, "a", "b")
	s.Close()
	other := newEnv(t)
	before := digestTree(t, e.dataDir)
	_, err := Open(e.dataDir, other.keys, Options{Logger: zerolog.Nop()})
	if err == nil || !strings.Contains(err.Error(), "encrypted with another key") {
		t.Fatalf("Open with another key = %v", err)
	}
	if digestTree(t, e.dataDir) != before {
		t.Error("the refused open changed the store's files")
	}
}

func TestSecondProcessRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.open(t)
	_, err := Open(e.dataDir, e.keys, Options{Logger: zerolog.Nop()})
	if err == nil || !strings.Contains(err.Error(), "another sealpost process") {
		t.Fatalf("second Open = %v", err)
	}
}

func digestTree(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, _ := d.Info()
		fmt.Fprintf(&b, "%s %v %d\n", path, info.Mode(), info.Size())
		if d.Type().IsRegular() {
			data, _ := os.ReadFile(path)
			fmt.Fprintf(&b, "%x\n", sha256.Sum256(data))
		}
		return nil
	})
	return b.String()
}

func TestMigrations(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var hooks []string
	hookErr := error(nil)
	opts := Options{Logger: zerolog.Nop(), BeforeMigrate: func(from, to int) error {
		hooks = append(hooks, fmt.Sprintf("%d→%d", from, to))
		return hookErr
	}}
	s, err := Open(e.dataDir, e.keys, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var ran []int
	step := func(v int) Migration {
		return Migration{Version: v, Name: fmt.Sprint("step ", v), Apply: func(tx *Tx) error {
			ran = append(ran, v)
			return tx.Put(fmt.Appendf(nil, "m/%d", v), []byte("done"))
		}}
	}
	if err := s.Migrate(ctx, []Migration{step(1), step(2)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx, []Migration{step(1), step(2), step(3)}); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(ran) != "[1 2 3]" {
		t.Errorf("migrations ran %v, want [1 2 3]", ran)
	}
	if v, _ := s.SchemaVersion(); v != 3 {
		t.Errorf("schema version %d, want 3", v)
	}
	if fmt.Sprint(hooks) != "[0→2 2→3]" {
		t.Errorf("BeforeMigrate calls %v, want [0→2 2→3]", hooks)
	}

	// After a reopen nothing runs again.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(e.dataDir, e.keys, opts); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Migrate(ctx, []Migration{step(1), step(2), step(3)}); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(ran) != "[1 2 3]" || len(hooks) != 2 {
		t.Errorf("after a reopen: migrations ran %v, BeforeMigrate %v", ran, hooks)
	}

	// A failing BeforeMigrate stops everything.
	hookErr = errors.New("no backup")
	if err := s.Migrate(ctx, []Migration{step(1), step(2), step(3), step(4)}); err == nil || !strings.Contains(err.Error(), "no backup") {
		t.Errorf("Migrate with a failing BeforeMigrate: %v", err)
	}
	if v, _ := s.SchemaVersion(); v != 3 || len(ran) != 3 {
		t.Errorf("after a failed BeforeMigrate: version %d, ran %v", v, ran)
	}
	hookErr = nil

	// A failing migration leaves the version and data as they were.
	failing := Migration{Version: 4, Name: "fails", Apply: func(tx *Tx) error {
		tx.Put([]byte("m/4"), []byte("half"))
		return errors.New("cannot")
	}}
	if err := s.Migrate(ctx, []Migration{step(1), step(2), step(3), failing}); err == nil || !strings.Contains(err.Error(), "migration 4 (fails)") {
		t.Errorf("failing migration: %v", err)
	}
	if v, _ := s.SchemaVersion(); v != 3 {
		t.Errorf("after a failed migration the version is %d, want 3", v)
	}
	if _, err := get(t, s, "m/4"); !errors.Is(err, ErrNotFound) {
		t.Error("a failed migration left data behind")
	}

	// An older binary refuses newer data.
	err = s.Migrate(ctx, []Migration{step(1)})
	if err == nil || !strings.Contains(err.Error(), "newer sealpost (schema 3; this binary knows 1)") {
		t.Errorf("older binary: %v", err)
	}
	if err := s.Migrate(ctx, []Migration{step(2)}); err == nil {
		t.Error("migrations not counting from 1 were accepted")
	}
}

func TestAutocertCache(t *testing.T) {
	t.Parallel()
	s := newEnv(t).open(t)
	c := s.AutocertCache("tls/")
	ctx := context.Background()
	if _, err := c.Get(ctx, "example.org"); !errors.Is(err, autocert.ErrCacheMiss) {
		t.Errorf("Get missing = %v, want ErrCacheMiss", err)
	}
	if err := c.Put(ctx, "example.org", []byte("pem")); err != nil {
		t.Fatal(err)
	}
	if data, err := c.Get(ctx, "example.org"); err != nil || string(data) != "pem" {
		t.Errorf("Get = %q, %v", data, err)
	}
	if err := c.Delete(ctx, "example.org"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, "example.org"); !errors.Is(err, autocert.ErrCacheMiss) {
		t.Errorf("Get after Delete = %v", err)
	}
}

// TestValueBoundToKey: a sealed value copied under another key inside
// Badger (as someone with the disk and Badger's key could) does not open.
func TestValueBoundToKey(t *testing.T) {
	t.Parallel()
	s := newEnv(t).open(t)
	put(t, s, "user/alice", "admin")
	err := s.db.Update(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte("user/alice"))
		if err != nil {
			return err
		}
		sealed, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		if bytes.Contains(sealed, []byte("admin")) {
			t.Error("the value is stored in plaintext")
		}
		return txn.Set([]byte("user/mallory"), sealed)
	})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := get(t, s, "user/mallory"); err == nil || !strings.Contains(err.Error(), "does not authenticate") {
		t.Errorf("moved value read as %q, %v", v, err)
	}
	if v, err := get(t, s, "user/alice"); err != nil || v != "admin" {
		t.Errorf("user/alice = %q, %v", v, err)
	}
}

func TestClose(t *testing.T) {
	t.Parallel()
	var none *Store
	if err := none.Close(); err != nil {
		t.Errorf("Close on nil: %v", err)
	}
	s := newEnv(t).open(t)
	if err := s.Healthy(); err != nil {
		t.Errorf("Healthy on an open store: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := s.Healthy(); err == nil {
		t.Error("a closed store is healthy")
	}
	if err := s.Update(context.Background(), func(tx *Tx) error { return tx.Put([]byte("a"), []byte("b")) }); err == nil {
		t.Error("Update after Close succeeded")
	}
	if err := s.View(func(*Tx) error { return nil }); err == nil {
		t.Error("View after Close succeeded")
	}
}

// TestBadgerLogger: Badger's warnings and errors reach the log, its chatter
// does not, and a message that names a key is logged without arguments.
func TestBadgerLogger(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	l := newBadgerLogger(zerolog.New(&buf))
	l.Infof("Replaying file id: %d", 7)
	l.Debugf("writeRequests called")
	l.Warningf("While compacting level 0: %v\n", errors.New("disk full"))
	l.Errorf("Key: %v, Version : %v", []byte("user/secret@example.org"), 3)
	out := buf.String()
	for _, want := range []string{`"level":"warn"`, "While compacting level 0: disk full", `"level":"error"`, `"redacted":true`, `"engine":"badger"`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
	for _, bad := range []string{"Replaying", "writeRequests", "secret@example.org"} {
		if strings.Contains(out, bad) {
			t.Errorf("log contains %s:\n%s", bad, out)
		}
	}
}
