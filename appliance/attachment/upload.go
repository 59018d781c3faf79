package attachment

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/sealpost/sealpost/appliance/keyring"

	"github.com/sealpost/sealpost/appliance/atomicfile"
)

// Upload is a blob being written: a .part file that holds the header and
// the sealed full chunks, while the pending tail of less than one chunk
// stays in memory. Its methods may be called from different goroutines (an
// Abort when a request is cancelled, say), but one writer at a time.
//
// Resumable uploads (tusd, later) fit this layout. tus lets the server
// report a lower Upload-Offset than the client sent, so a DataStore can
// report only the plaintext of the full chunks on disk, (size-32)/(64 KiB
// + 28) × 64 KiB: after a restart it truncates the .part file to that many
// whole sealed chunks (dropping a torn one) and the client re-sends the
// rest. Continuing the file needs a keyring writer that starts from an
// existing header and chunk index instead of writing a new header; that is
// the one keyring addition resumption needs. Within one process the pending
// tail can stay in the Upload between PATCH requests, as it does here
// between Writes; a limit still applies to the total.
type Upload struct {
	id, dir, final, part string
	limit                int64

	mu   sync.Mutex
	f    *os.File
	w    io.WriteCloser // encrypts into f
	size int64          // plaintext accepted
	err  error          // sticky: ErrClosed after Commit or Abort, or the failure that aborted
}

var (
	_ io.Writer     = (*Upload)(nil)
	_ io.ReaderFrom = (*Upload)(nil)
)

// ID returns the blob id, to record with the attachment's metadata.
func (u *Upload) ID() string { return u.id }

// Size returns the plaintext bytes written so far.
func (u *Upload) Size() int64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.size
}

// Write encrypts p into the blob. If the plaintext would exceed the limit,
// it writes nothing, aborts the upload and returns ErrTooLarge; any other
// failure aborts it too, so a failed Write leaves no file behind.
func (u *Upload) Write(p []byte) (int, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.write(p)
}

func (u *Upload) write(p []byte) (int, error) {
	if u.err != nil {
		return 0, u.err
	}
	if u.limit > 0 && int64(len(p)) > u.limit-u.size {
		u.fail(ErrTooLarge)
		return 0, ErrTooLarge
	}
	n, err := u.w.Write(p)
	u.size += int64(n)
	if err != nil {
		err = fmt.Errorf("write blob: %w", err)
		u.fail(err)
		return n, err
	}
	return n, nil
}

// ReadFrom copies r into the blob until EOF, in whole chunks, which are
// sealed straight from its buffer; io.Copy uses it. Errors are those of
// Write, or r's, which leave the upload open.
func (u *Upload) ReadFrom(r io.Reader) (int64, error) {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	var total int64
	for {
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			u.mu.Lock()
			m, err := u.write(buf[:n])
			u.mu.Unlock()
			total += int64(m)
			if err != nil {
				return total, err
			}
		}
		switch {
		case rerr == nil:
		case errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF):
			return total, nil
		default:
			return total, rerr
		}
	}
}

// copyBufs hold one chunk of plaintext on its way from a reader to the
// writer, which seals full chunks from it without copying.
var copyBufs = sync.Pool{New: func() any {
	b := make([]byte, keyring.ChunkSize)
	return &b
}}

// Commit seals the last chunk, fsyncs the file, renames it into place and
// fsyncs its directory: when it returns nil, the blob is durable. If it
// fails, the upload is aborted and nothing is left behind; a failed fsync is
// never retried into success.
func (u *Upload) Commit() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.err != nil {
		return u.err
	}
	if err := u.commit(); err != nil {
		u.fail(err)
		return err
	}
	u.err = ErrClosed
	return nil
}

func (u *Upload) commit() error {
	if err := u.w.Close(); err != nil {
		return fmt.Errorf("write blob: %w", err)
	}
	if err := u.f.Sync(); err != nil {
		return fmt.Errorf("sync blob: %w", err)
	}
	err := u.f.Close()
	u.f = nil
	if err != nil {
		return fmt.Errorf("close blob: %w", err)
	}
	if err := os.Rename(u.part, u.final); err != nil {
		return fmt.Errorf("commit blob: %w", err)
	}
	if err := atomicfile.SyncDir(u.dir); err != nil {
		// The rename may not survive a crash, and the caller will not
		// record the blob: take it away now rather than leave an orphan.
		os.Remove(u.final)
		return fmt.Errorf("commit blob: sync directory: %w", err)
	}
	return nil
}

// Abort removes the unfinished blob. It is safe to call more than once, and
// after Commit, where it does nothing: defer u.Abort() right after Create.
func (u *Upload) Abort() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.err != nil {
		return nil // committed, aborted, or aborted by a failure
	}
	return u.fail(ErrClosed)
}

// fail closes and removes the .part file and makes err sticky. It returns
// the error of the removal, if any.
func (u *Upload) fail(err error) error {
	u.err = err
	if u.f != nil {
		u.f.Close()
		u.f = nil
	}
	if rerr := os.Remove(u.part); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		return fmt.Errorf("remove unfinished blob: %w", rerr)
	}
	return nil
}
