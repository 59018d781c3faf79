package totp

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/sealpost/sealpost/appliance/fault"
)

// recoveryAlphabet has no characters that are easily mistaken for one
// another: no 0, 1, i, l or o. A code of twelve of them holds 59 bits.
const recoveryAlphabet = "23456789abcdefghjkmnpqrstuvwxyz"

const (
	recoveryGroups    = 3
	recoveryGroupLen  = 4
	recoveryLen       = recoveryGroups * recoveryGroupLen
	maxRecoveryCodes  = 100
	recoveryRejectMin = 256 - 256%len(recoveryAlphabet) // bytes at or above this would bias the draw
)

// RecoveryCodes makes n single-use codes formatted xxxx-xxxx-xxxx from an
// alphabet without ambiguous characters, and their hashes (SHA-256, hex) to
// store; the codes are shown once. The codes are distinct.
func RecoveryCodes(n int) (codes, hashes []string, err error) {
	if n < 1 || n > maxRecoveryCodes {
		return nil, nil, fault.E(fault.Invalid, fmt.Sprintf("the number of recovery codes must be between 1 and %d", maxRecoveryCodes), nil)
	}
	codes = make([]string, 0, n)
	hashes = make([]string, 0, n)
	seen := make(map[string]bool, n)
	for len(codes) < n {
		raw, err := randomRecovery()
		if err != nil {
			return nil, nil, err
		}
		if seen[raw] {
			continue
		}
		seen[raw] = true
		codes = append(codes, raw[0:4]+"-"+raw[4:8]+"-"+raw[8:12])
		hashes = append(hashes, hashRecovery(raw))
	}
	return codes, hashes, nil
}

// randomRecovery draws recoveryLen characters uniformly from
// recoveryAlphabet, by rejecting the random bytes that would favour the
// first characters.
func randomRecovery() (string, error) {
	out := make([]byte, 0, recoveryLen)
	var buf [2 * recoveryLen]byte
	for len(out) < recoveryLen {
		if _, err := rand.Read(buf[:]); err != nil {
			return "", fmt.Errorf("read random recovery code: %w", err)
		}
		for _, b := range buf {
			if int(b) >= recoveryRejectMin {
				continue
			}
			out = append(out, recoveryAlphabet[int(b)%len(recoveryAlphabet)])
			if len(out) == recoveryLen {
				break
			}
		}
	}
	return string(out), nil
}

// UseRecoveryCode reports which stored hash matches code (normalized:
// case-insensitive, spaces and dashes ignored), compared in constant time
// across all hashes; -1 if none. The caller removes the hash it returns, so
// that the code cannot be used again.
func UseRecoveryCode(hashes []string, code string) int {
	norm := normalizeRecovery(code)
	if len(norm) != recoveryLen {
		return -1
	}
	want := []byte(hashRecovery(norm))
	found := -1
	for i, h := range hashes {
		eq := subtle.ConstantTimeCompare([]byte(strings.ToLower(h)), want)
		// Keep the first match without branching on it.
		first := eq & subtle.ConstantTimeEq(int32(found), -1)
		found = subtle.ConstantTimeSelect(first, i, found)
	}
	return found
}

// normalizeRecovery lowercases code and drops spaces and dashes.
func normalizeRecovery(code string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == ' ' || r == '-':
			return -1
		case r >= 'A' && r <= 'Z':
			return r + ('a' - 'A')
		}
		return r
	}, code)
}

// hashRecovery hashes the normalized form, without dashes.
func hashRecovery(norm string) string {
	sum := sha256.Sum256([]byte(norm))
	return hex.EncodeToString(sum[:])
}
