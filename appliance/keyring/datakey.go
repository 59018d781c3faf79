package keyring

import (
	"crypto/cipher"
	"crypto/rand"
	"fmt"
)

// dataKeyAAD binds a wrapped data key to its use.
var dataKeyAAD = []byte("sealpost data key v1")

// DataKey is a random key for one message or one file. It is stored only
// wrapped under the content key; destroying the wrapped copy makes what it
// sealed unreadable (crypto-shredding).
type DataKey struct {
	aead cipher.AEAD
}

// NewDataKey makes a random data key and returns it with its wrapped form,
// which the caller stores beside the data.
func (k *Keyring) NewDataKey() (*DataKey, []byte, error) {
	raw := make([]byte, subkeySize)
	if _, err := rand.Read(raw); err != nil {
		return nil, nil, fmt.Errorf("make data key: %w", err)
	}
	defer clear(raw)
	wrapped, err := k.Seal(PurposeContent, raw, dataKeyAAD)
	if err != nil {
		return nil, nil, err
	}
	a, err := newAEAD(raw)
	if err != nil {
		return nil, nil, err
	}
	return &DataKey{aead: a}, wrapped, nil
}

// UnwrapDataKey opens a data key wrapped by NewDataKey.
func (k *Keyring) UnwrapDataKey(wrapped []byte) (*DataKey, error) {
	raw, err := k.Unseal(PurposeContent, wrapped, dataKeyAAD)
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

// Seal encrypts a small value (a subject, a body) under the data key.
func (d *DataKey) Seal(plaintext, aad []byte) []byte {
	return d.aead.Seal(make([]byte, 0, len(plaintext)+d.aead.Overhead()), nil, plaintext, aad)
}

// Open reverses Seal.
func (d *DataKey) Open(sealed, aad []byte) ([]byte, error) {
	plain, err := d.aead.Open(nil, nil, sealed, aad)
	if err != nil {
		return nil, ErrDecrypt
	}
	return plain, nil
}
