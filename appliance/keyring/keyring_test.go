package keyring

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// paths is a key file and data directory in a fresh temporary directory.
func paths(t *testing.T) (keyFile, dataDir string) {
	dir := t.TempDir()
	return filepath.Join(dir, "etc", "sealpost.key"), filepath.Join(dir, "data")
}

func mustOpen(t *testing.T, keyFile, dataDir string) *Keyring {
	t.Helper()
	k, err := Open(keyFile, dataDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	return k
}

// digest hashes every path, mode and content under root.
func digest(t *testing.T, roots ...string) string {
	t.Helper()
	h := sha256.New()
	for _, root := range roots {
		_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				fmt.Fprintf(h, "error %s\n", path)
				return nil
			}
			info, _ := d.Info()
			fmt.Fprintf(h, "%s %v\n", path, info.Mode())
			if d.Type().IsRegular() {
				data, _ := os.ReadFile(path)
				h.Write(data)
			}
			return nil
		})
	}
	return hex.EncodeToString(h.Sum(nil))
}

func TestFirstStartCreatesKeyAndKeyring(t *testing.T) {
	t.Parallel()
	keyFile, dataDir := paths(t)
	k := mustOpen(t, keyFile, dataDir)
	info, err := os.Stat(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", info.Mode().Perm())
	}
	if info, err := os.Stat(dataDir); err != nil || info.Mode().Perm() != 0o700 {
		t.Errorf("data dir: %v %v, want mode 0700", info, err)
	}
	sealed, err := k.Seal(PurposeRecord, []byte("hello"), []byte("k1"))
	if err != nil {
		t.Fatal(err)
	}
	k.Close()

	again := mustOpen(t, keyFile, dataDir)
	plain, err := again.Unseal(PurposeRecord, sealed, []byte("k1"))
	if err != nil || string(plain) != "hello" {
		t.Fatalf("reopened keyring: %q, %v", plain, err)
	}
}

// TestRefusals: every refusal names what to do and changes nothing on disk.
func TestRefusals(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		prepare func(t *testing.T, keyFile, dataDir string)
		want    string
	}{
		{"key readable by group", func(t *testing.T, keyFile, _ string) {
			os.Chmod(keyFile, 0o640)
		}, "chmod 600"},
		{"key readable by others", func(t *testing.T, keyFile, _ string) {
			os.Chmod(keyFile, 0o604)
		}, "can be read by group or others (mode 0604)"},
		{"wrong key", func(t *testing.T, keyFile, _ string) {
			otherKey, otherData := paths(t)
			mustOpen(t, otherKey, otherData)
			data, _ := os.ReadFile(otherKey)
			os.WriteFile(keyFile, data, 0o600)
		}, "does not match the data"},
		{"key missing", func(t *testing.T, keyFile, _ string) {
			os.Remove(keyFile)
		}, "is missing but"},
		{"key missing, data without keyring", func(t *testing.T, keyFile, dataDir string) {
			os.Remove(keyFile)
			os.Remove(filepath.Join(dataDir, FileName))
		}, "is missing but"},
		{"keyring missing", func(t *testing.T, _, dataDir string) {
			os.Remove(filepath.Join(dataDir, FileName))
		}, "holds data but no keyring"},
		{"key file damaged", func(t *testing.T, keyFile, _ string) {
			os.WriteFile(keyFile, []byte("sealpost-master-key v1\nnot base64!\n"), 0o600)
		}, "damaged"},
		{"not a key file", func(t *testing.T, keyFile, _ string) {
			os.WriteFile(keyFile, []byte("hello\n"), 0o600)
		}, "not a Sealpost master key file"},
		{"keyring damaged", func(t *testing.T, _, dataDir string) {
			path := filepath.Join(dataDir, FileName)
			data, _ := os.ReadFile(path)
			data[len(data)-1] ^= 1
			os.WriteFile(path, data, 0o600)
		}, "does not match the data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			keyFile, dataDir := paths(t)
			mustOpen(t, keyFile, dataDir).Close()
			// Some data besides the keyring, as a store would leave.
			if err := os.WriteFile(filepath.Join(dataDir, "MANIFEST"), []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
			tt.prepare(t, keyFile, dataDir)
			before := digest(t, filepath.Dir(keyFile), dataDir)
			_, err := Open(keyFile, dataDir)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Open = %v, want an error containing %q", err, tt.want)
			}
			if after := digest(t, filepath.Dir(keyFile), dataDir); after != before {
				t.Error("the refusal changed files on disk")
			}
		})
	}
}

func TestKeyPresentDataEmptyCreatesKeyring(t *testing.T) {
	t.Parallel()
	keyFile, dataDir := paths(t)
	mustOpen(t, keyFile, dataDir).Close()
	keyBefore, _ := os.ReadFile(keyFile)
	if err := os.RemoveAll(dataDir); err != nil {
		t.Fatal(err)
	}
	mustOpen(t, keyFile, dataDir)
	if keyAfter, _ := os.ReadFile(keyFile); !bytes.Equal(keyBefore, keyAfter) {
		t.Error("an existing key file was replaced")
	}
}

func TestSealUnseal(t *testing.T) {
	t.Parallel()
	keyFile, dataDir := paths(t)
	k := mustOpen(t, keyFile, dataDir)
	sealed, err := k.Seal(PurposeRecord, []byte("secret value"), []byte("key/1"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("secret")) {
		t.Fatal("sealed output holds the plaintext")
	}
	tests := []struct {
		name    string
		purpose Purpose
		sealed  []byte
		aad     string
		ok      bool
	}{
		{"right", PurposeRecord, sealed, "key/1", true},
		{"wrong aad", PurposeRecord, sealed, "key/2", false},
		{"wrong purpose", PurposeContent, sealed, "key/1", false},
		{"flipped byte", PurposeRecord, flip(sealed, len(sealed)/2), "key/1", false},
		{"wrong version", PurposeRecord, flip(sealed, 4), "key/1", false},
		{"truncated", PurposeRecord, sealed[:len(sealed)-1], "key/1", false},
		{"empty", PurposeRecord, nil, "key/1", false},
	}
	for _, tt := range tests {
		plain, err := k.Unseal(tt.purpose, tt.sealed, []byte(tt.aad))
		if tt.ok != (err == nil) || tt.ok && string(plain) != "secret value" {
			t.Errorf("%s: Unseal = %q, %v", tt.name, plain, err)
		}
		if !tt.ok && !errors.Is(err, ErrDecrypt) {
			t.Errorf("%s: error %v is not ErrDecrypt", tt.name, err)
		}
	}
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0x40
	return c
}

func TestRotation(t *testing.T) {
	t.Parallel()
	keyFile, dataDir := paths(t)
	k := mustOpen(t, keyFile, dataDir)
	old, _ := k.Seal(PurposeRecord, []byte("old"), nil)
	oldMAC := k.MAC(PurposeAudit, []byte("entry"))
	if err := k.Rotate(PurposeRecord); err != nil {
		t.Fatal(err)
	}
	if err := k.Rotate(PurposeAudit); err != nil {
		t.Fatal(err)
	}
	fresh, _ := k.Seal(PurposeRecord, []byte("new"), nil)
	if fresh[4] != 2 {
		t.Errorf("new seals use version %d, want 2", fresh[4])
	}
	k.Close()

	k = mustOpen(t, keyFile, dataDir)
	for _, c := range []struct {
		sealed []byte
		want   string
	}{{old, "old"}, {fresh, "new"}} {
		if plain, err := k.Unseal(PurposeRecord, c.sealed, nil); err != nil || string(plain) != c.want {
			t.Errorf("after rotation and reopen: %q, %v", plain, err)
		}
	}
	if !k.VerifyMAC(PurposeAudit, []byte("entry"), oldMAC) {
		t.Error("a MAC from before the rotation no longer verifies")
	}
	if k.VerifyMAC(PurposeAudit, []byte("entrx"), oldMAC) {
		t.Error("a MAC verifies for other data")
	}
	if newMAC := k.MAC(PurposeAudit, []byte("entry")); bytes.Equal(newMAC, oldMAC) {
		t.Error("the MAC did not change key after rotation")
	}
	if _, err := k.Seal("nonsense", []byte("x"), nil); err == nil {
		t.Error("sealing with an unknown purpose succeeded")
	}
	if err := k.Rotate("nonsense"); err == nil {
		t.Error("rotating an unknown purpose succeeded")
	}
}

func TestDataKeys(t *testing.T) {
	t.Parallel()
	keyFile, dataDir := paths(t)
	k := mustOpen(t, keyFile, dataDir)
	d, wrapped, err := k.NewDataKey()
	if err != nil {
		t.Fatal(err)
	}
	sealed := d.Seal([]byte("subject"), []byte("msg/1"))
	again, err := k.UnwrapDataKey(wrapped)
	if err != nil {
		t.Fatal(err)
	}
	if plain, err := again.Open(sealed, []byte("msg/1")); err != nil || string(plain) != "subject" {
		t.Fatalf("unwrapped key: %q, %v", plain, err)
	}
	if _, err := k.UnwrapDataKey(flip(wrapped, 10)); err == nil {
		t.Error("a damaged wrapped key unwrapped")
	}
	if _, err := again.Open(sealed, []byte("msg/2")); err == nil {
		t.Error("opened with the wrong associated data")
	}
	// The store key is stable and 32 bytes.
	if a, b := k.StoreEncryptionKey(), k.StoreEncryptionKey(); len(a) != 32 || !bytes.Equal(a, b) {
		t.Error("store key unstable or not 32 bytes")
	}
}

func TestPasswords(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	hash, err := HashPassword(ctx, "correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(hash, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("hash %q is not the expected PHC form", hash)
	}
	if ok, rehash, err := VerifyPassword(ctx, hash, "correct horse battery staple"); !ok || rehash || err != nil {
		t.Errorf("right password: ok=%v rehash=%v err=%v", ok, rehash, err)
	}
	if ok, _, err := VerifyPassword(ctx, hash, "correct horse battery stapler"); ok || err != nil {
		t.Errorf("wrong password: ok=%v err=%v", ok, err)
	}
	// A hash with older parameters verifies and asks to be replaced.
	weaker := strings.Replace(hash, "m=19456,t=2", "m=8192,t=1", 1)
	weaker = weaker[:strings.LastIndex(weaker, "$")+1] + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	if _, rehash, err := VerifyPassword(ctx, weaker, "x"); !rehash || err != nil {
		t.Errorf("older parameters: rehash=%v err=%v", rehash, err)
	}
	for _, bad := range []string{"", "$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=99999999,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=19456,t=2,p=1$!!$aGFzaGhhc2hoYXNoaGFzaA", "$argon2id$v=19$m=19456,t=2,p=1,x=1$c2FsdHNhbHQ$aGFzaA"} {
		if _, _, err := VerifyPassword(ctx, bad, "x"); !errors.Is(err, ErrPasswordHash) {
			t.Errorf("malformed hash %q: err=%v", bad, err)
		}
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	for range cap(hashSlots) {
		hashSlots <- struct{}{}
	}
	_, err = HashPassword(cancelled, "x")
	for range cap(hashSlots) {
		<-hashSlots
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("with every slot busy and the context cancelled: %v", err)
	}
}

func FuzzParsePHC(f *testing.F) {
	f.Add("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA")
	f.Add("$argon2id$v=19$m=1,t=1,p=1$$")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parsePHC(s)
		if err == nil && (p.memory > 1<<20 || p.time > 20 || p.threads > 16) {
			t.Fatalf("accepted absurd parameters %+v", p)
		}
	})
}
