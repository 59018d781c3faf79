package policy

import (
	"math/rand/v2"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
	"sync"
	"testing"
)

func compile(t testing.TB, rules ...Rule) *Compiled {
	t.Helper()
	for i := range rules {
		if rules[i].Name == "" {
			rules[i].Name = "rule"
		}
		if rules[i].Action == "" {
			rules[i].Action = ActionBlock
		}
	}
	c, err := Compile(Policy{Rules: rules})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// found returns the matched texts of c.Test(text).
func found(c *Compiled, text string) []string {
	var out []string
	for _, m := range c.Test(text) {
		out = append(out, text[m.Start:m.End])
	}
	return out
}

func TestKeywords(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, keywords, text string
		want                 []string
	}{
		{"whole word, any case", "secret", "SECRET: the Secret secretary's secrets, secret.", []string{"SECRET", "Secret", "secret"}},
		{"phrase across white space", "top secret", "this is Top \n\t Secret stuff", []string{"Top \n\t Secret"}},
		{"phrase needs every word", "top secret", "top-secret topsecret", nil},
		{"several keywords", "apollo\r\n  gemini  \n\nmercury", "Apollo, Gemini and Mercury", []string{"Apollo", "Gemini", "Mercury"}},
		{"overlapping keywords count once", "top secret\nsecret", "top secret", []string{"top secret"}},
		{"longer keyword at the same start", "ab\nab cd", "ab cd", []string{"ab cd"}},
		{"accents and Unicode case", "café\nstraße", "CAFÉ au lait, STRAẞE", []string{"CAFÉ", "STRAẞE"}},
		{"Kelvin sign and long s folds", "kiss", "\u212Aiſs", []string{"\u212Aiſs"}},
		{"Unicode word boundaries", "geheim", "Geheimnis geheimé ägeheim GEHEIM!", []string{"GEHEIM"}},
		{"underscore joins words", "secret", "secret_plan plan_secret", nil},
		{"digits are word characters", "plan", "plan9 9plan plan 9", []string{"plan"}},
		{"keyword with punctuation", "c++\n#confidential", "we use C++ daily #confidential", []string{"C++", "#confidential"}},
		{"scripts without spaces", "機密", "これは機密です", []string{"機密"}},
		{"invalid UTF-8 in the text", "secret", "\xffsecret\xfe secret", []string{"secret", "secret"}},
		{"repeated occurrences", "x1", "x1 x1 x1x1 x1", []string{"x1", "x1", "x1"}},
		{"invisible characters inside", "secret", "se\u200Bcret se\u00ADcret \uFEFFsecret", []string{"se\u200Bcret", "se\u00ADcret", "secret"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := compile(t, Rule{Kind: KindKeyword, Pattern: tc.keywords, Enabled: true})
			if got := found(c, tc.text); !slices.Equal(got, tc.want) {
				t.Errorf("keywords %q in %q: got %q, want %q", tc.keywords, tc.text, got, tc.want)
			}
		})
	}
}

func TestRegex(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, pattern, text string
		want                []string
	}{
		{"literal prefix", `CLM-\d{6}`, "claims CLM-123456 and clm-654321", []string{"CLM-123456"}},
		{"case-insensitive", `(?i)project\s+(apollo|gemini)`, "PROJECT  Gemini, project apollo", []string{"PROJECT  Gemini", "project apollo"}},
		{"no literal", `\b\d{3}-\d{4}\b`, "call 555-1234 now", []string{"555-1234"}},
		{"literal with white space", "a  b|x\ty", "a  b x\ty a b", []string{"a  b", "x\ty"}},
		{"fold orbit", `(?i)kelvin`, "\u212Aelvin", []string{"\u212Aelvin"}},
		{"anchors keep their meaning", `(?m)^Subject-\w+`, "Subject-a\nno Subject-b\nSubject-c", []string{"Subject-a", "Subject-c"}},
		{"literal absent", `zebra\d+`, "no such animal", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := compile(t, Rule{Kind: KindRegex, Pattern: tc.pattern, Enabled: true})
			if got := found(c, tc.text); !slices.Equal(got, tc.want) {
				t.Errorf("regex %q in %q: got %q, want %q", tc.pattern, tc.text, got, tc.want)
			}
		})
	}
}

func TestRequiredLiterals(t *testing.T) {
	t.Parallel()
	tests := []struct {
		pattern string
		want    []string
	}{
		{`(?i)project\s+(apollo|gemini)`, []string{"project"}},
		{`CLM-\d{6}`, []string{"clm-"}},
		{`(apollo|gemini)-\d+`, []string{"apollo", "gemini"}},
		{`a*bcd`, []string{"bcd"}},
		{`foo|ba`, nil},
		{`\d{3}-\d{4}`, nil},
		{`(?:xyz){0,3}q`, nil},
		{`(?:xyz){2}`, []string{"xyz"}},
		{`top  secret`, []string{"secret"}},
	}
	for _, tc := range tests {
		re, err := syntax.Parse(tc.pattern, syntax.Perl)
		if err != nil {
			t.Fatal(err)
		}
		if got := requiredLiterals(re.Simplify()); !slices.Equal(got, tc.want) {
			t.Errorf("requiredLiterals(%q) = %q, want %q", tc.pattern, got, tc.want)
		}
	}
}

func TestDomains(t *testing.T) {
	t.Parallel()
	c := compile(t, Rule{Kind: KindDomain, Pattern: "@Example.com\n*.rival.org\nru", Enabled: true, Category: "competitors"})
	tests := []struct {
		domains []string
		want    []string
	}{
		{[]string{"example.com"}, []string{"example.com"}},
		{[]string{"MAIL.Example.COM."}, []string{"mail.example.com"}},
		{[]string{"rival.org", "eu.rival.org", "rival.org"}, []string{"rival.org", "eu.rival.org"}},
		{[]string{"yandex.ru"}, []string{"yandex.ru"}},
		{[]string{"badexample.com", "example.com.evil.net", "example.co", "ru.com", ""}, nil},
	}
	for _, tc := range tests {
		res := c.Scan(Content{Domains: tc.domains})
		var got []string
		for _, m := range res.Block {
			got = append(got, m.Shown)
			if m.Where != "domain" || m.Category != "competitors" {
				t.Errorf("domain match %+v", m)
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("domains %q: got %q, want %q", tc.domains, got, tc.want)
		}
	}
}

func TestScopes(t *testing.T) {
	t.Parallel()
	ct := Content{Parts: []Part{
		{Where: "subject", Scope: ScopeSubject, Text: "alpha"},
		{Where: "body", Scope: ScopeBody, Text: "beta"},
		{Where: "attachment: list.csv", Scope: ScopeAttachments, Text: "gamma"},
	}}
	for _, tc := range []struct {
		scope Scope
		want  []string // where it matched
	}{
		{ScopeAll, []string{"subject", "body", "attachment: list.csv"}},
		{"", []string{"subject", "body", "attachment: list.csv"}},
		{ScopeSubject, []string{"subject"}},
		{ScopeBody, []string{"body"}},
		{ScopeAttachments, []string{"attachment: list.csv"}},
	} {
		c := compile(t, Rule{Kind: KindKeyword, Pattern: "alpha\nbeta\ngamma", Scope: tc.scope, Enabled: true})
		var got []string
		for _, m := range c.Scan(ct).Block {
			got = append(got, m.Where)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("scope %q matched in %q, want %q", tc.scope, got, tc.want)
		}
	}
}

func TestMinCountAndActions(t *testing.T) {
	t.Parallel()
	c := compile(t,
		Rule{ID: "bulk", Name: "Many cards", Kind: KindLexicon, Lexicon: "card", MinCount: 3, Action: ActionBlock, Category: "bulk card data", Enabled: true},
		Rule{ID: "one", Name: "Any card", Kind: KindLexicon, Lexicon: "card", Action: ActionSecure, Enabled: true},
		Rule{ID: "ssn", Name: "SSN", Kind: KindLexicon, Lexicon: "ssn", Action: ActionBlock, Enabled: true},
		Rule{ID: "off", Name: "Off", Kind: KindKeyword, Pattern: "card", Action: ActionBlock, Enabled: false},
	)
	body := func(s string) Content { return Content{Parts: []Part{{Where: "body", Scope: ScopeBody, Text: s}}} }

	res := c.Scan(body("card 4111111111111111 and 5555555555554444"))
	if res.Blocked() || !res.IsSecure() || len(res.Secure) != 2 || res.Secure[0].RuleID != "one" {
		t.Errorf("two cards: %+v", res)
	}
	// Three cards across two parts reach the block rule's MinCount.
	res = c.Scan(Content{Parts: []Part{
		{Where: "subject", Scope: ScopeSubject, Text: "4111111111111111"},
		{Where: "body", Scope: ScopeBody, Text: "5555555555554444 378282246310005"},
	}})
	if !res.Blocked() || len(res.Block) != 3 || res.Block[0].Category != "bulk card data" || res.Block[0].Where != "subject" {
		t.Errorf("three cards: %+v", res)
	}
	if got := res.BlockCategories(); !slices.Equal(got, []string{"bulk card data"}) {
		t.Errorf("BlockCategories = %q", got)
	}
	res = c.Scan(body("4111111111111111 4111111111111111 4111111111111111 SSN 536-22-1234 536-22-1235"))
	if got := res.BlockCategories(); !slices.Equal(got, []string{"bulk card data", "personal identifiers"}) {
		t.Errorf("BlockCategories = %q", got)
	}
	for _, m := range res.Block {
		for _, cat := range res.BlockCategories() {
			if strings.ContainsAny(cat, "0123456789") || strings.Contains(cat, m.Shown) {
				t.Errorf("category %q reveals content", cat)
			}
		}
	}
	res = c.Scan(body("nothing to see"))
	if res.Blocked() || res.IsSecure() || res.Truncated {
		t.Errorf("clean text: %+v", res)
	}
}

func TestAttachmentsSecure(t *testing.T) {
	t.Parallel()
	for _, on := range []bool{false, true} {
		c, err := Compile(Policy{AttachmentsSecure: on})
		if err != nil {
			t.Fatal(err)
		}
		res := c.Scan(Content{HasAttachments: true})
		if res.SecureByAttachments != on || res.IsSecure() != on {
			t.Errorf("AttachmentsSecure %v: %+v", on, res)
		}
		if res := c.Scan(Content{}); res.IsSecure() {
			t.Errorf("AttachmentsSecure %v, no attachments: %+v", on, res)
		}
	}
}

func TestTester(t *testing.T) {
	t.Parallel()
	c := compile(t,
		Rule{ID: "kw", Name: "Projects", Kind: KindKeyword, Pattern: "apollo", Scope: ScopeSubject, Enabled: true},
		Rule{ID: "re", Name: "Claims", Kind: KindRegex, Pattern: `CLM-\d+`, Enabled: false},
		Rule{ID: "many", Name: "Many cards", Kind: KindLexicon, Lexicon: "card", MinCount: 2, Enabled: true},
		Rule{ID: "dom", Name: "Rivals", Kind: KindDomain, Pattern: "example.com", Enabled: true},
	)
	text := "Re: Apollo — claim CLM-42 for card 4111 1111 1111 1111 at example.com"
	ms := c.Test(text)
	type short struct {
		id, text           string
		disabled, belowMin bool
	}
	var got []short
	for _, m := range ms {
		got = append(got, short{m.RuleID, text[m.Start:m.End], m.Disabled, m.BelowMin})
		if m.Where != "body" {
			t.Errorf("Where = %q", m.Where)
		}
	}
	want := []short{
		{"kw", "Apollo", false, false},
		{"re", "CLM-42", true, false},
		{"many", "4111 1111 1111 1111", false, true},
	}
	if !slices.Equal(got, want) {
		t.Errorf("Test:\n got %+v\nwant %+v", got, want)
	}
	// The scan of a message does not count the disabled rule.
	res := c.Scan(Content{Parts: []Part{{Where: "body", Scope: ScopeBody, Text: text}}})
	if res.Blocked() {
		t.Errorf("Scan: %+v", res)
	}
}

func TestShownIsClipped(t *testing.T) {
	t.Parallel()
	c := compile(t, Rule{Kind: KindRegex, Pattern: `x+`, Enabled: true})
	text := strings.Repeat("x", 500)
	ms := c.Test(text)
	if len(ms) != 1 || ms[0].End != 500 || len(ms[0].Shown) > maxShown || !strings.HasSuffix(ms[0].Shown, "…") {
		t.Errorf("long match: %+v", ms)
	}
}

func TestMatchesAreCapped(t *testing.T) {
	t.Parallel()
	c := compile(t,
		Rule{ID: "kw", Kind: KindKeyword, Pattern: "a", Enabled: true},
		Rule{ID: "re", Kind: KindRegex, Pattern: `b`, MinCount: 150, Enabled: true},
	)
	text := strings.Repeat("a ", 1000) + strings.Repeat("b", 200)
	res := c.Scan(Content{Parts: []Part{{Scope: ScopeBody, Text: text}}})
	var kw, re int
	for _, m := range res.Block {
		switch m.RuleID {
		case "kw":
			kw++
		case "re":
			re++
		}
	}
	if kw != MaxMatchesPerRule || re != MaxMatchesPerRule {
		t.Errorf("kept %d keyword and %d regex matches, want %d each (the regex rule needs 150 and has 200)", kw, re, MaxMatchesPerRule)
	}
}

func TestScanBounds(t *testing.T) {
	t.Parallel()
	c := compile(t, Rule{Kind: KindKeyword, Pattern: "needle", Enabled: true})
	pad := strings.Repeat("x ", MaxScanBytes/2)
	res := c.Scan(Content{Parts: []Part{{Scope: ScopeBody, Text: pad + "needle"}}})
	if res.Blocked() || !res.Truncated {
		t.Errorf("needle past MaxScanBytes: blocked %v truncated %v", res.Blocked(), res.Truncated)
	}
	// The message budget: four full parts use it up, the fifth is not scanned.
	var parts []Part
	for range MaxScanTotal / MaxScanBytes {
		parts = append(parts, Part{Scope: ScopeBody, Text: pad})
	}
	parts = append(parts, Part{Where: "last", Scope: ScopeBody, Text: "needle"})
	res = c.Scan(Content{Parts: parts})
	if res.Blocked() || !res.Truncated {
		t.Errorf("needle past MaxScanTotal: blocked %v truncated %v", res.Blocked(), res.Truncated)
	}
	if got := cut("aé", 2); got != "a" {
		t.Errorf("cut split a rune: %q", got)
	}
}

// TestRegexPrefilterAgrees checks that skipping regular expressions whose
// literals are absent never loses a match.
func TestRegexPrefilterAgrees(t *testing.T) {
	t.Parallel()
	patterns := []string{`(?i)confidential\s+\w+`, `Acct[: ]+\d{4,}`, `(?i)(alpha|beta)-\d`, `\bPO\d{6}\b`, `(?i)ﬀ\w`}
	texts := []string{"CONFIDENTIAL memo", "Acct: 12345", "BETA-1 alpha-2", "PO123456", "Confidential\n\nx", "Acct:\n1234", "ﬀx ＦＦ", ""}
	for _, p := range patterns {
		c := compile(t, Rule{Kind: KindRegex, Pattern: p, Enabled: true})
		re := regexp.MustCompile(p)
		for _, text := range texts {
			want := re.FindAllString(text, -1)
			if got := found(c, text); !slices.Equal(got, want) {
				t.Errorf("%q in %q: got %q, want %q", p, text, got, want)
			}
		}
	}
}

// TestRegexPlanAgrees runs patterns whose plans try places one by one
// (prefix literals, first runes with \b and ^) against texts with tricky
// contexts, and expects exactly what regexp finds in the whole text.
func TestRegexPlanAgrees(t *testing.T) {
	t.Parallel()
	patterns := []struct {
		pattern string
		plan    string // "prefix", "places" or "scan"
	}{
		{`\bfoo\b`, "prefix"}, {`(?i)\bfoo`, "prefix"}, {`(?m)^abc`, "prefix"}, {`\Aabc`, "prefix"},
		{`abc\z`, "prefix"}, {`(?m)abc$`, "prefix"}, {`\Bbar`, "prefix"}, {`((?i)inv)oice`, "prefix"},
		{`foo|bar|baz\d`, "places"}, {`(?:\bfoo|bar)\d`, "prefix"}, {`(?i)invoice\s+#\d+`, "prefix"},
		{`\b\d{3}-\d{4}\b|TAG\d`, "places"}, {`\b\d{3}-\d{4}\b`, "places"}, {`x\b`, "places"},
		{`(?i)ß+`, "places"}, {`.x`, "places"}, {`\x{FFFD}x`, "prefix"}, {`[^a]b`, "places"},
		{`(a|ab)(c|bcd)`, "places"}, {`a+?b`, "places"}, {`(?U)a+b`, "places"}, {`\pL{2}\d`, "places"},
		{`(?s).z`, "places"}, {`é+`, "places"}, {`[é-ü]x`, "places"}, {`(?i)K`, "places"}, {`a{2,}`, "places"},
		{`^\s*x`, "places"}, {`(?m)^\d+$`, "places"}, {`\b[A-Z]{2}\d{2}\b`, "places"},
		{`\Qa.b\E+`, "scan"}, {`\Qa.b`, "scan"}, {`\x{200B}foo`, "places"}, {`f\x{200B}oo|\x{AD}invoice`, "places"},
	}
	texts := []string{
		"foo xfoo foox foo_ FOO foo", "abc\nabc\r\nzabc abc", "\xff\x82x \xe2\x82x \xe2\x82\xacx \x82\x82x",
		"ßẞss ß", "inv oice invoice INVoice invoice  #12 Invoice #3", "123-4567 a123-4567 TAG1 1234-5678 123-45678",
		"aab abcd abc aaab", "x\nz \nz", "  x\n x", "ééé üx éx", "a.b a.bb a.b.b", "bar1 foo2 xfoo3 bazz baz9",
		"kK\u212A", "12\n345\n6a\n", "AB12 ab12 XAB12 AB123 _AB12", "", "x", "\n",
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 40 {
		var b strings.Builder
		for range 1 + rng.IntN(6) {
			b.WriteString(texts[rng.IntN(len(texts))])
		}
		texts = append(texts, b.String())
	}
	for _, p := range patterns {
		c := compile(t, Rule{Kind: KindRegex, Pattern: p.pattern, Enabled: true})
		rx := c.rules[0].rx
		plan := "scan"
		switch {
		case rx.at1 != nil && rx.prefix:
			plan = "prefix"
		case rx.at1 != nil && rx.first != nil:
			plan = "places"
		}
		if plan != p.plan {
			t.Errorf("%q: plan %s, want %s", p.pattern, plan, p.plan)
		}
		re := regexp.MustCompile(p.pattern)
		for _, text := range texts {
			res := c.Scan(Content{Parts: []Part{{Scope: ScopeBody, Text: text}}})
			var got, want [][2]int
			for _, m := range res.Block {
				got = append(got, [2]int{m.Start, m.End})
			}
			for _, m := range re.FindAllStringIndex(text, MaxMatchesPerRule) {
				want = append(want, [2]int{m[0], m[1]})
			}
			if !slices.Equal(got, want) {
				t.Errorf("%q in %q: got %v, want %v", p.pattern, text, got, want)
			}
		}
	}
}

// TestRegexBudget checks that a pattern whose attempts would each read to
// the end of the text falls back to one linear scan: the result is still
// exact.
func TestRegexBudget(t *testing.T) {
	t.Parallel()
	c := compile(t, Rule{Kind: KindRegex, Pattern: `invoice[^!]*!`, Enabled: true})
	text := strings.Repeat("invoice ", 50000) + "!"
	ms := c.Test(text)
	if len(ms) != 1 || ms[0].Start != 0 || ms[0].End != len(text) {
		t.Errorf("matches %+v", ms)
	}
	x := c.rules[0].rx
	hits := make([]int, 0, 50000)
	for i := range 50000 {
		hits = append(hits, i*8)
	}
	if _, ok := x.attempts(text[:len(text)-1], hits, 10); ok {
		t.Errorf("attempts that read the text many times over did not run out of budget")
	}
}

// TestConcurrentScans shares one Compiled between goroutines (run with
// -race): scans reuse pooled buffers and must not see each other's.
func TestConcurrentScans(t *testing.T) {
	t.Parallel()
	c := benchPolicy(t)
	texts := []string{benchText(64 << 10), "card 4111 1111 1111 1111", "SSN 536-22-1234 invoice #12", benchText(8 << 10)}
	want := make([]Result, len(texts))
	for i, text := range texts {
		want[i] = c.Scan(Content{Parts: []Part{{Where: "body", Scope: ScopeBody, Text: text}}})
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for k := range 8 {
				i := (g + k) % len(texts)
				got := c.Scan(Content{Parts: []Part{{Where: "body", Scope: ScopeBody, Text: texts[i]}}})
				if !slices.Equal(got.Secure, want[i].Secure) || !slices.Equal(got.Block, want[i].Block) {
					t.Errorf("text %d: a concurrent scan found something else", i)
					return
				}
			}
		})
	}
	wg.Wait()
}
