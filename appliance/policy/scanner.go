package policy

import (
	"bytes"
	"unicode"
	"unicode/utf8"
)

// A lexicon looks at a text through a scanner: the text's tokens (maximal
// runs of letters and digits) and its numbers (digit groups joined by single
// spaces or hyphens). Every number the lexicons know is ASCII, so only
// ASCII tokens are kept, and only those that could start one: tokens with a
// digit, and upper-case words of 8 or 11 letters (BICs). A token is
// delimited by construction: the runes around it are not letters or digits,
// in any script, so "é4111…" or "ID4111…" hold no card number.

// maxToken is the longest token kept (an IBAN has at most 34 characters).
const maxToken = 64

// Number candidates with more groups or digits than this are only looked
// at one group at a time.
const (
	maxGroups    = 8
	maxNumDigits = 24
)

// nearWindow is how far (in bytes) a keyword may end before the number it
// vouches for.
const nearWindow = 32

type token struct {
	start, end int
	digits     int // ASCII digits in it
	upper      int // ASCII upper-case letters in it
}

func (t token) allDigits() bool { return t.digits == t.end-t.start }

// numCand is a number: one group of digits, or groups joined by one
// separator, spaces or hyphens, the same throughout.
type numCand struct {
	start, end int
	sep        byte   // ' ' or '-', or 0 for a single group
	groups     []int  // the number of digits of each group
	digits     []byte // the digits without separators
}

// shape reports whether c's groups have exactly the lengths gs.
func (c *numCand) shape(gs ...int) bool {
	if len(c.groups) != len(gs) {
		return false
	}
	for i, g := range gs {
		if c.groups[i] != g {
			return false
		}
	}
	return true
}

// single reports whether c is one group of n digits.
func (c *numCand) single(n int) bool { return c.sep == 0 && len(c.digits) == n }

type scanner struct {
	text string
	toks []token
}

// ASCII character classes.
const (
	cDigit = 1 << iota
	cUpper
	cLower
)

var asciiClass = func() (t [utf8.RuneSelf]uint8) {
	for c := '0'; c <= '9'; c++ {
		t[c] = cDigit
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = cUpper
		t[c+'a'-'A'] = cLower
	}
	return t
}()

func isAlnum(c byte) bool  { return c < utf8.RuneSelf && asciiClass[c] != 0 }
func isDigit(c byte) bool  { return '0' <= c && c <= '9' }
func isUpper(c byte) bool  { return 'A' <= c && c <= 'Z' }
func isLetter(c byte) bool { return c < utf8.RuneSelf && asciiClass[c]&(cUpper|cLower) != 0 }

// isWordRune reports whether r belongs to a word: a letter, a digit or a
// combining mark, in any script, or an underscore.
func isWordRune(r rune) bool {
	if r < utf8.RuneSelf {
		return asciiClass[r] != 0 || r == '_'
	}
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r)
}

// tokenRune is isWordRune without the underscore: "card_4111…" holds a
// delimited number.
func tokenRune(r rune) bool { return r != '_' && isWordRune(r) }

// newScanner tokenizes text, appending the tokens to buf.
func newScanner(text string, buf []token) *scanner {
	s := &scanner{text: text, toks: buf}
	for i := 0; i < len(text); {
		c := text[i]
		if c < utf8.RuneSelf && asciiClass[c] == 0 {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(text[i:])
			if !tokenRune(r) {
				i += size
				continue
			}
		}
		t := token{start: i}
		ascii := true
		for i < len(text) {
			c := text[i]
			if c < utf8.RuneSelf {
				k := asciiClass[c]
				if k == 0 {
					break
				}
				if k == cDigit {
					t.digits++
				} else if k == cUpper {
					t.upper++
				}
				i++
				continue
			}
			r, size := utf8.DecodeRuneInString(text[i:])
			if !tokenRune(r) {
				break
			}
			ascii = false
			i += size
		}
		t.end = i
		n := t.end - t.start
		if ascii && n <= maxToken && (t.digits > 0 || t.upper == n && (n == 8 || n == 11)) {
			s.toks = append(s.toks, t)
		}
	}
	return s
}

// joined returns the separator between tokens i and i+1 if both are all
// digits and one space or hyphen apart, else 0.
func (s *scanner) joined(i int) byte {
	if i < 0 || i+1 >= len(s.toks) {
		return 0
	}
	a, b := s.toks[i], s.toks[i+1]
	if b.start-a.end != 1 || !a.allDigits() || !b.allDigits() {
		return 0
	}
	if c := s.text[a.end]; c == ' ' || c == '-' {
		return c
	}
	return 0
}

// decimalAround reports whether the number from start to end goes on as a
// decimal or thousands part: "4111….5", "1,4111…".
func (s *scanner) decimalAround(start, end int) bool {
	t := s.text
	if start >= 2 && (t[start-1] == '.' || t[start-1] == ',') && isDigit(t[start-2]) {
		return true
	}
	return end+1 < len(t) && (t[end] == '.' || t[end] == ',') && isDigit(t[end+1])
}

// numbers calls fn with every number candidate, in order. Groups joined by
// a hyphen belong together: a run of space-joined groups that goes on with
// a hyphen ("4111 1111 1111 1111-22") is no candidate. Space-joined groups
// are also candidates one by one, since prose puts numbers side by side
// ("order 2023 4111111111111111").
func (s *scanner) numbers(fn func(c *numCand)) {
	var c numCand
	var groups [maxGroups]int
	var digits [maxNumDigits]byte
	emit := func(first, last int, sep byte) {
		start, end := s.toks[first].start, s.toks[last].end
		if last-first+1 > maxGroups || s.decimalAround(start, end) {
			return
		}
		c = numCand{start: start, end: end, sep: sep, groups: groups[:0], digits: digits[:0]}
		for k := first; k <= last; k++ {
			t := s.toks[k]
			if len(c.digits)+t.end-t.start > maxNumDigits {
				return
			}
			c.groups = append(c.groups, t.end-t.start)
			c.digits = append(c.digits, s.text[t.start:t.end]...)
		}
		fn(&c)
	}
	for i := 0; i < len(s.toks); {
		if !s.toks[i].allDigits() {
			i++
			continue
		}
		j, sep := i, byte(0)
		for {
			js := s.joined(j)
			if js == 0 || sep != 0 && js != sep {
				break
			}
			sep = js
			j++
		}
		hyphenBefore := s.joined(i-1) == '-'
		hyphenAfter := s.joined(j) == '-'
		if !hyphenBefore && !hyphenAfter {
			emit(i, j, sep)
		}
		if sep == ' ' {
			for k := i; k <= j; k++ {
				if k == i && hyphenBefore || k == j && hyphenAfter {
					continue
				}
				emit(k, k, 0)
			}
		}
		if j > i && s.joined(j) != 0 {
			i = j // the separator changes at j: j starts the next run
		} else {
			i = j + 1
		}
	}
}

// near reports whether one of the keywords (lower-case ASCII) ends, as a
// whole word, at most nearWindow bytes before start.
func (s *scanner) near(start int, keywords []string) bool {
	longest := 0
	for _, k := range keywords {
		longest = max(longest, len(k))
	}
	lo := max(0, start-nearWindow-longest)
	var buf [128]byte
	w := buf[:0]
	for i := lo; i < start; i++ {
		c := s.text[i]
		if isUpper(c) {
			c += 'a' - 'A'
		}
		w = append(w, c)
	}
	for _, k := range keywords {
		for off := 0; ; off++ {
			j := bytes.Index(w[off:], []byte(k))
			if j < 0 {
				break
			}
			off += j
			a, b := lo+off, lo+off+len(k)
			if start-b > nearWindow {
				continue
			}
			if isAlnum(k[0]) && a > 0 && wordByte(s.text[a-1]) {
				continue
			}
			if isAlnum(k[len(k)-1]) && b < len(s.text) && wordByte(s.text[b]) {
				continue
			}
			return true
		}
	}
	return false
}

// wordByte reports whether c may be part of a word: an ASCII letter or
// digit, or a byte of a non-ASCII rune (which may be a letter).
func wordByte(c byte) bool { return c >= utf8.RuneSelf || asciiClass[c] != 0 }

// alnumRun returns the end of the run of ASCII letters and digits at i, and
// whether it ends at a delimiter (not inside a longer non-ASCII word).
func (s *scanner) alnumRun(i int) (end int, delimited bool) {
	end = i
	for end < len(s.text) && isAlnum(s.text[end]) {
		end++
	}
	return end, s.delimitedAt(end)
}

// delimitedAt reports whether no letter or digit starts at i.
func (s *scanner) delimitedAt(i int) bool {
	if i >= len(s.text) {
		return true
	}
	r, _ := utf8.DecodeRuneInString(s.text[i:])
	return !tokenRune(r)
}

// delimitedBefore reports whether no letter or digit ends at i.
func (s *scanner) delimitedBefore(i int) bool {
	if i <= 0 {
		return true
	}
	r, _ := utf8.DecodeLastRuneInString(s.text[:i])
	return !tokenRune(r)
}

// mask replaces every ASCII letter and digit of m but the last keep with
// '*', leaving separators: mask("4111 1111 1111 1111", 4) is
// "**** **** **** 1111". The result is as long as m.
func mask(m string, keep int) string {
	b := []byte(m)
	for i := len(b) - 1; i >= 0; i-- {
		if isAlnum(b[i]) {
			if keep > 0 {
				keep--
			} else {
				b[i] = '*'
			}
		}
	}
	return string(b)
}

func sameDigits(d []byte) bool {
	for _, c := range d[1:] {
		if c != d[0] {
			return false
		}
	}
	return true
}

// luhn reports whether the digits end in a valid Luhn (mod 10) check digit.
func luhn(d []byte) bool {
	sum := 0
	for i := range d {
		v := int(d[len(d)-1-i] - '0')
		if i%2 == 1 {
			v *= 2
			if v > 9 {
				v -= 9
			}
		}
		sum += v
	}
	return sum%10 == 0
}

// num returns the value of the decimal digits d.
func num(d []byte) int {
	n := 0
	for _, c := range d {
		n = n*10 + int(c-'0')
	}
	return n
}
