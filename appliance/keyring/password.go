package keyring

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Password hashing parameters: OWASP's minimum for argon2id (19 MiB, two
// passes, one lane), about 26 ms on the reference machine.
const (
	argonMemoryKiB = 19 * 1024
	argonTime      = 2
	argonThreads   = 1
	argonSaltSize  = 16
	argonHashSize  = 32
	maxPHCSize     = 512
)

// ErrPasswordHash means a stored hash is not one this package can check.
var ErrPasswordHash = errors.New("keyring: malformed password hash")

// hashSlots bounds concurrent hashing, so a flood of sign-ins cannot take
// all memory (each hash holds 19 MiB) or starve other work of CPU.
var hashSlots = make(chan struct{}, runtime.NumCPU())

func acquire(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case hashSlots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func release() { <-hashSlots }

// HashPassword returns an argon2id hash of password as a PHC string,
// $argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash> (16-byte salt, 32-byte hash,
// unpadded standard base64). At most runtime.NumCPU() hashes run at once;
// HashPassword waits for a slot, or returns ctx's error if ctx ends first.
func HashPassword(ctx context.Context, password string) (string, error) {
	salt := make([]byte, argonSaltSize)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("make salt: %w", err)
	}
	if err := acquire(ctx); err != nil {
		return "", err
	}
	defer release()
	hash := argon2.IDKey([]byte(password), salt, argonTime, argonMemoryKiB, argonThreads, argonHashSize)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, argonMemoryKiB, argonTime, argonThreads, b64.EncodeToString(salt), b64.EncodeToString(hash)), nil
}

// phc is a parsed argon2id hash.
type phc struct {
	memory  uint32
	time    uint32
	threads uint8
	salt    []byte
	hash    []byte
}

func parsePHC(s string) (phc, error) {
	var p phc
	if len(s) > maxPHCSize {
		return p, ErrPasswordHash
	}
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" || parts[2] != fmt.Sprintf("v=%d", argon2.Version) {
		return p, ErrPasswordHash
	}
	var threads uint32
	if n, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.memory, &p.time, &threads); err != nil || n != 3 ||
		fmt.Sprintf("m=%d,t=%d,p=%d", p.memory, p.time, threads) != parts[3] {
		return p, ErrPasswordHash
	}
	// The hash comes from the store, but an absurd one must not stall the host.
	if p.memory < 8 || p.memory > 1<<20 || p.time < 1 || p.time > 20 || threads < 1 || threads > 16 {
		return p, ErrPasswordHash
	}
	p.threads = uint8(threads)
	var err error
	b64 := base64.RawStdEncoding
	if p.salt, err = b64.DecodeString(parts[4]); err != nil || len(p.salt) < 8 {
		return p, ErrPasswordHash
	}
	if p.hash, err = b64.DecodeString(parts[5]); err != nil || len(p.hash) < 16 || len(p.hash) > 64 {
		return p, ErrPasswordHash
	}
	return p, nil
}

// VerifyPassword reports whether password matches the PHC hash (compared in
// constant time), and whether the hash should be replaced because its
// parameters are not the current ones. A malformed hash, or one whose
// parameters would stall the host (memory over 1 GiB, t over 20, p over 16),
// gives ErrPasswordHash. It shares HashPassword's slots.
func VerifyPassword(ctx context.Context, hash, password string) (ok, needsRehash bool, err error) {
	p, err := parsePHC(hash)
	if err != nil {
		return false, false, err
	}
	if err := acquire(ctx); err != nil {
		return false, false, err
	}
	defer release()
	got := argon2.IDKey([]byte(password), p.salt, p.time, p.memory, p.threads, uint32(len(p.hash)))
	ok = subtle.ConstantTimeCompare(got, p.hash) == 1
	needsRehash = p.memory != argonMemoryKiB || p.time != argonTime || p.threads != argonThreads ||
		len(p.salt) != argonSaltSize || len(p.hash) != argonHashSize
	return ok, needsRehash, nil
}
