package keyring

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"io"
	mrand "math/rand/v2"
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

func encrypt(t testing.TB, d *DataKey, plain []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := d.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	// Write in uneven pieces, as a network stream would arrive.
	for rest := plain; len(rest) > 0; {
		n := min(len(rest), 1+mrand.IntN(100_000))
		if _, err := w.Write(rest[:n]); err != nil {
			t.Fatal(err)
		}
		rest = rest[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func decryptAll(d *DataKey, sealed []byte) ([]byte, error) {
	r, err := d.NewReaderAt(bytes.NewReader(sealed), int64(len(sealed)))
	if err != nil {
		return nil, err
	}
	out := make([]byte, r.Size())
	n, err := r.ReadAt(out, 0)
	if err != nil && !(errors.Is(err, io.EOF) && n == len(out)) {
		return nil, err
	}
	return out, nil
}

func TestChunkedRoundTrip(t *testing.T) {
	t.Parallel()
	d := newDataKey(t)
	for _, size := range []int{0, 1, ChunkSize - 1, ChunkSize, ChunkSize + 1, 3 * ChunkSize, 5<<20 + 12345} {
		plain := make([]byte, size)
		rand.Read(plain)
		sealed := encrypt(t, d, plain)
		if int64(len(sealed)) != EncryptedSize(int64(size)) {
			t.Errorf("size %d: encrypted %d bytes, EncryptedSize says %d", size, len(sealed), EncryptedSize(int64(size)))
		}
		got, err := decryptAll(d, sealed)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("size %d: round trip failed: %v", size, err)
		}
		if size >= 16 && bytes.Contains(sealed, plain[:16]) {
			t.Errorf("size %d: ciphertext holds plaintext", size)
		}
	}
}

func TestChunkedRandomAccess(t *testing.T) {
	t.Parallel()
	d := newDataKey(t)
	plain := make([]byte, 4*ChunkSize+777)
	rand.Read(plain)
	sealed := encrypt(t, d, plain)
	r, err := d.NewReaderAt(bytes.NewReader(sealed), int64(len(sealed)))
	if err != nil {
		t.Fatal(err)
	}
	if r.Size() != int64(len(plain)) {
		t.Fatalf("Size = %d, want %d", r.Size(), len(plain))
	}
	ranges := [][2]int{{0, 1}, {ChunkSize - 3, 10}, {ChunkSize, ChunkSize}, {2*ChunkSize - 1, 2*ChunkSize + 2}, {len(plain) - 5, 5}, {17, 3 * ChunkSize}}
	for range 200 {
		off := mrand.IntN(len(plain))
		ranges = append(ranges, [2]int{off, 1 + mrand.IntN(len(plain)-off)})
	}
	for _, rg := range ranges {
		buf := make([]byte, rg[1])
		n, err := r.ReadAt(buf, int64(rg[0]))
		if err != nil && !(errors.Is(err, io.EOF) && rg[0]+rg[1] == len(plain)) {
			t.Fatalf("ReadAt(%d, %d): %v", rg[0], rg[1], err)
		}
		if n != rg[1] || !bytes.Equal(buf, plain[rg[0]:rg[0]+rg[1]]) {
			t.Fatalf("ReadAt(%d, %d) returned other bytes", rg[0], rg[1])
		}
	}
	// Past the end: fewer bytes and io.EOF, as io.ReaderAt says.
	buf := make([]byte, 100)
	if n, err := r.ReadAt(buf, int64(len(plain)-10)); n != 10 || !errors.Is(err, io.EOF) {
		t.Errorf("read across EOF: n=%d err=%v", n, err)
	}
	if n, err := r.ReadAt(buf, int64(len(plain))); n != 0 || !errors.Is(err, io.EOF) {
		t.Errorf("read at EOF: n=%d err=%v", n, err)
	}
	// Sequential reading through a SectionReader gives the whole plaintext.
	all, err := io.ReadAll(io.NewSectionReader(r, 0, r.Size()))
	if err != nil || !bytes.Equal(all, plain) {
		t.Errorf("sequential read: %v", err)
	}
}

// TestChunkedDetectsTampering changes encrypted data in every way that
// matters; each must fail to open or to read, never return other bytes.
func TestChunkedDetectsTampering(t *testing.T) {
	t.Parallel()
	d := newDataKey(t)
	plain := make([]byte, 3*ChunkSize+100)
	rand.Read(plain)
	sealed := encrypt(t, d, plain)
	other := encrypt(t, d, plain) // same key, same plaintext, another file
	sc := ChunkSize + chunkOverhead
	chunk := func(b []byte, i int) []byte { return b[chunkHeader+i*sc : min(len(b), chunkHeader+(i+1)*sc)] }
	join := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

	tests := map[string][]byte{
		"header byte flipped":      flip(sealed, 20),
		"chunk body flipped":       flip(sealed, chunkHeader+sc+500),
		"tag flipped":              flip(sealed, chunkHeader+2*sc-1),
		"last chunk flipped":       flip(sealed, len(sealed)-3),
		"cut mid-chunk":            sealed[:chunkHeader+sc+1000],
		"cut at a chunk boundary":  sealed[:chunkHeader+2*sc],
		"last chunk dropped":       sealed[:chunkHeader+3*sc],
		"only the header":          sealed[:chunkHeader],
		"chunks swapped":           join(sealed[:chunkHeader], chunk(sealed, 1), chunk(sealed, 0), chunk(sealed, 2), chunk(sealed, 3)),
		"chunk duplicated":         join(sealed[:chunkHeader], chunk(sealed, 0), chunk(sealed, 0), chunk(sealed, 2), chunk(sealed, 3)),
		"chunk from another file":  join(sealed[:chunkHeader], chunk(sealed, 0), chunk(other, 1), chunk(sealed, 2), chunk(sealed, 3)),
		"header from another file": join(other[:chunkHeader], sealed[chunkHeader:]),
		"extra bytes appended":     join(sealed, []byte("xx")),
		"wrong key":                nil, // handled below
	}
	for name, bad := range tests {
		key := d
		if name == "wrong key" {
			key, bad = newDataKey(t), sealed
		}
		got, err := decryptAll(key, bad)
		if err == nil {
			t.Errorf("%s: decrypted without error (equal to plaintext: %v)", name, bytes.Equal(got, plain))
		}
	}
}

func FuzzChunkReader(f *testing.F) {
	d := newDataKey(f)
	f.Add(encrypt(f, d, []byte("hello")))
	f.Add(encrypt(f, d, make([]byte, ChunkSize+1)))
	f.Add([]byte("SPCK\x01\x00\x00\x00\x00\x01\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := d.NewReaderAt(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		buf := make([]byte, 1000)
		_, _ = r.ReadAt(buf, r.Size()/2)
	})
}

func BenchmarkChunkedEncrypt(b *testing.B) {
	d := newDataKey(b)
	buf := make([]byte, ChunkSize)
	rand.Read(buf)
	const total = 64 << 20
	b.SetBytes(total)
	for b.Loop() {
		w, _ := d.NewWriter(io.Discard)
		for range total / ChunkSize {
			w.Write(buf)
		}
		w.Close()
	}
}

// BenchmarkRawAESGCM is the ceiling the chunked format is measured against:
// AES-256-GCM on 64 KiB buffers with a reused output buffer.
func BenchmarkRawAESGCM(b *testing.B) {
	key := make([]byte, 32)
	rand.Read(key)
	block, _ := aes.NewCipher(key)
	a, _ := cipher.NewGCMWithRandomNonce(block)
	buf := make([]byte, ChunkSize)
	out := make([]byte, 0, ChunkSize+a.Overhead())
	const total = 64 << 20
	b.SetBytes(total)
	for b.Loop() {
		for range total / ChunkSize {
			out = a.Seal(out[:0], nil, buf, nil)
		}
	}
}

func BenchmarkChunkedDecrypt(b *testing.B) {
	d := newDataKey(b)
	plain := make([]byte, 64<<20)
	sealed := encrypt(b, d, plain)
	r, err := d.NewReaderAt(bytes.NewReader(sealed), int64(len(sealed)))
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	b.SetBytes(int64(len(plain)))
	for b.Loop() {
		for off := int64(0); off < r.Size(); off += int64(len(buf)) {
			r.ReadAt(buf, off)
		}
	}
}

func BenchmarkChunkedRandomRead64K(b *testing.B) {
	d := newDataKey(b)
	plain := make([]byte, 64<<20)
	sealed := encrypt(b, d, plain)
	r, _ := d.NewReaderAt(bytes.NewReader(sealed), int64(len(sealed)))
	buf := make([]byte, 64<<10)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		r.ReadAt(buf, mrand.Int64N(r.Size()-int64(len(buf))))
	}
}

func BenchmarkSealRecord2K(b *testing.B) {
	keyFile, dataDir := b.TempDir()+"/k", b.TempDir()+"/d"
	k, err := Open(keyFile, dataDir)
	if err != nil {
		b.Fatal(err)
	}
	value := make([]byte, 2048)
	b.SetBytes(int64(len(value)))
	for b.Loop() {
		k.Seal(PurposeRecord, value, []byte("msg/0001/body"))
	}
}

func BenchmarkHashPassword(b *testing.B) {
	for b.Loop() {
		HashPassword(b.Context(), "correct horse battery staple")
	}
}
