// Package attachment keeps the attachments of secure messages as files in a
// directory, each encrypted in the chunked format of package keyring under
// its message's data key. It knows blob ids, sizes and bytes; names, types
// and which message a blob belongs to are the caller's, kept in the store.
//
// Security properties: plaintext never reaches the disk, not even in a
// temporary file (an upload in progress is a .part file of sealed chunks,
// and the unsealed tail of less than one chunk stays in memory); a blob that
// was changed, truncated or spliced, or is opened with the wrong key, is
// refused rather than read; a blob id is checked against the NewID alphabet
// and length before it becomes part of a path, so no id can name a file
// outside the directory.
//
// Durability: Commit returns after the blob and its directory entry are
// fsynced. A caller commits the blob first and then records it in the
// store, so a crash between the two leaves an orphaned blob (sealed under a
// key that may never have been stored), never a record without its blob.
package attachment

import (
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/sealpost/sealpost/appliance/fault"
	"github.com/sealpost/sealpost/appliance/keyring"

	"github.com/sealpost/sealpost/appliance/atomicfile"
)

const (
	idLen     = 26 // 128 random bits in base32 without padding
	idBytes   = 16
	shardLen  = 2
	partExt   = ".part"
	staleAge  = time.Hour
	fileMode  = 0o600
	dirMode   = 0o700
	alphabet  = "abcdefghijklmnopqrstuvwxyz234567"
	errPrefix = "attachment: "
)

var idEncoding = base32.NewEncoding(alphabet).WithPadding(base32.NoPadding)

var (
	// ErrTooLarge is returned by Upload.Write and Upload.ReadFrom when the
	// plaintext would grow beyond the upload's limit; the upload is aborted.
	// A caller that can name the group's limit wraps it in a fault.E with
	// a more helpful message.
	ErrTooLarge = fault.E(fault.TooLarge, "the attachment is larger than allowed", nil)
	// ErrInvalidID is returned for a blob id that NewID cannot have made.
	ErrInvalidID = fault.E(fault.Invalid, "invalid attachment id", nil)
	// ErrClosed is returned by an Upload after Commit or Abort.
	ErrClosed = errors.New(errPrefix + "upload is already committed or aborted")
)

// Blobs is a directory of encrypted files, laid out as <dir>/<id[0:2]>/<id>,
// with <dir>/<id[0:2]>/<id>.part while a blob is being written. It is safe
// for concurrent use.
type Blobs struct {
	dir string

	mu     sync.Mutex
	shards map[string]bool // shard directories known to be durable
}

// OpenBlobs makes dir (0700) if needed and removes the .part files that
// have not been written to for an hour: uploads interrupted by a crash or a
// restart. An upload in progress writes at least every chunk, so it is
// never that old.
func OpenBlobs(dir string) (*Blobs, error) {
	b := &Blobs{dir: filepath.Clean(dir), shards: make(map[string]bool)}
	if err := atomicfile.MkdirAll(b.dir); err != nil {
		return nil, fmt.Errorf("make blob directory %s: %w", dir, err)
	}
	if err := b.removeStale(time.Now().Add(-staleAge)); err != nil {
		return nil, err
	}
	return b, nil
}

// removeStale removes the .part files last modified before cutoff.
func (b *Blobs) removeStale(cutoff time.Time) error {
	shards, err := os.ReadDir(b.dir)
	if err != nil {
		return fmt.Errorf("list blob directory %s: %w", b.dir, err)
	}
	for _, s := range shards {
		if !s.IsDir() || !validShard(s.Name()) {
			continue
		}
		dir := filepath.Join(b.dir, s.Name())
		entries, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("list blob directory %s: %w", dir, err)
		}
		for _, e := range entries {
			name := e.Name()
			if !e.Type().IsRegular() || !strings.HasSuffix(name, partExt) {
				continue
			}
			info, err := e.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return fmt.Errorf("stat %s: %w", filepath.Join(dir, name), err)
			}
			if info.ModTime().Before(cutoff) {
				if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return fmt.Errorf("remove interrupted upload: %w", err)
				}
			}
		}
	}
	return nil
}

// NewID returns a random blob id: 128 bits in lower-case base32 without
// padding, 26 characters that are safe in file names.
func NewID() string {
	var raw [idBytes]byte
	rand.Read(raw[:]) // never fails (crypto/rand since Go 1.24)
	return idEncoding.EncodeToString(raw[:])
}

// validID reports whether id is a string NewID can return.
func validID(id string) bool {
	if len(id) != idLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if strings.IndexByte(alphabet, id[i]) < 0 {
			return false
		}
	}
	// The last character carries 3 bits and 2 zero bits: only one spelling
	// of each id is accepted.
	raw, err := idEncoding.DecodeString(id)
	return err == nil && len(raw) == idBytes && idEncoding.EncodeToString(raw) == id
}

func validShard(s string) bool {
	if len(s) != shardLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(alphabet, s[i]) < 0 {
			return false
		}
	}
	return true
}

// path returns the file name of blob id, or ErrInvalidID.
func (b *Blobs) path(id string) (string, error) {
	if !validID(id) {
		return "", ErrInvalidID
	}
	return filepath.Join(b.dir, id[:shardLen], id), nil
}

// shard makes the directory for id's shard, once per process, and makes its
// entry in the blob directory durable.
func (b *Blobs) shard(id string) error {
	name := id[:shardLen]
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.shards[name] {
		return nil
	}
	if err := os.Mkdir(filepath.Join(b.dir, name), dirMode); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("make blob directory: %w", err)
	}
	if err := atomicfile.SyncDir(b.dir); err != nil {
		return fmt.Errorf("sync blob directory: %w", err)
	}
	b.shards[name] = true
	return nil
}

// Create starts a new blob encrypted under key, as a .part file. Write its
// plaintext to the Upload, then Commit it; Abort (or a failed Write) removes
// it. limit is the largest plaintext size allowed, 0 for none.
func (b *Blobs) Create(key *keyring.DataKey, limit int64) (*Upload, error) {
	if key == nil {
		return nil, errors.New(errPrefix + "no data key")
	}
	if limit < 0 {
		return nil, fmt.Errorf(errPrefix+"negative size limit %d", limit)
	}
	id := NewID()
	final, _ := b.path(id)
	if err := b.shard(id); err != nil {
		return nil, err
	}
	part := final + partExt
	f, err := os.OpenFile(part, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fileMode)
	if err != nil {
		return nil, fmt.Errorf("create blob: %w", err)
	}
	w, err := key.NewWriter(f)
	if err != nil {
		f.Close()
		os.Remove(part)
		return nil, fmt.Errorf("create blob: %w", err)
	}
	return &Upload{id: id, dir: filepath.Dir(final), final: final, part: part, f: f, w: w, limit: limit}, nil
}

// Open opens committed blob id for reading with its data key. It checks the
// header and authenticates the last chunk, so a wrong key, a truncated or
// extended file and a changed header or last chunk are refused here, with
// an error that wraps keyring.ErrCorrupt; a changed chunk elsewhere is
// reported by the read that reaches it. A missing blob gives an error that
// wraps fs.ErrNotExist.
func (b *Blobs) Open(id string, key *keyring.DataKey) (*Reader, error) {
	if key == nil {
		return nil, errors.New(errPrefix + "no data key")
	}
	p, err := b.path(id)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("open blob %s: %w", id, err)
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat blob %s: %w", id, err)
	}
	cr, err := key.NewReaderAt(f, info.Size())
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open blob %s: %w", id, err)
	}
	return &Reader{f: f, cr: cr, size: cr.Size(), chunk: -1}, nil
}

// Remove deletes blob id and makes the removal durable. A blob that does
// not exist is not an error.
func (b *Blobs) Remove(id string) error {
	p, err := b.path(id)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("remove blob %s: %w", id, err)
	}
	if err := atomicfile.SyncDir(filepath.Dir(p)); err != nil {
		return fmt.Errorf("remove blob %s: sync directory: %w", id, err)
	}
	return nil
}

// Stat returns the size of committed blob id on disk, for storage
// accounting: keyring.EncryptedSize of its plaintext size. A missing blob
// gives an error that wraps fs.ErrNotExist.
func (b *Blobs) Stat(id string) (encryptedSize int64, err error) {
	p, err := b.path(id)
	if err != nil {
		return 0, err
	}
	info, err := os.Stat(p)
	if err != nil {
		return 0, fmt.Errorf("stat blob %s: %w", id, err)
	}
	if !info.Mode().IsRegular() {
		return 0, fmt.Errorf("stat blob %s: not a regular file", id)
	}
	return info.Size(), nil
}

// Verify decrypts all of blob id and returns the first corruption (an error
// wrapping keyring.ErrCorrupt that names the chunk), or nil if every chunk
// authenticates.
func (b *Blobs) Verify(id string, key *keyring.DataKey) error {
	r, err := b.Open(id, key)
	if err != nil {
		return err
	}
	defer r.Close()
	if _, err := r.WriteTo(io.Discard); err != nil {
		return fmt.Errorf("verify blob %s: %w", id, err)
	}
	return nil
}
