package keyring

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"
)

// phcFor builds a PHC string for password with the given parameters, as an
// older version of Sealpost might have stored it.
func phcFor(password string, m, t uint32, p uint8, saltLen, hashLen int) string {
	salt := []byte(strings.Repeat("s", saltLen))
	hash := argon2.IDKey([]byte(password), salt, t, m, p, uint32(hashLen))
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$%s$%s", m, t, p, b64.EncodeToString(salt), b64.EncodeToString(hash))
}

func TestPasswords(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const pw = "correct horse battery staple"
	hash, err := HashPassword(ctx, pw)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(hash, "$")
	if !strings.HasPrefix(hash, "$argon2id$v=19$m=19456,t=2,p=1$") || len(parts) != 6 {
		t.Fatalf("hash %q is not the expected PHC form", hash)
	}
	if salt, err := base64.RawStdEncoding.DecodeString(parts[4]); err != nil || len(salt) != 16 {
		t.Errorf("salt %q: %d bytes, %v", parts[4], len(salt), err)
	}
	if sum, err := base64.RawStdEncoding.DecodeString(parts[5]); err != nil || len(sum) != 32 {
		t.Errorf("hash %q: %d bytes, %v", parts[5], len(sum), err)
	}
	if again, _ := HashPassword(ctx, pw); again == hash {
		t.Error("two hashes of one password are equal: the salt is not random")
	}

	tests := []struct {
		name            string
		phc, password   string
		ok, needsRehash bool
	}{
		{"right password", hash, pw, true, false},
		{"wrong password", hash, pw + "r", false, false},
		{"empty password", hash, "", false, false},
		{"weaker memory and time", phcFor(pw, 8192, 1, 1, 16, 32), pw, true, true},
		{"more lanes", phcFor(pw, 19456, 2, 2, 16, 32), pw, true, true},
		{"shorter salt", phcFor(pw, 19456, 2, 1, 8, 32), pw, true, true},
		{"longer hash", phcFor(pw, 19456, 2, 1, 16, 64), pw, true, true},
		{"current parameters, built elsewhere", phcFor(pw, 19456, 2, 1, 16, 32), pw, true, false},
		{"older parameters, wrong password", phcFor(pw, 8192, 1, 1, 16, 32), "x", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ok, rehash, err := VerifyPassword(ctx, tt.phc, tt.password)
			if err != nil || ok != tt.ok || rehash != tt.needsRehash {
				t.Errorf("VerifyPassword = %v, %v, %v; want %v, %v", ok, rehash, err, tt.ok, tt.needsRehash)
			}
		})
	}
}

func TestMalformedPasswordHashes(t *testing.T) {
	t.Parallel()
	const salt, sum = "c2FsdHNhbHRzYWx0c2FsdA", "aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g"
	for _, bad := range []string{
		"",
		"argon2id$v=19$m=19456,t=2,p=1$" + salt + "$" + sum,
		"$argon2i$v=19$m=19456,t=2,p=1$" + salt + "$" + sum,
		"$argon2id$v=16$m=19456,t=2,p=1$" + salt + "$" + sum,
		"$argon2id$m=19456,t=2,p=1$" + salt + "$" + sum,
		"$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$" + sum + "$",
		"$argon2id$v=19$m=19456,t=2,p=1$" + salt,
		"$argon2id$v=19$m=2000000,t=2,p=1$" + salt + "$" + sum, // over 1 GiB
		"$argon2id$v=19$m=19456,t=21,p=1$" + salt + "$" + sum,
		"$argon2id$v=19$m=19456,t=2,p=17$" + salt + "$" + sum,
		"$argon2id$v=19$m=19456,t=0,p=1$" + salt + "$" + sum,
		"$argon2id$v=19$m=19456,t=2,p=0$" + salt + "$" + sum,
		"$argon2id$v=19$m=19456,t=2,p=1,x=1$" + salt + "$" + sum,
		"$argon2id$v=19$t=2,m=19456,p=1$" + salt + "$" + sum,
		"$argon2id$v=19$m=019456,t=2,p=1$" + salt + "$" + sum,
		"$argon2id$v=19$m=+19456,t=2,p=1$" + salt + "$" + sum,
		"$argon2id$v=19$m=-1,t=2,p=1$" + salt + "$" + sum,
		"$argon2id$v=19$m=99999999999,t=2,p=1$" + salt + "$" + sum,
		"$argon2id$v=19$m=19456,t=2,p=1$!!$" + sum,
		"$argon2id$v=19$m=19456,t=2,p=1$" + salt + "=$" + sum,
		"$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$" + sum,       // 4-byte salt
		"$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$aGFzaA", // 4-byte hash
		"$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$" + strings.Repeat("A", 600),
	} {
		if _, _, err := VerifyPassword(context.Background(), bad, "x"); !errors.Is(err, ErrPasswordHash) {
			t.Errorf("malformed hash %q: %v, want ErrPasswordHash", bad, err)
		}
	}
}

// TestPasswordSlots: with every slot taken, hashing waits and gives up when
// its context ends.
func TestPasswordSlots(t *testing.T) {
	// Not parallel: it takes every slot.
	for range cap(hashSlots) {
		hashSlots <- struct{}{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	go func() { _, err := HashPassword(ctx, "x"); done <- err }()
	go func() { _, _, err := VerifyPassword(ctx, phcFor("x", 8, 1, 1, 16, 32), "x"); done <- err }()
	cancel()
	errs := []error{<-done, <-done}
	for range cap(hashSlots) {
		<-hashSlots
	}
	for _, err := range errs {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("with every slot busy and the context cancelled: %v", err)
		}
	}
	if _, err := HashPassword(context.Background(), "x"); err != nil {
		t.Errorf("after the slots were freed: %v", err)
	}
}

func FuzzParsePHC(f *testing.F) {
	f.Add("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g")
	f.Add("$argon2id$v=19$m=1,t=1,p=1$$")
	f.Add("$argon2id$v=19$m=4294967295,t=4294967295,p=255$AAAA$AAAA")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parsePHC(s)
		if err != nil {
			return
		}
		if p.memory > 1<<20 || p.time < 1 || p.time > 20 || p.threads < 1 || p.threads > 16 ||
			len(p.salt) < 8 || len(p.hash) < 16 || len(p.hash) > 64 {
			t.Fatalf("accepted %q with parameters %+v", s, p)
		}
	})
}
