// Package keyring is the only holder of key material. A master key, read
// from the key file, seals a versioned keyring of random subkeys, one set per
// purpose; the rest of the appliance gets operations (seal, open, MAC,
// chunked encryption of large data, password hashing), never keys. The one
// exception is Badger's encryption key, which Badger takes as bytes.
//
// Every AEAD is AES-256-GCM with random nonces (cipher.NewGCMWithRandomNonce),
// so the package works under GODEBUG=fips140=only. Open refuses a key file
// that group or others can read, a key that does not match the data, and a
// missing key for existing data, and changes nothing on disk when it does.
package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/sealpost/sealpost/appliance/atomicfile"
	"github.com/sealpost/sealpost/appliance/fault"
)

// Purpose names one family of subkeys.
type Purpose string

// The purposes. Each has its own versioned keys.
const (
	PurposeStore   Purpose = "store"   // Badger's own encryption key
	PurposeRecord  Purpose = "record"  // seals every stored value
	PurposeContent Purpose = "content" // wraps per-message and per-file data keys
	PurposeIndex   Purpose = "index"   // the search index files
	PurposeBackup  Purpose = "backup"  // backup archives
	PurposeAudit   Purpose = "audit"   // HMAC of the audit chain
)

var purposes = []Purpose{PurposeStore, PurposeRecord, PurposeContent, PurposeIndex, PurposeBackup, PurposeAudit}

// FileName is the keyring's file in the data directory.
const FileName = "keyring"

const (
	keyringMagic = "sealpost-keyring v1\n"
	keyringAAD   = "sealpost keyring v1"
	subkeySize   = 32
	sealFormat   = 1
	sealHeader   = 1 + 4 // format, key version
)

// ErrDecrypt means sealed data did not authenticate: the wrong key, the wrong
// associated data, or damage.
var ErrDecrypt = errors.New("keyring: sealed data does not authenticate")

// Keyring holds the unlocked subkeys.
type Keyring struct {
	path   string
	master cipher.AEAD

	mu   sync.RWMutex
	file keyringFile
	aead map[Purpose]map[uint32]cipher.AEAD
}

// keyringFile is the keyring as stored (sealed) on disk.
type keyringFile struct {
	Format int                 `json:"format"`
	Keys   map[Purpose][]entry `json:"keys"` // ascending versions; the last is current
}

type entry struct {
	Version uint32    `json:"version"`
	Key     []byte    `json:"key"`
	Created time.Time `json:"created"`
}

// Open unlocks the keyring in dataDir with the master key in keyFile. On the
// very first start, when neither the key file nor any data exists, it creates
// both. It refuses, changing nothing, a key file that group or others can
// read, a key that does not open the keyring, and a missing key file or
// keyring for a data directory that holds data.
func Open(keyFile, dataDir string) (*Keyring, error) {
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

	var master []byte
	switch {
	case !keyExists && (ringExists || !empty):
		return nil, fault.E(fault.Invalid, fmt.Sprintf(
			"key file %s is missing but %s already holds data sealed by a key; restore the key file from your backup (or point key_file at it)",
			keyFile, dataDir), nil)
	case keyExists && !ringExists && !empty:
		return nil, fault.E(fault.Invalid, fmt.Sprintf(
			"data directory %s holds data but no keyring; restore %s from your backup, or use an empty data directory",
			dataDir, ringPath), nil)
	case keyExists:
		if master, err = readKeyFile(keyFile); err != nil {
			return nil, err
		}
	}
	if ringExists {
		k, err := unlock(ringPath, master)
		if err != nil {
			if errors.Is(err, ErrDecrypt) {
				return nil, fault.E(fault.Invalid, fmt.Sprintf(
					"key file %s does not match the data in %s (the keyring cannot be unlocked); use the key file that was created with this data",
					keyFile, dataDir), err)
			}
			return nil, err
		}
		return k, nil
	}

	// First start: make what is missing.
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory %s: %w", dataDir, err)
	}
	if master == nil {
		if master, err = createKeyFile(keyFile); err != nil {
			return nil, err
		}
	}
	return create(ringPath, master)
}

func exists(path string) (bool, error) {
	_, err := os.Stat(path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, os.ErrNotExist):
		return false, nil
	default:
		return false, fmt.Errorf("check %s: %w", path, err)
	}
}

func emptyDir(dir string) (bool, error) {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return true, nil
	case err != nil:
		return false, fmt.Errorf("read data directory %s: %w", dir, err)
	}
	return len(entries) == 0, nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCMWithRandomNonce(block)
}

func create(path string, master []byte) (*Keyring, error) {
	m, err := newAEAD(master)
	if err != nil {
		return nil, err
	}
	k := &Keyring{path: path, master: m, file: keyringFile{Format: 1, Keys: map[Purpose][]entry{}}}
	for _, p := range purposes {
		if err := k.addVersion(p); err != nil {
			return nil, err
		}
	}
	if err := k.persist(); err != nil {
		return nil, err
	}
	return k, nil
}

func unlock(path string, master []byte) (*Keyring, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read keyring: %w", err)
	}
	if len(data) < len(keyringMagic) || string(data[:len(keyringMagic)]) != keyringMagic {
		return nil, fault.E(fault.Invalid, fmt.Sprintf("%s is not a Sealpost keyring", path), nil)
	}
	m, err := newAEAD(master)
	if err != nil {
		return nil, err
	}
	plain, err := m.Open(nil, nil, data[len(keyringMagic):], []byte(keyringAAD))
	if err != nil {
		return nil, ErrDecrypt
	}
	k := &Keyring{path: path, master: m}
	if err := json.Unmarshal(plain, &k.file); err != nil || k.file.Format != 1 {
		return nil, fault.E(fault.Invalid, fmt.Sprintf("keyring %s has an unknown format", path), err)
	}
	for _, p := range purposes {
		if len(k.file.Keys[p]) == 0 {
			return nil, fault.E(fault.Invalid, fmt.Sprintf("keyring %s lacks %s keys", path, p), nil)
		}
	}
	if err := k.buildCiphers(); err != nil {
		return nil, err
	}
	return k, nil
}

// addVersion appends a new random key for p (not yet persisted).
func (k *Keyring) addVersion(p Purpose) error {
	key := make([]byte, subkeySize)
	if _, err := rand.Read(key); err != nil {
		return fmt.Errorf("make %s key: %w", p, err)
	}
	var version uint32 = 1
	if list := k.file.Keys[p]; len(list) > 0 {
		version = list[len(list)-1].Version + 1
	}
	k.file.Keys[p] = append(k.file.Keys[p], entry{Version: version, Key: key, Created: time.Now().UTC()})
	return k.buildCiphers()
}

func (k *Keyring) buildCiphers() error {
	k.aead = map[Purpose]map[uint32]cipher.AEAD{}
	for p, list := range k.file.Keys {
		k.aead[p] = map[uint32]cipher.AEAD{}
		for _, e := range list {
			a, err := newAEAD(e.Key)
			if err != nil {
				return fmt.Errorf("%s key version %d: %w", p, e.Version, err)
			}
			k.aead[p][e.Version] = a
		}
	}
	return nil
}

// persist seals the keyring under the master key and writes it atomically.
func (k *Keyring) persist() error {
	plain, err := json.Marshal(k.file)
	if err != nil {
		return err
	}
	sealed := k.master.Seal([]byte(keyringMagic), nil, plain, []byte(keyringAAD))
	clear(plain)
	if err := atomicfile.Write(k.path, sealed); err != nil {
		return fmt.Errorf("write keyring: %w", err)
	}
	return nil
}

// Rotate adds a new version of p's key and makes it current. Data sealed with
// older versions still opens.
func (k *Keyring) Rotate(p Purpose) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.file.Keys[p]; !ok {
		return fmt.Errorf("rotate: unknown purpose %q", p)
	}
	if err := k.addVersion(p); err != nil {
		return err
	}
	return k.persist()
}

func (k *Keyring) current(p Purpose) (uint32, cipher.AEAD) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	list := k.file.Keys[p]
	if len(list) == 0 {
		return 0, nil
	}
	v := list[len(list)-1].Version
	return v, k.aead[p][v]
}

// Seal encrypts and authenticates plaintext with p's current key; aad is
// authenticated but not encrypted (for a stored record: its key).
func (k *Keyring) Seal(p Purpose, plaintext, aad []byte) ([]byte, error) {
	version, a := k.current(p)
	if a == nil {
		return nil, fmt.Errorf("seal: unknown purpose %q", p)
	}
	out := make([]byte, sealHeader, sealHeader+len(plaintext)+a.Overhead())
	out[0] = sealFormat
	binary.BigEndian.PutUint32(out[1:], version)
	return a.Seal(out, nil, plaintext, bindAAD(p, version, aad)), nil
}

// Unseal reverses Seal with the same purpose and aad.
func (k *Keyring) Unseal(p Purpose, sealed, aad []byte) ([]byte, error) {
	if len(sealed) < sealHeader || sealed[0] != sealFormat {
		return nil, ErrDecrypt
	}
	version := binary.BigEndian.Uint32(sealed[1:])
	k.mu.RLock()
	a := k.aead[p][version]
	k.mu.RUnlock()
	if a == nil {
		return nil, ErrDecrypt
	}
	plain, err := a.Open(nil, nil, sealed[sealHeader:], bindAAD(p, version, aad))
	if err != nil {
		return nil, ErrDecrypt
	}
	return plain, nil
}

// bindAAD prefixes the caller's associated data with the purpose and key
// version, so a sealed value cannot be moved between purposes.
func bindAAD(p Purpose, version uint32, aad []byte) []byte {
	b := make([]byte, 0, len(p)+1+4+len(aad))
	b = append(b, p...)
	b = append(b, 0)
	b = binary.BigEndian.AppendUint32(b, version)
	return append(b, aad...)
}

// MAC returns HMAC-SHA256 of data under p's current key, prefixed with the
// key version so that it can be verified after a rotation.
func (k *Keyring) MAC(p Purpose, data []byte) []byte {
	version, key := k.currentKey(p)
	if key == nil {
		panic(fmt.Sprintf("keyring: MAC with unknown purpose %q", p))
	}
	m := hmac.New(sha256.New, key)
	m.Write(data)
	return m.Sum(binary.BigEndian.AppendUint32(nil, version))
}

// VerifyMAC reports whether mac is MAC(p, data) under any version of p.
func (k *Keyring) VerifyMAC(p Purpose, data, mac []byte) bool {
	if len(mac) != 4+sha256.Size {
		return false
	}
	version := binary.BigEndian.Uint32(mac)
	key := k.keyOf(p, version)
	if key == nil {
		return false
	}
	m := hmac.New(sha256.New, key)
	m.Write(data)
	return hmac.Equal(m.Sum(nil), mac[4:])
}

func (k *Keyring) currentKey(p Purpose) (uint32, []byte) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	list := k.file.Keys[p]
	if len(list) == 0 {
		return 0, nil
	}
	e := list[len(list)-1]
	return e.Version, e.Key
}

func (k *Keyring) keyOf(p Purpose, version uint32) []byte {
	k.mu.RLock()
	defer k.mu.RUnlock()
	for _, e := range k.file.Keys[p] {
		if e.Version == version {
			return e.Key
		}
	}
	return nil
}

// StoreEncryptionKey returns Badger's encryption key. It is the one key that
// leaves this package, because Badger's Options take the key as bytes; only
// appliance/store calls it. Badger keeps its own data keys under it, so the
// first version stays current for the life of the store.
func (k *Keyring) StoreEncryptionKey() []byte {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return append([]byte(nil), k.file.Keys[PurposeStore][0].Key...)
}

// Close forgets the keys (best effort: Go may have copied them).
func (k *Keyring) Close() {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, list := range k.file.Keys {
		for _, e := range list {
			clear(e.Key)
		}
	}
	k.aead = nil
}
