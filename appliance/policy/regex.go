package policy

import (
	"io"
	"math/bits"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// A regular expression rule finds exactly what regexp's FindAllStringIndex
// finds in the text, but Go's regexp has no DFA: an unanchored search runs
// its NFA at every byte (~15 MB/s). So a rule runs, where it can, its
// anchored form only at the places a match can start: where one of the
// literals that every match begins with occurs (found by the automaton's
// single pass), or at runes that can begin a match (its first-rune set).
// Each attempt reads from one rune before the place, through
// \A(?s:.)(?:pattern), so that \b and ^ see their real context. Attempts
// read the text through a budget of twice its length; a rule that runs out,
// or has too many places to try, falls back to the linear unanchored search.

// compiledRegex is a regex rule's plan.
type compiledRegex struct {
	re       *regexp.Regexp
	at0, at1 *regexp.Regexp // anchored at the text's start, and after one rune of context; nil: no anchored plan
	prefix   bool           // the automaton reports the places (prefix literals)
	first    *placeTable    // else this table says where a match can start
	filtered bool           // the rule runs only if one of its required literals occurs
}

const (
	minLiteral  = 3  // bytes: shorter literals are too common to help
	maxLiterals = 32 // per rule
)

// planRegex prepares pattern (valid: parseRegex accepted it). It returns the
// plan and the literals for the automaton: prefix literals (places) or
// required ones (a filter).
func planRegex(pattern string, tree *syntax.Regexp) (x *compiledRegex, prefixes, required []string, err error) {
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, nil, nil, err
	}
	x = &compiledRegex{re: re}
	simple := tree.Simplify()
	if lits := literalSet(prefixLiterals(simple)); lits != nil {
		prefixes = lits
	} else if lits := literalSet(literals(simple)); lits != nil {
		required = lits
	}
	x.prefix = prefixes != nil
	x.filtered = required != nil
	if !x.prefix {
		x.first = newPlaceTable(simple)
	}
	// \Q…\E quotes to the end of the pattern when \E is missing, so the
	// pattern cannot be wrapped; such a rule always scans.
	if (x.prefix || x.first != nil) && !strings.Contains(pattern, `\Q`) {
		x.at0, _ = regexp.Compile(`\A(?:` + pattern + `)`)
		x.at1, _ = regexp.Compile(`\A(?s:.)(?:` + pattern + `)`)
		if x.at0 == nil || x.at1 == nil {
			x.at0, x.at1 = nil, nil
		}
	}
	return x, prefixes, required, nil
}

// literalSet keeps lits if they are few and long enough to search for.
func literalSet(lits []string) []string {
	if len(lits) == 0 || len(lits) > maxLiterals {
		return nil
	}
	for _, l := range lits {
		if len(l) < minLiteral {
			return nil
		}
	}
	return lits
}

// requiredLiterals returns the literals (folded, without white space) one
// of which every match of re contains, if they are worth searching for.
func requiredLiterals(re *syntax.Regexp) []string { return literalSet(literals(re)) }

// foldedPiece folds s for the automaton, at most 256 bytes of it (a prefix
// of a required literal is required too).
func foldedPiece(s string) string {
	s = fold(s)
	for len(s) > 256 {
		_, size := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-size]
	}
	return s
}

// literals returns a set of folded strings one of which every match of re
// contains, or nil.
func literals(re *syntax.Regexp) []string {
	switch re.Op {
	case syntax.OpLiteral:
		// The automaton folds white space, so only a piece without any is
		// sure to be found; the longest one is the best filter.
		best := ""
		for piece := range strings.FieldsFuncSeq(string(re.Rune), isSpace) {
			if len(piece) > len(best) {
				best = piece
			}
		}
		if best == "" {
			return nil
		}
		return []string{foldedPiece(best)}
	case syntax.OpCapture, syntax.OpPlus:
		return literals(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return literals(re.Sub[0])
		}
	case syntax.OpConcat:
		var best []string
		for _, s := range re.Sub {
			if l := literals(s); l != nil && (best == nil || betterLiterals(l, best)) {
				best = l
			}
		}
		return best
	case syntax.OpAlternate:
		return union(re.Sub, literals)
	}
	return nil
}

// prefixLiterals returns a set of folded strings one of which every match
// of re starts with, or nil.
func prefixLiterals(re *syntax.Regexp) []string {
	switch re.Op {
	case syntax.OpLiteral:
		// Cut before white space (folded) and invisible runes (dropped):
		// a hit must start where the match does.
		s := string(re.Rune)
		if i := strings.IndexFunc(s, func(r rune) bool { return isSpace(r) || invisible(r) }); i >= 0 {
			s = s[:i]
		}
		if s == "" {
			return nil
		}
		return []string{foldedPiece(s)}
	case syntax.OpCapture, syntax.OpPlus:
		return prefixLiterals(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return prefixLiterals(re.Sub[0])
		}
	case syntax.OpConcat:
		for _, s := range re.Sub {
			if !zeroWidth(s.Op) {
				return prefixLiterals(s)
			}
		}
	case syntax.OpAlternate:
		return union(re.Sub, prefixLiterals)
	}
	return nil
}

func union(subs []*syntax.Regexp, f func(*syntax.Regexp) []string) []string {
	var all []string
	for _, s := range subs {
		l := f(s)
		if l == nil {
			return nil
		}
		all = append(all, l...)
	}
	slices.Sort(all)
	return slices.Compact(all)
}

func zeroWidth(op syntax.Op) bool {
	switch op {
	case syntax.OpEmptyMatch, syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText, syntax.OpEndText,
		syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return true
	}
	return false
}

// leading returns the assertion a match of re starts with, if re is a
// concatenation that begins with one, else OpNoMatch.
func leading(re *syntax.Regexp) syntax.Op {
	if re.Op == syntax.OpConcat && len(re.Sub) > 0 && zeroWidth(re.Sub[0].Op) {
		return re.Sub[0].Op
	}
	return syntax.OpNoMatch
}

// betterLiterals prefers the set whose shortest string is longer, then the
// smaller set.
func betterLiterals(a, b []string) bool {
	short := func(s []string) int {
		n := len(s[0])
		for _, x := range s {
			n = min(n, len(x))
		}
		return n
	}
	if sa, sb := short(a), short(b); sa != sb {
		return sa > sb
	}
	return len(a) < len(b)
}

// firstSet is a superset of the runes a match can start with.
type firstSet struct {
	ascii    [utf8.RuneSelf]bool
	nonASCII bool
}

func (fs *firstSet) add(lo, hi rune) {
	for r := max(lo, 0); r <= hi && r < utf8.RuneSelf; r++ {
		fs.ascii[r] = true
	}
	if hi >= utf8.RuneSelf {
		fs.nonASCII = true
	}
}

// onlyWord reports whether every rune of the set is an ASCII word character
// (what \b looks at).
func (fs *firstSet) onlyWord() bool {
	if fs.nonASCII {
		return false
	}
	for c, in := range fs.ascii {
		if in && !syntax.IsWordChar(rune(c)) {
			return false
		}
	}
	return true
}

// placeTable says, by the byte at an offset and the one before, whether a
// match can start there. Each alternative of the pattern adds its first
// runes, kept only after a non-word byte if it starts with \b before word
// characters, or after a newline if it starts with (?m)^ or \A.
type placeTable struct {
	ascii    [256]uint8 // placeAny, placeWord, placeLine
	nonASCII bool       // any non-ASCII rune is a place
}

const (
	placeAny = 1 << iota
	placeWord
	placeLine
)

// newPlaceTable returns the table of re, or nil if re can match empty text
// (it cannot once validated; the plan is then to scan).
func newPlaceTable(re *syntax.Regexp) *placeTable {
	for re.Op == syntax.OpCapture {
		re = re.Sub[0]
	}
	alts := []*syntax.Regexp{re}
	if re.Op == syntax.OpAlternate {
		alts = re.Sub
	}
	pt := &placeTable{}
	for _, alt := range alts {
		var fs firstSet
		if first(alt, &fs) {
			return nil
		}
		kind := uint8(placeAny)
		switch leading(alt) {
		case syntax.OpWordBoundary:
			if fs.onlyWord() {
				kind = placeWord
			}
		case syntax.OpBeginLine, syntax.OpBeginText:
			kind = placeLine
		}
		for c, in := range fs.ascii {
			if in {
				pt.ascii[c] |= kind
			}
		}
		pt.nonASCII = pt.nonASCII || fs.nonASCII
	}
	return pt
}

// first adds to fs the runes a match of re can start with and reports
// whether re can match empty text (then what follows it can start a match
// too).
func first(re *syntax.Regexp, fs *firstSet) bool {
	switch re.Op {
	case syntax.OpNoMatch:
		return false
	case syntax.OpLiteral:
		if len(re.Rune) == 0 {
			return true
		}
		r := re.Rune[0]
		fs.add(r, r)
		if re.Flags&syntax.FoldCase != 0 {
			for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
				fs.add(f, f)
			}
		}
		return false
	case syntax.OpCharClass:
		for i := 0; i+1 < len(re.Rune); i += 2 {
			fs.add(re.Rune[i], re.Rune[i+1])
		}
		return false
	case syntax.OpAnyChar:
		fs.add(0, unicode.MaxRune)
		return false
	case syntax.OpAnyCharNotNL:
		fs.add(0, '\n'-1)
		fs.add('\n'+1, unicode.MaxRune)
		return false
	case syntax.OpCapture, syntax.OpPlus:
		return first(re.Sub[0], fs)
	case syntax.OpStar, syntax.OpQuest:
		first(re.Sub[0], fs)
		return true
	case syntax.OpRepeat:
		return first(re.Sub[0], fs) || re.Min == 0
	case syntax.OpConcat:
		for _, s := range re.Sub {
			if !first(s, fs) {
				return false
			}
		}
		return true
	case syntax.OpAlternate:
		empty := false
		for _, s := range re.Sub {
			empty = first(s, fs) || empty
		}
		return empty
	default: // empty match and assertions
		return true
	}
}

// find returns the matches of x in text, at most limit of them, as
// FindAllStringIndex would, trying first the places where a match can
// start, if known (known is false when there were too many to try).
func (x *compiledRegex) find(text string, places []int, known bool, limit int) [][]int {
	if known && x.at1 != nil {
		if x.prefix {
			slices.Sort(places)
			places = slices.Compact(places)
		}
		if out, ok := x.attempts(text, places, limit); ok {
			return out
		}
	}
	return x.re.FindAllStringIndex(text, limit)
}

// maxPlaces is how many places of a text are worth trying one by one
// rather than scanning it.
func maxPlaces(text string) int { return len(text)/8 + 16 }

// placeIndex finds where the matches of many regex rules can start, in one
// pass over a text: per byte, a bit mask of the rules for which it is a
// place (in chunks of 64 rules).
type placeIndex struct {
	rules           []int // rule index per bit
	any, word, line [][256]uint64
	nonASCII        []uint64
}

// add makes rule the next bit of the index.
func (pi *placeIndex) add(rule int, pt *placeTable) {
	k, bit := len(pi.rules)/64, uint64(1)<<(len(pi.rules)%64)
	if k == len(pi.any) {
		pi.any = append(pi.any, [256]uint64{})
		pi.word = append(pi.word, [256]uint64{})
		pi.line = append(pi.line, [256]uint64{})
		pi.nonASCII = append(pi.nonASCII, 0)
	}
	pi.rules = append(pi.rules, rule)
	for c, kind := range pt.ascii {
		if kind&placeAny != 0 {
			pi.any[k][c] |= bit
		}
		if kind&placeWord != 0 {
			pi.word[k][c] |= bit
		}
		if kind&placeLine != 0 {
			pi.line[k][c] |= bit
		}
	}
	if pt.nonASCII {
		pi.nonASCII[k] |= bit
	}
}

// placeEntry is a place of some rules of one chunk: those of mask's bits.
type placeEntry struct {
	pos  int
	mask uint64
}

// places appends to out[k] the places in text of the rules of chunk k
// whose bits are set in active; a rule with more than max places gets its
// bit cleared (its places are unknown). counts is scratch, 64 long.
func (pi *placeIndex) places(text string, active []uint64, max int, out [][]placeEntry, counts []int) {
	for k := range active {
		act := active[k]
		if act == 0 {
			continue
		}
		clear(counts)
		any, word, line := &pi.any[k], &pi.word[k], &pi.line[k]
		decode := pi.nonASCII[k]&act != 0
		add := func(m uint64, i int) {
			out[k] = append(out[k], placeEntry{i, m})
			for ; m != 0; m &= m - 1 {
				b := bits.TrailingZeros64(m)
				if counts[b]++; counts[b] > max {
					act &^= 1 << b
				}
			}
		}
		for i := 0; i < len(text) && act != 0; {
			c := text[i]
			if c >= utf8.RuneSelf {
				size := 1
				if decode {
					// Decoded as regexp does: a stray byte is a rune of its own.
					_, size = utf8.DecodeRuneInString(text[i:])
					if m := pi.nonASCII[k] & act; m != 0 {
						add(m, i)
					}
				}
				i += size
				continue
			}
			m := any[c]
			if w, l := word[c], line[c]; w|l != 0 {
				switch {
				case i == 0:
					m |= w | l
				case text[i-1] == '\n':
					m |= w | l
				case text[i-1] >= utf8.RuneSelf || !syntax.IsWordChar(rune(text[i-1])):
					m |= w
				}
			}
			if m &= act; m != 0 {
				add(m, i)
			}
			i++
		}
		active[k] = act
	}
}

// placesOf appends to dst the places of the rule of bit b in entries.
func placesOf(dst []int, entries []placeEntry, b int) []int {
	bit := uint64(1) << b
	for _, e := range entries {
		if e.mask&bit != 0 {
			dst = append(dst, e.pos)
		}
	}
	return dst
}

// attempts runs the anchored forms at the places, in order, skipping those
// inside the previous match, like an unanchored search. It reports false
// if the reading budget ran out (or the text's encoding is broken at a
// place), and the caller must search the whole text instead.
func (x *compiledRegex) attempts(text string, places []int, limit int) ([][]int, bool) {
	var out [][]int
	rd := &budgetReader{s: text, left: 2*len(text) + 4096}
	last := 0
	for _, h := range places {
		if limit >= 0 && len(out) >= limit {
			break
		}
		if h < last {
			continue
		}
		var loc []int
		from := 0
		if h == 0 {
			rd.i = 0
			loc = x.at0.FindReaderIndex(rd)
		} else {
			_, w := utf8.DecodeLastRuneInString(text[:h])
			if _, fw := utf8.DecodeRuneInString(text[h-w:]); fw != w {
				return nil, false
			}
			from = h - w
			rd.i = from
			loc = x.at1.FindReaderIndex(rd)
		}
		if rd.over {
			return nil, false
		}
		if loc == nil || from+loc[1] <= h {
			continue
		}
		out = append(out, []int{h, from + loc[1]})
		last = from + loc[1]
	}
	return out, true
}

// budgetReader reads s from i as runes, as regexp reads a string, until
// left bytes have been read in all; then it reports the end and sets over.
type budgetReader struct {
	s    string
	i    int
	left int
	over bool
}

func (r *budgetReader) ReadRune() (rune, int, error) {
	if r.i >= len(r.s) {
		return 0, 0, io.EOF
	}
	if r.left <= 0 {
		r.over = true
		return 0, 0, io.EOF
	}
	c := r.s[r.i]
	if c < utf8.RuneSelf {
		r.i++
		r.left--
		return rune(c), 1, nil
	}
	ru, size := utf8.DecodeRuneInString(r.s[r.i:])
	r.i += size
	r.left -= size
	return ru, size, nil
}
