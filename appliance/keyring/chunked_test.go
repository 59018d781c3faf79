package keyring

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	mrand "math/rand/v2"
	"sync"
	"testing"
)

func newDataKey(t testing.TB) *DataKey {
	t.Helper()
	raw := make([]byte, 32)
	rand.Read(raw)
	a, err := newAEAD(raw)
	if err != nil {
		t.Fatal(err)
	}
	return &DataKey{aead: a}
}

// encrypt writes plain through NewWriter, in uneven pieces as a network
// stream would arrive if pieces is set, else in one Write.
func encrypt(t testing.TB, d *DataKey, plain []byte, pieces bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := d.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	for rest := plain; len(rest) > 0; {
		n := len(rest)
		if pieces {
			n = min(n, 1+mrand.IntN(3*ChunkSize))
		}
		if m, err := w.Write(rest[:n]); err != nil || m != n {
			t.Fatalf("Write = %d, %v", m, err)
		}
		rest = rest[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// decryptAt reads all of sealed through NewReaderAt.
func decryptAt(d *DataKey, sealed []byte) ([]byte, error) {
	r, err := d.NewReaderAt(bytes.NewReader(sealed), int64(len(sealed)))
	if err != nil {
		return nil, err
	}
	out := make([]byte, r.Size())
	n, err := r.ReadAt(out, 0)
	if n == len(out) && (err == nil || errors.Is(err, io.EOF)) {
		return out, nil
	}
	if err == nil {
		err = errors.New("short read without an error")
	}
	return nil, err
}

// decryptStream reads all of sealed through NewReader, in odd-sized reads.
func decryptStream(d *DataKey, sealed []byte) ([]byte, error) {
	r, err := d.NewReader(bytes.NewReader(sealed))
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	buf := make([]byte, 10_007)
	for {
		n, err := r.Read(buf)
		out.Write(buf[:n])
		if errors.Is(err, io.EOF) {
			return out.Bytes(), nil
		}
		if err != nil {
			return nil, err
		}
	}
}

var chunkSizes = []int{0, 1, 100, ChunkSize - 1, ChunkSize, ChunkSize + 1, 2 * ChunkSize, 3 * ChunkSize, 5<<20 + 12345}

func TestChunkedRoundTrip(t *testing.T) {
	t.Parallel()
	d := newDataKey(t)
	for _, size := range chunkSizes {
		plain := randomBytes(size)
		for _, pieces := range []bool{false, true} {
			sealed := encrypt(t, d, plain, pieces)
			if int64(len(sealed)) != EncryptedSize(int64(size)) {
				t.Errorf("size %d: encrypted %d bytes, EncryptedSize says %d", size, len(sealed), EncryptedSize(int64(size)))
			}
			if got, _, ok := plainSize(int64(len(sealed))); !ok || got != int64(size) {
				t.Errorf("size %d: plainSize = %d, %v", size, got, ok)
			}
			if size >= 16 && bytes.Contains(sealed, plain[:16]) {
				t.Errorf("size %d: ciphertext holds plaintext", size)
			}
			for name, decrypt := range map[string]func(*DataKey, []byte) ([]byte, error){"ReaderAt": decryptAt, "Reader": decryptStream} {
				got, err := decrypt(d, sealed)
				if err != nil || !bytes.Equal(got, plain) {
					t.Errorf("size %d, pieces %v, %s: round trip failed: %v", size, pieces, name, err)
				}
			}
		}
	}
}

func TestChunkedWriter(t *testing.T) {
	t.Parallel()
	d := newDataKey(t)
	var buf bytes.Buffer
	w, err := d.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("abc"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if n, err := w.Write([]byte("x")); n != 0 || err == nil {
		t.Errorf("Write after Close = %d, %v", n, err)
	}
	if got, err := decryptAt(d, buf.Bytes()); err != nil || string(got) != "abc" {
		t.Errorf("after Close and a refused Write: %q, %v", got, err)
	}
	// Two files of the same plaintext and key differ entirely.
	a, b := encrypt(t, d, []byte("same"), false), encrypt(t, d, []byte("same"), false)
	if bytes.Equal(a[12:28], b[12:28]) || bytes.Equal(a[chunkHeader:], b[chunkHeader:]) {
		t.Error("two encryptions share a file id or ciphertext")
	}

	// Errors of the underlying writer stick.
	boom := errors.New("disk full")
	fw := &failingWriter{after: chunkHeader + sealedChunk, err: boom}
	w, err = d.NewWriter(fw)
	if err != nil {
		t.Fatal(err)
	}
	_, err = w.Write(make([]byte, 3*ChunkSize))
	if !errors.Is(err, boom) {
		t.Errorf("Write: %v, want %v", err, boom)
	}
	if err := w.Close(); !errors.Is(err, boom) {
		t.Errorf("Close after a failed Write: %v", err)
	}
	if _, err := d.NewWriter(&failingWriter{err: boom}); !errors.Is(err, boom) {
		t.Errorf("NewWriter with a failing writer: %v", err)
	}
}

type failingWriter struct {
	after int // bytes accepted before failing
	err   error
}

func (f *failingWriter) Write(p []byte) (int, error) {
	if len(p) > f.after {
		return 0, f.err
	}
	f.after -= len(p)
	return len(p), nil
}

func TestChunkedRandomAccess(t *testing.T) {
	t.Parallel()
	d := newDataKey(t)
	plain := randomBytes(4*ChunkSize + 777)
	sealed := encrypt(t, d, plain, true)
	r, err := d.NewReaderAt(bytes.NewReader(sealed), int64(len(sealed)))
	if err != nil {
		t.Fatal(err)
	}
	if r.Size() != int64(len(plain)) {
		t.Fatalf("Size = %d, want %d", r.Size(), len(plain))
	}
	size := len(plain)
	ranges := [][2]int{ // offset, length; all within the plaintext
		{0, 0}, {0, 1}, {0, ChunkSize}, {ChunkSize - 3, 10}, {ChunkSize, ChunkSize}, {ChunkSize, 2*ChunkSize + 5},
		{2*ChunkSize - 1, 2*ChunkSize + 2}, {17, 3 * ChunkSize}, {4 * ChunkSize, 777}, {size - 5, 5}, {0, size},
	}
	for range 300 {
		off := mrand.IntN(size)
		ranges = append(ranges, [2]int{off, 1 + mrand.IntN(min(size-off, 3*ChunkSize))})
	}
	var wg sync.WaitGroup
	for w := range 4 { // concurrent readers share the ChunkReader
		wg.Go(func() {
			for i := w; i < len(ranges); i += 4 {
				off, n := ranges[i][0], ranges[i][1]
				buf := make([]byte, n)
				got, err := r.ReadAt(buf, int64(off))
				if err != nil && !(errors.Is(err, io.EOF) && off+n == size) {
					t.Errorf("ReadAt(%d, %d): %v", off, n, err)
					return
				}
				if got != n || !bytes.Equal(buf, plain[off:off+n]) {
					t.Errorf("ReadAt(%d, %d) returned other bytes", off, n)
					return
				}
			}
		})
	}
	wg.Wait()

	// Past the end: fewer bytes and io.EOF, as io.ReaderAt says.
	for _, c := range []struct {
		off, len, wantN int
	}{{size - 10, 100, 10}, {size - ChunkSize - 10, 2 * ChunkSize, ChunkSize + 10}, {size, 100, 0}, {size + 5, 1, 0}} {
		buf := make([]byte, c.len)
		n, err := r.ReadAt(buf, int64(c.off))
		if n != c.wantN || !errors.Is(err, io.EOF) || !bytes.Equal(buf[:n], plain[min(c.off, size):min(c.off+n, size)]) {
			t.Errorf("ReadAt(%d, %d) = %d, %v; want %d, io.EOF", c.off, c.len, n, err, c.wantN)
		}
	}
	if _, err := r.ReadAt(make([]byte, 1), -1); err == nil {
		t.Error("a negative offset was accepted")
	}
	// Sequential reading through a SectionReader gives the whole plaintext.
	all, err := io.ReadAll(io.NewSectionReader(r, 0, r.Size()))
	if err != nil || !bytes.Equal(all, plain) {
		t.Errorf("sequential read: %v", err)
	}
}

// TestChunkedDetectsTampering changes encrypted data in every way that
// matters; each must fail with ErrCorrupt, to open or to read, through
// either reader, and never yield other bytes.
func TestChunkedDetectsTampering(t *testing.T) {
	t.Parallel()
	d := newDataKey(t)
	plain := randomBytes(3*ChunkSize + 100)
	sealed := encrypt(t, d, plain, false)
	other := encrypt(t, d, plain, false) // same key, same plaintext, another file
	exact := encrypt(t, d, plain[:3*ChunkSize], false)
	chunk := func(b []byte, i int) []byte {
		return b[chunkHeader+i*sealedChunk : min(len(b), chunkHeader+(i+1)*sealedChunk)]
	}
	join := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	head := sealed[:chunkHeader]

	tests := []struct {
		name   string
		sealed []byte
		key    *DataKey
	}{
		{"magic changed", flip(sealed, 0), d},
		{"format changed", flip(sealed, 4), d},
		{"reserved byte set", flip(sealed, 6), d},
		{"chunk size changed", flip(sealed, 10), d},
		{"file id changed", flip(sealed, 20), d},
		{"trailing reserved byte set", flip(sealed, 30), d},
		{"nonce flipped", flip(sealed, chunkHeader+3), d},
		{"chunk body flipped", flip(sealed, chunkHeader+sealedChunk+500), d},
		{"tag flipped", flip(sealed, chunkHeader+2*sealedChunk-1), d},
		{"last chunk flipped", flip(sealed, len(sealed)-3), d},
		{"cut mid-chunk", sealed[:chunkHeader+sealedChunk+1000], d},
		{"cut at a chunk boundary", sealed[:chunkHeader+2*sealedChunk], d},
		{"last chunk dropped", sealed[:chunkHeader+3*sealedChunk], d},
		{"empty last chunk dropped", exact[:len(exact)-chunkOverhead], d},
		{"cut inside the empty last chunk", exact[:len(exact)-1], d},
		{"only the header", sealed[:chunkHeader], d},
		{"shorter than a header", sealed[:chunkHeader-1], d},
		{"nothing", nil, d},
		{"middle chunk dropped", join(head, chunk(sealed, 0), chunk(sealed, 2), chunk(sealed, 3)), d},
		{"chunks swapped", join(head, chunk(sealed, 1), chunk(sealed, 0), chunk(sealed, 2), chunk(sealed, 3)), d},
		{"chunk duplicated", join(head, chunk(sealed, 0), chunk(sealed, 0), chunk(sealed, 2), chunk(sealed, 3)), d},
		{"chunk from another file", join(head, chunk(sealed, 0), chunk(other, 1), chunk(sealed, 2), chunk(sealed, 3)), d},
		{"last chunk from another file", join(head, chunk(sealed, 0), chunk(sealed, 1), chunk(sealed, 2), chunk(other, 3)), d},
		{"header from another file", join(other[:chunkHeader], sealed[chunkHeader:]), d},
		{"last chunk moved up", join(head, chunk(sealed, 0), chunk(sealed, 3)), d},
		{"extra bytes appended", join(sealed, []byte("xx")), d},
		{"a chunk appended", join(sealed, chunk(sealed, 0)), d},
		{"wrong key", sealed, newDataKey(t)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for name, decrypt := range map[string]func(*DataKey, []byte) ([]byte, error){"ReaderAt": decryptAt, "Reader": decryptStream} {
				if got, err := decrypt(tt.key, tt.sealed); !errors.Is(err, ErrCorrupt) {
					t.Errorf("%s: %v (equal to plaintext: %v), want ErrCorrupt", name, err, bytes.Equal(got, plain))
				}
			}
		})
	}
}

// TestChunkReaderChecksLastChunkAtOpen: a file whose last chunk is damaged
// is refused by NewReaderAt itself, before any read.
func TestChunkReaderChecksLastChunkAtOpen(t *testing.T) {
	t.Parallel()
	d := newDataKey(t)
	sealed := encrypt(t, d, randomBytes(2*ChunkSize+10), false)
	for _, bad := range [][]byte{flip(sealed, len(sealed)-1), sealed[:len(sealed)-1]} {
		if _, err := d.NewReaderAt(bytes.NewReader(bad), int64(len(bad))); !errors.Is(err, ErrCorrupt) {
			t.Errorf("NewReaderAt: %v, want ErrCorrupt", err)
		}
	}
	// A stated size beyond the data is a truncation too.
	if _, err := d.NewReaderAt(bytes.NewReader(sealed), int64(len(sealed))+sealedChunk); !errors.Is(err, ErrCorrupt) {
		t.Errorf("NewReaderAt with a larger size: %v, want ErrCorrupt", err)
	}
	// Read errors of the underlying reader are passed on, not called damage.
	boom := errors.New("i/o error")
	if _, err := d.NewReaderAt(errReaderAt{boom}, int64(len(sealed))); !errors.Is(err, boom) || errors.Is(err, ErrCorrupt) {
		t.Errorf("NewReaderAt with a failing reader: %v", err)
	}
}

type errReaderAt struct{ err error }

func (e errReaderAt) ReadAt([]byte, int64) (int, error) { return 0, e.err }

func FuzzChunkReader(f *testing.F) {
	d := newDataKey(f)
	f.Add(encrypt(f, d, nil, false))
	f.Add(encrypt(f, d, []byte("hello"), false))
	f.Add([]byte("SPCK\x01\x00\x00\x00\x00\x01\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		atPlain, atErr := decryptAt(d, data)
		streamPlain, streamErr := decryptStream(d, data)
		if (atErr == nil) != (streamErr == nil) || !bytes.Equal(atPlain, streamPlain) {
			t.Fatalf("the readers disagree: %v / %v", atErr, streamErr)
		}
		if r, err := d.NewReaderAt(bytes.NewReader(data), int64(len(data))); err == nil {
			buf := make([]byte, 1000)
			for _, off := range []int64{0, r.Size() / 2, r.Size() - 1, r.Size()} {
				_, _ = r.ReadAt(buf, off)
			}
		}
	})
}
