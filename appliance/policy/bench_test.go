package policy

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// benchText is about 1 MiB of business prose with the numbers such mail
// carries (dates, amounts, phone and order numbers) and, now and then, a
// valid card number, IBAN or SSN.
func benchText(size int) string {
	rng := rand.New(rand.NewPCG(1, 2))
	words := strings.Fields(`the of and to a in for is on that by this with you it not or be are from at as
		your all have new more an was we will can us about if my has but our one other do no information
		time they site he up may what which their news out use any there see only so his when contact here
		business who web also now help get pm view online first am been would how were me services some
		these click its like service than find price date back top people had list name just over state
		year day into email two health world next used go work last most products music buy data make
		them should product system post her city add policy number such please available copyright support
		message after best software then jan good video well where info rights public books high school
		through each links she review years order very privacy book items company read group need many
		user said does set under general research university january mail full map reviews program life
		invoice payment account transfer patient claim balance statement quarterly report meeting`)
	samples := []string{"4111 1111 1111 1111", "5555555555554444", "DE89 3704 0044 0532 0130 00",
		"GB82WEST12345698765432", "SSN 536-22-1234", "378282246310005"}
	var b strings.Builder
	for b.Len() < size {
		switch n := rng.IntN(100); {
		case n < 80:
			b.WriteString(words[rng.IntN(len(words))])
		case n < 85:
			fmt.Fprintf(&b, "%04d-%02d-%02d", 2000+rng.IntN(30), 1+rng.IntN(12), 1+rng.IntN(28))
		case n < 90:
			fmt.Fprintf(&b, "$%d.%02d", rng.IntN(100000), rng.IntN(100))
		case n < 93:
			fmt.Fprintf(&b, "+1 %03d-%03d-%04d", 200+rng.IntN(800), rng.IntN(1000), rng.IntN(10000))
		case n < 97:
			fmt.Fprintf(&b, "#%d", rng.IntN(1e9))
		case n < 99:
			b.WriteString(fmt.Sprintf("%d", rng.Int64N(1e16)))
		default:
			if rng.IntN(10) == 0 {
				b.WriteString(samples[rng.IntN(len(samples))])
			} else {
				b.WriteString("Ref.")
			}
		}
		if rng.IntN(12) == 0 {
			b.WriteString(".\n")
		} else {
			b.WriteByte(' ')
		}
	}
	return b.String()
}

// benchPolicy has every lexicon and 100 other rules: 40 keyword lists, 40
// regular expressions (with and without literals), 20 domain lists.
func benchPolicy(tb testing.TB) *Compiled {
	var rules []Rule
	for _, l := range lexicons {
		rules = append(rules, Rule{Name: l.Name, Kind: KindLexicon, Lexicon: l.ID, Action: ActionSecure, Enabled: true})
	}
	kw := []string{"confidential", "top secret", "internal only", "merger", "acquisition", "layoff", "salary",
		"diagnosis", "prescription", "password", "do not forward", "attorney-client", "privileged", "embargo",
		"payroll", "project apollo", "gemini", "balance sheet", "invoice", "wire transfer"}
	for i := range 40 {
		var list []string
		for j := range 8 {
			list = append(list, fmt.Sprintf("%s%d", kw[(i+j)%len(kw)], j))
		}
		list = append(list, kw[i%len(kw)])
		rules = append(rules, Rule{Name: fmt.Sprint("keywords ", i), Kind: KindKeyword, Pattern: strings.Join(list, "\n"),
			Action: ActionSecure, Enabled: true})
	}
	regexes := []string{`CLM-\d{6}`, `(?i)project\s+(apollo|gemini)`, `PO-\d{5,8}`, `(?i)account\s+no\.?\s*\d+`,
		`EMP\d{6}`, `(?i)strictly\s+confidential`, `\b[A-Z]{2}\d{6}[A-Z]\b`, `(?i)invoice\s+#\d+`,
		`\b\d{3}-\d{3}-\d{4}\b`, `MRN[:\s]*\d{7,10}`}
	for i := range 40 {
		p := regexes[i%len(regexes)]
		if i >= len(regexes) {
			p = fmt.Sprintf("%s|TAG%03d", p, i)
		}
		rules = append(rules, Rule{Name: fmt.Sprint("regex ", i), Kind: KindRegex, Pattern: p, Action: ActionBlock, Enabled: true})
	}
	for i := range 20 {
		rules = append(rules, Rule{Name: fmt.Sprint("domains ", i), Kind: KindDomain,
			Pattern: fmt.Sprintf("rival%d.example\nleak%d.example.net\nbad%d.org", i, i, i), Action: ActionBlock, Enabled: true})
	}
	c, err := Compile(Policy{Rules: rules})
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func BenchmarkScan1MiB(b *testing.B) {
	text := benchText(1 << 20)
	c := benchPolicy(b)
	ct := Content{
		Parts:   []Part{{Where: "subject", Scope: ScopeSubject, Text: "Quarterly statement"}, {Where: "body", Scope: ScopeBody, Text: text}},
		Domains: []string{"sender.example.org", "client.example.com", "mail.partner.example"},
	}
	b.SetBytes(int64(len(text)))
	var res Result
	for b.Loop() {
		res = c.Scan(ct)
	}
	b.ReportMetric(float64(b.N)*float64(len(text))/(1<<20)/b.Elapsed().Seconds(), "MiB/s")
	b.ReportMetric(float64(len(res.Secure)+len(res.Block)), "matches")
}
