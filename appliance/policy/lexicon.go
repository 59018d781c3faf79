package policy

import (
	"strings"
)

// Lexicon is a built-in detector of one kind of sensitive number, as the
// console lists it. Category is the default category of a rule that uses it.
type Lexicon struct{ ID, Name, Description, Category string }

// Categories of the built-in lexicons.
const (
	categoryCard     = "payment card data"
	categoryPersonal = "personal identifiers"
	categoryBank     = "bank account details"
	categoryHealth   = "health information"
)

// lexicon is a Lexicon with its detector. number looks at every number
// candidate, token at every kept token (by index); either may be nil. Each
// returns the span of a match, which may reach beyond the candidate (a UK
// National Insurance number's letters). last is the end of the lexicon's
// previous token match, or -1.
type lexicon struct {
	Lexicon
	keep   int // characters the mask leaves visible, at the end
	number func(s *scanner, c *numCand) (start, end int, ok bool)
	token  func(s *scanner, i, last int) (start, end int, ok bool)
}

// lexicons is the registry, in the console's order.
var lexicons = []*lexicon{
	{Lexicon: Lexicon{ID: "card", Name: "Payment card numbers", Category: categoryCard,
		Description: "Credit and debit card numbers of the major networks (Visa, Mastercard, American Express, Discover, JCB, Diners Club, UnionPay, Maestro, Mir): 13 to 19 digits, written together or in the usual groups, with a valid check digit and a known issuer prefix for their length."},
		keep: 4, number: cardNumber},
	{Lexicon: Lexicon{ID: "ssn", Name: "US Social Security numbers", Category: categoryPersonal,
		Description: "Written 123-45-6789 or 123 45 6789, or as nine digits right after a word such as SSN or social security. Numbers that were never issued (area 000, 666 or 900 and above, group 00, serial 0000) and well-known sample numbers do not count."},
		keep: 4, number: ssnNumber},
	{Lexicon: Lexicon{ID: "itin", Name: "US Individual Taxpayer Identification numbers", Category: categoryPersonal,
		Description: "Nine-digit tax numbers that start with 9 and have a middle group in the ranges the IRS issues, written like a Social Security number, or as nine digits right after ITIN or taxpayer identification."},
		keep: 4, number: itinNumber},
	{Lexicon: Lexicon{ID: "iban", Name: "International bank account numbers (IBAN)", Category: categoryBank,
		Description: "IBANs of the 89 countries of the IBAN registry (all of SEPA, the United Kingdom, Switzerland, Norway, the Gulf states and more), written together or in groups of four, with the country's exact length and valid check digits (mod 97)."},
		keep: 4, token: ibanToken},
	{Lexicon: Lexicon{ID: "aba", Name: "US bank routing numbers (ABA)", Category: categoryBank,
		Description: "Nine-digit routing transit numbers with a valid Federal Reserve prefix and check digit, right after a word such as routing, ABA or RTN."},
		keep: 4, number: abaNumber},
	{Lexicon: Lexicon{ID: "bic", Name: "Bank identifier codes (SWIFT/BIC)", Category: categoryBank,
		Description: "Eight- or eleven-character bank codes in capitals with a valid country code, right after SWIFT or BIC."},
		keep: 4, token: bicToken},
	{Lexicon: Lexicon{ID: "nhs", Name: "UK NHS numbers", Category: categoryHealth,
		Description: "Ten-digit NHS numbers with a valid check digit (mod 11): written in groups (401 023 2137) in a range issued in England, Wales, the Isle of Man or Northern Ireland, or in any form right after NHS or CHI."},
		keep: 4, number: nhsNumber},
	{Lexicon: Lexicon{ID: "nino", Name: "UK National Insurance numbers", Category: categoryPersonal,
		Description: "Two letters, six digits and a final A, B, C or D (AB123456C or AB 12 34 56 C), with the prefixes HMRC allocates."},
		keep: 4, number: ninoNumber, token: ninoToken},
	{Lexicon: Lexicon{ID: "npi", Name: "US National Provider Identifiers (NPI)", Category: categoryHealth,
		Description: "Ten-digit provider numbers starting with 1 or 2 with a valid check digit (Luhn with the 80840 prefix), right after NPI or national provider."},
		keep: 4, number: npiNumber},
	{Lexicon: Lexicon{ID: "dea", Name: "US DEA registration numbers", Category: categoryHealth,
		Description: "Two capital letters (a registrant type, then a letter or 9) and seven digits with the DEA check digit, such as AB1234563."},
		keep: 4, token: deaToken},
	{Lexicon: Lexicon{ID: "mbi", Name: "US Medicare Beneficiary Identifiers (MBI)", Category: categoryHealth,
		Description: "Eleven characters in capitals following the CMS pattern of digits and letters (no S, L, O, I, B or Z), such as 1EG4-TE5-MK73, with or without hyphens."},
		keep: 4, token: mbiToken},
	{Lexicon: Lexicon{ID: "sin", Name: "Canadian Social Insurance numbers", Category: categoryPersonal,
		Description: "Nine digits (123 456 782, 123-456-782 or together) with a valid check digit, right after SIN or social insurance."},
		keep: 4, number: sinNumber},
	{Lexicon: Lexicon{ID: "icd10", Name: "ICD-10 diagnosis codes", Category: categoryHealth,
		Description: "Diagnosis codes such as E11.9 or S72.001A after a word such as diagnosis, Dx or ICD, and the codes listed right after them. Shown fully masked."},
		keep: 0, token: icdToken},
	{Lexicon: Lexicon{ID: "passport", Name: "US passport numbers", Category: categoryPersonal,
		Description: "Nine digits, or a letter and eight digits, right after the word passport."},
		keep: 4, number: passportNumber, token: passportToken},
}

var lexiconByID = func() map[string]*lexicon {
	m := map[string]*lexicon{}
	for _, l := range lexicons {
		m[l.ID] = l
	}
	return m
}()

// Lexicons returns the built-in lexicons, for the console. The caller may
// change the slice.
func Lexicons() []Lexicon {
	out := make([]Lexicon, len(lexicons))
	for i, l := range lexicons {
		out[i] = l.Lexicon
	}
	return out
}

// Keywords that vouch for an ambiguous number, lower case. They match as
// whole words, in any case.
var (
	ssnKeywords      = []string{"ssn", "ssns", "ssn#", "ss#", "social security", "soc sec", "soc. sec."}
	itinKeywords     = []string{"itin", "itins", "taxpayer identification", "taxpayer id"}
	abaKeywords      = []string{"routing", "aba", "rtn", "abartn", "routing transit", "transit number"}
	bicKeywords      = []string{"swift", "bic", "swift/bic", "bic/swift"}
	nhsKeywords      = []string{"nhs", "chi"}
	npiKeywords      = []string{"npi", "national provider"}
	sinKeywords      = []string{"sin", "social insurance", "assurance sociale", "nas"}
	icdKeywords      = []string{"diagnosis", "diagnoses", "diagnosed", "dx", "icd", "icd10", "icd-10", "icd-10-cm"}
	passportKeywords = []string{"passport", "passports"}
)

// Payment cards.

func cardNumber(s *scanner, c *numCand) (int, int, bool) {
	d := c.digits
	ok := len(d) >= 13 && len(d) <= 19 && cardGrouping(c.groups) && !sameDigits(d) && cardIIN(d) && luhn(d)
	return c.start, c.end, ok
}

// cardGrouping reports whether groups are a way cards are written: all
// together, in fours with a shorter last group, or as Amex and Diners
// print theirs (4-6-5, 4-6-4).
func cardGrouping(g []int) bool {
	switch len(g) {
	case 1:
		return true
	case 3:
		if g[0] == 4 && g[1] == 6 && (g[2] == 5 || g[2] == 4) || g[0] == 4 && g[1] == 4 && g[2] == 5 {
			return true
		}
	}
	if len(g) < 4 {
		return false
	}
	for _, n := range g[:len(g)-1] {
		if n != 4 {
			return false
		}
	}
	return g[len(g)-1] >= 1 && g[len(g)-1] <= 4
}

// cardIIN reports whether d starts with an issuer prefix that issues cards
// of d's length.
func cardIIN(d []byte) bool {
	n := len(d)
	p2, p3, p4, p6 := num(d[:2]), num(d[:3]), num(d[:4]), num(d[:6])
	in := func(lo, hi int) bool { return n >= lo && n <= hi }
	switch {
	case d[0] == '4': // Visa
		return n == 13 || n == 16 || n == 19
	case p2 >= 51 && p2 <= 55, p4 >= 2221 && p4 <= 2720: // Mastercard
		return n == 16
	case p2 == 34 || p2 == 37: // American Express
		return n == 15
	case p4 == 6011, p3 >= 644 && p3 <= 649, p2 == 65: // Discover
		return in(16, 19)
	case p6 >= 622126 && p6 <= 622925: // Discover and UnionPay
		return in(16, 19)
	case p4 >= 3528 && p4 <= 3589: // JCB
		return in(16, 19)
	case p3 >= 300 && p3 <= 305, p4 == 3095, p2 == 36, p2 == 38, p2 == 39: // Diners Club
		return in(14, 19)
	case p2 == 62: // UnionPay
		return in(16, 19)
	case p4 == 5018, p4 == 5020, p4 == 5038, p4 == 5893, p4 == 6304, p4 == 6759, p4 == 6761, p4 == 6762, p4 == 6763: // Maestro
		return in(13, 19)
	case p4 >= 2200 && p4 <= 2204: // Mir
		return in(16, 19)
	}
	return false
}

// US Social Security and taxpayer numbers.

// sampleSSNs were printed in advertising and are not anyone's number.
var sampleSSNs = map[string]bool{"078051120": true, "219099999": true}

func ssnNumber(s *scanner, c *numCand) (int, int, bool) {
	ok := (c.sep != 0 && c.shape(3, 2, 4) || c.single(9)) && validSSN(c.digits) &&
		(c.sep != 0 || s.near(c.start, ssnKeywords))
	return c.start, c.end, ok
}

func validSSN(d []byte) bool {
	area, group, serial := num(d[:3]), num(d[3:5]), num(d[5:])
	return area != 0 && area != 666 && area < 900 && group != 0 && serial != 0 &&
		!sampleSSNs[string(d)] && !sameDigits(d)
}

func itinNumber(s *scanner, c *numCand) (int, int, bool) {
	ok := (c.sep != 0 && c.shape(3, 2, 4) || c.single(9)) && validITIN(c.digits) &&
		(c.sep != 0 || s.near(c.start, itinKeywords))
	return c.start, c.end, ok
}

// validITIN: 9XX-GG-XXXX with GG in 50–65, 70–88, 90–92 or 94–99.
func validITIN(d []byte) bool {
	g := num(d[3:5])
	return d[0] == '9' && (g >= 50 && g <= 65 || g >= 70 && g <= 88 || g >= 90 && g <= 92 || g >= 94)
}

// Bank numbers.

func abaNumber(s *scanner, c *numCand) (int, int, bool) {
	return c.start, c.end, c.single(9) && validABA(c.digits) && s.near(c.start, abaKeywords)
}

// validABA checks the Federal Reserve prefix (00–12 banks, 21–32 thrifts,
// 61–72 electronic, 80 traveller's cheques) and the 3-7-1 check digit.
func validABA(d []byte) bool {
	p := num(d[:2])
	if !(p <= 12 || p >= 21 && p <= 32 || p >= 61 && p <= 72 || p == 80) || sameDigits(d) {
		return false
	}
	w := [3]int{3, 7, 1}
	sum := 0
	for i, c := range d {
		sum += w[i%3] * int(c-'0')
	}
	return sum%10 == 0
}

// ibanLengths is the length of every country's IBAN (SWIFT IBAN registry).
var ibanLengths = map[string]int{
	"AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27,
	"BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28,
	"EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
	"GL": 18, "GR": 27, "GT": 28, "HN": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
	"IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21,
	"LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28,
	"NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22,
	"RU": 33, "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25,
	"SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}

// ibanToken finds an IBAN starting at token i: all together
// (DE89370400440532013000), or the country and check digits followed by
// groups of four, the last one shorter (DE89 3704 0044 0532 0130 00).
func ibanToken(s *scanner, i, _ int) (int, int, bool) {
	t := s.toks[i]
	w := s.text[t.start:t.end]
	if len(w) < 4 || !isLetter(w[0]) || !isLetter(w[1]) || !isDigit(w[2]) || !isDigit(w[3]) {
		return 0, 0, false
	}
	want := ibanLengths[strings.ToUpper(w[:2])]
	switch {
	case want == 0:
		return 0, 0, false
	case len(w) == want:
		return t.start, t.end, validIBAN(w)
	case len(w) != 4:
		return 0, 0, false
	}
	var buf [34]byte
	iban := append(buf[:0], w...)
	end := t.end
	for len(iban) < want {
		if end >= len(s.text) || s.text[end] != ' ' || len(iban)%4 != 0 {
			return 0, 0, false // a short group that is not the last
		}
		gEnd, delimited := s.alnumRun(end + 1)
		g := s.text[end+1 : gEnd]
		if len(g) == 0 || len(g) > 4 || !delimited || len(iban)+len(g) > want {
			return 0, 0, false
		}
		iban = append(iban, g...)
		end = gEnd
	}
	return t.start, end, validIBAN(string(iban))
}

// validIBAN checks an IBAN without spaces: check digits 02–98 and the
// whole number mod 97 equal to 1 (ISO 13616), with letters counting 10–35.
func validIBAN(iban string) bool {
	if len(iban) < 5 {
		return false
	}
	if ck := num([]byte(iban[2:4])); ck < 2 || ck > 98 {
		return false
	}
	rem := 0
	for k := range len(iban) {
		c := iban[(k+4)%len(iban)] // the first four characters go to the end
		switch {
		case isDigit(c):
			rem = (rem*10 + int(c-'0')) % 97
		case isLetter(c):
			v := int(c|0x20-'a') + 10
			rem = (rem*100 + v) % 97
		default:
			return false
		}
	}
	return rem == 1
}

// countries are the ISO 3166-1 alpha-2 codes, and XK (Kosovo), which banks use.
var countries = func() map[string]bool {
	m := map[string]bool{}
	for c := range strings.FieldsSeq(`AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ
		BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH
		ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE
		IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC
		MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE
		PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV
		SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT
		ZA ZM ZW XK`) {
		m[c] = true
	}
	return m
}()

// bicToken finds a BIC (ISO 9362) at token i, after SWIFT or BIC: bank code
// (4 letters), country (2 letters), location (2: not starting with 0 or 1,
// not ending in O) and an optional branch (3: XXX, or not starting with X).
func bicToken(s *scanner, i, _ int) (int, int, bool) {
	t := s.toks[i]
	w := s.text[t.start:t.end]
	if len(w) != 8 && len(w) != 11 || t.upper+t.digits != len(w) || !validBIC(w) {
		return 0, 0, false
	}
	return t.start, t.end, s.near(t.start, bicKeywords)
}

func validBIC(w string) bool {
	for _, c := range []byte(w[:6]) {
		if !isUpper(c) {
			return false
		}
	}
	if !countries[w[4:6]] || w[6] == '0' || w[6] == '1' || w[7] == 'O' {
		return false
	}
	if len(w) == 11 && w[8] == 'X' && w[8:] != "XXX" {
		return false
	}
	return true
}

// Health numbers.

func nhsNumber(s *scanner, c *numCand) (int, int, bool) {
	d := c.digits
	var ok bool
	switch {
	case c.sep == ' ' && c.shape(3, 3, 4):
		ok = validNHS(d) && (nhsIssued(d) || s.near(c.start, nhsKeywords))
	case c.sep == '-' && c.shape(3, 3, 4), c.single(10):
		ok = validNHS(d) && s.near(c.start, nhsKeywords)
	}
	return c.start, c.end, ok
}

// nhsIssued reports whether d is in a range issued in England, Wales and
// the Isle of Man (400 000 000–499 999 999, 600 000 000–799 999 999) or
// Northern Ireland (320 000 000–399 999 999). Scottish CHI numbers and the
// 999 test range count only after a keyword.
func nhsIssued(d []byte) bool {
	p := num(d[:3])
	return p >= 320 && p <= 499 || p >= 600 && p <= 799
}

// validNHS checks the mod 11 check digit: weights 10 down to 2, 11 minus
// the remainder, 11 meaning 0 and 10 meaning no valid number.
func validNHS(d []byte) bool {
	if len(d) != 10 || sameDigits(d) {
		return false
	}
	sum := 0
	for i, c := range d[:9] {
		sum += (10 - i) * int(c-'0')
	}
	check := 11 - sum%11
	if check == 11 {
		check = 0
	}
	return check != 10 && check == int(d[9]-'0')
}

func npiNumber(s *scanner, c *numCand) (int, int, bool) {
	return c.start, c.end, c.single(10) && validNPI(c.digits) && s.near(c.start, npiKeywords)
}

// validNPI: starts with 1 or 2, Luhn check over 80840 and the ten digits.
func validNPI(d []byte) bool {
	if len(d) != 10 || d[0] != '1' && d[0] != '2' {
		return false
	}
	var b [15]byte
	copy(b[:], "80840")
	copy(b[5:], d)
	return luhn(b[:])
}

// deaTypes are the first letters of DEA registrations (registrant types).
const deaTypes = "ABCDEFGHJKLMPRSTUX"

func deaToken(s *scanner, i, _ int) (int, int, bool) {
	t := s.toks[i]
	return t.start, t.end, validDEA(s.text[t.start:t.end])
}

// validDEA: a registrant type, a letter or 9, six digits and a check digit
// equal to the last digit of (d1+d3+d5) + 2×(d2+d4+d6).
func validDEA(w string) bool {
	if len(w) != 9 || !strings.ContainsRune(deaTypes, rune(w[0])) || !(isUpper(w[1]) || w[1] == '9') {
		return false
	}
	for _, c := range []byte(w[2:]) {
		if !isDigit(c) {
			return false
		}
	}
	d := func(k int) int { return int(w[1+k] - '0') }
	return (d(1)+d(3)+d(5)+2*(d(2)+d(4)+d(6)))%10 == d(7)
}

// mbiToken finds an MBI at token i: eleven characters together, or in
// groups of 4, 3 and 4 joined by hyphens or spaces.
func mbiToken(s *scanner, i, _ int) (int, int, bool) {
	t := s.toks[i]
	w := s.text[t.start:t.end]
	switch len(w) {
	case 11:
		return t.start, t.end, validMBI(w)
	case 4:
	default:
		return 0, 0, false
	}
	p := t.end
	if p >= len(s.text) || s.text[p] != '-' && s.text[p] != ' ' {
		return 0, 0, false
	}
	sep := s.text[p]
	e2, ok2 := s.alnumRun(p + 1)
	if !ok2 || e2-p-1 != 3 || e2 >= len(s.text) || s.text[e2] != sep {
		return 0, 0, false
	}
	e3, ok3 := s.alnumRun(e2 + 1)
	if !ok3 || e3-e2-1 != 4 {
		return 0, 0, false
	}
	return t.start, e3, validMBI(w + s.text[p+1:e2] + s.text[e2+1:e3])
}

// validMBI checks the CMS format: position 1 a digit 1–9; 4, 7, 10 and 11
// digits; 2, 5, 8 and 9 letters; 3 and 6 letters or digits; letters in
// capitals and never S, L, O, I, B or Z.
func validMBI(w string) bool {
	const format = "CAPNAPNAANN" // C: 1–9, N: digit, A: letter, P: either
	if len(w) != len(format) {
		return false
	}
	for k := range len(w) {
		c := w[k]
		letter := isUpper(c) && !strings.ContainsRune("SLOIBZ", rune(c))
		switch format[k] {
		case 'C':
			if c < '1' || c > '9' {
				return false
			}
		case 'N':
			if !isDigit(c) {
				return false
			}
		case 'A':
			if !letter {
				return false
			}
		case 'P':
			if !letter && !isDigit(c) {
				return false
			}
		}
	}
	return true
}

// icdToken finds an ICD-10 code at token i (a capital letter, a digit, a
// digit or capital, then optionally a dot and up to four more) after a
// keyword, or within a few characters of the previous code ("E11.9, I10").
func icdToken(s *scanner, i, last int) (int, int, bool) {
	t := s.toks[i]
	w := s.text[t.start:t.end]
	if len(w) != 3 || !isUpper(w[0]) || !isDigit(w[1]) || !isDigit(w[2]) && !isUpper(w[2]) {
		return 0, 0, false
	}
	end := t.end
	if end+1 < len(s.text) && s.text[end] == '.' && isAlnum(s.text[end+1]) {
		e, delimited := s.alnumRun(end + 1)
		ext := s.text[end+1 : e]
		if !delimited || len(ext) > 4 || strings.ToUpper(ext) != ext {
			return 0, 0, false
		}
		end = e
	}
	chained := last >= 0 && t.start-last <= 16
	return t.start, end, chained || s.near(t.start, icdKeywords)
}

// Personal numbers.

func sinNumber(s *scanner, c *numCand) (int, int, bool) {
	d := c.digits
	ok := (c.sep != 0 && c.shape(3, 3, 3) || c.single(9)) &&
		d[0] != '0' && d[0] != '8' && luhn(d) && !sameDigits(d) && s.near(c.start, sinKeywords)
	return c.start, c.end, ok
}

func passportNumber(s *scanner, c *numCand) (int, int, bool) {
	return c.start, c.end, c.single(9) && !sameDigits(c.digits) && s.near(c.start, passportKeywords)
}

// passportToken finds the newer US passport form, a letter and eight digits.
func passportToken(s *scanner, i, _ int) (int, int, bool) {
	t := s.toks[i]
	w := s.text[t.start:t.end]
	return t.start, t.end, len(w) == 9 && isUpper(w[0]) && t.digits == 8 && s.near(t.start, passportKeywords)
}

// ninoPrefix reports whether a and b start a National Insurance number: not
// D, F, I, Q, U or V; not O second; not BG, GB, KN, NK, NT, TN or ZZ.
func ninoPrefix(a, b byte) bool {
	if !isUpper(a) || !isUpper(b) || strings.IndexByte("DFIQUV", a) >= 0 || strings.IndexByte("DFIQUVO", b) >= 0 {
		return false
	}
	switch string([]byte{a, b}) {
	case "BG", "GB", "KN", "NK", "NT", "TN", "ZZ":
		return false
	}
	return true
}

func ninoToken(s *scanner, i, _ int) (int, int, bool) {
	t := s.toks[i]
	w := s.text[t.start:t.end]
	ok := len(w) == 9 && ninoPrefix(w[0], w[1]) && t.digits == 6 && isDigit(w[2]) && isDigit(w[7]) &&
		w[8] >= 'A' && w[8] <= 'D'
	return t.start, t.end, ok
}

// ninoNumber finds the spaced form AB 12 34 56 C around the digit groups.
func ninoNumber(s *scanner, c *numCand) (int, int, bool) {
	if c.sep != ' ' || !c.shape(2, 2, 2) {
		return 0, 0, false
	}
	t := s.text
	start, end := c.start-3, c.end+2
	if start < 0 || end > len(t) || t[c.start-1] != ' ' || t[c.end] != ' ' ||
		!ninoPrefix(t[start], t[start+1]) || t[end-1] < 'A' || t[end-1] > 'D' ||
		!s.delimitedBefore(start) || !s.delimitedAt(end) {
		return 0, 0, false
	}
	return start, end, true
}
