// Package policy is the content filter of the SMTP gateway. Rules look for
// keywords, regular expressions, sender and recipient domains, or built-in
// lexicons of sensitive numbers (payment cards, social security numbers,
// IBANs, health identifiers and more); a rule that matches often enough
// either makes the message secure or blocks it. A policy switch makes every
// message with attachments secure. The admin console's rule tester runs the
// same scanner over pasted text.
//
// What it guarantees:
//   - No rule can hang intake. Regular expressions are RE2 (package regexp:
//     linear in the text, no backtracking), at most MaxRegexBytes long,
//     compiled to at most MaxRegexInsts instructions, and refused when they
//     match empty text. A scan reads at most MaxScanBytes of each part and
//     MaxScanTotal of a message (Result.Truncated says when it stopped
//     early), and keyword lists are matched in one pass however many there are.
//   - Lexicons validate, they are not bare patterns: a candidate must stand
//     alone (not be part of a longer run of digits or letters), have the
//     document's own format, pass its check digits or structure rules, and,
//     where the bare number is ambiguous, follow a keyword such as "SSN".
//   - A block reason names a category ("payment card data"), never the
//     matched content or the rule's pattern, and lexicon matches are shown
//     masked: no more than their last four characters are revealed.
package policy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/sealpost/sealpost/appliance/audit"
	"github.com/sealpost/sealpost/appliance/fault"
	"github.com/sealpost/sealpost/appliance/store"
)

// Action is what a matching rule does to the message.
type Action string

// The actions.
const (
	ActionSecure Action = "secure" // deliver the message as a secure portal message
	ActionBlock  Action = "block"  // refuse the message and tell the sender why
)

// Kind is what a rule looks for.
type Kind string

// The kinds of rule.
const (
	KindKeyword Kind = "keyword" // whole words or phrases, one per line, any case
	KindRegex   Kind = "regex"   // an RE2 regular expression
	KindDomain  Kind = "domain"  // sender or recipient domains, one per line, with their subdomains
	KindLexicon Kind = "lexicon" // a built-in lexicon, by ID
)

// Scope is where in a message a rule looks.
type Scope string

// The scopes. A part of a message has one of subject, body or attachments;
// a rule with ScopeAll looks at every part.
const (
	ScopeAll         Scope = "all"
	ScopeSubject     Scope = "subject"
	ScopeBody        Scope = "body"        // text parts and the text of HTML parts
	ScopeAttachments Scope = "attachments" // text-like attachments
)

// Rule is one content-filter rule.
type Rule struct {
	ID       string `json:"id"` // stable; Save assigns one to a new rule
	Name     string `json:"name"`
	Kind     Kind   `json:"kind"`
	Pattern  string `json:"pattern"`           // keywords or domains one per line, or a regular expression
	Lexicon  string `json:"lexicon,omitempty"` // for KindLexicon: the lexicon's ID
	MinCount int    `json:"min_count"`         // matches needed in the message; 0 means 1
	Scope    Scope  `json:"scope"`             // empty means ScopeAll; domain rules ignore it
	Action   Action `json:"action"`
	Category string `json:"category"` // shown to a blocked sender; empty means the lexicon's or DefaultCategory
	Enabled  bool   `json:"enabled"`
}

// Policy is the content filter: its rules, in the order the console shows
// them, and whether attachments alone make a message secure.
type Policy struct {
	Rules             []Rule `json:"rules"`
	AttachmentsSecure bool   `json:"attachments_secure"`
}

// DefaultCategory is the category of a keyword, regex or domain rule that
// has none.
const DefaultCategory = "restricted content"

// Limits of a policy. They keep compiling and scanning bounded; Validate
// enforces them.
const (
	MaxRules             = 500
	MaxNameRunes         = 100
	MaxCategoryRunes     = 80
	MaxRegexBytes        = 1000     // one regular expression
	MaxRegexInsts        = 5000     // its compiled program
	MaxListBytes         = 32 << 10 // one rule's keyword or domain list
	MaxListLines         = 1000     // keywords or domains in one rule
	MaxKeywordRunes      = 100      // one keyword or phrase
	MaxTotalPatternBytes = 256 << 10
	MaxMinCount          = 1000
)

const recordKey = "policy/rules"

// Defaults is the policy of an appliance whose admin never saved one: the
// payment card, US social security number and IBAN lexicons make a message
// secure, nothing is blocked, attachments alone do not make a message
// secure. Making a message secure protects the data without stopping mail
// that the organization may need to send (invoices carry IBANs, HR mail
// carries SSNs); blocking is a choice an admin makes knowingly.
func Defaults() Policy {
	lex := func(id, name string) Rule {
		l := lexiconByID[id]
		return Rule{ID: "default-" + id, Name: name, Kind: KindLexicon, Lexicon: id, MinCount: 1,
			Scope: ScopeAll, Action: ActionSecure, Category: l.Category, Enabled: true}
	}
	return Policy{Rules: []Rule{
		lex("card", "Payment card numbers"),
		lex("ssn", "US Social Security numbers"),
		lex("iban", "IBANs"),
	}}
}

// Load reads the policy, or Defaults if none was ever saved.
func Load(tx *store.Tx) (Policy, error) {
	p, err := store.GetJSON[Policy](tx, []byte(recordKey))
	if errors.Is(err, store.ErrNotFound) {
		return Defaults(), nil
	}
	if err != nil {
		return Policy{}, fmt.Errorf("load policy: %w", err)
	}
	return p, nil
}

// Save validates p, gives its new rules IDs, fills in defaults (scope all,
// one match, the lexicon's category) and stores it, with a "policy.save"
// audit event that holds counts only: keywords and patterns can themselves
// be confidential. An invalid policy is refused with a fault.Invalid error;
// Problems returns every problem.
func Save(ctx context.Context, st *store.Store, trail *audit.Trail, actor string, p Policy) error {
	p, err := prepare(p)
	if err != nil {
		return err
	}
	if problems := p.Validate(); len(problems) > 0 {
		invalid := &InvalidError{Problems: problems}
		return fault.E(fault.Invalid, invalid.Error(), invalid)
	}
	err = st.Update(ctx, func(tx *store.Tx) error {
		if err := store.PutJSON(tx, []byte(recordKey), p); err != nil {
			return fmt.Errorf("save policy: %w", err)
		}
		return trail.Append(tx, audit.Event{Actor: actor, Action: "policy.save", Object: recordKey, Detail: counts(p)})
	})
	if err != nil {
		return fmt.Errorf("save policy: %w", err)
	}
	return nil
}

// prepare returns a copy of p (the caller's rules are not changed) with IDs
// and defaults filled in.
func prepare(p Policy) (Policy, error) {
	rules := make([]Rule, len(p.Rules))
	copy(rules, p.Rules)
	p.Rules = rules
	taken := map[string]bool{}
	for _, r := range rules {
		taken[r.ID] = true
	}
	for i := range rules {
		r := &rules[i]
		r.Name = strings.TrimSpace(r.Name)
		r.Category = strings.TrimSpace(r.Category)
		if r.ID == "" {
			for r.ID == "" || taken[r.ID] {
				id, err := newID()
				if err != nil {
					return p, err
				}
				r.ID = id
			}
			taken[r.ID] = true
		}
		if r.Scope == "" {
			r.Scope = ScopeAll
		}
		if r.MinCount == 0 {
			r.MinCount = 1
		}
		if r.Kind == KindLexicon {
			r.Pattern = ""
		} else {
			r.Lexicon = ""
		}
		if r.Category == "" {
			r.Category = defaultCategory(*r)
		}
	}
	return p, nil
}

func defaultCategory(r Rule) string {
	if r.Kind == KindLexicon {
		if l, ok := lexiconByID[r.Lexicon]; ok {
			return l.Category
		}
	}
	return DefaultCategory
}

func newID() (string, error) {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("new rule id: %w", err)
	}
	return "r-" + hex.EncodeToString(b[:]), nil
}

// counts describes p for the audit trail without any pattern or keyword.
func counts(p Policy) map[string]string {
	n := map[string]int{}
	for _, r := range p.Rules {
		if r.Enabled {
			n["enabled"]++
			n[string(r.Action)]++
		}
		n[string(r.Kind)]++
	}
	d := map[string]string{
		"rules":              strconv.Itoa(len(p.Rules)),
		"attachments_secure": strconv.FormatBool(p.AttachmentsSecure),
	}
	for _, k := range []string{"enabled", string(ActionSecure), string(ActionBlock),
		string(KindKeyword), string(KindRegex), string(KindDomain), string(KindLexicon)} {
		d[k] = strconv.Itoa(n[k])
	}
	return d
}

// FieldError is one problem of a policy. Field names it the way the
// console's form does, with rules counted from 0 ("rules.3.pattern");
// Message is safe to show and says what to do.
type FieldError struct{ Field, Message string }

func (e FieldError) Error() string { return e.Field + ": " + e.Message }

// InvalidError is every problem of a policy that Save or Compile refused.
type InvalidError struct{ Problems []FieldError }

func (e *InvalidError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// Problems returns the problems of a policy that Save or Compile refused,
// or nil.
func Problems(err error) []FieldError {
	var ie *InvalidError
	if errors.As(err, &ie) {
		return ie.Problems
	}
	return nil
}
