// Package keyring is the only holder of key material. A master key, read
// from the key file, seals a keyring of random versioned subkeys, one family
// per purpose; the rest of the appliance gets operations (seal and open
// records, MAC the audit chain, wrap per-message data keys, encrypt large
// files in authenticated chunks, hash passwords), never keys. The one
// exception is Badger's encryption key, which Badger takes as bytes.
//
// Guarantees:
//   - Everything sealed is authenticated: AES-256-GCM with random nonces
//     (cipher.NewGCMWithRandomNonce), so the package also works under
//     GODEBUG=fips140=only. Sealed values are bound to their purpose, key
//     version and caller-supplied associated data; chunked files are bound to
//     their header, chunk order and end, so changes, reordering, splicing and
//     truncation are detected.
//   - Keys are separated by purpose and never leave the package (except
//     StoreEncryptionKey); Close zeroes them, best effort.
//   - Open refuses, changing nothing on disk, a key file that group or
//     others can read, a key that does not match the data, and a missing key
//     file or keyring for a data directory that already holds data. It
//     creates a key file only on the very first start, when there is no data.
package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sealpost/sealpost/appliance/atomicfile"
	"github.com/sealpost/sealpost/appliance/fault"
)

// Purpose names one family of subkeys. A key serves one purpose only.
type Purpose string

// The purposes. Each has its own versioned keys.
const (
	PurposeStore   Purpose = "store"   // Badger's own encryption key (StoreEncryptionKey)
	PurposeRecord  Purpose = "record"  // Seal of every stored value
	PurposeContent Purpose = "content" // wraps per-message and per-file data keys (NewDataKey)
	PurposeIndex   Purpose = "index"   // wraps the search index's data keys
	PurposeBackup  Purpose = "backup"  // wraps backup archives' data keys
	PurposeAudit   Purpose = "audit"   // MAC of the audit chain
)

// use says which operation a purpose's keys serve, so that no key is used
// with two algorithms.
type use int

const (
	useRaw  use = iota // handed to Badger
	useAEAD            // Seal, Unseal, wrapping data keys
	useMAC             // HMAC-SHA256
)

var purposes = map[Purpose]use{
	PurposeStore:   useRaw,
	PurposeRecord:  useAEAD,
	PurposeContent: useAEAD,
	PurposeIndex:   useAEAD,
	PurposeBackup:  useAEAD,
	PurposeAudit:   useMAC,
}

// FileName is the keyring's file in the data directory.
const FileName = "keyring"

// The keyring file is
//
//	"sealpost-keyring v1\n" | master key id (8 bytes) | AES-256-GCM(master key) of the JSON keyringFile
//
// with the first two parts as associated data. The key id lets Open tell a
// wrong key file from a damaged keyring.
const (
	keyringMagic  = "sealpost-keyring v1\n"
	keyringFormat = 1
	subkeySize    = 32
)

var (
	// ErrDecrypt means sealed data did not authenticate: the wrong key, the
	// wrong purpose or associated data, or damage.
	ErrDecrypt = errors.New("keyring: sealed data does not authenticate")
	// ErrClosed means the keyring was used after Close.
	ErrClosed = errors.New("keyring: closed")
)

// Keyring holds the unlocked subkeys. Its methods are safe for concurrent
// use; Close must come after the last of them.
type Keyring struct {
	path   string
	master cipher.AEAD
	id     [keyIDSize]byte

	mu    sync.Mutex // serializes Rotate and Close
	state atomic.Pointer[state]
}

// state is an immutable snapshot of the keys; Rotate replaces it whole, so
// Seal needs no lock.
type state struct {
	file keyringFile           // as persisted, including purposes this build does not know
	keys map[Purpose][]*subkey // keys[p][v-1] is version v
}

type subkey struct {
	version uint32
	key     []byte      // shared with state.file
	aead    cipher.AEAD // nil unless the purpose seals
}

// keyringFile is the keyring as stored, sealed, on disk.
type keyringFile struct {
	Format int                 `json:"format"`
	Keys   map[Purpose][]entry `json:"keys"` // versions 1, 2, …; the last is current
}

type entry struct {
	Version uint32    `json:"version"`
	Key     []byte    `json:"key"`
	Created time.Time `json:"created"`
}

// Open unlocks the keyring in dataDir with the master key in keyFile.
//
//   - No key file and no data: the first start. Open creates the key file
//     (mode 0600, its directory 0700), dataDir (0700) and the keyring.
//   - A key file and no data: Open creates dataDir and the keyring.
//   - A key file and a keyring: Open unlocks it.
//
// Everything else is refused with a fault.Invalid error that says what to
// do, and nothing on disk changes: a key file that group or others can read
// or that is malformed, a key that does not open the keyring, a missing key
// file when dataDir holds data, and a data directory with data but no
// keyring. A "lost+found" directory does not count as data.
func Open(keyFile, dataDir string) (*Keyring, error) {
	if keyFile == "" || dataDir == "" {
		return nil, fault.E(fault.Invalid, "the key file and the data directory must both be set", nil)
	}
	if inside(keyFile, dataDir) {
		return nil, fault.E(fault.Invalid, fmt.Sprintf(
			"key file %s is inside the data directory %s; keep it elsewhere, so that a copy of the data does not carry its key", keyFile, dataDir), nil)
	}
	ringPath := filepath.Join(dataDir, FileName)
	keyExists, err := exists(keyFile)
	if err != nil {
		return nil, err
	}
	ringExists, err := exists(ringPath)
	if err != nil {
		return nil, err
	}
	empty, err := emptyDir(dataDir)
	if err != nil {
		return nil, err
	}

	switch {
	case !keyExists && (ringExists || !empty):
		return nil, fault.E(fault.Invalid, fmt.Sprintf(
			"key file %s is missing but %s already holds data sealed by a key; restore the key file from your backup (or point key_file at it)",
			keyFile, dataDir), nil)
	case keyExists && !ringExists && !empty:
		return nil, fault.E(fault.Invalid, fmt.Sprintf(
			"data directory %s has data but no keyring; restore %s from your backup, or start with an empty data directory",
			dataDir, ringPath), nil)
	case !keyExists:
		// The first start: nothing exists yet. The key file comes first, so
		// that no data is ever sealed by a key that is not on disk.
		master, err := createKeyFile(keyFile)
		if err != nil {
			return nil, err
		}
		defer clear(master)
		return create(ringPath, master)
	}

	master, err := readKeyFile(keyFile)
	if err != nil {
		return nil, err
	}
	defer clear(master)
	if !ringExists {
		return create(ringPath, master)
	}
	return unlock(ringPath, master, keyFile, dataDir)
}

// inside reports whether path is in dir or below it.
func inside(path, dir string) bool {
	p, err1 := filepath.Abs(path)
	d, err2 := filepath.Abs(dir)
	if err1 != nil || err2 != nil {
		return false
	}
	rel, err := filepath.Rel(d, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

func exists(path string) (bool, error) {
	_, err := os.Lstat(path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, os.ErrNotExist):
		return false, nil
	default:
		return false, fmt.Errorf("check %s: %w", path, err)
	}
}

// emptyDir reports whether dir is absent or holds nothing but a
// "lost+found" (a fresh file system mounted there) or the temporary file of
// an interrupted first write of the keyring.
func emptyDir(dir string) (bool, error) {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return true, nil
	case err != nil:
		return false, fmt.Errorf("read data directory %s: %w", dir, err)
	}
	for _, e := range entries {
		name := e.Name()
		if name == "lost+found" || strings.HasPrefix(name, "."+FileName+".tmp") {
			continue
		}
		return false, nil
	}
	return true, nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCMWithRandomNonce(block)
}

// create makes a fresh keyring, one version of each purpose, and writes it.
func create(path string, master []byte) (*Keyring, error) {
	k, err := newKeyring(path, master)
	if err != nil {
		return nil, err
	}
	file := keyringFile{Format: keyringFormat, Keys: map[Purpose][]entry{}}
	for p := range purposes {
		e, err := newEntry(1)
		if err != nil {
			return nil, err
		}
		file.Keys[p] = []entry{e}
	}
	s, err := newState(file)
	if err != nil {
		return nil, err
	}
	if err := atomicfile.MkdirAll(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("create data directory %s: %w", filepath.Dir(path), err)
	}
	if err := k.persist(s); err != nil {
		return nil, err
	}
	k.state.Store(s)
	return k, nil
}

func newKeyring(path string, master []byte) (*Keyring, error) {
	m, err := newAEAD(master)
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	return &Keyring{path: path, master: m, id: keyID(master)}, nil
}

func newEntry(version uint32) (entry, error) {
	key := make([]byte, subkeySize)
	if _, err := rand.Read(key); err != nil {
		return entry{}, fmt.Errorf("make key: %w", err)
	}
	return entry{Version: version, Key: key, Created: time.Now().UTC().Truncate(time.Second)}, nil
}

// unlock reads and opens the keyring at path.
func unlock(path string, master []byte, keyFile, dataDir string) (*Keyring, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read keyring %s: %w", path, err)
	}
	prefix := len(keyringMagic) + keyIDSize
	if len(data) < prefix || string(data[:len(keyringMagic)]) != keyringMagic {
		return nil, fault.E(fault.Invalid, fmt.Sprintf(
			"%s is not a Sealpost keyring (or a damaged one); restore it from your backup", path), nil)
	}
	k, err := newKeyring(path, master)
	if err != nil {
		return nil, err
	}
	if string(data[len(keyringMagic):prefix]) != string(k.id[:]) {
		return nil, fault.E(fault.Invalid, fmt.Sprintf(
			"key file %s does not match the data in %s (the keyring cannot be unlocked); use the key file that was created with this data",
			keyFile, dataDir), fmt.Errorf("key id %s, keyring sealed by %s", hex.EncodeToString(k.id[:]), hex.EncodeToString(data[len(keyringMagic):prefix])))
	}
	plain, err := k.master.Open(nil, nil, data[prefix:], data[:prefix])
	if err != nil {
		return nil, fault.E(fault.Invalid, fmt.Sprintf(
			"keyring %s is damaged (it was sealed by key file %s but does not authenticate); restore it from your backup", path, keyFile), ErrDecrypt)
	}
	defer clear(plain)
	var file keyringFile
	if err := json.Unmarshal(plain, &file); err != nil || file.Format != keyringFormat {
		return nil, fault.E(fault.Invalid, fmt.Sprintf(
			"keyring %s has a format this version of Sealpost does not know", path), err)
	}
	s, err := newState(file)
	if err != nil {
		return nil, fault.E(fault.Invalid, fmt.Sprintf("keyring %s is inconsistent", path), err)
	}
	k.state.Store(s)
	return k, nil
}

// newState checks file and builds the ciphers for it.
func newState(file keyringFile) (*state, error) {
	s := &state{file: file, keys: map[Purpose][]*subkey{}}
	for p, u := range purposes {
		list := file.Keys[p]
		if len(list) == 0 {
			return nil, fmt.Errorf("no %s keys", p)
		}
		for i, e := range list {
			if e.Version != uint32(i+1) || len(e.Key) != subkeySize {
				return nil, fmt.Errorf("%s key %d: version %d, %d bytes", p, i, e.Version, len(e.Key))
			}
			sk := &subkey{version: e.Version, key: e.Key}
			if u == useAEAD {
				var err error
				if sk.aead, err = newAEAD(e.Key); err != nil {
					return nil, fmt.Errorf("%s key version %d: %w", p, e.Version, err)
				}
			}
			s.keys[p] = append(s.keys[p], sk)
		}
	}
	return s, nil
}

// persist seals s under the master key and writes it atomically.
func (k *Keyring) persist(s *state) error {
	plain, err := json.Marshal(s.file)
	if err != nil {
		return fmt.Errorf("encode keyring: %w", err)
	}
	defer clear(plain)
	prefix := append([]byte(keyringMagic), k.id[:]...)
	sealed := k.master.Seal(prefix, nil, plain, prefix)
	if err := atomicfile.Write(k.path, sealed); err != nil {
		return fmt.Errorf("write keyring %s: %w", k.path, err)
	}
	return nil
}

// Rotate adds a new version of p's key and makes it current; the keyring is
// on disk when it returns. Data sealed with older versions still opens.
//
// Badger's key (PurposeStore) cannot be rotated here: Badger must re-seal
// its own key registry at the same time, offline.
func (k *Keyring) Rotate(p Purpose) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	old := k.state.Load()
	if old == nil {
		return ErrClosed
	}
	u, ok := purposes[p]
	if !ok {
		return fmt.Errorf("rotate: unknown purpose %q", p)
	}
	if u == useRaw {
		return fmt.Errorf("rotate: the %s key cannot be rotated while the store uses it", p)
	}
	e, err := newEntry(uint32(len(old.keys[p]) + 1))
	if err != nil {
		return fmt.Errorf("rotate %s: %w", p, err)
	}
	sk := &subkey{version: e.Version, key: e.Key}
	if u == useAEAD {
		if sk.aead, err = newAEAD(e.Key); err != nil {
			return fmt.Errorf("rotate %s: %w", p, err)
		}
	}
	// Copy on write: readers of the old snapshot are undisturbed, and a
	// failed write leaves the keyring as it was.
	s := &state{
		file: keyringFile{Format: old.file.Format, Keys: make(map[Purpose][]entry, len(old.file.Keys))},
		keys: make(map[Purpose][]*subkey, len(old.keys)),
	}
	for q, list := range old.file.Keys {
		s.file.Keys[q] = list
	}
	for q, list := range old.keys {
		s.keys[q] = list
	}
	s.file.Keys[p] = append(slices.Clip(old.file.Keys[p]), e)
	s.keys[p] = append(slices.Clip(old.keys[p]), sk)
	if err := k.persist(s); err != nil {
		clear(e.Key)
		return fmt.Errorf("rotate %s: %w", p, err)
	}
	k.state.Store(s)
	return nil
}

// current returns p's current key if p serves u.
func (k *Keyring) current(p Purpose, u use) (*subkey, error) {
	s := k.state.Load()
	if s == nil {
		return nil, ErrClosed
	}
	if got, ok := purposes[p]; !ok || got != u {
		return nil, fmt.Errorf("keyring: purpose %q cannot be used for this operation", p)
	}
	list := s.keys[p]
	return list[len(list)-1], nil
}

// version returns version v of p's key if p serves u, or ErrDecrypt if
// there is no such version.
func (k *Keyring) version(p Purpose, u use, v uint32) (*subkey, error) {
	s := k.state.Load()
	if s == nil {
		return nil, ErrClosed
	}
	if got, ok := purposes[p]; !ok || got != u {
		return nil, fmt.Errorf("keyring: purpose %q cannot be used for this operation", p)
	}
	list := s.keys[p]
	if v == 0 || uint64(v) > uint64(len(list)) {
		return nil, ErrDecrypt
	}
	return list[v-1], nil
}

// StoreEncryptionKey returns a copy of Badger's encryption key. It is the
// one key that leaves this package, because badger.Options.WithEncryptionKey
// takes the key as bytes; only appliance/store may call it. Badger keeps its
// own data keys under it, so it has exactly one version. It panics after
// Close.
func (k *Keyring) StoreEncryptionKey() []byte {
	s := k.state.Load()
	if s == nil {
		panic(ErrClosed)
	}
	return slices.Clone(s.keys[PurposeStore][0].key)
}

// MasterKeyID returns a non-secret name of the master key (16 hex digits),
// for logs, backups and telling key files apart.
func (k *Keyring) MasterKeyID() string { return hex.EncodeToString(k.id[:]) }

// Close zeroes the keys (best effort: the AES key schedules inside the
// ciphers cannot be reached, and the runtime may have copied them). Using
// the keyring afterwards fails with ErrClosed. Close may be called twice.
func (k *Keyring) Close() {
	if k == nil {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	s := k.state.Swap(nil)
	if s == nil {
		return
	}
	for _, list := range s.file.Keys {
		for _, e := range list {
			clear(e.Key)
		}
	}
}
