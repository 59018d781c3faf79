// Package passwords is the password policy. Check refuses passwords that are
// too short or too long, among the 10,000 most commonly used (also with
// digits or symbols added at either end), one repeated character or a short
// repeated pattern, a run along the keyboard or the alphabet, or that
// contain the user's email address or name. It reports every problem at
// once, in words safe to show next to the field, and it neither logs nor
// keeps the password.
package passwords

import (
	_ "embed"
	"fmt"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

const (
	// DefaultMinLength is the minimum length of DefaultPolicy.
	DefaultMinLength = 12
	// MaxLength is the longest password accepted, in Unicode code points.
	MaxLength = 256

	// minPersonal is the shortest personal word checked for: shorter ones
	// ("Li", "Bo") occur by chance.
	minPersonal = 4
	// maxUnit is the longest pattern whose repetition is refused
	// ("abababab…", "abcdabcd…").
	maxUnit = 4
)

// The messages Check returns. They say what to change and nothing of how
// the check is made.
const (
	msgTooLong  = "Use at most 256 characters."
	msgCommon   = "This password is among the most commonly used; choose another."
	msgPersonal = "Do not use your email address or name in your password."
)

// Policy is the password policy (an admin setting later).
type Policy struct {
	// MinLength is the fewest code points a password may have. Zero or
	// less means DefaultMinLength; more than MaxLength means MaxLength.
	MinLength int
}

// DefaultPolicy returns the policy with a minimum length of 12.
func DefaultPolicy() Policy { return Policy{MinLength: DefaultMinLength} }

func (p Policy) minLength() int {
	switch {
	case p.MinLength <= 0:
		return DefaultMinLength
	case p.MinLength > MaxLength:
		return MaxLength
	}
	return p.MinLength
}

// Check returns every problem with password at once, as messages safe to
// show next to the field (e.g. "Use at least 12 characters.", "This password
// is among the most commonly used; choose another.", "Do not use your email
// address or name in your password."), or nil when it is acceptable.
// personal holds the user's email address, its local part and name words
// (words of ≥4 characters are checked case-insensitively as substrings).
// Check also splits each of them into words itself, so passing a whole name
// or address is enough.
func (p Policy) Check(password string, personal ...string) []string {
	var problems []string
	n := utf8.RuneCountInString(password)
	if minLen := p.minLength(); n < minLen {
		problems = append(problems, fmt.Sprintf("Use at least %d characters.", minLen))
	}
	if n > MaxLength {
		problems = append(problems, msgTooLong)
	}
	lower := strings.ToLower(password)
	if commonLower(lower) || (n <= MaxLength && trivial([]rune(lower))) {
		problems = append(problems, msgCommon)
	}
	if containsPersonal(lower, personal) {
		problems = append(problems, msgPersonal)
	}
	return problems
}

// Common reports whether password (case-insensitive) is in the embedded list
// of most common passwords.
func Common(password string) bool {
	_, ok := commonSet()[strings.ToLower(password)]
	return ok
}

// commonLower reports whether lower, a lower-cased password, is a common one
// or a common one with digits, punctuation, symbols or spaces added at
// either end ("password2024!", "1monkey").
func commonLower(lower string) bool {
	set := commonSet()
	if _, ok := set[lower]; ok {
		return true
	}
	core := strings.TrimFunc(lower, func(r rune) bool {
		return unicode.IsDigit(r) || unicode.IsPunct(r) || unicode.IsSymbol(r) || unicode.IsSpace(r)
	})
	if core == "" || core == lower {
		return false
	}
	_, ok := set[core]
	return ok
}

//go:embed 10k-most-common.txt
var commonList string

// commonSet is the embedded list as a set, built on first use.
var commonSet = sync.OnceValue(func() map[string]struct{} { return parseList(commonList) })

// parseList makes a set of the lower-cased non-empty lines of text.
func parseList(text string) map[string]struct{} {
	set := make(map[string]struct{}, 10000)
	for line := range strings.Lines(text) {
		if w := strings.ToLower(strings.TrimRight(line, "\r\n")); w != "" {
			set[w] = struct{}{}
		}
	}
	return set
}

// sequences are runs that people type as passwords: the digits, the
// alphabet, the letter rows of QWERTY, QWERTZ and AZERTY keyboards read
// left to right and top to bottom, the shifted digit row and the columns of
// a QWERTY keyboard. No character appears twice in one sequence.
var sequences = []string{
	"0123456789",
	"abcdefghijklmnopqrstuvwxyz",
	"qwertyuiopasdfghjklzxcvbnm",
	"qwertzuiopasdfghjklyxcvbnm",
	"azertyuiopqsdfghjklmwxcvbn",
	"!@#$%^&*()",
	"1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik,9ol.0p;/",
}

// trivial reports whether rs, a lower-cased password, is one character or a
// pattern of up to maxUnit characters repeated, or only a run along one of
// the sequences, forwards or backwards, wrapping at its end
// ("123456789012", "qwertyuiopas", "zyxwvu").
func trivial(rs []rune) bool {
	if len(rs) < 2 {
		return false
	}
	for unit := 1; unit <= maxUnit && 2*unit <= len(rs); unit++ {
		if repeats(rs, unit) {
			return true
		}
	}
	for _, seq := range sequences {
		if along(rs, seq, 1) || along(rs, seq, -1) {
			return true
		}
	}
	return false
}

// repeats reports whether rs is its first unit runes over and over (a last,
// partial repetition allowed: "abcabcab").
func repeats(rs []rune, unit int) bool {
	for i := unit; i < len(rs); i++ {
		if rs[i] != rs[i-unit] {
			return false
		}
	}
	return true
}

// along reports whether each rune of rs follows the one before it in seq,
// stepping dir (1 or -1) and wrapping around.
func along(rs []rune, seq string, dir int) bool {
	i := strings.IndexRune(seq, rs[0])
	if i < 0 {
		return false
	}
	n := len(seq) // seq is ASCII
	for _, r := range rs[1:] {
		i = ((i+dir)%n + n) % n
		if rune(seq[i]) != r {
			return false
		}
	}
	return true
}

// containsPersonal reports whether lower, a lower-cased password, contains
// any of the personal strings, their local parts if they are addresses, or
// the words they are made of, counting those of at least minPersonal code
// points. The domain of an address counts only as part of the whole
// address: a password may well contain "mail" or "example".
func containsPersonal(lower string, personal []string) bool {
	found := false
	check := func(w string) {
		if !found && utf8.RuneCountInString(w) >= minPersonal && strings.Contains(lower, w) {
			found = true
		}
	}
	for _, p := range personal {
		p = strings.ToLower(strings.TrimSpace(p))
		check(p)
		if at := strings.LastIndexByte(p, '@'); at > 0 {
			p = p[:at]
			check(p)
		}
		for _, w := range strings.FieldsFunc(p, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
			check(w)
		}
	}
	return found
}
