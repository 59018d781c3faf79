package keyring

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"io"
	mrand "math/rand/v2"
	"path/filepath"
	"testing"
)

const benchSize = 64 << 20

// BenchmarkRawAESGCM is the ceiling for the chunked format: AES-256-GCM
// with random nonces on 64 KiB buffers, reusing the output buffer.
func BenchmarkRawAESGCM(b *testing.B) {
	block, _ := aes.NewCipher(randomBytes(32))
	a, _ := cipher.NewGCMWithRandomNonce(block)
	buf := randomBytes(ChunkSize)
	out := make([]byte, 0, ChunkSize+a.Overhead())
	b.Run("seal", func(b *testing.B) {
		b.SetBytes(benchSize)
		for b.Loop() {
			for range benchSize / ChunkSize {
				out = a.Seal(out[:0], nil, buf, nil)
			}
		}
	})
	b.Run("open", func(b *testing.B) {
		sealed := a.Seal(nil, nil, buf, nil)
		b.SetBytes(benchSize)
		for b.Loop() {
			for range benchSize / ChunkSize {
				if _, err := a.Open(buf[:0], nil, sealed, nil); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}

// BenchmarkChunkedEncrypt writes 64 MiB through NewWriter to io.Discard, in
// 64 KiB writes (sealed straight from the caller's buffer) and in 1000-byte
// writes (copied into the pending chunk).
func BenchmarkChunkedEncrypt(b *testing.B) {
	d := newDataKey(b)
	for _, write := range []int{ChunkSize, 1000} {
		buf := randomBytes(write)
		b.Run(map[int]string{ChunkSize: "write64K", 1000: "write1000"}[write], func(b *testing.B) {
			b.SetBytes(benchSize)
			for b.Loop() {
				w, _ := d.NewWriter(io.Discard)
				for n := 0; n < benchSize; n += write {
					w.Write(buf[:min(write, benchSize-n)])
				}
				w.Close()
			}
		})
	}
}

// BenchmarkChunkedDecrypt reads 64 MiB back in 1 MiB ReadAt calls (chunks
// decrypted straight into the caller's buffer) and through NewReader.
func BenchmarkChunkedDecrypt(b *testing.B) {
	d := newDataKey(b)
	sealed := encrypt(b, d, randomBytes(benchSize), false)
	b.Run("ReadAt1M", func(b *testing.B) {
		r, err := d.NewReaderAt(bytes.NewReader(sealed), int64(len(sealed)))
		if err != nil {
			b.Fatal(err)
		}
		buf := make([]byte, 1<<20)
		b.SetBytes(benchSize)
		for b.Loop() {
			for off := int64(0); off < r.Size(); off += int64(len(buf)) {
				if _, err := r.ReadAt(buf, off); err != nil && err != io.EOF {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("Reader", func(b *testing.B) {
		buf := make([]byte, 32<<10)
		b.SetBytes(benchSize)
		for b.Loop() {
			r, err := d.NewReader(bytes.NewReader(sealed))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{r}, buf); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkChunkedRandomRead64K reads 64 KiB at random offsets, as an HTTP
// Range request would; most such reads touch two chunks.
func BenchmarkChunkedRandomRead64K(b *testing.B) {
	d := newDataKey(b)
	sealed := encrypt(b, d, randomBytes(benchSize), false)
	r, err := d.NewReaderAt(bytes.NewReader(sealed), int64(len(sealed)))
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		if _, err := r.ReadAt(buf, mrand.Int64N(r.Size()-int64(len(buf)))); err != nil {
			b.Fatal(err)
		}
	}
}

func benchKeyring(b *testing.B) *Keyring {
	dir := b.TempDir()
	return mustOpen(b, filepath.Join(dir, "sealpost.key"), filepath.Join(dir, "data"))
}

// BenchmarkSealRecord2K seals a 2 KiB record, as the store does on every
// write.
func BenchmarkSealRecord2K(b *testing.B) {
	k := benchKeyring(b)
	value := randomBytes(2048)
	key := []byte("msg/0001/body")
	b.SetBytes(int64(len(value)))
	for b.Loop() {
		if _, err := k.Seal(PurposeRecord, value, key); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnsealRecord2K(b *testing.B) {
	k := benchKeyring(b)
	key := []byte("msg/0001/body")
	sealed, _ := k.Seal(PurposeRecord, randomBytes(2048), key)
	b.SetBytes(2048)
	for b.Loop() {
		if _, err := k.Unseal(PurposeRecord, sealed, key); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMAC(b *testing.B) {
	k := benchKeyring(b)
	entry := randomBytes(256)
	for b.Loop() {
		k.MAC(PurposeAudit, entry)
	}
}

func BenchmarkHashPassword(b *testing.B) {
	for b.Loop() {
		if _, err := HashPassword(b.Context(), "correct horse battery staple"); err != nil {
			b.Fatal(err)
		}
	}
}
