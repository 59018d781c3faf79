package attachment

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/sealpost/sealpost/appliance/keyring"
)

// Reader reads the plaintext of a committed blob. ReadAt decrypts only the
// chunks a range touches and is safe for concurrent use; Read, Seek and
// WriteTo share a position and keep the last decrypted chunk, so that small
// sequential reads (http.ServeContent reads 512 bytes, then 32 KiB at a
// time) decrypt each chunk once. A changed chunk makes the read that reaches
// it fail with an error wrapping keyring.ErrCorrupt; nothing of that chunk
// is returned.
type Reader struct {
	f    *os.File
	cr   *keyring.ChunkReader
	size int64

	pos   int64
	buf   []byte // plaintext of chunk, when chunk >= 0
	chunk int64
}

var (
	_ io.ReadSeekCloser = (*Reader)(nil)
	_ io.ReaderAt       = (*Reader)(nil)
	_ io.WriterTo       = (*Reader)(nil)
)

// Size returns the plaintext size.
func (r *Reader) Size() int64 { return r.size }

// ReadAt implements io.ReaderAt over the plaintext.
func (r *Reader) ReadAt(p []byte, off int64) (int, error) {
	return r.cr.ReadAt(p, off)
}

// load makes chunk i the current chunk.
func (r *Reader) load(i int64) error {
	if r.chunk == i {
		return nil
	}
	if r.buf == nil {
		r.buf = make([]byte, keyring.ChunkSize)
	}
	n := min(keyring.ChunkSize, r.size-i*keyring.ChunkSize)
	r.chunk = -1
	if _, err := r.cr.ReadAt(r.buf[:n], i*keyring.ChunkSize); err != nil {
		return err
	}
	r.buf = r.buf[:n]
	r.chunk = i
	return nil
}

// Read implements io.Reader over the plaintext.
func (r *Reader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if r.pos >= r.size {
		return 0, io.EOF
	}
	i, within := r.pos/keyring.ChunkSize, r.pos%keyring.ChunkSize
	if r.chunk != i && within == 0 && len(p) >= keyring.ChunkSize {
		// Whole chunks go straight into p.
		n := min(int64(len(p))/keyring.ChunkSize*keyring.ChunkSize, r.size-r.pos)
		m, err := r.cr.ReadAt(p[:n], r.pos)
		r.pos += int64(m)
		if errors.Is(err, io.EOF) {
			err = nil
		}
		return m, err
	}
	if err := r.load(i); err != nil {
		return 0, err
	}
	n := copy(p, r.buf[within:])
	r.pos += int64(n)
	return n, nil
}

// Seek implements io.Seeker over the plaintext.
func (r *Reader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.pos
	case io.SeekEnd:
		offset += r.size
	default:
		return 0, errors.New(errPrefix + "seek: invalid whence")
	}
	if offset < 0 {
		return 0, errors.New(errPrefix + "seek: negative position")
	}
	r.pos = offset
	return offset, nil
}

// WriteTo writes the plaintext from the current position to w, one chunk
// at a time; io.Copy uses it.
func (r *Reader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for r.pos < r.size {
		i, within := r.pos/keyring.ChunkSize, r.pos%keyring.ChunkSize
		if err := r.load(i); err != nil {
			return total, err
		}
		n, err := w.Write(r.buf[within:])
		total += int64(n)
		r.pos += int64(n)
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// Close closes the file and clears the decrypted chunk.
func (r *Reader) Close() error {
	clear(r.buf[:cap(r.buf)])
	r.chunk = -1
	if err := r.f.Close(); err != nil {
		return fmt.Errorf("close blob: %w", err)
	}
	return nil
}
