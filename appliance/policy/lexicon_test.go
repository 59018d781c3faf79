package policy

import (
	"slices"
	"strings"
	"testing"
)

// lexMatches returns what the lexicon finds in text, as the matched text.
func lexMatches(t *testing.T, id, text string) []string {
	t.Helper()
	c, err := Compile(Policy{Rules: []Rule{{ID: "l", Name: id, Kind: KindLexicon, Lexicon: id, Action: ActionSecure, Enabled: true}}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range c.Test(text) {
		got = append(got, text[m.Start:m.End])
	}
	return got
}

// withLuhn appends the Luhn check digit to digits.
func withLuhn(digits string) string {
	for c := byte('0'); c <= '9'; c++ {
		if luhn([]byte(digits + string(c))) {
			return digits + string(c)
		}
	}
	panic("unreachable")
}

type lexCase struct {
	name string
	text string
	want []string // matched texts; nil: none
}

func runLexCases(t *testing.T, id string, cases []lexCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := lexMatches(t, id, tc.text); !slices.Equal(got, tc.want) {
				t.Errorf("%s in %q: got %q, want %q", id, tc.text, got, tc.want)
			}
		})
	}
}

func one(s string) []string { return []string{s} }

func TestLexiconCard(t *testing.T) {
	t.Parallel()
	runLexCases(t, "card", []lexCase{
		{"visa grouped", "Card: 4111 1111 1111 1111 exp 12/29", one("4111 1111 1111 1111")},
		{"visa hyphens", "(4111-1111-1111-1111)", one("4111-1111-1111-1111")},
		{"visa together", "4012888888881881.", one("4012888888881881")},
		{"visa 13 digits", "old card 4222222222222 here", one("4222222222222")},
		{"visa 19 digits", "pan " + withLuhn("411111111111111111") + " x", one(withLuhn("411111111111111111"))},
		{"mastercard 51-55", "5555 5555 5555 4444", one("5555 5555 5555 4444")},
		{"mastercard 2-series", "2223003122003222", one("2223003122003222")},
		{"amex 4-6-5", "Amex 3714 496353 98431", one("3714 496353 98431")},
		{"amex together", "378282246310005", one("378282246310005")},
		{"discover 6011", "6011 1111 1111 1117", one("6011 1111 1111 1117")},
		{"discover 644", withLuhn("644564456445644"), one(withLuhn("644564456445644"))},
		{"discover 65", withLuhn("650000000000000"), one(withLuhn("650000000000000"))},
		{"jcb", "3530111333300000 and 3566002020360505", []string{"3530111333300000", "3566002020360505"}},
		{"diners 14 digits 4-6-4", "3056 930902 5904", one("3056 930902 5904")},
		{"diners 38", "38520000023237", one("38520000023237")},
		{"unionpay", "6200000000000005", one("6200000000000005")},
		{"maestro", "6759649826438453", one("6759649826438453")},
		{"mir", withLuhn("220000000000000"), one(withLuhn("220000000000000"))},
		{"next to other numbers", "order 2023 4111111111111111 paid", one("4111111111111111")},
		{"after a hyphenated word", "ref-4111111111111111", one("4111111111111111")},
		{"several", "4111111111111111, 5555555555554444; 378282246310005", []string{"4111111111111111", "5555555555554444", "378282246310005"}},

		{"bad check digit", "4111 1111 1111 1112", nil},
		{"unknown prefix", withLuhn("123456781234567"), nil},
		{"visa wrong length", withLuhn("41111111111111"), nil},
		{"amex wrong length", withLuhn("3782822463100051"), nil},
		{"mastercard wrong length", withLuhn("55555555555544441"), nil},
		{"all the same digit", "4444 4444 4444 4444 0000000000000000", nil},
		{"inside a longer digit run", "94111111111111111 " + "41111111111111110000", nil},
		{"glued to letters", "x4111111111111111 4111111111111111x ID4111111111111111", nil},
		{"glued to a non-ASCII letter", "é4111111111111111 4111111111111111ü", nil},
		{"five groups", "4111 1111 1111 1111 1111", nil},
		{"goes on with a hyphen", "4111 1111 1111 1111-22", nil},
		{"hyphenated to a number before", "12-4111-1111-1111-1111", nil},
		{"decimal part", "4111111111111111.50 and 3.4111111111111111", nil},
		{"thousands", "1,4111111111111111", nil},
		{"odd grouping", "41111 11111 11111 1", nil},
		{"mixed separators", "4111 1111-1111 1111", nil},
		{"double space", "4111  1111  1111  1111", nil},
		{"too short", "4111 1111 111", nil},
	})
}

func TestLexiconSSN(t *testing.T) {
	t.Parallel()
	runLexCases(t, "ssn", []lexCase{
		{"hyphens", "SSN 123-45-6789.", one("123-45-6789")},
		{"hyphens without keyword", "her number is 536-22-1234", one("536-22-1234")},
		{"spaces", "536 22 1234", one("536 22 1234")},
		{"bare after keyword", "SSN: 536221234", one("536221234")},
		{"bare after social security", "Social Security number is 536221234", one("536221234")},
		{"bare after ss#", "SS# 536221234", one("536221234")},
		{"after a phone number", "call 555 536-22-1234", one("536-22-1234")},

		{"bare without keyword", "ticket 536221234", nil},
		{"keyword too far", "SSN" + strings.Repeat(" ", 40) + "536221234", nil},
		{"keyword is part of a word", "classn 536221234", nil},
		{"area 000", "000-12-3456", nil},
		{"area 666", "666-12-3456", nil},
		{"area 900 and up", "900-12-3456 987-65-4321", nil},
		{"group 00", "123-00-6789", nil},
		{"serial 0000", "123-45-0000", nil},
		{"advertising numbers", "078-05-1120 219-09-9999", nil},
		{"all the same digit", "111-11-1111", nil},
		{"inside a longer run", "1123-45-6789 123-45-67890 123-45-6789-1", nil},
		{"mixed separators", "123-45 6789", nil},
		{"ten digits after keyword", "SSN 5362212345", nil},
		{"phone number shape", "555-123-4567", nil},
	})
}

func TestLexiconITIN(t *testing.T) {
	t.Parallel()
	runLexCases(t, "itin", []lexCase{
		{"hyphens", "ITIN 912-70-1234", one("912-70-1234")},
		{"without keyword", "912-94-1234", one("912-94-1234")},
		{"bare after keyword", "taxpayer identification number 912701234", one("912701234")},

		{"group outside the ranges", "912-69-1234 912-93-1234 912-89-1234 912-49-1234", nil},
		{"does not start with 9", "812-70-1234", nil},
		{"bare without keyword", "912701234", nil},
		{"inside a longer run", "1912-70-1234 912-70-12345 ITIN 9127012340", nil},
	})
}

func TestLexiconIBAN(t *testing.T) {
	t.Parallel()
	valid := []string{
		"GB82 WEST 1234 5698 7654 32", "DE89 3704 0044 0532 0130 00", "FR14 2004 1010 0505 0001 3M02 606",
		"NL91 ABNA 0417 1643 00", "BE68 5390 0754 7034", "CH93 0076 2011 6238 5295 7", "NO93 8601 1117 947",
		"ES91 2100 0418 4502 0005 1332", "IT60 X054 2811 1010 0000 0123 456", "AT61 1904 3002 3457 3201",
		"SE45 5000 0000 0583 9825 7466", "DK50 0040 0440 1162 43", "FI21 1234 5600 0007 85",
		"PL61 1090 1014 0000 0712 1981 2874", "IE29 AIBK 9311 5212 3456 78", "PT50 0002 0123 1234 5678 9015 4",
		"LU28 0019 4006 4475 0000", "MT84 MALT 0110 0001 2345 MTLC AST0 01S",
	}
	var cases []lexCase
	for _, v := range valid {
		compact := strings.ReplaceAll(v, " ", "")
		cases = append(cases,
			lexCase{v[:2] + " grouped", "IBAN: " + v + ", thanks", one(v)},
			lexCase{v[:2] + " together", "IBAN " + compact + ".", one(compact)})
	}
	cases = append(cases,
		lexCase{"lower case", "de89370400440532013000", one("de89370400440532013000")},
		lexCase{"followed by more text", "DE89 3704 0044 0532 0130 00 1234", one("DE89 3704 0044 0532 0130 00")},

		lexCase{"bad check digits", "DE88 3704 0044 0532 0130 00", nil},
		lexCase{"changed digit", "DE89 3704 0044 0532 0130 01", nil},
		lexCase{"too short", "DE89 3704 0044 0532 0130 0", nil},
		lexCase{"too long together", "DE8937040044053201300012", nil},
		lexCase{"last group too long", "DE89 3704 0044 0532 0130 0012", nil},
		lexCase{"unknown country", "XX89 3704 0044 0532 0130 00", nil},
		lexCase{"groups of three", "DE89 370 400 440 532 013 000", nil},
		lexCase{"glued to letters", "XDE89370400440532013000", nil},
		lexCase{"check digits 00/01/99", "DE00370400440532013000 DE01370400440532013000 DE99370400440532013000", nil},
	)
	runLexCases(t, "iban", cases)
}

func TestLexiconABA(t *testing.T) {
	t.Parallel()
	runLexCases(t, "aba", []lexCase{
		{"routing", "Routing number: 021000021", one("021000021")},
		{"aba", "ABA 011000015", one("011000015")},
		{"rtn", "RTN 026009593.", one("026009593")},

		{"without keyword", "021000021", nil},
		{"bad check digit", "routing 021000022", nil},
		{"bad prefix", "routing 131000027 routing 401000020", nil},
		{"all zeros", "routing 000000000", nil},
		{"ten digits", "routing 0210000210", nil},
		{"glued", "routing x021000021 routing 021000021x", nil},
	})
}

func TestLexiconBIC(t *testing.T) {
	t.Parallel()
	runLexCases(t, "bic", []lexCase{
		{"swift 8", "SWIFT: DEUTDEFF", one("DEUTDEFF")},
		{"bic 11", "BIC DEUTDEFF500", one("DEUTDEFF500")},
		{"swift code", "Swift code NWBKGB2L", one("NWBKGB2L")},
		{"primary office", "BIC: BNPAFRPPXXX", one("BNPAFRPPXXX")},

		{"without keyword", "DEUTDEFF", nil},
		{"unknown country", "SWIFT DEUTXXFF", nil},
		{"location starting with 0", "SWIFT DEUTDE0F", nil},
		{"location ending in O", "SWIFT DEUTDEFO", nil},
		{"branch starting with X", "SWIFT DEUTDEFFXAB", nil},
		{"lower case", "swift deutdeff", nil},
		{"wrong length", "SWIFT DEUTDEFF5", nil},
	})
}

func TestLexiconNHS(t *testing.T) {
	t.Parallel()
	issued := "401 023 2137"
	if !validNHS([]byte(strings.ReplaceAll(issued, " ", ""))) {
		t.Fatalf("%s should be a valid NHS number", issued)
	}
	runLexCases(t, "nhs", []lexCase{
		{"spaced in an issued range", "patient " + issued, one(issued)},
		{"test range after keyword", "NHS number 943 476 5919", one("943 476 5919")},
		{"together after keyword", "NHS no: 9434765919", one("9434765919")},
		{"hyphens after keyword", "NHS 943-476-5919", one("943-476-5919")},

		{"test range without keyword", "943 476 5919", nil},
		{"together without keyword", "4010232137", nil},
		{"hyphens without keyword", "401-023-2137", nil},
		{"bad check digit", "NHS 943 476 5918", nil},
		{"check digit 10", "NHS 400 000 0080, NHS 400 000 0081", nil}, // remainder 1: no digit is valid
		{"all the same digit", "NHS 444 444 4444", nil},
		{"inside a longer run", "NHS 943 476 59190", nil},
	})
}

func TestLexiconNINO(t *testing.T) {
	t.Parallel()
	runLexCases(t, "nino", []lexCase{
		{"together", "NI number AB123456C.", one("AB123456C")},
		{"spaced", "NINO: AB 12 34 56 C", one("AB 12 34 56 C")},
		{"suffix D", "JG103759D", one("JG103759D")},

		{"forbidden first letter", "QA123456C DA123456C", nil},
		{"O second", "AO123456C", nil},
		{"unallocated prefix", "GB123456A NK123456A TN123456A ZZ123456A", nil},
		{"bad suffix", "AB123456E", nil},
		{"seven digits", "AB1234567C", nil},
		{"lower case", "ab123456c", nil},
		{"spaced without suffix", "AB 12 34 56", nil},
		{"spaced glued", "XAB 12 34 56 C", nil},
	})
}

func TestLexiconNPI(t *testing.T) {
	t.Parallel()
	runLexCases(t, "npi", []lexCase{
		{"after keyword", "NPI: 1234567893", one("1234567893")},
		{"national provider", "National Provider Identifier 1245319599", one("1245319599")},

		{"without keyword", "1234567893", nil},
		{"bad check digit", "NPI 1234567890", nil},
		{"bad first digit", "NPI " + npiWithCheck("323456789"), nil},
		{"inside a longer run", "NPI 12345678930 NPI 91234567893 NPI 1234567893-1", nil},
	})
}

// npiWithCheck appends the NPI check digit to nine digits.
func npiWithCheck(nine string) string {
	return withLuhn("80840" + nine)[5:]
}

func TestLexiconDEA(t *testing.T) {
	t.Parallel()
	runLexCases(t, "dea", []lexCase{
		{"valid", "DEA AB1234563", one("AB1234563")},
		{"another", "prescriber BJ6125341.", one("BJ6125341")},
		{"business with 9", "A91234563", one("A91234563")},

		{"bad check digit", "AB1234564", nil},
		{"unknown registrant type", "QB1234563 IB1234563", nil},
		{"lower case", "ab1234563", nil},
		{"eight digits", "AB12345634", nil},
		{"glued", "XAB1234563", nil},
	})
}

func TestLexiconMBI(t *testing.T) {
	t.Parallel()
	runLexCases(t, "mbi", []lexCase{
		{"hyphens", "MBI 1EG4-TE5-MK73", one("1EG4-TE5-MK73")},
		{"together", "1EG4TE5MK73", one("1EG4TE5MK73")},
		{"spaces", "1EG4 TE5 MK73", one("1EG4 TE5 MK73")},

		{"first digit 0", "0EG4-TE5-MK73", nil},
		{"excluded letter", "1SG4TE5MK73 1EG4TB5MK73", nil},
		{"digit where a letter goes", "1EG45E5MK73 11G4TE5MK73", nil},
		{"mixed separators", "1EG4-TE5 MK73", nil},
		{"lower case", "1eg4te5mk73", nil},
		{"twelve characters", "1EG4TE5MK734", nil},
	})
}

func TestLexiconSIN(t *testing.T) {
	t.Parallel()
	runLexCases(t, "sin", []lexCase{
		{"spaced", "SIN: 123 456 782", one("123 456 782")},
		{"hyphens", "social insurance number 123-456-782", one("123-456-782")},
		{"together", "SIN 123456782", one("123456782")},

		{"without keyword", "123 456 782", nil},
		{"bad check digit", "SIN 123 456 789", nil},
		{"fictitious range 0", "SIN 046 454 286", nil},
		{"unused range 8", "SIN " + withLuhn("80000000"), nil},
		{"grouped as an SSN", "SIN 123-45-6782", nil},
		{"inside a longer run", "SIN 1234567820 SIN 123 456 7821", nil},
	})
}

func TestLexiconICD10(t *testing.T) {
	t.Parallel()
	runLexCases(t, "icd10", []lexCase{
		{"after diagnosis", "Diagnosis: E11.9", one("E11.9")},
		{"a list", "Dx: J45.909, I10; S72.001A", []string{"J45.909", "I10", "S72.001A"}},
		{"letter in third place", "ICD-10 C4A.0", one("C4A.0")},

		{"without keyword", "E11.9", nil},
		{"lower case", "diagnosis e11.9", nil},
		{"extension too long", "diagnosis E11.12345", nil},
		{"list that stopped", "Dx: I10" + strings.Repeat(".", 40) + " J45.909", one("I10")},
	})
}

func TestLexiconPassport(t *testing.T) {
	t.Parallel()
	runLexCases(t, "passport", []lexCase{
		{"nine digits", "Passport No. 123456780", one("123456780")},
		{"letter and eight digits", "passport: A12345678", one("A12345678")},

		{"without keyword", "123456780 A12345678", nil},
		{"all the same digit", "passport 111111111", nil},
		{"inside a longer run", "passport 1234567801 passport AA12345678 passport A123456789", nil},
	})
}

// TestMaskRevealsAtMostFour checks every lexicon's mask on real matches:
// the match keeps its length and separators, and at most its last four
// characters show (none for diagnosis codes).
func TestMaskRevealsAtMostFour(t *testing.T) {
	t.Parallel()
	samples := map[string]string{
		"card": "4111 1111 1111 1111", "ssn": "536-22-1234", "itin": "912-70-1234",
		"iban": "IBAN FR14 2004 1010 0505 0001 3M02 606", "aba": "routing 021000021", "bic": "BIC DEUTDEFF500",
		"nhs": "401 023 2137", "nino": "AB 12 34 56 C", "npi": "NPI 1234567893", "dea": "AB1234563",
		"mbi": "1EG4-TE5-MK73", "sin": "SIN 123 456 782", "icd10": "Dx S72.001A", "passport": "passport 123456780",
	}
	for _, l := range lexicons {
		text, ok := samples[l.ID]
		if !ok {
			t.Errorf("no sample for lexicon %s", l.ID)
			continue
		}
		c, err := Compile(Policy{Rules: []Rule{{Name: "l", Kind: KindLexicon, Lexicon: l.ID, Action: ActionBlock, Enabled: true}}})
		if err != nil {
			t.Fatal(err)
		}
		ms := c.Test(text)
		if len(ms) != 1 {
			t.Errorf("%s: %d matches in %q", l.ID, len(ms), text)
			continue
		}
		m := ms[0]
		matched := text[m.Start:m.End]
		if len(m.Shown) != len(matched) {
			t.Errorf("%s: shown %q is not as long as %q", l.ID, m.Shown, matched)
		}
		visible := 0
		for i := range len(matched) {
			switch {
			case m.Shown[i] == '*':
				if !isAlnum(matched[i]) {
					t.Errorf("%s: %q masks a separator", l.ID, m.Shown)
				}
			case m.Shown[i] != matched[i]:
				t.Errorf("%s: shown %q differs from %q", l.ID, m.Shown, matched)
			case isAlnum(matched[i]):
				visible++
				if strings.Contains(m.Shown[i:], "*") {
					t.Errorf("%s: %q shows a character before a masked one", l.ID, m.Shown)
				}
			}
		}
		if visible > l.keep || l.keep > 4 {
			t.Errorf("%s: %q shows %d characters", l.ID, m.Shown, visible)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{"4111 1111 1111 1111", "**** **** **** 1111"},
		{"123-45-6789", "***-**-6789"},
		{"DE89 3704 0044 0532 0130 00", "**** **** **** **** **30 00"},
	} {
		if got := mask(tc.in, 4); got != tc.want {
			t.Errorf("mask(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestLexiconsListed(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for _, l := range Lexicons() {
		if l.ID == "" || l.Name == "" || l.Description == "" || l.Category == "" || seen[l.ID] {
			t.Errorf("lexicon %+v: every field is needed, and a unique ID", l)
		}
		seen[l.ID] = true
		if lx := lexiconByID[l.ID]; lx == nil || lx.number == nil && lx.token == nil {
			t.Errorf("lexicon %s has no detector", l.ID)
		}
	}
	for _, id := range []string{"card", "ssn", "iban", "aba", "nhs", "npi", "dea", "sin", "mbi", "bic"} {
		if !seen[id] {
			t.Errorf("lexicon %s is missing", id)
		}
	}
	if n := len(countries); n != 250 {
		t.Errorf("%d country codes, want 249 ISO codes and XK", n)
	}
	for cc := range ibanLengths {
		if !countries[cc] {
			t.Errorf("IBAN country %s is not a country code", cc)
		}
	}
}
