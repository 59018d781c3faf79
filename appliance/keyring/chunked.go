package keyring

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
)

// The chunked format, for attachments and backups:
//
//	header (32 bytes): "SPCK" | format 1 | 3 zero bytes | chunk size (uint32) | file id (16 random bytes) | 4 zero bytes
//	chunk i:           nonce (12) | AES-256-GCM ciphertext of up to chunk size bytes | tag (16)
//
// Each chunk's associated data is the header, the chunk index (uint64) and a
// last-chunk flag, so changed bytes, truncation (at any point, including a
// chunk boundary), reordering and chunks spliced from another file are all
// detected. Every file has at least one chunk; the last one may be empty
// only when the file is. Any byte range can be read by opening only the
// chunks it touches.
const (
	ChunkSize     = 64 << 10
	chunkHeader   = 32
	chunkOverhead = 12 + 16
	chunkMagic    = "SPCK"
)

// ErrCorrupt means encrypted chunked data was changed, truncated or reordered.
var ErrCorrupt = errors.New("keyring: encrypted data is damaged or was changed")

// EncryptedSize returns the size of plain bytes in the chunked format.
func EncryptedSize(plain int64) int64 {
	chunks := max(1, (plain+ChunkSize-1)/ChunkSize)
	return chunkHeader + chunks*chunkOverhead + plain
}

// chunkAAD is the associated data of chunk index.
func chunkAAD(dst, header []byte, index uint64, last bool) []byte {
	dst = append(dst[:0], header...)
	dst = binary.BigEndian.AppendUint64(dst, index)
	if last {
		return append(dst, 1)
	}
	return append(dst, 0)
}

// chunkWriter encrypts a stream into the chunked format.
type chunkWriter struct {
	d      *DataKey
	w      io.Writer
	header []byte
	buf    []byte // plaintext of the pending chunk
	out    []byte // sealed chunk
	aad    []byte
	index  uint64
	err    error
	closed bool
}

// NewWriter returns a writer that encrypts what is written to it into w in
// the chunked format. Close writes the last chunk; without it the data is
// incomplete and will not open.
func (d *DataKey) NewWriter(w io.Writer) (io.WriteCloser, error) {
	header := make([]byte, chunkHeader)
	copy(header, chunkMagic)
	header[4] = 1
	binary.BigEndian.PutUint32(header[8:], ChunkSize)
	if _, err := rand.Read(header[12:28]); err != nil {
		return nil, fmt.Errorf("make file id: %w", err)
	}
	if _, err := w.Write(header); err != nil {
		return nil, err
	}
	return &chunkWriter{
		d: d, w: w, header: header,
		buf: make([]byte, 0, ChunkSize),
		out: make([]byte, 0, ChunkSize+chunkOverhead),
		aad: make([]byte, 0, chunkHeader+9),
	}, nil
}

func (cw *chunkWriter) Write(p []byte) (int, error) {
	if cw.err != nil {
		return 0, cw.err
	}
	if cw.closed {
		return 0, errors.New("keyring: write after close")
	}
	n := 0
	for len(p) > 0 {
		// A full chunk is sealed only once more data shows it is not the last.
		if len(cw.buf) == ChunkSize {
			if cw.err = cw.flush(false); cw.err != nil {
				return n, cw.err
			}
		}
		c := copy(cw.buf[len(cw.buf):ChunkSize], p)
		cw.buf = cw.buf[:len(cw.buf)+c]
		p = p[c:]
		n += c
	}
	return n, nil
}

func (cw *chunkWriter) flush(last bool) error {
	cw.aad = chunkAAD(cw.aad, cw.header, cw.index, last)
	cw.out = cw.d.aead.Seal(cw.out[:0], nil, cw.buf, cw.aad)
	if _, err := cw.w.Write(cw.out); err != nil {
		return err
	}
	cw.index++
	cw.buf = cw.buf[:0]
	return nil
}

// Close seals the last chunk. It does not close the underlying writer.
func (cw *chunkWriter) Close() error {
	if cw.closed || cw.err != nil {
		return cw.err
	}
	cw.closed = true
	cw.err = cw.flush(true)
	return cw.err
}

// ChunkReader decrypts chunked data at any offset. It is safe for
// concurrent ReadAt calls.
type ChunkReader struct {
	d         *DataKey
	r         io.ReaderAt
	header    []byte
	chunkSize int64
	chunks    int64
	size      int64 // plaintext
	pool      sync.Pool
}

type chunkBuffers struct {
	sealed, plain, aad []byte
}

// NewReaderAt opens chunked data of the given encrypted size. It checks the
// header and the last chunk at once, so a truncated file is refused here.
func (d *DataKey) NewReaderAt(r io.ReaderAt, size int64) (*ChunkReader, error) {
	header := make([]byte, chunkHeader)
	if size < chunkHeader+chunkOverhead {
		return nil, ErrCorrupt
	}
	if _, err := r.ReadAt(header, 0); err != nil {
		return nil, fmt.Errorf("read header: %w", err)
	}
	if string(header[:4]) != chunkMagic || header[4] != 1 {
		return nil, ErrCorrupt
	}
	cs := int64(binary.BigEndian.Uint32(header[8:]))
	if cs != ChunkSize {
		return nil, ErrCorrupt
	}
	body := size - chunkHeader
	sealedChunk := cs + chunkOverhead
	chunks := (body + sealedChunk - 1) / sealedChunk
	lastSealed := body - (chunks-1)*sealedChunk
	if lastSealed < chunkOverhead {
		return nil, ErrCorrupt
	}
	cr := &ChunkReader{d: d, r: r, header: header, chunkSize: cs, chunks: chunks, size: body - chunks*chunkOverhead}
	cr.pool.New = func() any {
		return &chunkBuffers{
			sealed: make([]byte, sealedChunk),
			plain:  make([]byte, 0, cs),
			aad:    make([]byte, 0, chunkHeader+9),
		}
	}
	b := cr.pool.Get().(*chunkBuffers)
	defer cr.pool.Put(b)
	if _, err := cr.open(b, chunks-1); err != nil {
		return nil, err
	}
	return cr, nil
}

// Size returns the plaintext size.
func (cr *ChunkReader) Size() int64 { return cr.size }

// open reads and decrypts chunk i into b.plain.
func (cr *ChunkReader) open(b *chunkBuffers, i int64) ([]byte, error) {
	start := chunkHeader + i*(cr.chunkSize+chunkOverhead)
	n := cr.chunkSize + chunkOverhead
	if i == cr.chunks-1 {
		n = cr.size - i*cr.chunkSize + chunkOverhead
	}
	sealed := b.sealed[:n]
	if got, err := cr.r.ReadAt(sealed, start); got < len(sealed) {
		if err == nil || errors.Is(err, io.EOF) {
			return nil, ErrCorrupt
		}
		return nil, fmt.Errorf("read chunk %d: %w", i, err)
	}
	b.aad = chunkAAD(b.aad, cr.header, uint64(i), i == cr.chunks-1)
	plain, err := cr.d.aead.Open(b.plain[:0], nil, sealed, b.aad)
	if err != nil {
		return nil, ErrCorrupt
	}
	return plain, nil
}

// ReadAt implements io.ReaderAt over the plaintext.
func (cr *ChunkReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("keyring: negative offset")
	}
	if off >= cr.size {
		return 0, io.EOF
	}
	b := cr.pool.Get().(*chunkBuffers)
	defer cr.pool.Put(b)
	n := 0
	for n < len(p) && off < cr.size {
		i := off / cr.chunkSize
		plain, err := cr.open(b, i)
		if err != nil {
			return n, err
		}
		c := copy(p[n:], plain[off-i*cr.chunkSize:])
		n += c
		off += int64(c)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
