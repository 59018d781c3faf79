package policy

import (
	"fmt"
	"regexp/syntax"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxLineProblems is how many bad lines of one list are reported one by
// one; the rest are counted.
const maxLineProblems = 5

// Validate reports every problem of p at once, each naming its field.
// Zero values that Save fills in (an empty scope, a MinCount of 0, an empty
// category or ID) are not problems.
func (p Policy) Validate() []FieldError {
	var errs []FieldError
	bad := func(field, msg string) { errs = append(errs, FieldError{Field: field, Message: msg}) }
	if len(p.Rules) > MaxRules {
		bad("rules", fmt.Sprintf("Remove some rules: a policy holds at most %d (it has %d).", MaxRules, len(p.Rules)))
	}
	ids := map[string]int{}
	total := 0
	for i, r := range p.Rules {
		f := func(name string) string { return fmt.Sprintf("rules.%d.%s", i, name) }
		total += len(r.Pattern)
		if r.ID != "" {
			if !validID(r.ID) {
				bad(f("id"), "This rule's id is not valid; reload the page and try again.")
			} else if j, dup := ids[r.ID]; dup {
				bad(f("id"), fmt.Sprintf("This rule has the same id as rule %d; reload the page and try again.", j))
			} else {
				ids[r.ID] = i
			}
		}
		if msg := checkText(r.Name, "name", MaxNameRunes); msg != "" {
			bad(f("name"), msg)
		} else if strings.TrimSpace(r.Name) == "" {
			bad(f("name"), "Give the rule a name.")
		}
		if msg := checkText(r.Category, "category", MaxCategoryRunes); msg != "" {
			bad(f("category"), msg)
		}
		switch r.Action {
		case ActionSecure, ActionBlock:
		default:
			bad(f("action"), "Choose whether a match makes the message secure or blocks it.")
		}
		switch r.Scope {
		case "", ScopeAll, ScopeSubject, ScopeBody, ScopeAttachments:
		default:
			bad(f("scope"), "Choose where the rule looks: everywhere, the subject, the body or the attachments.")
		}
		if r.MinCount < 0 || r.MinCount > MaxMinCount {
			bad(f("min_count"), fmt.Sprintf("Enter how many matches the rule needs, from 1 to %d.", MaxMinCount))
		}
		switch r.Kind {
		case KindKeyword:
			for _, msg := range checkKeywords(r.Pattern) {
				bad(f("pattern"), msg)
			}
		case KindRegex:
			if _, msg := parseRegex(r.Pattern); msg != "" {
				bad(f("pattern"), msg)
			}
		case KindDomain:
			for _, msg := range checkDomains(r.Pattern) {
				bad(f("pattern"), msg)
			}
		case KindLexicon:
			if _, ok := lexiconByID[r.Lexicon]; !ok {
				bad(f("lexicon"), "Choose a lexicon from the list.")
			}
		default:
			bad(f("kind"), "Choose what the rule looks for: keywords, a regular expression, domains or a lexicon.")
		}
	}
	if total > MaxTotalPatternBytes {
		bad("rules", fmt.Sprintf("The rules hold too much text in all (%d bytes, at most %d); remove or shorten some lists.",
			total, MaxTotalPatternBytes))
	}
	return errs
}

func validID(id string) bool {
	if len(id) > 64 {
		return false
	}
	for _, c := range []byte(id) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// checkText checks a short text field: readable, no control characters,
// at most max runes. It returns a message or "".
func checkText(s, what string, max int) string {
	switch {
	case !utf8.ValidString(s):
		return fmt.Sprintf("Retype the %s: it contains characters that cannot be read.", what)
	case strings.ContainsFunc(s, unicode.IsControl):
		return fmt.Sprintf("Remove the control characters from the %s.", what)
	case utf8.RuneCountInString(s) > max:
		return fmt.Sprintf("Shorten the %s to %d characters or fewer.", what, max)
	}
	return ""
}

// listLine is one non-blank line of a keyword or domain list.
type listLine struct {
	n    int // 1-based line number
	text string
}

// lines returns the non-blank lines of a list, trimmed.
func lines(pattern string) []listLine {
	var out []listLine
	n := 0
	for line := range strings.Lines(pattern) {
		n++
		if t := strings.TrimSpace(line); t != "" {
			out = append(out, listLine{n, t})
		}
	}
	return out
}

// checkList checks what keyword and domain lists have in common and
// returns messages, or nil and the lines.
func checkList(pattern, empty, noun string) ([]string, []listLine) {
	switch {
	case len(pattern) > MaxListBytes:
		return []string{fmt.Sprintf("Shorten the list to %d bytes or fewer (it has %d); split it into several rules.",
			MaxListBytes, len(pattern))}, nil
	case !utf8.ValidString(pattern):
		return []string{fmt.Sprintf("Retype the %s: they contain characters that cannot be read.", noun)}, nil
	}
	ls := lines(pattern)
	switch {
	case len(ls) == 0:
		return []string{empty}, nil
	case len(ls) > MaxListLines:
		return []string{fmt.Sprintf("Enter at most %d %s per rule (there are %d); split the list into several rules.",
			MaxListLines, noun, len(ls))}, nil
	}
	return nil, ls
}

// lineProblems collects per-line messages, at most maxLineProblems of them.
type lineProblems struct {
	msgs  []string
	extra int
}

func (lp *lineProblems) add(line int, msg string) {
	if len(lp.msgs) < maxLineProblems {
		lp.msgs = append(lp.msgs, fmt.Sprintf("Line %d: %s", line, msg))
		return
	}
	lp.extra++
}

func (lp *lineProblems) result() []string {
	if lp.extra > 0 {
		lp.msgs = append(lp.msgs, fmt.Sprintf("%d more lines have problems.", lp.extra))
	}
	return lp.msgs
}

func checkKeywords(pattern string) []string {
	msgs, ls := checkList(pattern, "Enter at least one keyword or phrase, one per line.", "keywords")
	if msgs != nil {
		return msgs
	}
	var lp lineProblems
	for _, l := range ls {
		switch {
		case strings.ContainsFunc(l.text, unicode.IsControl):
			lp.add(l.n, "remove the control characters.")
		case utf8.RuneCountInString(l.text) > MaxKeywordRunes:
			lp.add(l.n, fmt.Sprintf("shorten the keyword to %d characters or fewer.", MaxKeywordRunes))
		case !strings.ContainsFunc(l.text, isWordRune):
			lp.add(l.n, "a keyword needs at least one letter or digit.")
		}
	}
	return lp.result()
}

func checkDomains(pattern string) []string {
	msgs, ls := checkList(pattern, "Enter at least one domain, one per line.", "domains")
	if msgs != nil {
		return msgs
	}
	var lp lineProblems
	for _, l := range ls {
		if _, msg := normalizeRuleDomain(l.text); msg != "" {
			lp.add(l.n, msg)
		}
	}
	return lp.result()
}

// normalizeRuleDomain turns a line of a domain list into the lower-case
// domain it names: "@Example.COM", "*.example.com" and "example.com." all
// become "example.com". It returns a message if the line is no domain.
func normalizeRuleDomain(s string) (string, string) {
	s = strings.TrimPrefix(s, "@")
	s = strings.TrimPrefix(s, "*.")
	s = strings.TrimPrefix(s, ".")
	s = strings.TrimSuffix(s, ".")
	if strings.ContainsFunc(s, func(r rune) bool { return r >= utf8.RuneSelf }) {
		return "", "enter the domain in its ASCII form (xn--…)."
	}
	d := strings.ToLower(s)
	if !validDomain(d) {
		return "", "this is not a domain; enter a name like example.com (no address, no spaces)."
	}
	return d, ""
}

// validDomain reports whether d is a lower-case ASCII domain name (one
// label is enough: "ru" matches every .ru domain).
func validDomain(d string) bool {
	if d == "" || len(d) > 253 {
		return false
	}
	for label := range strings.SplitSeq(d, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range []byte(label) {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// parseRegex parses and checks a rule's regular expression. It returns the
// syntax tree, or a message saying what to change.
func parseRegex(pattern string) (*syntax.Regexp, string) {
	switch {
	case pattern == "":
		return nil, "Enter a regular expression."
	case len(pattern) > MaxRegexBytes:
		return nil, fmt.Sprintf("Shorten the regular expression to %d characters or fewer (it has %d).", MaxRegexBytes, len(pattern))
	case !utf8.ValidString(pattern):
		return nil, "Retype the regular expression: it contains characters that cannot be read."
	}
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		var se *syntax.Error
		if e, ok := err.(*syntax.Error); ok {
			se = e
		}
		if se == nil {
			return nil, "This regular expression does not compile; correct it."
		}
		return nil, fmt.Sprintf("This regular expression does not compile: %s: `%s`", se.Code, se.Expr)
	}
	if minWidth(re) == 0 {
		return nil, "This regular expression also matches empty text, so it would match every message; make it require at least one character (for example + instead of *)."
	}
	prog, err := syntax.Compile(re.Simplify())
	if err != nil {
		return nil, "This regular expression does not compile; correct it."
	}
	if n := len(prog.Inst); n > MaxRegexInsts {
		return nil, fmt.Sprintf("This regular expression is too complex (it compiles to %d steps, at most %d); simplify it or split it into several rules.", n, MaxRegexInsts)
	}
	return re, ""
}

// minWidth is the fewest characters a match of re can have, counting
// assertions (^, \b, …) as none. A result of 0 means re can match empty
// text somewhere.
func minWidth(re *syntax.Regexp) int {
	const never = 1 << 20 // matches nothing: as good as wide
	switch re.Op {
	case syntax.OpNoMatch:
		return never
	case syntax.OpLiteral:
		return len(re.Rune)
	case syntax.OpCharClass:
		if len(re.Rune) == 0 {
			return never
		}
		return 1
	case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		return 1
	case syntax.OpCapture, syntax.OpPlus:
		return minWidth(re.Sub[0])
	case syntax.OpRepeat:
		return min(re.Min*minWidth(re.Sub[0]), never)
	case syntax.OpConcat:
		w := 0
		for _, s := range re.Sub {
			w = min(w+minWidth(s), never)
		}
		return w
	case syntax.OpAlternate:
		w := never
		for _, s := range re.Sub {
			w = min(w, minWidth(s))
		}
		return w
	default: // empty match, assertions, star, quest
		return 0
	}
}
