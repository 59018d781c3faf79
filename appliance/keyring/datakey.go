package keyring

import (
	"crypto/cipher"
	"crypto/rand"
	"fmt"
)

// A data key is wrapped with Keyring.Seal under a key-wrapping purpose, with
// wrapAAD as associated data. A small value sealed by DataKey.Seal is
//
//	format (1 byte, 1) | nonce (12) | ciphertext | tag (16)
//
// with valueAAD and the caller's associated data as associated data; the
// distinct prefix keeps values and chunks of the chunked format apart.
const (
	valueFormat = 1
	// ValueOverhead is how many bytes DataKey.Seal adds to a plaintext.
	ValueOverhead = 1 + 12 + 16
	// WrappedKeySize is the length of a wrapped data key.
	WrappedKeySize = SealOverhead + subkeySize
)

var (
	wrapAAD  = []byte("sealpost data key v1")
	valueAAD = []byte("sealpost value v1\x00")
)

// wrapPurposes are the purposes whose keys wrap data keys.
var wrapPurposes = map[Purpose]bool{PurposeContent: true, PurposeIndex: true, PurposeBackup: true}

// DataKey is a random AES-256 key for one message, one file or one backup.
// It exists outside this package only in wrapped form; deleting the wrapped
// copy makes everything it sealed unreadable (crypto-shredding). It has no
// way to export its key.
type DataKey struct {
	aead cipher.AEAD
}

// NewDataKey makes a random data key for content (a message and its
// attachments) and returns it with its wrapped form, which the caller stores
// beside the data. It is NewDataKeyFor(PurposeContent).
func (k *Keyring) NewDataKey() (*DataKey, []byte, error) {
	return k.NewDataKeyFor(PurposeContent)
}

// UnwrapDataKey opens a data key wrapped by NewDataKey.
func (k *Keyring) UnwrapDataKey(wrapped []byte) (*DataKey, error) {
	return k.UnwrapDataKeyFor(PurposeContent, wrapped)
}

// NewDataKeyFor makes a random data key wrapped under p's current key; p is
// PurposeContent, PurposeIndex or PurposeBackup.
func (k *Keyring) NewDataKeyFor(p Purpose) (*DataKey, []byte, error) {
	if !wrapPurposes[p] {
		return nil, nil, fmt.Errorf("keyring: purpose %q does not wrap data keys", p)
	}
	raw := make([]byte, subkeySize)
	defer clear(raw)
	if _, err := rand.Read(raw); err != nil {
		return nil, nil, fmt.Errorf("make data key: %w", err)
	}
	wrapped, err := k.Seal(p, raw, wrapAAD)
	if err != nil {
		return nil, nil, err
	}
	a, err := newAEAD(raw)
	if err != nil {
		return nil, nil, err
	}
	return &DataKey{aead: a}, wrapped, nil
}

// UnwrapDataKeyFor opens a data key wrapped under any version of p's key.
// It returns ErrDecrypt if wrapped does not authenticate.
func (k *Keyring) UnwrapDataKeyFor(p Purpose, wrapped []byte) (*DataKey, error) {
	raw, err := k.unwrap(p, wrapped)
	if err != nil {
		return nil, err
	}
	defer clear(raw)
	a, err := newAEAD(raw)
	if err != nil {
		return nil, err
	}
	return &DataKey{aead: a}, nil
}

// RewrapDataKey wraps the data key in wrapped under p's current key, after a
// Rotate(p). The data it sealed stays as it is.
func (k *Keyring) RewrapDataKey(p Purpose, wrapped []byte) ([]byte, error) {
	raw, err := k.unwrap(p, wrapped)
	if err != nil {
		return nil, err
	}
	defer clear(raw)
	return k.Seal(p, raw, wrapAAD)
}

func (k *Keyring) unwrap(p Purpose, wrapped []byte) ([]byte, error) {
	if !wrapPurposes[p] {
		return nil, fmt.Errorf("keyring: purpose %q does not wrap data keys", p)
	}
	raw, err := k.Unseal(p, wrapped, wrapAAD)
	if err != nil {
		return nil, err
	}
	if len(raw) != subkeySize {
		clear(raw)
		return nil, ErrDecrypt
	}
	return raw, nil
}

// Seal encrypts and authenticates a small value (a subject, a body) under
// the data key; aad is authenticated but not stored. The result is
// ValueOverhead bytes longer than plaintext. Large data belongs in the
// chunked format (NewWriter).
func (d *DataKey) Seal(plaintext, aad []byte) []byte {
	out := make([]byte, 1, ValueOverhead+len(plaintext))
	out[0] = valueFormat
	bp := getAAD()
	b := append(append((*bp)[:0], valueAAD...), aad...)
	out = d.aead.Seal(out, nil, plaintext, b)
	putAAD(bp, b)
	return out
}

// Open reverses Seal with the same aad. It returns ErrDecrypt if sealed
// does not authenticate.
func (d *DataKey) Open(sealed, aad []byte) ([]byte, error) {
	if len(sealed) < ValueOverhead || sealed[0] != valueFormat {
		return nil, ErrDecrypt
	}
	bp := getAAD()
	b := append(append((*bp)[:0], valueAAD...), aad...)
	plain, err := d.aead.Open(nil, nil, sealed[1:], b)
	putAAD(bp, b)
	if err != nil {
		return nil, ErrDecrypt
	}
	return plain, nil
}

// String hides the key.
func (d *DataKey) String() string { return "keyring.DataKey" }

// GoString hides the key from %#v.
func (d *DataKey) GoString() string { return "keyring.DataKey" }
