package policy

import (
	"slices"
	"unicode"
	"unicode/utf8"
)

// automaton finds many strings at once in one pass over a text
// (Aho–Corasick). It matches on the folded text: every rune is replaced by
// foldRune's choice from its case-folding orbit, every run of white space
// by one space, and invisible format characters (zero-width spaces, soft
// hyphens) are dropped, so "TOP  Se\u00ADcret" contains "top secret".
// Reported offsets are those of the original text. Its work is linear in the text plus the number
// of matches, whatever the number of strings.
type automaton struct {
	root   [256]int32 // the root's transitions, dense: most steps start there
	edgeLo []int32    // state → its edges edgeB[edgeLo[s]:edgeLo[s+1]], sorted
	edgeB  []byte
	edgeTo []int32
	fail   []int32
	out    []int32 // state → first output index, or -1
	outs   []int32 // output index → pattern id, with outsNext chaining
	next   []int32
	dict   []int32 // state → nearest state on the fail chain with output, or -1
	lens   []int   // pattern id → folded length in bytes
	maxLen int

	// The dense form, when small enough: every state's transition on every
	// byte class (bytes no pattern holds are class 0, which leads to the
	// root), and whether a state has output along its dictionary chain.
	dense  []int32
	class  [256]uint8
	nclass int
	emits  []bool
}

// maxDense bounds the dense table (entries of 4 bytes).
const maxDense = 1 << 20

// ringSize bounds the folded length of one pattern (a power of two).
const ringSize = 1024

// foldRune maps r to one representative of its simple case-folding orbit:
// the lower-case ASCII letter if the orbit has one ('K', 'k' and the Kelvin
// sign all become 'k'), else the smallest rune of the orbit. Go's regexp
// folds case with the same orbits.
func foldRune(r rune) rune {
	if r < utf8.RuneSelf {
		if 'A' <= r && r <= 'Z' {
			r += 'a' - 'A'
		}
		return r
	}
	m := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		m = min(m, f)
	}
	if 'A' <= m && m <= 'Z' {
		m += 'a' - 'A'
	}
	return m
}

func isSpace(r rune) bool {
	if r < utf8.RuneSelf {
		return r == ' ' || '\t' <= r && r <= '\r'
	}
	return unicode.IsSpace(r)
}

// invisible reports whether r is a format character the automaton drops.
func invisible(r rune) bool { return r >= utf8.RuneSelf && unicode.Is(unicode.Cf, r) }

// fold returns the folded form of s, as the automaton sees text.
func fold(s string) string {
	b := make([]byte, 0, len(s))
	space := false
	for _, r := range s {
		if invisible(r) {
			continue
		}
		if isSpace(r) {
			if !space {
				b = append(b, ' ')
			}
			space = true
			continue
		}
		space = false
		b = utf8.AppendRune(b, foldRune(r))
	}
	return string(b)
}

// buildAutomaton builds an automaton for the folded strings pats (pattern
// id = index). Each must be non-empty and shorter than ringSize.
func buildAutomaton(pats []string) *automaton {
	type node struct {
		child map[byte]int32
		out   []int32
	}
	nodes := []node{{}}
	a := &automaton{lens: make([]int, len(pats))}
	for id, p := range pats {
		a.lens[id] = len(p)
		a.maxLen = max(a.maxLen, len(p))
		s := int32(0)
		for i := 0; i < len(p); i++ {
			t, ok := nodes[s].child[p[i]]
			if !ok {
				t = int32(len(nodes))
				nodes = append(nodes, node{})
				if nodes[s].child == nil {
					nodes[s].child = map[byte]int32{}
				}
				nodes[s].child[p[i]] = t
			}
			s = t
		}
		nodes[s].out = append(nodes[s].out, int32(id))
	}
	n := len(nodes)
	a.fail = make([]int32, n)
	a.dict = make([]int32, n)
	a.out = make([]int32, n)
	a.edgeLo = make([]int32, n+1)
	for s := range nodes {
		a.out[s] = -1
		for i := len(nodes[s].out) - 1; i >= 0; i-- {
			a.outs = append(a.outs, nodes[s].out[i])
			a.next = append(a.next, a.out[s])
			a.out[s] = int32(len(a.outs) - 1)
		}
	}
	// Edges, sorted by byte, in state order.
	for s := range nodes {
		a.edgeLo[s] = int32(len(a.edgeB))
		keys := make([]byte, 0, len(nodes[s].child))
		for b := range nodes[s].child {
			keys = append(keys, b)
		}
		slices.Sort(keys)
		for _, b := range keys {
			a.edgeB = append(a.edgeB, b)
			a.edgeTo = append(a.edgeTo, nodes[s].child[b])
		}
	}
	a.edgeLo[n] = int32(len(a.edgeB))
	for b, t := range nodes[0].child {
		a.root[b] = t
	}
	// Failure and dictionary links, breadth first.
	queue := make([]int32, 0, n)
	for _, t := range nodes[0].child {
		queue = append(queue, t)
	}
	a.dict[0] = -1
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		f := a.fail[s]
		if a.out[f] >= 0 {
			a.dict[s] = f
		} else {
			a.dict[s] = a.dict[f]
		}
		for b, t := range nodes[s].child {
			a.fail[t] = a.step(a.fail[s], b) // a shallower state: its links are set
			queue = append(queue, t)
		}
	}
	a.emits = make([]bool, n)
	for s := range n {
		a.emits[s] = a.out[s] >= 0 || a.dict[s] >= 0
	}
	a.densify()
	return a
}

// densify builds the dense table if it is small enough.
func (a *automaton) densify() {
	for _, b := range a.edgeB {
		if a.class[b] == 0 {
			a.nclass++
			a.class[b] = uint8(a.nclass)
		}
		if a.nclass == 255 {
			return
		}
	}
	a.nclass++ // class 0
	n := len(a.fail)
	if n*a.nclass > maxDense {
		return
	}
	rep := make([]byte, a.nclass) // a byte of each class
	for b := 255; b >= 0; b-- {
		rep[a.class[b]] = byte(b)
	}
	a.dense = make([]int32, n*a.nclass)
	for s := range n {
		for k := 1; k < a.nclass; k++ {
			a.dense[s*a.nclass+k] = a.step(int32(s), rep[k])
		}
	}
}

// edge returns s's transition on b, or -1.
func (a *automaton) edge(s int32, b byte) int32 {
	lo, hi := a.edgeLo[s], a.edgeLo[s+1]
	for i := lo; i < hi; i++ {
		switch c := a.edgeB[i]; {
		case c == b:
			return a.edgeTo[i]
		case c > b:
			return -1
		}
	}
	return -1
}

func (a *automaton) step(s int32, b byte) int32 {
	for s != 0 {
		if t := a.edge(s, b); t >= 0 {
			return t
		}
		s = a.fail[s]
	}
	return a.root[b]
}

// asciiFold is how the automaton sees an ASCII byte: lower case, and
// every white-space byte as a space.
var asciiFold = func() (t [utf8.RuneSelf]byte) {
	for c := range t {
		t[c] = byte(foldRune(rune(c)))
		if isSpace(rune(c)) {
			t[c] = ' '
		}
	}
	return t
}()

// scan calls emit for every occurrence of every pattern in text, in order
// of the occurrence's end, with the byte offsets of the original text.
// Overlapping occurrences are all reported.
func (a *automaton) scan(text string, emit func(id int32, start, end int)) {
	var ring [ringSize]int32 // folded byte position → original offset of its rune
	var buf [utf8.UTFMax]byte
	fed := 0
	s := int32(0)
	space := false
	dense, nclass := a.dense, int32(a.nclass)
	output := func(end int) {
		for t := s; t > 0; t = a.dict[t] {
			for o := a.out[t]; o >= 0; o = a.next[o] {
				id := a.outs[o]
				emit(id, int(ring[(fed-a.lens[id])&(ringSize-1)]), end)
			}
		}
	}
	for i := 0; i < len(text); {
		c := text[i]
		if c < utf8.RuneSelf {
			b := asciiFold[c]
			if b == ' ' {
				if space {
					i++
					continue
				}
				space = true
			} else {
				space = false
			}
			ring[fed&(ringSize-1)] = int32(i)
			fed++
			switch {
			case dense != nil:
				s = dense[s*nclass+int32(a.class[b])]
			case s == 0:
				s = a.root[b]
			default:
				s = a.step(s, b)
			}
			i++
			if a.emits[s] {
				output(i)
			}
			continue
		}
		r, size := utf8.DecodeRuneInString(text[i:])
		if invisible(r) {
			i += size
			continue
		}
		var enc []byte
		if isSpace(r) {
			if space {
				i += size
				continue
			}
			space = true
			enc = append(buf[:0], ' ')
		} else {
			space = false
			enc = utf8.AppendRune(buf[:0], foldRune(r))
		}
		for _, b := range enc {
			ring[fed&(ringSize-1)] = int32(i)
			fed++
			if dense != nil {
				s = dense[s*nclass+int32(a.class[b])]
			} else {
				s = a.step(s, b)
			}
		}
		i += size
		if a.emits[s] {
			output(i)
		}
	}
}
