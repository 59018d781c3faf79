package totp

import (
	"crypto/sha256"
	"encoding/hex"
	"math"
	"regexp"
	"strings"
	"testing"

	"github.com/sealpost/sealpost/appliance/fault"
)

var recoveryFormat = regexp.MustCompile(`^[` + recoveryAlphabet + `]{4}-[` + recoveryAlphabet + `]{4}-[` + recoveryAlphabet + `]{4}$`)

func TestRecoveryCodes(t *testing.T) {
	t.Parallel()
	const n = 10
	codes, hashes, err := RecoveryCodes(n)
	if err != nil {
		t.Fatalf("RecoveryCodes: %v", err)
	}
	if len(codes) != n || len(hashes) != n {
		t.Fatalf("got %d codes and %d hashes, want %d", len(codes), len(hashes), n)
	}
	seen := map[string]bool{}
	for i, c := range codes {
		if !recoveryFormat.MatchString(c) {
			t.Errorf("code %q is not xxxx-xxxx-xxxx from the alphabet", c)
		}
		if strings.ContainsAny(c, "01ilo") {
			t.Errorf("code %q has an ambiguous character", c)
		}
		if seen[c] {
			t.Errorf("code %q appears twice", c)
		}
		seen[c] = true
		sum := sha256.Sum256([]byte(strings.ReplaceAll(c, "-", "")))
		if hashes[i] != hex.EncodeToString(sum[:]) {
			t.Errorf("hash %d is not the SHA-256 of code %q", i, c)
		}
		if got := UseRecoveryCode(hashes, c); got != i {
			t.Errorf("UseRecoveryCode(%q) = %d, want %d", c, got, i)
		}
	}
}

func TestRecoveryCodesCount(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, -1, 101} {
		if _, _, err := RecoveryCodes(n); fault.KindOf(err) != fault.Invalid {
			t.Errorf("RecoveryCodes(%d) err = %v, want an invalid fault", n, err)
		}
	}
	codes, _, err := RecoveryCodes(100)
	if err != nil || len(codes) != 100 {
		t.Errorf("RecoveryCodes(100) = %d codes, err %v", len(codes), err)
	}
}

// TestRecoveryAlphabetUniform draws many characters and checks that none
// is far from its expected share. Without the rejection in randomRecovery,
// the first 256%31 = 8 characters would come up 9/8 as often as the others,
// about 12 standard deviations high with this many draws; the bound is 6.
func TestRecoveryAlphabetUniform(t *testing.T) {
	t.Parallel()
	counts := map[rune]int{}
	const draws = 50000
	for range draws {
		s, err := randomRecovery()
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range s {
			counts[r]++
		}
	}
	total := float64(draws * recoveryLen)
	p := 1 / float64(len(recoveryAlphabet))
	want, sd := total*p, math.Sqrt(total*p*(1-p))
	for _, r := range recoveryAlphabet {
		if got := float64(counts[r]); math.Abs(got-want) > 6*sd {
			t.Errorf("character %q drawn %v times, want %.0f ± %.0f", r, got, want, 6*sd)
		}
	}
	if len(counts) != len(recoveryAlphabet) {
		t.Errorf("drew %d distinct characters, want %d", len(counts), len(recoveryAlphabet))
	}
}

func TestUseRecoveryCode(t *testing.T) {
	t.Parallel()
	codes, hashes, err := RecoveryCodes(3)
	if err != nil {
		t.Fatal(err)
	}
	c := codes[1]
	bare := strings.ReplaceAll(c, "-", "")
	wrong := []byte(bare)
	if wrong[0] == '2' {
		wrong[0] = '3'
	} else {
		wrong[0] = '2'
	}
	tests := []struct {
		name, code string
		want       int
	}{
		{"as shown", c, 1},
		{"upper case", strings.ToUpper(c), 1},
		{"no dashes", bare, 1},
		{"spaces", bare[:4] + " " + bare[4:8] + " " + bare[8:], 1},
		{"extra dashes and spaces", " " + strings.ReplaceAll(c, "-", " - ") + " ", 1},
		{"wrong character", string(wrong), -1},
		{"too short", bare[:11], -1},
		{"too long", bare + "2", -1},
		{"empty", "", -1},
		{"hash itself", hashes[1], -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := UseRecoveryCode(hashes, tt.code); got != tt.want {
				t.Errorf("UseRecoveryCode(%q) = %d, want %d", tt.code, got, tt.want)
			}
		})
	}

	// Once its hash is removed, a code is gone.
	rest := append(append([]string{}, hashes[:1]...), hashes[2:]...)
	if got := UseRecoveryCode(rest, c); got != -1 {
		t.Errorf("used code still matches: %d", got)
	}
	if got := UseRecoveryCode(nil, c); got != -1 {
		t.Errorf("UseRecoveryCode(nil) = %d, want -1", got)
	}
	// Duplicate stored hashes: the first wins.
	if got := UseRecoveryCode([]string{hashes[0], hashes[1], hashes[1]}, c); got != 1 {
		t.Errorf("with a duplicate hash = %d, want 1", got)
	}
	// Upper-case hex from another writer still matches.
	if got := UseRecoveryCode([]string{strings.ToUpper(hashes[1])}, c); got != 0 {
		t.Errorf("upper-case hash = %d, want 0", got)
	}
}
