package keyring

import (
	"bytes"
	"crypto/fips140"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sealpost/sealpost/appliance/fault"
)

func TestMain(m *testing.M) {
	fmt.Fprintf(os.Stderr, "keyring tests: FIPS 140-3 mode enabled=%v enforced=%v\n", fips140.Enabled(), fips140.Enforced())
	os.Exit(m.Run())
}

// paths returns a temporary root with a key file and a data directory
// below it, neither of which exists yet.
func paths(t testing.TB) (root, keyFile, dataDir string) {
	root = t.TempDir()
	return root, filepath.Join(root, "etc", "sealpost.key"), filepath.Join(root, "data")
}

func mustOpen(t testing.TB, keyFile, dataDir string) *Keyring {
	t.Helper()
	k, err := Open(keyFile, dataDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	return k
}

// digest hashes the name, mode, content or link target of everything under
// root, so that any change on disk shows.
func digest(t *testing.T, root string) string {
	t.Helper()
	h := sha256.New()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s %v %d\n", path, info.Mode(), info.Size())
		switch {
		case d.Type().IsRegular():
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			h.Write(data)
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "-> %s\n", target)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func mode(t *testing.T, path string) fs.FileMode {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return info.Mode().Perm()
}

func TestFirstStart(t *testing.T) {
	t.Parallel()
	_, keyFile, dataDir := paths(t)
	k := mustOpen(t, keyFile, dataDir)
	for path, want := range map[string]fs.FileMode{
		keyFile:                          0o600,
		filepath.Dir(keyFile):            0o700,
		dataDir:                          0o700,
		filepath.Join(dataDir, FileName): 0o600,
	} {
		if got := mode(t, path); got != want {
			t.Errorf("%s: mode %04o, want %04o", path, got, want)
		}
	}
	data, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	if len(lines) != 3 || lines[0] != keyFileHeader || lines[2] != "" {
		t.Fatalf("key file is %q, want the header line and one line of base64", data)
	}
	if key, err := base64.StdEncoding.DecodeString(lines[1]); err != nil || len(key) != 32 {
		t.Fatalf("key line %q: %d bytes, %v", lines[1], len(key), err)
	}
	ring, err := os.ReadFile(filepath.Join(dataDir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	storeKey := k.StoreEncryptionKey()
	if bytes.Contains(ring, storeKey) || bytes.Contains(ring, []byte(base64.StdEncoding.EncodeToString(storeKey)[:20])) {
		t.Error("the keyring file holds a subkey in the clear")
	}
	sealed, err := k.Seal(PurposeRecord, []byte("hello"), []byte("k1"))
	if err != nil {
		t.Fatal(err)
	}
	id := k.MasterKeyID()
	if len(id) != 16 {
		t.Errorf("MasterKeyID %q, want 16 hex digits", id)
	}
	if s := k.String(); !strings.Contains(s, id) {
		t.Errorf("String() = %q, want the key id", s)
	}
	k.Close()

	again := mustOpen(t, keyFile, dataDir)
	if plain, err := again.Unseal(PurposeRecord, sealed, []byte("k1")); err != nil || string(plain) != "hello" {
		t.Fatalf("reopened keyring: %q, %v", plain, err)
	}
	if again.MasterKeyID() != id {
		t.Error("the master key id changed on reopen")
	}
	if !bytes.Equal(again.StoreEncryptionKey(), storeKey) {
		t.Error("the store key changed on reopen")
	}
}

// TestOpenCreates covers the starts that create what is missing.
func TestOpenCreates(t *testing.T) {
	t.Parallel()
	key := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	tests := []struct {
		name    string
		prepare func(t *testing.T, keyFile, dataDir string)
	}{
		{"nothing exists", func(*testing.T, string, string) {}},
		{"empty data directory", func(t *testing.T, _, dataDir string) {
			mkdir(t, dataDir)
		}},
		{"data directory with lost+found", func(t *testing.T, _, dataDir string) {
			mkdir(t, filepath.Join(dataDir, "lost+found"))
		}},
		{"data directory with an interrupted keyring write", func(t *testing.T, _, dataDir string) {
			write(t, filepath.Join(dataDir, ".keyring.tmp123"), "partial", 0o600)
		}},
		{"key file, no data directory", func(t *testing.T, keyFile, _ string) {
			write(t, keyFile, keyFileHeader+"\n"+key+"\n", 0o600)
		}},
		{"key file without final newline", func(t *testing.T, keyFile, _ string) {
			write(t, keyFile, keyFileHeader+"\n"+key, 0o600)
		}},
		{"key file with CRLF and blank lines", func(t *testing.T, keyFile, _ string) {
			write(t, keyFile, keyFileHeader+"\r\n"+key+"\r\n\r\n", 0o600)
		}},
		{"key file mode 0400", func(t *testing.T, keyFile, _ string) {
			write(t, keyFile, keyFileHeader+"\n"+key+"\n", 0o400)
		}},
		{"key file through a symlink", func(t *testing.T, keyFile, _ string) {
			target := filepath.Join(filepath.Dir(filepath.Dir(keyFile)), "real.key")
			write(t, target, keyFileHeader+"\n"+key+"\n", 0o600)
			mkdir(t, filepath.Dir(keyFile))
			if err := os.Symlink(target, keyFile); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, keyFile, dataDir := paths(t)
			tt.prepare(t, keyFile, dataDir)
			keyBefore, _ := os.ReadFile(keyFile)
			k := mustOpen(t, keyFile, dataDir)
			if keyBefore != nil {
				if keyAfter, _ := os.ReadFile(keyFile); !bytes.Equal(keyBefore, keyAfter) {
					t.Error("an existing key file was replaced")
				}
			}
			sealed, err := k.Seal(PurposeRecord, []byte("x"), nil)
			if err != nil {
				t.Fatal(err)
			}
			k.Close()
			k = mustOpen(t, keyFile, dataDir)
			if _, err := k.Unseal(PurposeRecord, sealed, nil); err != nil {
				t.Errorf("after reopening: %v", err)
			}
		})
	}
}

func mkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, path, content string, perm fs.FileMode) {
	t.Helper()
	mkdir(t, filepath.Dir(path))
	if err := os.WriteFile(path, []byte(content), perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, perm); err != nil { // past the umask
		t.Fatal(err)
	}
}

// TestRefusals: every refusal is a fault.Invalid that says what to do, and
// changes nothing on disk.
func TestRefusals(t *testing.T) {
	t.Parallel()
	// installed makes a key file and a keyring, plus data beside the
	// keyring as a store would leave it.
	installed := func(t *testing.T, keyFile, dataDir string) {
		mustOpen(t, keyFile, dataDir).Close()
		write(t, filepath.Join(dataDir, "MANIFEST"), "x", 0o600)
	}
	damageRing := func(f func([]byte) []byte) func(t *testing.T, keyFile, dataDir string) {
		return func(t *testing.T, keyFile, dataDir string) {
			installed(t, keyFile, dataDir)
			path := filepath.Join(dataDir, FileName)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			write(t, path, string(f(data)), 0o600)
		}
	}
	tests := []struct {
		name    string
		prepare func(t *testing.T, keyFile, dataDir string)
		want    string // %[1]s is the key file, %[2]s the data directory
	}{
		{"key readable by group", func(t *testing.T, keyFile, dataDir string) {
			installed(t, keyFile, dataDir)
			os.Chmod(keyFile, 0o640)
		}, "key file %[1]s can be read by group or others (mode 0640); run: chmod 600 %[1]s"},
		{"key readable by others", func(t *testing.T, keyFile, dataDir string) {
			installed(t, keyFile, dataDir)
			os.Chmod(keyFile, 0o604)
		}, "key file %[1]s can be read by group or others (mode 0604); run: chmod 600 %[1]s"},
		{"key readable by group, no data yet", func(t *testing.T, keyFile, _ string) {
			installed(t, keyFile, t.TempDir())
			os.Chmod(keyFile, 0o644)
		}, "key file %[1]s can be read by group or others (mode 0644); run: chmod 600 %[1]s"},
		{"wrong key", func(t *testing.T, keyFile, dataDir string) {
			installed(t, keyFile, dataDir)
			_, otherKey, otherData := paths(t)
			mustOpen(t, otherKey, otherData).Close()
			data, _ := os.ReadFile(otherKey)
			write(t, keyFile, string(data), 0o600)
		}, "key file %[1]s does not match the data in %[2]s (the keyring cannot be unlocked); use the key file that was created with this data"},
		{"key missing", func(t *testing.T, keyFile, dataDir string) {
			installed(t, keyFile, dataDir)
			os.Remove(keyFile)
		}, "key file %[1]s is missing but %[2]s already holds data sealed by a key; restore the key file from your backup (or point key_file at it)"},
		{"key missing, only the keyring", func(t *testing.T, keyFile, dataDir string) {
			mustOpen(t, keyFile, dataDir).Close()
			os.Remove(keyFile)
		}, "key file %[1]s is missing but %[2]s already holds data"},
		{"key missing, data without keyring", func(t *testing.T, _, dataDir string) {
			write(t, filepath.Join(dataDir, "000001.vlog"), "x", 0o600)
		}, "key file %[1]s is missing but %[2]s already holds data"},
		{"key missing, dangling symlink", func(t *testing.T, keyFile, _ string) {
			mkdir(t, filepath.Dir(keyFile))
			os.Symlink(filepath.Join(filepath.Dir(keyFile), "gone"), keyFile)
		}, "key file %[1]s cannot be read"},
		{"keyring missing", func(t *testing.T, keyFile, dataDir string) {
			installed(t, keyFile, dataDir)
			os.Remove(filepath.Join(dataDir, FileName))
		}, "data directory %[2]s has data but no keyring"},
		{"key file not base64", func(t *testing.T, keyFile, dataDir string) {
			installed(t, keyFile, dataDir)
			write(t, keyFile, keyFileHeader+"\nnot base64!\n", 0o600)
		}, "key file %[1]s is damaged"},
		{"key file too short", func(t *testing.T, keyFile, dataDir string) {
			installed(t, keyFile, dataDir)
			write(t, keyFile, keyFileHeader+"\n"+base64.StdEncoding.EncodeToString(make([]byte, 16))+"\n", 0o600)
		}, "key file %[1]s is damaged"},
		{"key file with a third line", func(t *testing.T, keyFile, dataDir string) {
			installed(t, keyFile, dataDir)
			data, _ := os.ReadFile(keyFile)
			write(t, keyFile, string(data)+"extra\n", 0o600)
		}, "key file %[1]s is damaged"},
		{"not a key file", func(t *testing.T, keyFile, dataDir string) {
			installed(t, keyFile, dataDir)
			write(t, keyFile, "-----BEGIN PRIVATE KEY-----\n", 0o600)
		}, "key file %[1]s is not a Sealpost master key file"},
		{"empty key file, no data", func(t *testing.T, keyFile, _ string) {
			write(t, keyFile, "", 0o600)
		}, "key file %[1]s is not a Sealpost master key file"},
		{"key file is a directory", func(t *testing.T, keyFile, _ string) {
			mkdir(t, keyFile)
			os.Chmod(keyFile, 0o700)
		}, "key file %[1]s is not a regular file"},
		{"keyring damaged", damageRing(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }),
			"keyring %[2]s/keyring is damaged (it was sealed by key file %[1]s but does not authenticate); restore it from your backup"},
		{"keyring truncated", damageRing(func(b []byte) []byte { return b[:len(keyringMagic)+3] }),
			"%[2]s/keyring is not a Sealpost keyring"},
		{"keyring replaced", damageRing(func([]byte) []byte { return []byte("hello") }),
			"%[2]s/keyring is not a Sealpost keyring"},
		{"key file inside the data directory", func(t *testing.T, _, dataDir string) {
			mkdir(t, dataDir)
		}, "key file %[2]s/sealpost.key is inside the data directory %[2]s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			root, keyFile, dataDir := paths(t)
			if strings.HasPrefix(tt.name, "key file inside") {
				keyFile = filepath.Join(dataDir, "sealpost.key")
			}
			tt.prepare(t, keyFile, dataDir)
			before := digest(t, root)
			k, err := Open(keyFile, dataDir)
			if err == nil {
				k.Close()
				t.Fatal("Open succeeded")
			}
			want := fmt.Sprintf(tt.want, keyFile, dataDir)
			if msg := fault.Message(err); !strings.Contains(msg, want) {
				t.Errorf("message %q\nwant it to contain %q", msg, want)
			}
			if kind := fault.KindOf(err); kind != fault.Invalid {
				t.Errorf("kind %v, want invalid (error %v)", kind, err)
			}
			if after := digest(t, root); after != before {
				t.Error("the refusal changed files on disk")
			}
		})
	}
}

func TestSealUnseal(t *testing.T) {
	t.Parallel()
	_, keyFile, dataDir := paths(t)
	k := mustOpen(t, keyFile, dataDir)
	if err := k.Rotate(PurposeRecord); err != nil {
		t.Fatal(err)
	}
	sealed, err := k.Seal(PurposeRecord, []byte("secret value"), []byte("key/1"))
	if err != nil {
		t.Fatal(err)
	}
	if len(sealed) != len("secret value")+SealOverhead {
		t.Errorf("sealed %d bytes, want %d", len(sealed), len("secret value")+SealOverhead)
	}
	if bytes.Contains(sealed, []byte("secret")) {
		t.Fatal("sealed output holds the plaintext")
	}
	relabel := func(b []byte, version uint32) []byte {
		c := bytes.Clone(b)
		binary.BigEndian.PutUint32(c[1:], version)
		return c
	}
	tests := []struct {
		name    string
		purpose Purpose
		sealed  []byte
		aad     string
		wantErr error // nil: opens
	}{
		{"right", PurposeRecord, sealed, "key/1", nil},
		{"wrong aad", PurposeRecord, sealed, "key/2", ErrDecrypt},
		{"aad moved into the purpose", PurposeRecord, sealed, "key/1\x00", ErrDecrypt},
		{"wrong purpose", PurposeContent, sealed, "key/1", ErrDecrypt},
		{"older version claimed", PurposeRecord, relabel(sealed, 1), "key/1", ErrDecrypt},
		{"unknown version", PurposeRecord, relabel(sealed, 3), "key/1", ErrDecrypt},
		{"version zero", PurposeRecord, relabel(sealed, 0), "key/1", ErrDecrypt},
		{"other format", PurposeRecord, flip(sealed, 0), "key/1", ErrDecrypt},
		{"flipped ciphertext", PurposeRecord, flip(sealed, len(sealed)/2), "key/1", ErrDecrypt},
		{"flipped tag", PurposeRecord, flip(sealed, len(sealed)-1), "key/1", ErrDecrypt},
		{"truncated", PurposeRecord, sealed[:len(sealed)-1], "key/1", ErrDecrypt},
		{"header only", PurposeRecord, sealed[:sealHeader], "key/1", ErrDecrypt},
		{"empty", PurposeRecord, nil, "key/1", ErrDecrypt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			plain, err := k.Unseal(tt.purpose, tt.sealed, []byte(tt.aad))
			if !errors.Is(err, tt.wantErr) || tt.wantErr == nil && string(plain) != "secret value" {
				t.Errorf("Unseal = %q, %v; want error %v", plain, err, tt.wantErr)
			}
		})
	}

	// Empty plaintext and associated data are fine.
	empty, err := k.Seal(PurposeIndex, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if plain, err := k.Unseal(PurposeIndex, empty, nil); err != nil || len(plain) != 0 {
		t.Errorf("empty round trip: %q, %v", plain, err)
	}
	// Keys of other uses do not seal.
	for _, p := range []Purpose{PurposeStore, PurposeAudit, "nonsense"} {
		if _, err := k.Seal(p, []byte("x"), nil); err == nil {
			t.Errorf("Seal with purpose %q succeeded", p)
		}
		if _, err := k.Unseal(p, sealed, nil); err == nil {
			t.Errorf("Unseal with purpose %q succeeded", p)
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
	_, keyFile, dataDir := paths(t)
	ringPath := filepath.Join(dataDir, FileName)
	k := mustOpen(t, keyFile, dataDir)
	old, _ := k.Seal(PurposeRecord, []byte("old"), nil)
	oldMAC := k.MAC(PurposeAudit, []byte("entry"))
	storeKey := k.StoreEncryptionKey()
	ringBefore, _ := os.ReadFile(ringPath)
	for _, p := range []Purpose{PurposeRecord, PurposeAudit, PurposeRecord} {
		if err := k.Rotate(p); err != nil {
			t.Fatal(err)
		}
	}
	if ringAfter, _ := os.ReadFile(ringPath); bytes.Equal(ringBefore, ringAfter) {
		t.Error("Rotate did not rewrite the keyring")
	}
	fresh, _ := k.Seal(PurposeRecord, []byte("new"), nil)
	if v := binary.BigEndian.Uint32(fresh[1:]); v != 3 {
		t.Errorf("new seals use version %d, want 3", v)
	}
	if v := binary.BigEndian.Uint32(k.MAC(PurposeAudit, nil)); v != 2 {
		t.Errorf("new MACs use version %d, want 2", v)
	}
	if plain, err := k.Unseal(PurposeRecord, old, nil); err != nil || string(plain) != "old" {
		t.Errorf("before reopening: %q, %v", plain, err)
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
	if again, _ := k.Seal(PurposeRecord, nil, nil); binary.BigEndian.Uint32(again[1:]) != 3 {
		t.Error("the current version was not kept across reopening")
	}
	if !k.VerifyMAC(PurposeAudit, []byte("entry"), oldMAC) {
		t.Error("a MAC from before the rotation no longer verifies")
	}
	if k.VerifyMAC(PurposeAudit, []byte("entrx"), oldMAC) {
		t.Error("a MAC verifies for other data")
	}
	newMAC := k.MAC(PurposeAudit, []byte("entry"))
	if bytes.Equal(newMAC, oldMAC) || len(newMAC) != MACSize || !k.VerifyMAC(PurposeAudit, []byte("entry"), newMAC) {
		t.Error("the MAC did not move to the new key, or does not verify")
	}
	for name, mac := range map[string][]byte{
		"short":           newMAC[:MACSize-1],
		"unknown version": append(binary.BigEndian.AppendUint32(nil, 9), newMAC[4:]...),
		"older version":   append(binary.BigEndian.AppendUint32(nil, 1), newMAC[4:]...),
	} {
		if k.VerifyMAC(PurposeAudit, []byte("entry"), mac) {
			t.Errorf("%s MAC verifies", name)
		}
	}
	if k.VerifyMAC(PurposeRecord, []byte("entry"), newMAC) {
		t.Error("VerifyMAC accepted a purpose that does not MAC")
	}
	if !bytes.Equal(k.StoreEncryptionKey(), storeKey) {
		t.Error("the store key changed")
	}
	for _, p := range []Purpose{PurposeStore, "nonsense"} {
		if err := k.Rotate(p); err == nil {
			t.Errorf("Rotate(%q) succeeded", p)
		}
	}
}

// TestRotateConcurrently runs seals, unseals and MACs while keys rotate;
// run it with -race.
func TestRotateConcurrently(t *testing.T) {
	t.Parallel()
	_, keyFile, dataDir := paths(t)
	k := mustOpen(t, keyFile, dataDir)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				aad := fmt.Appendf(nil, "%d/%d", g, i)
				sealed, err := k.Seal(PurposeRecord, aad, aad)
				if err != nil {
					t.Error(err)
					return
				}
				if plain, err := k.Unseal(PurposeRecord, sealed, aad); err != nil || !bytes.Equal(plain, aad) {
					t.Errorf("Unseal: %q, %v", plain, err)
					return
				}
				if !k.VerifyMAC(PurposeAudit, aad, k.MAC(PurposeAudit, aad)) {
					t.Error("MAC does not verify")
					return
				}
			}
		})
	}
	for range 5 {
		if err := k.Rotate(PurposeRecord); err != nil {
			t.Fatal(err)
		}
		if err := k.Rotate(PurposeAudit); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
}

func TestClose(t *testing.T) {
	t.Parallel()
	_, keyFile, dataDir := paths(t)
	k := mustOpen(t, keyFile, dataDir)
	sealed, _ := k.Seal(PurposeRecord, []byte("x"), nil)
	k.Close()
	k.Close()
	if _, err := k.Seal(PurposeRecord, []byte("x"), nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Seal after Close: %v", err)
	}
	if _, err := k.Unseal(PurposeRecord, sealed, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Unseal after Close: %v", err)
	}
	if err := k.Rotate(PurposeRecord); !errors.Is(err, ErrClosed) {
		t.Errorf("Rotate after Close: %v", err)
	}
	if _, _, err := k.NewDataKey(); !errors.Is(err, ErrClosed) {
		t.Errorf("NewDataKey after Close: %v", err)
	}
	if k.VerifyMAC(PurposeAudit, nil, make([]byte, MACSize)) {
		t.Error("VerifyMAC after Close succeeded")
	}
	func() {
		defer func() {
			if r := recover(); r == nil {
				t.Error("MAC after Close did not panic")
			}
		}()
		k.MAC(PurposeAudit, nil)
	}()
	var nilRing *Keyring
	nilRing.Close() // safe after a failed Open
}

func TestDataKeys(t *testing.T) {
	t.Parallel()
	_, keyFile, dataDir := paths(t)
	k := mustOpen(t, keyFile, dataDir)
	d, wrapped, err := k.NewDataKey()
	if err != nil {
		t.Fatal(err)
	}
	if len(wrapped) != WrappedKeySize {
		t.Errorf("wrapped key is %d bytes, want %d", len(wrapped), WrappedKeySize)
	}
	sealed := d.Seal([]byte("subject"), []byte("msg/1"))
	if len(sealed) != len("subject")+ValueOverhead {
		t.Errorf("sealed value is %d bytes, want %d", len(sealed), len("subject")+ValueOverhead)
	}
	again, err := k.UnwrapDataKey(wrapped)
	if err != nil {
		t.Fatal(err)
	}
	if plain, err := again.Open(sealed, []byte("msg/1")); err != nil || string(plain) != "subject" {
		t.Fatalf("unwrapped key: %q, %v", plain, err)
	}
	other, _, _ := k.NewDataKey()
	for name, open := range map[string]func() ([]byte, error){
		"wrong aad":     func() ([]byte, error) { return again.Open(sealed, []byte("msg/2")) },
		"other key":     func() ([]byte, error) { return other.Open(sealed, []byte("msg/1")) },
		"flipped":       func() ([]byte, error) { return again.Open(flip(sealed, 5), []byte("msg/1")) },
		"other format":  func() ([]byte, error) { return again.Open(flip(sealed, 0), []byte("msg/1")) },
		"short":         func() ([]byte, error) { return again.Open(sealed[:ValueOverhead-1], []byte("msg/1")) },
		"record sealed": func() ([]byte, error) { s, _ := k.Seal(PurposeRecord, []byte("x"), nil); return again.Open(s, nil) },
	} {
		if _, err := open(); !errors.Is(err, ErrDecrypt) {
			t.Errorf("%s: %v, want ErrDecrypt", name, err)
		}
	}
	if _, err := k.UnwrapDataKey(flip(wrapped, 10)); !errors.Is(err, ErrDecrypt) {
		t.Errorf("a damaged wrapped key: %v", err)
	}
	if _, err := k.UnwrapDataKeyFor(PurposeBackup, wrapped); !errors.Is(err, ErrDecrypt) {
		t.Errorf("a content key unwrapped as a backup key: %v", err)
	}
	// A value sealed under the content key with the wrapping AAD but of the
	// wrong length is not a key.
	forged, _ := k.Seal(PurposeContent, []byte("short"), wrapAAD)
	if _, err := k.UnwrapDataKey(forged); !errors.Is(err, ErrDecrypt) {
		t.Errorf("a 5-byte key unwrapped: %v", err)
	}
	for _, p := range []Purpose{PurposeRecord, PurposeStore, PurposeAudit, "nonsense"} {
		if _, _, err := k.NewDataKeyFor(p); err == nil {
			t.Errorf("NewDataKeyFor(%q) succeeded", p)
		}
	}
	if s := fmt.Sprintf("%v %+v %#v %s", d, d, d, d); strings.Contains(s, "0x") || strings.Count(s, "keyring.DataKey") != 4 {
		t.Errorf("a data key formats as %q", s)
	}

	// Rotating the content key and rewrapping keeps the data readable.
	for _, p := range []Purpose{PurposeContent, PurposeBackup, PurposeIndex} {
		d, wrapped, err := k.NewDataKeyFor(p)
		if err != nil {
			t.Fatal(err)
		}
		sealed := d.Seal([]byte("body"), nil)
		if err := k.Rotate(p); err != nil {
			t.Fatal(err)
		}
		rewrapped, err := k.RewrapDataKey(p, wrapped)
		if err != nil {
			t.Fatal(err)
		}
		if v := binary.BigEndian.Uint32(rewrapped[1:]); v != 2 {
			t.Errorf("%s: rewrapped under version %d, want 2", p, v)
		}
		for _, w := range [][]byte{wrapped, rewrapped} {
			d, err := k.UnwrapDataKeyFor(p, w)
			if err != nil {
				t.Fatal(err)
			}
			if plain, err := d.Open(sealed, nil); err != nil || string(plain) != "body" {
				t.Errorf("%s: after rewrapping: %q, %v", p, plain, err)
			}
		}
	}
}

func TestStoreEncryptionKey(t *testing.T) {
	t.Parallel()
	_, keyFile, dataDir := paths(t)
	k := mustOpen(t, keyFile, dataDir)
	a := k.StoreEncryptionKey()
	if len(a) != 32 || bytes.Equal(a, make([]byte, 32)) {
		t.Fatalf("store key %d bytes, all zero: %v", len(a), bytes.Equal(a, make([]byte, 32)))
	}
	clear(a)
	if b := k.StoreEncryptionKey(); bytes.Equal(a, b) {
		t.Error("StoreEncryptionKey returns the keyring's own storage")
	}
}
