package keyring

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/sealpost/sealpost/appliance/atomicfile"
	"github.com/sealpost/sealpost/appliance/fault"
)

// The master key file is two lines of text:
//
//	sealpost-master-key v1
//	<32 random bytes, standard base64 with padding>
//
// It is written once, with mode 0600, and never rewritten.
const (
	keyFileHeader  = "sealpost-master-key v1"
	masterKeySize  = 32
	maxKeyFileSize = 4 << 10
	keyIDSize      = 8
)

// readKeyFile reads the master key, refusing a file that group or others
// may read.
func readKeyFile(path string) ([]byte, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fault.E(fault.Invalid, fmt.Sprintf("key file %s cannot be read", path), err)
	}
	if !info.Mode().IsRegular() {
		return nil, fault.E(fault.Invalid, fmt.Sprintf("key file %s is not a regular file", path), nil)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return nil, fault.E(fault.Invalid, fmt.Sprintf(
			"key file %s can be read by group or others (mode %04o); run: chmod 600 %s", path, perm, path), nil)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fault.E(fault.Invalid, fmt.Sprintf("key file %s cannot be read", path), err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, fault.E(fault.Invalid, fmt.Sprintf("key file %s cannot be read", path), err)
	}
	defer clear(data)
	key, problem := parseKeyFile(data)
	if key == nil {
		return nil, fault.E(fault.Invalid, fmt.Sprintf("key file %s %s", path, problem), nil)
	}
	return key, nil
}

// parseKeyFile returns the key, or nil and what is wrong with the file.
// Whitespace around the lines, and a missing or extra final newline, are
// tolerated.
func parseKeyFile(data []byte) (key []byte, problem string) {
	if len(data) > maxKeyFileSize {
		return nil, "is too large to be a Sealpost master key file"
	}
	header, rest, _ := bytes.Cut(data, []byte("\n"))
	if string(bytes.TrimSpace(header)) != keyFileHeader {
		return nil, fmt.Sprintf("is not a Sealpost master key file (its first line should be %q)", keyFileHeader)
	}
	encoded := bytes.TrimSpace(rest)
	key = make([]byte, base64.StdEncoding.DecodedLen(len(encoded)))
	n, err := base64.StdEncoding.Decode(key, encoded)
	if err != nil || n != masterKeySize {
		clear(key)
		return nil, fmt.Sprintf("is damaged (its second line should be %d bytes in base64 and nothing else)", masterKeySize)
	}
	return key[:n], ""
}

// createKeyFile makes a new random master key and writes it with mode 0600,
// creating its directory with mode 0700 if need be. The file and every
// directory entry leading to it are on disk when it returns: data sealed
// under a key that a crash then loses would be lost with it.
func createKeyFile(path string) ([]byte, error) {
	key := make([]byte, masterKeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("make master key: %w", err)
	}
	if err := atomicfile.MkdirAll(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("create directory for key file %s: %w", path, err)
	}
	content := []byte(keyFileHeader + "\n" + base64.StdEncoding.EncodeToString(key) + "\n")
	defer clear(content)
	if err := atomicfile.Write(path, content); err != nil {
		return nil, fmt.Errorf("write key file %s: %w", path, err)
	}
	return key, nil
}

// keyID is a non-secret name for a master key: the first bytes of an HMAC
// of a fixed label under it. It lets Open tell a wrong key from a damaged
// keyring, and an operator tell key files apart.
func keyID(master []byte) [keyIDSize]byte {
	m := hmac.New(sha256.New, master)
	m.Write([]byte("sealpost master key id"))
	var id [keyIDSize]byte
	copy(id[:], m.Sum(nil))
	return id
}
