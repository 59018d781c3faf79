package policy

import (
	"cmp"
	"slices"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/sealpost/sealpost/appliance/fault"
)

// Bounds of a scan.
const (
	MaxScanBytes      = 4 << 20  // of one part; the rest is not scanned
	MaxScanTotal      = 16 << 20 // of all the parts of a message together
	MaxMatchesPerRule = 100      // kept in a Result per rule; matches beyond are counted only
	maxShown          = 80       // bytes of a keyword or regex match shown
)

// Part is one piece of a message's text. Scope is ScopeSubject, ScopeBody
// or ScopeAttachments; Where names the piece for people ("subject", "body",
// "attachment: rates.csv").
type Part struct {
	Where string
	Scope Scope
	Text  string
}

// Content is what Scan looks at: the message's text parts and the domains of
// its sender and recipients.
type Content struct {
	Parts          []Part
	Domains        []string
	HasAttachments bool
}

// Match is one match of a rule. Start and End are byte offsets into the
// part's Text (Text[Start:End] is what matched); for a domain rule Where is
// "domain", Shown is the domain and Start and End are 0. Shown is the matched
// text, masked for lexicons; it is for the sender and the console's tester,
// never for a log.
type Match struct {
	RuleID   string `json:"rule_id"`
	RuleName string `json:"rule_name"`
	Action   Action `json:"action"`
	Category string `json:"category"`
	Where    string `json:"where"`
	Start    int    `json:"start"`
	End      int    `json:"end"`
	Shown    string `json:"shown"`
	// Set by Test only: the rule is disabled (it would match), or the text
	// has fewer matches of it than its MinCount.
	Disabled bool `json:"disabled,omitempty"`
	BelowMin bool `json:"below_min,omitempty"`
}

// Result is what a scan decided. A message is blocked if any block rule
// matched, else secure if any secure rule matched or attachments made it
// secure. Truncated means a part or the message was longer than the scan
// bounds and its end was not looked at.
type Result struct {
	Secure, Block       []Match
	SecureByAttachments bool
	Truncated           bool
}

// Blocked reports whether the message must be refused.
func (r Result) Blocked() bool { return len(r.Block) > 0 }

// IsSecure reports whether the message must be made secure (if it is not
// blocked).
func (r Result) IsSecure() bool { return len(r.Secure) > 0 || r.SecureByAttachments }

// BlockCategories returns the distinct categories of the block matches, in
// rule order: what the sender's notice may say about why.
func (r Result) BlockCategories() []string {
	var out []string
	for _, m := range r.Block {
		if !slices.Contains(out, m.Category) {
			out = append(out, m.Category)
		}
	}
	return out
}

// Compiled is a policy ready to scan messages. It is safe for concurrent use.
type Compiled struct {
	rules             []compiledRule
	attachmentsSecure bool
	ac                *automaton // keywords and regex prefilter literals; nil if none
	pats              []acPat    // automaton pattern id → what it is for
	places            placeIndex // regex rules with a first-rune plan
	placeBit          []int      // rule → its bit in places, or -1
	domains           map[string][]int
}

type compiledRule struct {
	Rule
	index    int
	minCount int
	category string
	rx       *compiledRegex
	lex      *lexicon
}

// acPat is one string of the automaton: a keyword of some keyword rules
// (matched as a whole word), or a literal that regex rules start with
// (prefix) or contain (required).
type acPat struct {
	kind        patKind
	left, right bool // whole word: no word rune may touch this side
	rules       []int
}

type patKind uint8

const (
	patKeyword patKind = iota
	patPrefix
	patRequired
)

// Compile checks p (as Validate does) and prepares it for scanning. An
// invalid policy is refused with a fault.Invalid error; Problems returns
// every problem. Disabled rules are compiled too, for Test.
func Compile(p Policy) (*Compiled, error) {
	if problems := p.Validate(); len(problems) > 0 {
		invalid := &InvalidError{Problems: problems}
		return nil, fault.E(fault.Invalid, invalid.Error(), invalid)
	}
	c := &Compiled{attachmentsSecure: p.AttachmentsSecure, domains: map[string][]int{}, placeBit: make([]int, len(p.Rules))}
	var strs []string
	ids := map[patKey]int{}
	addPat := func(kind patKind, s string, rule int) {
		key := patKey{kind, s}
		id, ok := ids[key]
		if !ok {
			id = len(strs)
			ids[key] = id
			strs = append(strs, s)
			pat := acPat{kind: kind}
			if kind == patKeyword {
				first, _ := utf8.DecodeRuneInString(s)
				last, _ := utf8.DecodeLastRuneInString(s)
				pat.left, pat.right = needsBoundary(first), needsBoundary(last)
			}
			c.pats = append(c.pats, pat)
		}
		if rs := c.pats[id].rules; len(rs) == 0 || rs[len(rs)-1] != rule {
			c.pats[id].rules = append(c.pats[id].rules, rule)
		}
	}
	for i, r := range p.Rules {
		cr := compiledRule{Rule: r, index: i, minCount: max(r.MinCount, 1), category: r.Category}
		if cr.Scope == "" {
			cr.Scope = ScopeAll
		}
		if cr.category == "" {
			cr.category = defaultCategory(r)
		}
		switch r.Kind {
		case KindKeyword:
			for _, l := range lines(r.Pattern) {
				addPat(patKeyword, fold(l.text), i)
			}
		case KindRegex:
			tree, msg := parseRegex(r.Pattern)
			if msg != "" {
				return nil, fault.E(fault.Invalid, msg, nil)
			}
			rx, prefixes, required, err := planRegex(r.Pattern, tree)
			if err != nil {
				return nil, fault.E(fault.Invalid, "This regular expression does not compile; correct it.", err)
			}
			cr.rx = rx
			c.placeBit[i] = -1
			if rx.first != nil && rx.at1 != nil {
				c.placeBit[i] = len(c.places.rules)
				c.places.add(i, rx.first)
			}
			for _, l := range prefixes {
				addPat(patPrefix, l, i)
			}
			for _, l := range required {
				addPat(patRequired, l, i)
			}
		case KindDomain:
			for _, l := range lines(r.Pattern) {
				d, _ := normalizeRuleDomain(l.text)
				if rs := c.domains[d]; len(rs) == 0 || rs[len(rs)-1] != i {
					c.domains[d] = append(rs, i)
				}
			}
		case KindLexicon:
			cr.lex = lexiconByID[r.Lexicon]
		}
		c.rules = append(c.rules, cr)
	}
	if len(strs) > 0 {
		c.ac = buildAutomaton(strs)
	}
	return c, nil
}

type patKey struct {
	kind patKind
	s    string
}

// needsBoundary reports whether a keyword that starts or ends with r must
// not touch another word rune there. Scripts written without spaces between
// words (Chinese, Japanese, Thai, …) have no such boundaries.
func needsBoundary(r rune) bool {
	if !isWordRune(r) {
		return false
	}
	return !unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Thai, unicode.Lao,
		unicode.Khmer, unicode.Myanmar)
}

// Scan decides what happens to a message. Each part is scanned up to
// MaxScanBytes and the message up to MaxScanTotal. Only enabled rules count.
func (c *Compiled) Scan(ct Content) Result {
	run := c.newRun()
	budget := MaxScanTotal
	var res Result
	for _, p := range ct.Parts {
		text := p.Text
		if limit := min(MaxScanBytes, budget); len(text) > limit {
			text = cut(text, limit)
			res.Truncated = true
		}
		budget -= len(text)
		run.part(p.Where, text, func(r *compiledRule) bool { return r.Enabled && applies(r.Scope, p.Scope) })
	}
	c.scanDomains(run, ct.Domains)
	run.release()
	for i, r := range c.rules {
		t := run.tallies[i]
		if !r.Enabled || t.count < r.minCount {
			continue
		}
		if r.Action == ActionBlock {
			res.Block = append(res.Block, t.matches...)
		} else {
			res.Secure = append(res.Secure, t.matches...)
		}
	}
	res.SecureByAttachments = c.attachmentsSecure && ct.HasAttachments
	return res
}

// Test scans text for the console's tester as if it were a message's only
// part, for rules of every scope. It returns every match of a keyword,
// regex or lexicon rule, disabled rules included (flagged Disabled), with
// rules that the text does not match MinCount times flagged BelowMin,
// ordered by position. Domain rules need an address and are not tested.
func (c *Compiled) Test(text string) []Match {
	run := c.newRun()
	run.part("body", cut(text, MaxScanBytes), func(*compiledRule) bool { return true })
	run.release()
	var out []Match
	for i, r := range c.rules {
		t := run.tallies[i]
		for _, m := range t.matches {
			m.Disabled = !r.Enabled
			m.BelowMin = t.count < r.minCount
			out = append(out, m)
		}
	}
	slices.SortStableFunc(out, func(a, b Match) int {
		return cmp.Or(cmp.Compare(a.Start, b.Start), cmp.Compare(b.End, a.End))
	})
	return out
}

// applies reports whether a rule of scope rule looks at a part of scope part.
func applies(rule, part Scope) bool {
	if part != ScopeSubject && part != ScopeAttachments {
		part = ScopeBody
	}
	return rule == ScopeAll || rule == part
}

// cut returns at most n bytes of s, not splitting a rune.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func (c *Compiled) scanDomains(run *run, domains []string) {
	if len(c.domains) == 0 {
		return
	}
	seen := map[string]bool{}
	for _, d := range domains {
		d = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(d), "."))
		if d == "" || seen[d] {
			continue
		}
		seen[d] = true
		var hit []int
		for suffix := d; ; {
			for _, i := range c.domains[suffix] {
				if !slices.Contains(hit, i) {
					hit = append(hit, i)
				}
			}
			dot := strings.IndexByte(suffix, '.')
			if dot < 0 {
				break
			}
			suffix = suffix[dot+1:]
		}
		for _, i := range hit {
			r := &c.rules[i]
			if r.Enabled {
				run.commit(r, Match{Where: "domain", Shown: d})
			}
		}
	}
}

// run is the state of one scan: a tally per rule, and per part the match
// each rule has pending (so that overlapping matches count once).
type run struct {
	c       *Compiled
	tallies []tally
	pend    []span
	done    []int // per rule: end of the last committed match in this part
	where   string
	text    string
	scratch *scratch
}

// scratch holds a scan's big buffers, reused across scans.
type scratch struct {
	toks    []token
	entries [][]placeEntry // per chunk of the place index
	list    []int
	counts  [64]int
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

type tally struct {
	count   int
	matches []Match
}

type span struct{ start, end int }

func (c *Compiled) newRun() *run {
	return &run{c: c, tallies: make([]tally, len(c.rules)), pend: make([]span, len(c.rules)), done: make([]int, len(c.rules)),
		scratch: scratchPool.Get().(*scratch)}
}

// release returns the run's buffers to the pool; the run is done.
func (r *run) release() {
	if cap(r.scratch.list) > 1<<20 { // do not keep what one huge text needed
		r.scratch.list = nil
	}
	scratchPool.Put(r.scratch)
	r.scratch = nil
}

// offer adds a match of rule i in the current part. Matches must come in
// order of their end (the automaton's) or their start; of overlapping
// matches the one that starts first, then the longer, counts.
func (r *run) offer(i, start, end int) {
	if start < r.done[i] {
		return
	}
	p := &r.pend[i]
	if p.end > p.start {
		if start < p.end {
			if start < p.start || start == p.start && end > p.end {
				*p = span{start, end}
			}
			return
		}
		r.flush(i)
	}
	*p = span{start, end}
}

// flush commits rule i's pending match.
func (r *run) flush(i int) {
	p := r.pend[i]
	if p.end <= p.start {
		return
	}
	r.pend[i] = span{}
	r.done[i] = p.end
	cr := &r.c.rules[i]
	t := &r.tallies[i]
	if len(t.matches) >= MaxMatchesPerRule {
		t.count++
		return
	}
	m := r.text[p.start:p.end]
	var shown string
	if cr.lex != nil {
		shown = mask(m, cr.lex.keep)
	} else {
		shown = clip(m)
	}
	r.commit(cr, Match{Where: r.where, Start: p.start, End: p.end, Shown: shown})
}

func (r *run) commit(cr *compiledRule, m Match) {
	t := &r.tallies[cr.index]
	t.count++
	if len(t.matches) < MaxMatchesPerRule {
		m.RuleID, m.RuleName, m.Action, m.Category = cr.ID, cr.Name, cr.Action, cr.category
		t.matches = append(t.matches, m)
	}
}

// clip shortens a long match for display, ending it with "…"; the result
// is never longer than m.
func clip(m string) string {
	if len(m) <= maxShown {
		return m
	}
	return cut(m, maxShown-len("…")) + "…"
}

// part scans one part's text with the rules that include selects.
func (r *run) part(where, text string, include func(*compiledRule) bool) {
	c := r.c
	r.where, r.text = where, text
	for i := range r.done {
		r.done[i], r.pend[i] = 0, span{}
	}
	var (
		anyKeyword, anyRegex bool
		lexNeeded            []*lexicon
	)
	for i := range c.rules {
		cr := &c.rules[i]
		if !include(cr) {
			continue
		}
		switch cr.Kind {
		case KindKeyword:
			anyKeyword = true
		case KindRegex:
			anyRegex = true
		case KindLexicon:
			if !slices.Contains(lexNeeded, cr.lex) {
				lexNeeded = append(lexNeeded, cr.lex)
			}
		}
	}
	// One pass of the automaton finds the keywords, where regular
	// expressions can start, and which can match at all.
	var (
		litSeen []bool
		hits    [][]int
	)
	maxHits := maxPlaces(text) + 1
	if c.ac != nil && (anyKeyword || anyRegex) {
		litSeen = make([]bool, len(c.rules))
		hits = make([][]int, len(c.rules))
		c.ac.scan(text, func(id int32, start, end int) {
			pat := &c.pats[id]
			switch pat.kind {
			case patRequired:
				for _, i := range pat.rules {
					litSeen[i] = true
				}
				return
			case patPrefix:
				for _, i := range pat.rules {
					if len(hits[i]) < maxHits {
						hits[i] = append(hits[i], start)
					}
				}
				return
			}
			if pat.left && !delimitedLeft(text, start) || pat.right && !delimitedRight(text, end) {
				return
			}
			for _, i := range pat.rules {
				if include(&c.rules[i]) {
					r.offer(i, start, end)
				}
			}
		})
	}
	runs := func(i int) bool {
		cr := &c.rules[i]
		return cr.Kind == KindRegex && include(cr) && !(cr.rx.filtered && !litSeen[i]) && !(cr.rx.prefix && len(hits[i]) == 0)
	}
	// One pass finds where the other regular expressions can start.
	active := make([]uint64, len(c.places.any))
	for j, i := range c.places.rules {
		if runs(i) {
			active[j/64] |= 1 << (j % 64)
		}
	}
	sc := r.scratch
	for k := range sc.entries {
		sc.entries[k] = sc.entries[k][:0]
	}
	for len(sc.entries) < len(active) {
		sc.entries = append(sc.entries, nil)
	}
	c.places.places(text, active, maxPlaces(text), sc.entries, sc.counts[:])
	for i := range c.rules {
		cr := &c.rules[i]
		if !runs(i) {
			continue
		}
		var places []int
		known := false
		switch j := c.placeBit[i]; {
		case cr.rx.prefix:
			places, known = hits[i], len(hits[i]) <= maxPlaces(text)
		case j >= 0 && active[j/64]&(1<<(j%64)) != 0:
			sc.list = placesOf(sc.list[:0], sc.entries[j/64], j%64)
			places, known = sc.list, true
		}
		for _, m := range cr.rx.find(text, places, known, max(MaxMatchesPerRule, cr.minCount)) {
			if m[1] > m[0] {
				r.offer(i, m[0], m[1])
			}
		}
	}
	if len(lexNeeded) > 0 {
		r.lexicons(text, lexNeeded, include)
	}
	for i := range c.rules {
		r.flush(i)
	}
}

// delimitedLeft reports whether no word rune ends at i.
func delimitedLeft(text string, i int) bool {
	if i == 0 {
		return true
	}
	r, _ := utf8.DecodeLastRuneInString(text[:i])
	return !isWordRune(r)
}

// delimitedRight reports whether no word rune starts at i.
func delimitedRight(text string, i int) bool {
	if i >= len(text) {
		return true
	}
	r, _ := utf8.DecodeRuneInString(text[i:])
	return !isWordRune(r)
}

// lexicons runs the needed lexicons over text and offers their matches to
// the rules that use them.
func (r *run) lexicons(text string, needed []*lexicon, include func(*compiledRule) bool) {
	s := newScanner(text, r.scratch.toks[:0])
	defer func() { r.scratch.toks = s.toks }()
	found := make([][]span, len(needed))
	s.numbers(func(nc *numCand) {
		for k, l := range needed {
			if l.number == nil {
				continue
			}
			if start, end, ok := l.number(s, nc); ok {
				found[k] = append(found[k], span{start, end})
			}
		}
	})
	for k, l := range needed {
		if l.token == nil {
			continue
		}
		last := -1
		for i := range s.toks {
			if start, end, ok := l.token(s, i, last); ok {
				found[k] = append(found[k], span{start, end})
				last = end
			}
		}
	}
	for k, l := range needed {
		spans := found[k]
		slices.SortStableFunc(spans, func(a, b span) int {
			return cmp.Or(cmp.Compare(a.start, b.start), cmp.Compare(b.end, a.end))
		})
		for i := range r.c.rules {
			cr := &r.c.rules[i]
			if cr.lex != l || !include(cr) {
				continue
			}
			for _, sp := range spans {
				r.offer(i, sp.start, sp.end)
			}
		}
	}
}
