package keyring

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sealpost/sealpost/appliance/atomicfile"
	"github.com/sealpost/sealpost/appliance/fault"
)

// keyFileHeader is the first line of a master key file.
const keyFileHeader = "sealpost-master-key v1"

const masterKeySize = 32

// readKeyFile reads the master key, refusing a file that group or others
// may read.
func readKeyFile(path string) ([]byte, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fault.E(fault.Invalid, fmt.Sprintf("key file %s cannot be read: %v", path, err), err)
	}
	if !info.Mode().IsRegular() {
		return nil, fault.E(fault.Invalid, fmt.Sprintf("key file %s is not a regular file", path), nil)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return nil, fault.E(fault.Invalid, fmt.Sprintf(
			"key file %s can be read by group or others (mode %04o); run: chmod 600 %s", path, perm, path), nil)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fault.E(fault.Invalid, fmt.Sprintf("key file %s cannot be read: %v", path, err), err)
	}
	lines := bytes.Split(bytes.TrimSpace(data), []byte("\n"))
	if len(lines) != 2 || string(bytes.TrimSpace(lines[0])) != keyFileHeader {
		return nil, fault.E(fault.Invalid, fmt.Sprintf("key file %s is not a Sealpost master key file (it should start with %q)", path, keyFileHeader), nil)
	}
	key, err := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(lines[1])))
	if err != nil || len(key) != masterKeySize {
		return nil, fault.E(fault.Invalid, fmt.Sprintf("key file %s is damaged: the key is not %d bytes of base64", path, masterKeySize), err)
	}
	return key, nil
}

// createKeyFile makes a new random master key and writes it with mode 0600.
func createKeyFile(path string) ([]byte, error) {
	key := make([]byte, masterKeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("make master key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create directory for key file: %w", err)
	}
	content := keyFileHeader + "\n" + base64.StdEncoding.EncodeToString(key) + "\n"
	if err := atomicfile.Write(path, []byte(content)); err != nil {
		return nil, fmt.Errorf("write key file %s: %w", path, err)
	}
	return key, nil
}
