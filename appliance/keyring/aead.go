package keyring

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"sync"
)

// A value sealed by Keyring.Seal is
//
//	format (1 byte, 1) | key version (uint32, big-endian) | nonce (12) | ciphertext | tag (16)
//
// and its associated data is the first five bytes, the purpose, a zero byte
// and the caller's associated data, so that a value opens only under the
// purpose, version and context it was sealed for.
const (
	sealFormat = 1
	sealHeader = 1 + 4
	// SealOverhead is how many bytes Seal adds to a plaintext.
	SealOverhead = sealHeader + 12 + 16
	// MACSize is the length of a MAC: key version (4) and HMAC-SHA256 (32).
	MACSize = 4 + sha256.Size
)

// aadPool holds buffers for associated data, so that Seal allocates only
// its output.
var aadPool = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

func getAAD() *[]byte { return aadPool.Get().(*[]byte) }

func putAAD(bp *[]byte, b []byte) {
	if cap(b) <= 4<<10 {
		*bp = b[:0]
		aadPool.Put(bp)
	}
}

func bindAAD(dst, header []byte, p Purpose, aad []byte) []byte {
	dst = append(dst, header...)
	dst = append(dst, p...)
	dst = append(dst, 0)
	return append(dst, aad...)
}

// Seal encrypts and authenticates plaintext with p's current key. aad is
// authenticated but not stored (for a record: its key in the store); Unseal
// needs the same. The result is SealOverhead bytes longer than plaintext.
func (k *Keyring) Seal(p Purpose, plaintext, aad []byte) ([]byte, error) {
	sk, err := k.current(p, useAEAD)
	if err != nil {
		return nil, err
	}
	out := make([]byte, sealHeader, SealOverhead+len(plaintext))
	out[0] = sealFormat
	binary.BigEndian.PutUint32(out[1:], sk.version)
	bp := getAAD()
	b := bindAAD((*bp)[:0], out[:sealHeader], p, aad)
	out = sk.aead.Seal(out, nil, plaintext, b)
	putAAD(bp, b)
	return out, nil
}

// Unseal opens a value sealed by Seal under any version of p's key, with the
// same aad. It returns ErrDecrypt if the value does not authenticate.
func (k *Keyring) Unseal(p Purpose, sealed, aad []byte) ([]byte, error) {
	if len(sealed) < SealOverhead || sealed[0] != sealFormat {
		return nil, ErrDecrypt
	}
	sk, err := k.version(p, useAEAD, binary.BigEndian.Uint32(sealed[1:]))
	if err != nil {
		return nil, err
	}
	bp := getAAD()
	b := bindAAD((*bp)[:0], sealed[:sealHeader], p, aad)
	plain, err := sk.aead.Open(nil, nil, sealed[sealHeader:], b)
	putAAD(bp, b)
	if err != nil {
		return nil, ErrDecrypt
	}
	return plain, nil
}

// MAC returns the key version (uint32, big-endian) followed by
// HMAC-SHA256(data) under p's current key: MACSize bytes. p must be a MAC
// purpose (PurposeAudit); MAC panics otherwise, or after Close, as both are
// defects in the caller.
func (k *Keyring) MAC(p Purpose, data []byte) []byte {
	sk, err := k.current(p, useMAC)
	if err != nil {
		panic(err)
	}
	m := hmac.New(sha256.New, sk.key)
	m.Write(data)
	return m.Sum(binary.BigEndian.AppendUint32(make([]byte, 0, MACSize), sk.version))
}

// VerifyMAC reports, in constant time, whether mac is MAC(p, data) under
// any version of p's key.
func (k *Keyring) VerifyMAC(p Purpose, data, mac []byte) bool {
	if len(mac) != MACSize {
		return false
	}
	sk, err := k.version(p, useMAC, binary.BigEndian.Uint32(mac))
	if err != nil {
		return false
	}
	m := hmac.New(sha256.New, sk.key)
	m.Write(data)
	return hmac.Equal(m.Sum(make([]byte, 0, sha256.Size)), mac[4:])
}

// String names the keyring by its master key id; it never shows keys.
func (k *Keyring) String() string {
	return fmt.Sprintf("keyring(master key %s)", k.MasterKeyID())
}
