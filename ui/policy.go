package ui

import (
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/sealpost/sealpost/appliance/account"
	"github.com/sealpost/sealpost/appliance/fault"
	"github.com/sealpost/sealpost/appliance/policy"
	"github.com/sealpost/sealpost/appliance/settings"
)

// policyPage is the content filter in the admin console: rules, the
// built-in lexicons, the triggers that make mail secure, and the tester.
type policyPage struct {
	page
	Form
	Policy   policy.Policy
	Lexicons []policy.Lexicon
	Inbound  settings.Inbound
	Edit     policy.Rule // the rule in the form (new when its ID is empty)
	// The tester: the text, its matches and the text cut into marked
	// pieces for showing.
	Sample   string
	Tested   bool
	Matches  []policy.Match
	Pieces   []piece
	Verdict  string
	Problems []string
}

// piece is a run of the tested text, marked when a rule matched it.
type piece struct {
	Text   string
	Marked bool
	Rules  string
}

func (s *Server) policyData(c echo.Context) (policyPage, error) {
	p := policyPage{page: s.pageFor(c, "admin"), Form: newForm(c), Lexicons: policy.Lexicons()}
	var err error
	if p.Policy, err = s.opts.LoadPolicy(); err != nil {
		return p, err
	}
	set, err := s.opts.ReadSettings()
	if err != nil {
		return p, err
	}
	p.Inbound = set.Inbound
	p.Edit = policy.Rule{Kind: policy.KindLexicon, Lexicon: "card", Action: policy.ActionBlock, Scope: policy.ScopeAll, Enabled: true, MinCount: 1}
	if id := c.QueryParam("edit"); id != "" {
		for _, r := range p.Policy.Rules {
			if r.ID == id {
				p.Edit = r
			}
		}
	}
	return p, nil
}

// policyView shows the content filter.
func (s *Server) policyView(c echo.Context) error {
	p, err := s.policyData(c)
	if err != nil {
		return err
	}
	return c.Render(http.StatusOK, "admin/policy", p)
}

// policyAction saves a rule, removes one, or saves the triggers.
func (s *Server) policyAction(c echo.Context) error {
	_, me, _ := current(c)
	ctx := c.Request().Context()
	p, err := s.policyData(c)
	if err != nil {
		return err
	}
	actor := account.ActorOf(me.ID)
	done := "Saved."
	switch c.FormValue("action") {
	case "save_rule":
		r := ruleFrom(c)
		p.Edit = r
		next := p.Policy
		next.Rules = append([]policy.Rule(nil), p.Policy.Rules...)
		replaced := false
		for i := range next.Rules {
			if r.ID != "" && next.Rules[i].ID == r.ID {
				next.Rules[i], replaced = r, true
			}
		}
		if !replaced {
			r.ID = ""
			next.Rules = append(next.Rules, r)
		}
		if problems := next.Validate(); len(problems) > 0 {
			i := len(next.Rules) - 1
			for j := range next.Rules {
				if replaced && next.Rules[j].ID == r.ID {
					i = j
				}
			}
			prefix := "rules." + strconv.Itoa(i) + "."
			for _, fe := range problems {
				if strings.HasPrefix(fe.Field, prefix) {
					p.Errors["rule_"+strings.TrimPrefix(fe.Field, prefix)] = fe.Message
				} else {
					p.Error = fe.Message
				}
			}
			return c.Render(http.StatusUnprocessableEntity, "admin/policy", p)
		}
		err = s.opts.SavePolicy(ctx, actor, next)
		done = "Rule “" + r.Name + "” saved."
	case "delete_rule":
		next := p.Policy
		next.Rules = nil
		for _, r := range p.Policy.Rules {
			if r.ID != c.FormValue("rule") {
				next.Rules = append(next.Rules, r)
			}
		}
		err = s.opts.SavePolicy(ctx, actor, next)
		done = "Rule removed."
	case "triggers":
		next := p.Policy
		next.AttachmentsSecure = c.FormValue("attachments_secure") == "on"
		if err = s.opts.SaveSettings(ctx, actor,
			settings.Change{Key: "inbound.subject_tag", Value: c.FormValue("subject_tag")},
			settings.Change{Key: "inbound.secure_header", Value: c.FormValue("secure_header")},
			settings.Change{Key: "inbound.not_secure", Value: c.FormValue("not_secure")}); err == nil {
			err = s.opts.SavePolicy(ctx, actor, next)
		}
		done = "Triggers saved."
	default:
		return echo.NewHTTPError(http.StatusBadRequest, "Unknown action.")
	}
	if err != nil {
		for _, se := range settings.Problems(err) {
			p.Errors[strings.TrimPrefix(se.Key, "inbound.")] = se.Msg
		}
		if len(p.Errors) == 0 {
			p.Error = fault.Message(err)
		}
		return c.Render(statusOf[fault.KindOf(err)], "admin/policy", p)
	}
	return c.Redirect(http.StatusSeeOther, withDone("/admin/policy", done))
}

func ruleFrom(c echo.Context) policy.Rule {
	n, _ := strconv.Atoi(c.FormValue("min_count"))
	return policy.Rule{ID: c.FormValue("rule"), Name: strings.TrimSpace(c.FormValue("name")), Kind: policy.Kind(c.FormValue("kind")),
		Pattern: strings.ReplaceAll(c.FormValue("pattern"), "\r\n", "\n"), Lexicon: c.FormValue("lexicon"), MinCount: n,
		Scope: policy.Scope(c.FormValue("scope")), Action: policy.Action(c.FormValue("rule_action")),
		Category: strings.TrimSpace(c.FormValue("category")), Enabled: c.FormValue("enabled") == "on"}
}

// policyTester runs the rules over pasted text and shows where they match.
func (s *Server) policyTester(c echo.Context) error {
	p, err := s.policyData(c)
	if err != nil {
		return err
	}
	p.Sample = c.FormValue("sample")
	if c.Request().Method == http.MethodPost {
		if len(p.Sample) > 1<<20 {
			p.Errors["sample"] = "Paste at most 1 MiB of text."
			return c.Render(http.StatusRequestEntityTooLarge, "admin/policytest", p)
		}
		compiled, err := policy.Compile(p.Policy)
		if err != nil {
			return err
		}
		p.Tested = true
		p.Matches = compiled.Test(p.Sample)
		p.Pieces = markPieces(p.Sample, p.Matches)
		res := compiled.Scan(policy.Content{Parts: []policy.Part{{Where: "body", Scope: policy.ScopeBody, Text: p.Sample}}})
		switch {
		case res.Blocked():
			p.Verdict = "Blocked: the sender would get a notice naming " + strings.Join(res.BlockCategories(), ", ") + "."
		case res.IsSecure():
			p.Verdict = "Made secure: the recipients would read it in the portal."
		default:
			p.Verdict = "No rule applies: the message would " + map[string]string{"pass": "pass through unchanged", "refuse": "be refused"}[p.Inbound.NotSecure] + " unless its subject carries the tag."
		}
	}
	return c.Render(http.StatusOK, "admin/policytest", p)
}

// markPieces cuts text at the matches (of enabled rules) for highlighting.
func markPieces(text string, ms []policy.Match) []piece {
	type span struct {
		start, end int
		rules      []string
	}
	var spans []span
	for _, m := range ms {
		if m.Disabled || m.Where == "domain" || m.Start < 0 || m.End > len(text) || m.Start >= m.End {
			continue
		}
		spans = append(spans, span{m.Start, m.End, []string{m.RuleName}})
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].start < spans[j].start })
	var out []piece
	at := 0
	for _, sp := range spans {
		if sp.start < at { // overlapping: join it to the previous mark
			if n := len(out); n > 0 && out[n-1].Marked && sp.end > at {
				out[n-1].Text += text[at:sp.end]
				out[n-1].Rules += ", " + strings.Join(sp.rules, ", ")
				at = sp.end
			}
			continue
		}
		if sp.start > at {
			out = append(out, piece{Text: text[at:sp.start]})
		}
		out = append(out, piece{Text: text[sp.start:sp.end], Marked: true, Rules: strings.Join(sp.rules, ", ")})
		at = sp.end
	}
	if at < len(text) {
		out = append(out, piece{Text: text[at:]})
	}
	return out
}
