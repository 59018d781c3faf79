package policy

import (
	"regexp"
	"slices"
	"strings"
	"testing"
)

// fuzzPolicy has every lexicon and a few keyword and regex rules.
func fuzzPolicy(t testing.TB) (*Compiled, map[string]*lexicon) {
	var rules []Rule
	byRule := map[string]*lexicon{}
	for _, l := range lexicons {
		rules = append(rules, Rule{ID: "lex-" + l.ID, Name: l.Name, Kind: KindLexicon, Lexicon: l.ID, Action: ActionBlock, Enabled: true})
		byRule["lex-"+l.ID] = l
	}
	rules = append(rules,
		Rule{ID: "kw", Name: "kw", Kind: KindKeyword, Pattern: "secret\ntop secret\ncafé\n機密\nssn", Action: ActionSecure, Enabled: true},
		Rule{ID: "re", Name: "re", Kind: KindRegex, Pattern: `(?i)acct[-: ]*\d+|\b[A-Z]{3}\d{2,}\b`, Action: ActionSecure, Enabled: true},
		Rule{ID: "re2", Name: "re2", Kind: KindRegex, Pattern: `x+y`, Action: ActionSecure, Enabled: true, MinCount: 2},
	)
	c, err := Compile(Policy{Rules: rules})
	if err != nil {
		t.Fatal(err)
	}
	return c, byRule
}

func FuzzScan(f *testing.F) {
	for _, s := range []string{
		"", "4111 1111 1111 1111", "SSN: 536221234 and 536-22-1234", "DE89 3704 0044 0532 0130 00",
		"GB82WEST12345698765432 1EG4-TE5-MK73 AB 12 34 56 C", "routing 021000021 NHS 943 476 5919",
		"Dx: E11.9, I10; S72.001A", "SWIFT DEUTDEFF500 passport A12345678", "Top  SECRET café 機密",
		"4111-1111-1111-1111-", "DE89 ", "AB 12 34 56", "1EG4-", "\xff\xfe4111111111111111\xc3",
		"E11.", "4111 1111 1111 1111-2", "acct: 123 XYZ99 xxy xy",
	} {
		f.Add(s)
	}
	c, byRule := fuzzPolicy(f)
	f.Fuzz(func(t *testing.T, text string) {
		res := c.Scan(Content{Parts: []Part{{Where: "body", Scope: ScopeBody, Text: text}}, Domains: []string{text}})
		all := append(append(append([]Match(nil), res.Block...), res.Secure...), c.Test(text)...)
		for _, m := range all {
			if m.Start < 0 || m.End <= m.Start || m.End > len(text) {
				t.Fatalf("match %+v out of bounds of %d bytes", m, len(text))
			}
			matched := text[m.Start:m.End]
			l := byRule[m.RuleID]
			if l == nil {
				if len(m.Shown) > len(matched) {
					t.Fatalf("shown %q is longer than the match %q", m.Shown, matched)
				}
				continue
			}
			if len(m.Shown) != len(matched) {
				t.Fatalf("%s: shown %q, match %q", l.ID, m.Shown, matched)
			}
			visible := 0
			for i := range len(matched) {
				if m.Shown[i] != '*' {
					if m.Shown[i] != matched[i] {
						t.Fatalf("%s: shown %q, match %q", l.ID, m.Shown, matched)
					}
					if isAlnum(matched[i]) {
						visible++
					}
				}
			}
			if visible > min(l.keep, 4) {
				t.Fatalf("%s: shown %q reveals %d characters", l.ID, m.Shown, visible)
			}
		}
	})
}

// FuzzCompile compiles arbitrary rule patterns: Compile errors exactly when
// Validate reports a problem, and otherwise the scan ends and agrees with a
// plain search.
func FuzzCompile(f *testing.F) {
	for _, s := range []struct {
		kind          byte
		pattern, text string
	}{
		{0, "secret\ntop secret", "Top Secret stuff"},
		{1, `(?i)project\s+\w+`, "PROJECT apollo"},
		{1, `(a|b)*c{2,5}`, "abacccc"},
		{1, `(abc`, ""},
		{1, `\b`, "a b"},
		{1, `(?:x{1000}){1000}`, "x"},
		{1, `[\p{Greek}\d]+\s+Ω`, "αβ Ω"},
		{2, "example.com\n*.rival.org", "mail.example.com"},
		{2, "@bad@", "x"},
		{0, "ǅ\u212A", "ǆk"},
	} {
		f.Add(s.kind, s.pattern, s.text)
	}
	f.Fuzz(func(t *testing.T, kind byte, pattern, text string) {
		kinds := []Kind{KindKeyword, KindRegex, KindDomain}
		r := Rule{ID: "f", Name: "f", Kind: kinds[int(kind)%len(kinds)], Pattern: pattern, Action: ActionBlock, Enabled: true}
		p := Policy{Rules: []Rule{r}}
		c, err := Compile(p)
		if (err != nil) != (len(p.Validate()) > 0) {
			t.Fatalf("Compile: %v, Validate: %v", err, p.Validate())
		}
		if err != nil {
			return
		}
		res := c.Scan(Content{Parts: []Part{{Where: "body", Scope: ScopeBody, Text: text}}, Domains: strings.Fields(text)})
		var got [][2]int
		for _, m := range res.Block {
			if r.Kind == KindDomain {
				continue
			}
			if m.Start < 0 || m.End <= m.Start || m.End > len(text) {
				t.Fatalf("match %+v out of bounds", m)
			}
			got = append(got, [2]int{m.Start, m.End})
		}
		switch r.Kind {
		case KindRegex:
			var want [][2]int
			for _, m := range regexp.MustCompile(pattern).FindAllStringIndex(text, MaxMatchesPerRule) {
				want = append(want, [2]int{m[0], m[1]})
			}
			if !slices.Equal(got, want) {
				t.Fatalf("regex %q in %q: scan found %v, regexp %v", pattern, text, got, want)
			}
		case KindKeyword:
			var folded []string
			for _, l := range lines(pattern) {
				folded = append(folded, fold(l.text))
			}
			for _, g := range got {
				if m := fold(text[g[0]:g[1]]); !slices.Contains(folded, m) {
					t.Fatalf("keyword match %q (folded %q) is none of %q", text[g[0]:g[1]], m, folded)
				}
			}
		}
	})
}
