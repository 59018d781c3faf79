package attachment

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sealpost/sealpost/appliance/fault"
	"github.com/sealpost/sealpost/appliance/keyring"
)

const chunk = keyring.ChunkSize

// env is a real keyring and a blob directory in the data directory, as the
// appliance lays them out.
type env struct {
	keys  *keyring.Keyring
	blobs *Blobs
	dir   string
}

func newEnv(t testing.TB) *env {
	t.Helper()
	root := t.TempDir()
	data := filepath.Join(root, "data")
	keys, err := keyring.Open(filepath.Join(root, "sealpost.key"), data)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(keys.Close)
	dir := filepath.Join(data, "blobs")
	b, err := OpenBlobs(dir)
	if err != nil {
		t.Fatal(err)
	}
	return &env{keys: keys, blobs: b, dir: dir}
}

func (e *env) key(t testing.TB) *keyring.DataKey {
	t.Helper()
	// Use the key as the message package will: unwrapped from storage.
	_, wrapped, err := e.keys.NewDataKey()
	if err != nil {
		t.Fatal(err)
	}
	k, err := e.keys.UnwrapDataKey(wrapped)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// put stores plain as a new blob, in uneven writes as a network stream
// arrives.
func (e *env) put(t testing.TB, key *keyring.DataKey, plain []byte) string {
	t.Helper()
	u, err := e.blobs.Create(key, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Abort()
	for rest := plain; len(rest) > 0; {
		n := min(len(rest), 1+mrand.IntN(3*chunk))
		if m, err := u.Write(rest[:n]); err != nil || m != n {
			t.Fatalf("Write = %d, %v", m, err)
		}
		rest = rest[n:]
	}
	if err := u.Commit(); err != nil {
		t.Fatal(err)
	}
	return u.ID()
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// files lists the regular files under dir.
func files(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// onlyReader hides a reader's WriterTo, so io.Copy uses Upload.ReadFrom.
type onlyReader struct{ io.Reader }

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sizes := []int{0, 1, chunk - 1, chunk, chunk + 1, 3<<20 + 17}
	for _, size := range sizes {
		for _, mode := range []string{"writes", "copy"} {
			t.Run(mode+"/"+strconv.Itoa(size), func(t *testing.T) {
				t.Parallel()
				key := e.key(t)
				plain := randomBytes(size)
				var id string
				if mode == "writes" {
					id = e.put(t, key, plain)
				} else {
					u, err := e.blobs.Create(key, int64(size))
					if err != nil {
						t.Fatal(err)
					}
					defer u.Abort()
					n, err := io.Copy(u, onlyReader{bytes.NewReader(plain)})
					if err != nil || n != int64(size) || u.Size() != int64(size) {
						t.Fatalf("Copy = %d, %v; Size %d; want %d", n, err, u.Size(), size)
					}
					if err := u.Commit(); err != nil {
						t.Fatal(err)
					}
					id = u.ID()
				}

				if got, err := e.blobs.Stat(id); err != nil || got != keyring.EncryptedSize(int64(size)) {
					t.Errorf("Stat = %d, %v, want %d", got, err, keyring.EncryptedSize(int64(size)))
				}
				if _, err := os.Stat(filepath.Join(e.dir, id[:2], id+".part")); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("the .part file is still there after Commit: %v", err)
				}
				if err := e.blobs.Verify(id, key); err != nil {
					t.Errorf("Verify: %v", err)
				}
				r, err := e.blobs.Open(id, key)
				if err != nil {
					t.Fatal(err)
				}
				defer r.Close()
				if r.Size() != int64(size) {
					t.Fatalf("Size = %d, want %d", r.Size(), size)
				}
				got, err := io.ReadAll(r) // small Reads through the chunk cache
				if err != nil || !bytes.Equal(got, plain) {
					t.Fatalf("ReadAll: %d bytes, %v; equal %v", len(got), err, bytes.Equal(got, plain))
				}
				var buf bytes.Buffer
				r.Seek(0, io.SeekStart)
				if n, err := io.Copy(&buf, r); err != nil || n != int64(size) || !bytes.Equal(buf.Bytes(), plain) {
					t.Fatalf("WriteTo = %d, %v", n, err)
				}
				if size == 0 {
					return
				}
				for range 40 {
					off := mrand.IntN(size)
					n := 1 + mrand.IntN(min(size-off, 3*chunk))
					p := make([]byte, n)
					if m, err := r.ReadAt(p, int64(off)); m != n || (err != nil && err != io.EOF) || !bytes.Equal(p, plain[off:off+n]) {
						t.Fatalf("ReadAt(%d bytes at %d) = %d, %v, equal %v", n, off, m, err, bytes.Equal(p, plain[off:off+n]))
					}
					if pos, err := r.Seek(int64(off), io.SeekStart); pos != int64(off) || err != nil {
						t.Fatalf("Seek(%d) = %d, %v", off, pos, err)
					}
					clear(p)
					if m, err := io.ReadFull(r, p); m != n || err != nil || !bytes.Equal(p, plain[off:off+n]) {
						t.Fatalf("Seek(%d) and ReadFull(%d) = %d, %v, equal %v", off, n, m, err, bytes.Equal(p, plain[off:off+n]))
					}
				}
				back := mrand.IntN(size) + 1
				if pos, err := r.Seek(-int64(back), io.SeekEnd); err != nil || pos != int64(size-back) {
					t.Fatalf("Seek(-%d, end) = %d, %v", back, pos, err)
				}
				if rest, err := io.ReadAll(r); err != nil || !bytes.Equal(rest, plain[size-back:]) {
					t.Fatalf("read after Seek from the end: %d bytes, %v", len(rest), err)
				}
				if _, err := r.Seek(-1, io.SeekStart); err == nil {
					t.Error("Seek to a negative position succeeded")
				}
			})
		}
	}
}

// TestNoPlaintextOnDisk looks for a marker in every file of the blob
// directory while an upload is half written and after it is committed.
func TestNoPlaintextOnDisk(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	key := e.key(t)
	marker := []byte("sealpost-plaintext-marker-" + hex.EncodeToString(randomBytes(8)))
	plain := bytes.Repeat(marker, 5*chunk/len(marker))

	check := func(when string, wantFiles int) {
		t.Helper()
		fs := files(t, e.dir)
		if len(fs) != wantFiles {
			t.Fatalf("%s: %d files in the blob directory (%v), want %d", when, len(fs), fs, wantFiles)
		}
		for _, f := range fs {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(data, marker) || bytes.Contains(data, marker[:16]) {
				t.Fatalf("%s: plaintext in %s", when, f)
			}
			if info, _ := os.Stat(f); info.Mode().Perm() != 0o600 {
				t.Errorf("%s: %s has mode %v, want 0600", when, f, info.Mode().Perm())
			}
		}
	}

	u, err := e.blobs.Create(key, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Abort()
	half := len(plain) / 2
	if _, err := u.Write(plain[:half]); err != nil {
		t.Fatal(err)
	}
	part := filepath.Join(e.dir, u.ID()[:2], u.ID()+".part")
	info, err := os.Stat(part)
	if err != nil {
		t.Fatalf("no .part file while writing: %v", err)
	}
	if full := int64(half / chunk); info.Size() != keyring.EncryptedSize(full*chunk)-28 {
		t.Errorf(".part file mid-write is %d bytes, want the header and %d sealed chunks", info.Size(), full)
	}
	check("mid-write", 1)
	if _, err := u.Write(plain[half:]); err != nil {
		t.Fatal(err)
	}
	if err := u.Commit(); err != nil {
		t.Fatal(err)
	}
	check("committed", 1)
	if info, _ := os.Stat(filepath.Join(e.dir, u.ID()[:2])); info.Mode().Perm() != 0o700 {
		t.Errorf("blob directory mode %v, want 0700", info.Mode().Perm())
	}
	if info, _ := os.Stat(e.dir); info.Mode().Perm() != 0o700 {
		t.Errorf("blob directory mode %v, want 0700", info.Mode().Perm())
	}
}

func TestLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		name    string
		limit   int64
		writes  []int
		copy    int // bytes through ReadFrom after the writes
		tooBig  bool
		written int64
	}{
		{name: "exactly the limit", limit: 1000, writes: []int{400, 600}, written: 1000},
		{name: "no limit", limit: 0, writes: []int{3 * chunk}, written: 3 * chunk},
		{name: "one write over", limit: 1000, writes: []int{1001}, tooBig: true},
		{name: "second write over", limit: 1000, writes: []int{600, 600}, tooBig: true, written: 600},
		{name: "over after full chunks", limit: 2*chunk + 10, writes: []int{chunk, chunk, 11}, tooBig: true, written: 2 * chunk},
		{name: "copy over", limit: chunk + 5, copy: 3 * chunk, tooBig: true, written: chunk},
		{name: "copy exactly", limit: chunk + 5, copy: chunk + 5, written: chunk + 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			key := e.key(t)
			u, err := e.blobs.Create(key, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			defer u.Abort()
			var werr error
			for _, n := range tt.writes {
				if _, werr = u.Write(randomBytes(n)); werr != nil {
					break
				}
			}
			if werr == nil && tt.copy > 0 {
				_, werr = io.Copy(u, onlyReader{bytes.NewReader(randomBytes(tt.copy))})
			}
			if u.Size() != tt.written {
				t.Errorf("Size = %d, want %d", u.Size(), tt.written)
			}
			part := filepath.Join(e.dir, u.ID()[:2], u.ID()+".part")
			if !tt.tooBig {
				if werr != nil {
					t.Fatalf("write: %v", werr)
				}
				if err := u.Commit(); err != nil {
					t.Fatal(err)
				}
				if r, err := e.blobs.Open(u.ID(), key); err != nil || r.Size() != tt.written {
					t.Fatalf("Open: %v", err)
				} else {
					r.Close()
				}
				return
			}
			if !errors.Is(werr, ErrTooLarge) || fault.KindOf(werr) != fault.TooLarge {
				t.Fatalf("write error %v, want ErrTooLarge", werr)
			}
			if _, err := os.Stat(part); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("the .part file is left after ErrTooLarge: %v", err)
			}
			if _, err := u.Write([]byte("x")); err == nil {
				t.Error("Write after ErrTooLarge succeeded")
			}
			if err := u.Commit(); err == nil {
				t.Error("Commit after ErrTooLarge succeeded")
			}
			if _, err := e.blobs.Stat(u.ID()); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("Stat after ErrTooLarge: %v, want not exist", err)
			}
			if err := u.Abort(); err != nil {
				t.Errorf("Abort after ErrTooLarge: %v", err)
			}
		})
	}
	if _, err := e.blobs.Create(e.key(t), -1); err == nil {
		t.Error("Create with a negative limit succeeded")
	}
}

func TestAbort(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	key := e.key(t)

	u, err := e.blobs.Create(key, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Write(randomBytes(2*chunk + 100)); err != nil {
		t.Fatal(err)
	}
	if len(files(t, e.dir)) != 1 {
		t.Fatal("no .part file while writing")
	}
	if err := u.Abort(); err != nil {
		t.Fatal(err)
	}
	if fs := files(t, e.dir); len(fs) != 0 {
		t.Fatalf("Abort left %v", fs)
	}
	if err := u.Abort(); err != nil {
		t.Errorf("second Abort: %v", err)
	}
	if _, err := u.Write([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Errorf("Write after Abort: %v, want ErrClosed", err)
	}
	if err := u.Commit(); !errors.Is(err, ErrClosed) {
		t.Errorf("Commit after Abort: %v, want ErrClosed", err)
	}

	// Abort after Commit (the deferred Abort) keeps the blob.
	plain := randomBytes(1000)
	u, err = e.blobs.Create(key, 0)
	if err != nil {
		t.Fatal(err)
	}
	u.Write(plain)
	if err := u.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := u.Abort(); err != nil {
		t.Errorf("Abort after Commit: %v", err)
	}
	if err := u.Commit(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Commit: %v, want ErrClosed", err)
	}
	r, err := e.blobs.Open(u.ID(), key)
	if err != nil {
		t.Fatalf("Abort after Commit removed the blob: %v", err)
	}
	defer r.Close()
	if got, _ := io.ReadAll(r); !bytes.Equal(got, plain) {
		t.Error("blob changed by Abort after Commit")
	}
}

// TestDamage changes committed blobs on disk; each change must be refused
// at Open or at the read that reaches it, with keyring.ErrCorrupt.
func TestDamage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const size = 3*chunk + 1000
	sealed := int64(chunk + 28)
	chunkAt := func(i int64) int64 { return 32 + i*sealed }
	flip := func(off int64) func([]byte) []byte {
		return func(b []byte) []byte { b[off] ^= 0x01; return b }
	}
	tests := []struct {
		name     string
		change   func([]byte) []byte
		wrongKey bool
		openOK   bool  // the damage shows only on reading
		bad      int64 // then: the first damaged chunk
	}{
		{name: "wrong key", wrongKey: true},
		{name: "magic", change: flip(0)},
		{name: "file id", change: flip(15)},
		{name: "chunk 1 ciphertext", change: flip(chunkAt(1) + 500), openOK: true, bad: 1},
		{name: "chunk 0 nonce", change: flip(33), openOK: true},
		{name: "chunk 0 tag", change: flip(chunkAt(1) - 1), openOK: true},
		{name: "last chunk", change: flip(chunkAt(3) + 40)},
		{name: "truncated by one byte", change: func(b []byte) []byte { return b[:len(b)-1] }},
		{name: "truncated at a chunk boundary", change: func(b []byte) []byte { return b[:chunkAt(3)] }},
		{name: "truncated to a valid shorter size", change: func(b []byte) []byte { return b[:chunkAt(2)+28+10] }},
		{name: "last chunk dropped", change: func(b []byte) []byte {
			return b[:len(b)-int(sealed)] // chunk 2 becomes last but was not sealed as last
		}},
		{name: "one byte appended", change: func(b []byte) []byte { return append(b, 0) }},
		{name: "chunks 0 and 1 swapped", openOK: true, change: func(b []byte) []byte {
			c0 := bytes.Clone(b[chunkAt(0):chunkAt(1)])
			copy(b[chunkAt(0):], b[chunkAt(1):chunkAt(2)])
			copy(b[chunkAt(1):], c0)
			return b
		}},
		{name: "empty file", change: func([]byte) []byte { return nil }},
		{name: "header only", change: func(b []byte) []byte { return b[:32] }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			key := e.key(t)
			plain := randomBytes(size)
			id := e.put(t, key, plain)
			if tt.change != nil {
				p := filepath.Join(e.dir, id[:2], id)
				data, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, tt.change(data), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if tt.wrongKey {
				key = e.key(t)
			}
			err := e.blobs.Verify(id, key)
			if !errors.Is(err, keyring.ErrCorrupt) {
				t.Errorf("Verify = %v, want ErrCorrupt", err)
			}
			r, err := e.blobs.Open(id, key)
			if !tt.openOK {
				if !errors.Is(err, keyring.ErrCorrupt) {
					t.Fatalf("Open = %v, want ErrCorrupt", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open = %v; this damage should show on reading", err)
			}
			defer r.Close()
			got, err := io.ReadAll(r)
			if !errors.Is(err, keyring.ErrCorrupt) {
				t.Fatalf("ReadAll = %v, want ErrCorrupt", err)
			}
			if !bytes.Equal(got, plain[:len(got)]) || int64(len(got)) != tt.bad*chunk {
				t.Errorf("ReadAll returned %d bytes before the error; they must be whole undamaged chunks", len(got))
			}
			if _, err := r.ReadAt(make([]byte, 10), tt.bad*chunk+5); !errors.Is(err, keyring.ErrCorrupt) {
				t.Errorf("ReadAt in a damaged chunk = %v, want ErrCorrupt", err)
			}
			p := make([]byte, 100)
			if _, err := r.ReadAt(p, 2*chunk); err != nil || !bytes.Equal(p, plain[2*chunk:2*chunk+100]) {
				t.Errorf("ReadAt in an undamaged chunk = %v", err)
			}
		})
	}
}

func TestBadID(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	key := e.key(t)
	good := e.put(t, key, []byte("x"))
	// The last character holds 3 bits and 2 zero bits; "b" sets one of these.
	nonCanonical := good[:25] + "b"
	if good[25] == 'b' {
		t.Fatal("NewID made a non-canonical id")
	}
	for _, id := range []string{
		"", "a", "aa", "../x", "../../../../etc/passwd",
		"../" + strings.Repeat("a", 23), "aa/" + strings.Repeat("a", 23), "aa\\" + strings.Repeat("a", 23),
		strings.Repeat("a", 25), good + "a", strings.ToUpper(good), good[:25] + "1", good[:25] + "0",
		good[:25] + "\n", good + ".part", nonCanonical, strings.Repeat(".", 26), "/" + good[1:],
	} {
		if _, err := e.blobs.Open(id, key); !errors.Is(err, ErrInvalidID) {
			t.Errorf("Open(%q) = %v, want ErrInvalidID", id, err)
		}
		if err := e.blobs.Remove(id); !errors.Is(err, ErrInvalidID) || fault.KindOf(err) != fault.Invalid {
			t.Errorf("Remove(%q) = %v, want ErrInvalidID", id, err)
		}
		if _, err := e.blobs.Stat(id); !errors.Is(err, ErrInvalidID) {
			t.Errorf("Stat(%q) = %v, want ErrInvalidID", id, err)
		}
		if err := e.blobs.Verify(id, key); !errors.Is(err, ErrInvalidID) {
			t.Errorf("Verify(%q) = %v, want ErrInvalidID", id, err)
		}
	}
	if _, err := e.blobs.Stat(good); err != nil {
		t.Errorf("Stat of a good id: %v", err)
	}
}

func TestNewID(t *testing.T) {
	t.Parallel()
	seen := make(map[string]bool)
	for range 10000 {
		id := NewID()
		if len(id) != 26 || strings.Trim(id, alphabet) != "" || !validID(id) {
			t.Fatalf("NewID = %q", id)
		}
		if seen[id] {
			t.Fatalf("NewID repeated %q", id)
		}
		seen[id] = true
	}
}

func TestOpenBlobsRemovesStaleParts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	key := e.key(t)
	old := time.Now().Add(-2 * time.Hour)

	committed := e.put(t, key, []byte("kept"))
	oldCommitted := e.put(t, key, []byte("kept too"))
	os.Chtimes(filepath.Join(e.dir, oldCommitted[:2], oldCommitted), old, old)

	running, err := e.blobs.Create(key, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer running.Abort()
	running.Write([]byte("in progress"))

	stale, err := e.blobs.Create(key, 0)
	if err != nil {
		t.Fatal(err)
	}
	stale.Write(randomBytes(chunk + 1))
	stalePart := filepath.Join(e.dir, stale.ID()[:2], stale.ID()+".part")
	if err := os.Chtimes(stalePart, old, old); err != nil {
		t.Fatal(err)
	}
	// A leftover from a crash: no Upload holds it.
	crashed := filepath.Join(e.dir, "zz", NewID()+".part")
	os.MkdirAll(filepath.Dir(crashed), 0o700)
	if err := os.WriteFile(crashed, randomBytes(100), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(crashed, old, old)
	// Something that is not ours stays where it is.
	foreign := filepath.Join(e.dir, "lost+found.part")
	os.WriteFile(foreign, nil, 0o600)
	os.Chtimes(foreign, old, old)

	if _, err := OpenBlobs(e.dir); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{stalePart, crashed} {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("stale %s survived OpenBlobs: %v", p, err)
		}
	}
	for _, id := range []string{committed, oldCommitted} {
		if err := e.blobs.Verify(id, key); err != nil {
			t.Errorf("committed blob %s: %v", id, err)
		}
	}
	if _, err := os.Stat(foreign); err != nil {
		t.Errorf("OpenBlobs removed a file outside the shards: %v", err)
	}
	if err := running.Commit(); err != nil {
		t.Errorf("an upload in progress did not survive OpenBlobs: %v", err)
	}
}

func TestRemove(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	key := e.key(t)
	id := e.put(t, key, randomBytes(100))
	if err := e.blobs.Remove(id); err != nil {
		t.Fatal(err)
	}
	if _, err := e.blobs.Stat(id); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat after Remove = %v, want not exist", err)
	}
	if _, err := e.blobs.Open(id, key); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open after Remove = %v, want not exist", err)
	}
	if err := e.blobs.Remove(id); err != nil {
		t.Errorf("Remove of a missing blob = %v", err)
	}
	if fs := files(t, e.dir); len(fs) != 0 {
		t.Errorf("files left: %v", fs)
	}
}

func TestOpenBlobsNotADirectory(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "blobs")
	os.WriteFile(p, nil, 0o600)
	if _, err := OpenBlobs(p); err == nil {
		t.Error("OpenBlobs accepted a file")
	}
}
