package keyring

import (
	"bytes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
)

// The chunked format, for attachments (up to several GB) and backups:
//
//	header (32 bytes): "SPCK" | format (1 byte, 1) | 3 zero bytes | chunk size (uint32, 65536) | file id (16 random bytes) | 4 zero bytes
//	chunk i:           nonce (12) | AES-256-GCM ciphertext | tag (16)
//
// Every chunk but the last holds exactly ChunkSize bytes of plaintext; the
// last holds fewer, and none when the plaintext is empty or a multiple of
// ChunkSize. So the plaintext size follows from the encrypted size, and a
// full chunk is never the last one. Chunk i's associated data is
//
//	header | i (uint64, big-endian) | 1 if it is the last chunk, else 0
//
// which detects changed bytes, reordered, duplicated or dropped chunks,
// chunks or headers spliced in from another file (the file id differs), and
// truncation anywhere, including at a chunk boundary (the new last chunk was
// not sealed as the last). Any byte range can be read by opening only the
// chunks it touches. Nonces are random (cipher.NewGCMWithRandomNonce), which
// costs 12 bytes a chunk and keeps the format usable under
// GODEBUG=fips140=only.
const (
	ChunkSize     = 64 << 10
	chunkHeader   = 32
	chunkOverhead = 12 + 16
	sealedChunk   = ChunkSize + chunkOverhead
	chunkAADSize  = chunkHeader + 8 + 1
	chunkMagic    = "SPCK"
	chunkFormat   = 1
)

// ErrCorrupt means encrypted chunked data was changed, truncated, reordered
// or is not in the chunked format, or the key is not the one it was
// encrypted with.
var ErrCorrupt = errors.New("keyring: encrypted data is damaged or was changed")

// EncryptedSize returns the size of plain bytes (plain >= 0) in the chunked
// format.
func EncryptedSize(plain int64) int64 {
	return chunkHeader + (plain/ChunkSize+1)*chunkOverhead + plain
}

// plainSize returns the plaintext size and the number of chunks for an
// encrypted size, or ok=false if no plaintext encrypts to that size.
func plainSize(encrypted int64) (size, chunks int64, ok bool) {
	if encrypted < chunkHeader+chunkOverhead {
		return 0, 0, false
	}
	body := encrypted - chunkHeader
	full, last := body/sealedChunk, body%sealedChunk
	if last < chunkOverhead {
		return 0, 0, false
	}
	return full*ChunkSize + last - chunkOverhead, full + 1, true
}

func newChunkHeader(dst []byte) error {
	clear(dst[:chunkHeader])
	copy(dst, chunkMagic)
	dst[4] = chunkFormat
	binary.BigEndian.PutUint32(dst[8:], ChunkSize)
	if _, err := rand.Read(dst[12:28]); err != nil {
		return fmt.Errorf("make file id: %w", err)
	}
	return nil
}

func checkChunkHeader(h []byte) error {
	var zero [4]byte
	if string(h[:4]) != chunkMagic || h[4] != chunkFormat || !bytes.Equal(h[5:8], zero[:3]) ||
		binary.BigEndian.Uint32(h[8:]) != ChunkSize || !bytes.Equal(h[28:32], zero[:]) {
		return fmt.Errorf("header: %w", ErrCorrupt)
	}
	return nil
}

// chunkAAD returns the associated data of chunk index in dst's storage.
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
	aead   cipher.AEAD
	w      io.Writer
	header []byte
	aad    []byte
	buf    []byte // plaintext of the pending chunk, < ChunkSize bytes
	out    []byte // the sealed chunk
	index  uint64
	err    error // sticky
}

var errWriteAfterClose = errors.New("keyring: write after close")

// NewWriter writes the header of a new file in the chunked format to w and
// returns a writer that encrypts into it. Close writes the last chunk;
// without it the file is incomplete and will not open. The writer allocates
// its buffers once; full chunks written in one piece are encrypted without
// a copy.
func (d *DataKey) NewWriter(w io.Writer) (io.WriteCloser, error) {
	// One allocation: pending plaintext, sealed chunk, header, associated data.
	slab := make([]byte, ChunkSize+sealedChunk+chunkHeader+chunkAADSize)
	cw := &chunkWriter{
		aead:   d.aead,
		w:      w,
		buf:    slab[:0:ChunkSize],
		out:    slab[ChunkSize : ChunkSize : ChunkSize+sealedChunk],
		header: slab[ChunkSize+sealedChunk : ChunkSize+sealedChunk+chunkHeader : ChunkSize+sealedChunk+chunkHeader],
		aad:    slab[ChunkSize+sealedChunk+chunkHeader:][:0:chunkAADSize],
	}
	if err := newChunkHeader(cw.header); err != nil {
		return nil, err
	}
	if _, err := w.Write(cw.header); err != nil {
		return nil, err
	}
	return cw, nil
}

func (cw *chunkWriter) Write(p []byte) (int, error) {
	if cw.err != nil {
		return 0, cw.err
	}
	n := 0
	for len(p) > 0 {
		if len(cw.buf) == 0 && len(p) >= ChunkSize {
			// A full chunk is never the last one: seal it straight from p.
			if cw.err = cw.seal(p[:ChunkSize], false); cw.err != nil {
				return n, cw.err
			}
			p = p[ChunkSize:]
			n += ChunkSize
			continue
		}
		c := copy(cw.buf[len(cw.buf):ChunkSize], p)
		cw.buf = cw.buf[:len(cw.buf)+c]
		p = p[c:]
		n += c
		if len(cw.buf) == ChunkSize {
			if cw.err = cw.seal(cw.buf, false); cw.err != nil {
				return n, cw.err
			}
			cw.buf = cw.buf[:0]
		}
	}
	return n, nil
}

func (cw *chunkWriter) seal(plain []byte, last bool) error {
	cw.aad = chunkAAD(cw.aad, cw.header, cw.index, last)
	cw.out = cw.aead.Seal(cw.out[:0], nil, plain, cw.aad)
	if _, err := cw.w.Write(cw.out); err != nil {
		return err
	}
	cw.index++
	return nil
}

// Close seals the last chunk. It does not close the underlying writer.
func (cw *chunkWriter) Close() error {
	if cw.err != nil {
		if cw.err == errWriteAfterClose {
			return nil
		}
		return cw.err
	}
	if err := cw.seal(cw.buf, true); err != nil {
		cw.err = err
		return err
	}
	clear(cw.buf[:cap(cw.buf)])
	cw.buf = cw.buf[:0]
	cw.err = errWriteAfterClose
	return nil
}

// ChunkReader decrypts a file in the chunked format at any offset. It is
// safe for concurrent ReadAt calls if the underlying io.ReaderAt is.
type ChunkReader struct {
	aead   cipher.AEAD
	r      io.ReaderAt
	header [chunkHeader]byte
	chunks int64
	size   int64 // plaintext
	pool   sync.Pool
}

var _ io.ReaderAt = (*ChunkReader)(nil)

// chunkBuffers is one reader's scratch space.
type chunkBuffers struct {
	sealed, plain, aad []byte
}

// NewReaderAt opens a file in the chunked format of the given encrypted
// size. It checks the header and decrypts the last chunk at once, so a
// truncated or foreign file is refused here, with ErrCorrupt.
func (d *DataKey) NewReaderAt(r io.ReaderAt, size int64) (*ChunkReader, error) {
	plain, chunks, ok := plainSize(size)
	if !ok {
		return nil, fmt.Errorf("size %d: %w", size, ErrCorrupt)
	}
	cr := &ChunkReader{aead: d.aead, r: r, chunks: chunks, size: plain}
	if n, err := r.ReadAt(cr.header[:], 0); n < chunkHeader {
		return nil, readError("header", err)
	}
	if err := checkChunkHeader(cr.header[:]); err != nil {
		return nil, err
	}
	cr.pool.New = func() any {
		slab := make([]byte, sealedChunk+ChunkSize+chunkAADSize)
		return &chunkBuffers{
			sealed: slab[:sealedChunk:sealedChunk],
			plain:  slab[sealedChunk : sealedChunk : sealedChunk+ChunkSize],
			aad:    slab[sealedChunk+ChunkSize:][:0:chunkAADSize],
		}
	}
	b := cr.pool.Get().(*chunkBuffers)
	defer cr.pool.Put(b)
	if _, err := cr.open(b, b.plain[:0], chunks-1); err != nil {
		return nil, err
	}
	return cr, nil
}

// readError turns a short read of encrypted data into ErrCorrupt (the data
// is shorter than its stated size) and wraps other errors.
func readError(what string, err error) error {
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%s: %w", what, ErrCorrupt)
	}
	return fmt.Errorf("read %s: %w", what, err)
}

// Size returns the plaintext size.
func (cr *ChunkReader) Size() int64 { return cr.size }

// open reads chunk i and decrypts it into dst, which must have room.
func (cr *ChunkReader) open(b *chunkBuffers, dst []byte, i int64) ([]byte, error) {
	last := i == cr.chunks-1
	n := int64(sealedChunk)
	if last {
		n = cr.size - i*ChunkSize + chunkOverhead
	}
	sealed := b.sealed[:n]
	if got, err := cr.r.ReadAt(sealed, chunkHeader+i*sealedChunk); got < len(sealed) {
		return nil, readError(fmt.Sprintf("chunk %d", i), err)
	}
	b.aad = chunkAAD(b.aad, cr.header[:], uint64(i), last)
	plain, err := cr.aead.Open(dst, nil, sealed, b.aad)
	if err != nil {
		return nil, fmt.Errorf("chunk %d: %w", i, ErrCorrupt)
	}
	return plain, nil
}

// ReadAt implements io.ReaderAt over the plaintext. It decrypts every chunk
// the range touches; whole chunks are decrypted straight into p.
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
		i := off / ChunkSize
		within := off - i*ChunkSize
		chunkLen := min(ChunkSize, cr.size-i*ChunkSize)
		if within == 0 && int64(len(p)-n) >= chunkLen {
			if _, err := cr.open(b, p[n:n], i); err != nil {
				return n, err
			}
			n += int(chunkLen)
			off += chunkLen
			continue
		}
		plain, err := cr.open(b, b.plain[:0], i)
		if err != nil {
			return n, err
		}
		c := copy(p[n:], plain[within:])
		n += c
		off += int64(c)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// streamReader decrypts a file in the chunked format from a stream.
type streamReader struct {
	aead    cipher.AEAD
	r       io.Reader
	header  []byte
	aad     []byte
	sealed  []byte
	plain   []byte
	pending []byte // decrypted, not yet read
	index   uint64
	err     error // sticky; io.EOF after the last chunk
}

// NewReader reads the header of a file in the chunked format from r and
// returns a reader of its plaintext. Read returns io.EOF only after the last
// chunk has authenticated; a truncated or changed stream ends in ErrCorrupt
// instead, so a consumer must not commit what it read before io.EOF. For
// random access, use NewReaderAt.
func (d *DataKey) NewReader(r io.Reader) (io.Reader, error) {
	slab := make([]byte, chunkHeader+chunkAADSize+sealedChunk+ChunkSize)
	sr := &streamReader{
		aead:   d.aead,
		r:      r,
		header: slab[:chunkHeader:chunkHeader],
		aad:    slab[chunkHeader:][:0:chunkAADSize],
		sealed: slab[chunkHeader+chunkAADSize:][:sealedChunk:sealedChunk],
		plain:  slab[chunkHeader+chunkAADSize+sealedChunk:][:0:ChunkSize],
	}
	if _, err := io.ReadFull(r, sr.header); err != nil {
		return nil, readError("header", err)
	}
	if err := checkChunkHeader(sr.header); err != nil {
		return nil, err
	}
	return sr, nil
}

func (sr *streamReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for len(sr.pending) == 0 {
		if sr.err != nil {
			return 0, sr.err
		}
		sr.err = sr.next()
	}
	n := copy(p, sr.pending)
	sr.pending = sr.pending[n:]
	return n, nil
}

// next decrypts the next chunk into pending. A full sealed chunk is never
// the last; a shorter one must be, and must end the stream.
func (sr *streamReader) next() error {
	n, err := io.ReadFull(sr.r, sr.sealed)
	last := false
	switch {
	case err == nil:
	case errors.Is(err, io.ErrUnexpectedEOF) && n >= chunkOverhead:
		last = true
	default:
		return readError(fmt.Sprintf("chunk %d", sr.index), err)
	}
	sr.aad = chunkAAD(sr.aad, sr.header, sr.index, last)
	plain, err := sr.aead.Open(sr.plain[:0], nil, sr.sealed[:n], sr.aad)
	if err != nil {
		return fmt.Errorf("chunk %d: %w", sr.index, ErrCorrupt)
	}
	sr.index++
	sr.pending = plain
	if last {
		return io.EOF
	}
	return nil
}
