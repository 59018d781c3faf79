package policy

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sealpost/sealpost/appliance/audit"
	"github.com/sealpost/sealpost/appliance/fault"
	"github.com/sealpost/sealpost/appliance/store"
	"github.com/sealpost/sealpost/appliance/store/storetest"
)

func validPolicy() Policy {
	return Policy{Rules: []Rule{
		{ID: "k", Name: "Project names", Kind: KindKeyword, Pattern: "apollo\ngemini", Action: ActionBlock, Enabled: true},
		{ID: "r", Name: "Claim numbers", Kind: KindRegex, Pattern: `CLM-\d{6}`, Action: ActionSecure, Enabled: true},
		{ID: "d", Name: "Competitors", Kind: KindDomain, Pattern: "example.com", Action: ActionBlock, Enabled: true},
		{ID: "l", Name: "Cards", Kind: KindLexicon, Lexicon: "card", Action: ActionSecure, Enabled: true},
	}}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change func(p *Policy)
		want   []FieldError // nil: valid
	}{
		{"valid", func(*Policy) {}, nil},
		{"defaults left to Save", func(p *Policy) {
			p.Rules[0].Scope, p.Rules[0].MinCount, p.Rules[0].ID, p.Rules[0].Category = "", 0, "", ""
		}, nil},
		{"no name", func(p *Policy) { p.Rules[1].Name = "  " },
			[]FieldError{{"rules.1.name", "Give the rule a name."}}},
		{"long name", func(p *Policy) { p.Rules[1].Name = strings.Repeat("n", 101) },
			[]FieldError{{"rules.1.name", "Shorten the name to 100 characters or fewer."}}},
		{"control characters in the category", func(p *Policy) { p.Rules[0].Category = "bad\x00" },
			[]FieldError{{"rules.0.category", "Remove the control characters from the category."}}},
		{"unknown kind", func(p *Policy) { p.Rules[0].Kind = "fuzzy" },
			[]FieldError{{"rules.0.kind", "Choose what the rule looks for: keywords, a regular expression, domains or a lexicon."}}},
		{"unknown action", func(p *Policy) { p.Rules[2].Action = "" },
			[]FieldError{{"rules.2.action", "Choose whether a match makes the message secure or blocks it."}}},
		{"unknown scope", func(p *Policy) { p.Rules[3].Scope = "headers" },
			[]FieldError{{"rules.3.scope", "Choose where the rule looks: everywhere, the subject, the body or the attachments."}}},
		{"negative min count", func(p *Policy) { p.Rules[3].MinCount = -1 },
			[]FieldError{{"rules.3.min_count", "Enter how many matches the rule needs, from 1 to 1000."}}},
		{"huge min count", func(p *Policy) { p.Rules[3].MinCount = 1001 },
			[]FieldError{{"rules.3.min_count", "Enter how many matches the rule needs, from 1 to 1000."}}},
		{"regex does not compile", func(p *Policy) { p.Rules[1].Pattern = "(abc" },
			[]FieldError{{"rules.1.pattern", "This regular expression does not compile: missing closing ): `(abc`"}}},
		{"regex not RE2", func(p *Policy) { p.Rules[1].Pattern = `(a)\1` },
			[]FieldError{{"rules.1.pattern", "This regular expression does not compile: invalid escape sequence: `\\1`"}}},
		{"regex matches empty text", func(p *Policy) { p.Rules[1].Pattern = `a*|\b` },
			[]FieldError{{"rules.1.pattern", "This regular expression also matches empty text, so it would match every message; make it require at least one character (for example + instead of *)."}}},
		{"regex too long", func(p *Policy) { p.Rules[1].Pattern = strings.Repeat("a", 1001) },
			[]FieldError{{"rules.1.pattern", "Shorten the regular expression to 1000 characters or fewer (it has 1001)."}}},
		{"regex too complex", func(p *Policy) { p.Rules[1].Pattern = `[a-z]{1000}[0-9]{1000}[A-Z]{1000}[a-z]{1000}[0-9]{1000}x` },
			[]FieldError{{"rules.1.pattern", "This regular expression is too complex (it compiles to 5…"}}},
		{"empty regex", func(p *Policy) { p.Rules[1].Pattern = "" },
			[]FieldError{{"rules.1.pattern", "Enter a regular expression."}}},
		{"no keywords", func(p *Policy) { p.Rules[0].Pattern = "\n  \n" },
			[]FieldError{{"rules.0.pattern", "Enter at least one keyword or phrase, one per line."}}},
		{"bad keyword lines", func(p *Policy) { p.Rules[0].Pattern = "ok\n---\n" + strings.Repeat("k", 101) },
			[]FieldError{{"rules.0.pattern", "Line 2: a keyword needs at least one letter or digit."},
				{"rules.0.pattern", "Line 3: shorten the keyword to 100 characters or fewer."}}},
		{"many bad lines", func(p *Policy) { p.Rules[0].Pattern = strings.Repeat("!\n", 8) },
			[]FieldError{{"rules.0.pattern", "Line 1: a keyword needs at least one letter or digit."},
				{"rules.0.pattern", "Line 2: a keyword needs at least one letter or digit."},
				{"rules.0.pattern", "Line 3: a keyword needs at least one letter or digit."},
				{"rules.0.pattern", "Line 4: a keyword needs at least one letter or digit."},
				{"rules.0.pattern", "Line 5: a keyword needs at least one letter or digit."},
				{"rules.0.pattern", "3 more lines have problems."}}},
		{"too many keywords", func(p *Policy) { p.Rules[0].Pattern = strings.Repeat("k\n", 1001) },
			[]FieldError{{"rules.0.pattern", "Enter at most 1000 keywords per rule (there are 1001); split the list into several rules."}}},
		{"keyword list too long", func(p *Policy) { p.Rules[0].Pattern = strings.Repeat("k", 32<<10+1) },
			[]FieldError{{"rules.0.pattern", "Shorten the list to 32768 bytes or fewer (it has 32769); split it into several rules."}}},
		{"bad domains", func(p *Policy) { p.Rules[2].Pattern = "@ok.example\nuser@example.com\nbücher.de\n*.fine.org" },
			[]FieldError{{"rules.2.pattern", "Line 2: this is not a domain; enter a name like example.com (no address, no spaces)."},
				{"rules.2.pattern", "Line 3: enter the domain in its ASCII form (xn--…)."}}},
		{"no domains", func(p *Policy) { p.Rules[2].Pattern = "" },
			[]FieldError{{"rules.2.pattern", "Enter at least one domain, one per line."}}},
		{"unknown lexicon", func(p *Policy) { p.Rules[3].Lexicon = "tarot" },
			[]FieldError{{"rules.3.lexicon", "Choose a lexicon from the list."}}},
		{"duplicate id", func(p *Policy) { p.Rules[3].ID = "k" },
			[]FieldError{{"rules.3.id", "This rule has the same id as rule 0; reload the page and try again."}}},
		{"bad id", func(p *Policy) { p.Rules[3].ID = "../x" },
			[]FieldError{{"rules.3.id", "This rule's id is not valid; reload the page and try again."}}},
		{"too many rules", func(p *Policy) {
			p.Rules = nil
			for i := range 501 {
				p.Rules = append(p.Rules, Rule{ID: fmt.Sprint("r", i), Name: "n", Kind: KindLexicon, Lexicon: "card", Action: ActionSecure})
			}
		}, []FieldError{{"rules", "Remove some rules: a policy holds at most 500 (it has 501)."}}},
		{"every problem at once", func(p *Policy) {
			p.Rules[0].Name, p.Rules[1].Pattern, p.Rules[3].Action = "", "(", "drop"
		}, []FieldError{{"rules.0.name", "Give the rule a name."},
			{"rules.1.pattern", "This regular expression does not compile: missing closing ): `(`"},
			{"rules.3.action", "Choose whether a match makes the message secure or blocks it."}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := validPolicy()
			tc.change(&p)
			if got := p.Validate(); !slices.EqualFunc(got, tc.want, sameProblem) {
				t.Errorf("Validate:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
	t.Run("too much text in all", func(t *testing.T) {
		t.Parallel()
		p := validPolicy()
		for i := range 12 {
			p.Rules = append(p.Rules, Rule{ID: fmt.Sprint("big", i), Name: "n", Kind: KindKeyword,
				Pattern: strings.Repeat("keyword-number-"+fmt.Sprint(i)+"-xxxx\n", 1000), Action: ActionSecure})
		}
		want := []FieldError{{"rules", fmt.Sprintf("The rules hold too much text in all (%d bytes, at most 262144); remove or shorten some lists.",
			len("apollo\ngemini")+len(`CLM-\d{6}`)+len("example.com")+10*1000*len("keyword-number-0-xxxx\n")+2*1000*len("keyword-number-10-xxxx\n"))}}
		if got := p.Validate(); !slices.Equal(got, want) {
			t.Errorf("Validate:\n got %q\nwant %q", got, want)
		}
	})
}

// sameProblem compares problems; a wanted message ending in "…" is a prefix.
func sameProblem(got, want FieldError) bool {
	if m, ok := strings.CutSuffix(want.Message, "…"); ok {
		return got.Field == want.Field && strings.HasPrefix(got.Message, m)
	}
	return got == want
}

func TestDefaultsAreValid(t *testing.T) {
	t.Parallel()
	d := Defaults()
	if problems := d.Validate(); problems != nil {
		t.Fatalf("defaults are invalid: %v", problems)
	}
	var lex []string
	for _, r := range d.Rules {
		if r.Action != ActionSecure || !r.Enabled || r.Kind != KindLexicon {
			t.Errorf("default rule %+v: want an enabled secure lexicon rule", r)
		}
		lex = append(lex, r.Lexicon)
	}
	if !slices.Equal(lex, []string{"card", "ssn", "iban"}) || d.AttachmentsSecure {
		t.Errorf("defaults: lexicons %v, attachments secure %v", lex, d.AttachmentsSecure)
	}
	c, err := Compile(d)
	if err != nil {
		t.Fatal(err)
	}
	res := c.Scan(Content{Parts: []Part{{Where: "body", Scope: ScopeBody, Text: "Pay to DE89 3704 0044 0532 0130 00 please"}}})
	if !res.IsSecure() || res.Blocked() || len(res.Secure) != 1 || res.Secure[0].Category != "bank account details" {
		t.Errorf("defaults on an IBAN: %+v", res)
	}
}

func TestCompileRefusesInvalid(t *testing.T) {
	t.Parallel()
	p := validPolicy()
	p.Rules[1].Pattern = "(abc"
	_, err := Compile(p)
	if fault.KindOf(err) != fault.Invalid {
		t.Fatalf("Compile: %v, want an Invalid fault", err)
	}
	if got := Problems(err); len(got) != 1 || got[0].Field != "rules.1.pattern" {
		t.Errorf("Problems = %v", got)
	}
}

func openTrail(t *testing.T) (*store.Store, *audit.Trail) {
	t.Helper()
	st, keys := storetest.Open(t, t.TempDir())
	return st, audit.New(keys, time.Now)
}

func TestLoadSave(t *testing.T) {
	t.Parallel()
	st, trail := openTrail(t)
	ctx := context.Background()

	var got Policy
	load := func() {
		t.Helper()
		err := st.View(func(tx *store.Tx) error {
			var err error
			got, err = Load(tx)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	load()
	if !slices.Equal(got.Rules, Defaults().Rules) {
		t.Fatalf("Load before any save = %+v, want the defaults", got)
	}

	p := Policy{AttachmentsSecure: true, Rules: []Rule{
		{Name: " Secret projects ", Kind: KindKeyword, Pattern: "apollo\ngemini", Action: ActionBlock, Enabled: true},
		{Name: "Cards", Kind: KindLexicon, Lexicon: "card", Pattern: "ignored", MinCount: 3, Action: ActionBlock, Enabled: true},
		{ID: "kept-id", Name: "Claims", Kind: KindRegex, Pattern: `CLM-\d{6}`, Scope: ScopeAttachments, Action: ActionSecure},
	}}
	if err := Save(ctx, st, trail, "user:admin1", p); err != nil {
		t.Fatal(err)
	}
	if p.Rules[0].ID != "" || p.Rules[0].Name != " Secret projects " {
		t.Errorf("Save changed the caller's rules: %+v", p.Rules[0])
	}
	load()
	want := []Rule{
		{Name: "Secret projects", Kind: KindKeyword, Pattern: "apollo\ngemini", MinCount: 1, Scope: ScopeAll, Action: ActionBlock, Category: DefaultCategory, Enabled: true},
		{Name: "Cards", Kind: KindLexicon, Lexicon: "card", MinCount: 3, Scope: ScopeAll, Action: ActionBlock, Category: "payment card data", Enabled: true},
		{ID: "kept-id", Name: "Claims", Kind: KindRegex, Pattern: `CLM-\d{6}`, MinCount: 1, Scope: ScopeAttachments, Action: ActionSecure, Category: DefaultCategory},
	}
	if len(got.Rules) != 3 || !got.AttachmentsSecure {
		t.Fatalf("Load after Save = %+v", got)
	}
	for i := range 2 {
		if !validID(got.Rules[i].ID) || !strings.HasPrefix(got.Rules[i].ID, "r-") {
			t.Errorf("rule %d got id %q", i, got.Rules[i].ID)
		}
		want[i].ID = got.Rules[i].ID
	}
	if got.Rules[0].ID == got.Rules[1].ID {
		t.Errorf("two new rules got the same id %q", got.Rules[0].ID)
	}
	if !slices.Equal(got.Rules, want) {
		t.Errorf("Load after Save:\n got %+v\nwant %+v", got.Rules, want)
	}

	// Saving what was loaded keeps the IDs.
	if err := Save(ctx, st, trail, "user:admin1", got); err != nil {
		t.Fatal(err)
	}
	again := got
	load()
	if !slices.Equal(got.Rules, again.Rules) {
		t.Errorf("a second save changed the rules:\n got %+v\nwant %+v", got.Rules, again.Rules)
	}

	// The audit trail has counts, never a keyword or pattern.
	err := st.View(func(tx *store.Tx) error {
		events, err := audit.List(tx, 0, 10)
		if err != nil {
			return err
		}
		if len(events) != 2 {
			return fmt.Errorf("%d audit events, want 2", len(events))
		}
		e := events[0]
		if e.Action != "policy.save" || e.Actor != "user:admin1" || e.Object != "policy/rules" {
			t.Errorf("audit event %+v", e)
		}
		wantDetail := map[string]string{"rules": "3", "enabled": "2", "block": "2", "secure": "0", "keyword": "1",
			"regex": "1", "domain": "0", "lexicon": "1", "attachments_secure": "true"}
		for k, v := range wantDetail {
			if e.Detail[k] != v {
				t.Errorf("audit detail %s = %q, want %q (detail %v)", k, e.Detail[k], v, e.Detail)
			}
		}
		for k, v := range e.Detail {
			if strings.Contains(v, "apollo") || strings.Contains(v, "CLM") || strings.Contains(k, "apollo") {
				t.Errorf("audit detail %s=%q shows a pattern", k, v)
			}
		}
		_, err = trail.Verify(tx)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestSaveEmptyPolicy(t *testing.T) {
	t.Parallel()
	st, trail := openTrail(t)
	if err := Save(context.Background(), st, trail, "user:admin1", Policy{}); err != nil {
		t.Fatal(err)
	}
	st.View(func(tx *store.Tx) error {
		if p, err := Load(tx); err != nil || len(p.Rules) != 0 || p.AttachmentsSecure {
			t.Errorf("after saving no rules, Load = %+v, %v (the defaults must not come back)", p, err)
		}
		return nil
	})
}

func TestSaveRefusesInvalid(t *testing.T) {
	t.Parallel()
	st, trail := openTrail(t)
	p := validPolicy()
	p.Rules[1].Pattern = "(abc"
	p.Rules[2].Name = ""
	err := Save(context.Background(), st, trail, "user:admin1", p)
	if fault.KindOf(err) != fault.Invalid {
		t.Fatalf("Save: %v, want an Invalid fault", err)
	}
	if got := Problems(err); len(got) != 2 {
		t.Errorf("Problems = %v, want 2", got)
	}
	st.View(func(tx *store.Tx) error {
		if n, _ := audit.Count(tx); n != 0 {
			t.Errorf("%d audit events after a refused save", n)
		}
		if p, _ := Load(tx); !slices.Equal(p.Rules, Defaults().Rules) {
			t.Errorf("a refused save stored %+v", p)
		}
		return nil
	})
}
