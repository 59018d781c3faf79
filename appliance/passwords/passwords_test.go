package passwords

import (
	"slices"
	"strings"
	"testing"
)

const msgShort = "Use at least 12 characters."

// alice is the personal information of the user in the tests, as the
// account package passes it: address, local part, name words.
var alice = []string{"alice.martin@clinic.example", "alice.martin", "Alice", "Martin"}

func TestCheck(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		password string
		personal []string
		want     []string
	}{
		{"password", "password", nil, []string{msgShort, msgCommon}},
		{"123456", "123456", nil, []string{msgShort, msgCommon}},
		{"qwerty123", "qwerty123", nil, []string{msgShort, msgCommon}},
		{"Password1, any case", "Password1", nil, []string{msgShort, msgCommon}},
		{"PASSWORD1, any case", "PASSWORD1", nil, []string{msgShort, msgCommon}},
		{"empty", "", nil, []string{msgShort}},
		{"one character", "x", nil, []string{msgShort}},
		{"short, not common", "vN4#tq9!Lm2", nil, []string{msgShort}},
		{"exactly 12, not common", "vN4#tq9!Lm2z", nil, nil},
		{"12 code points, more bytes", "ünïcödé-päss", nil, nil},
		{"11 code points, more than 12 bytes", "ünïcödé-päs", nil, []string{msgShort}},
		{"long random passphrase", "tundra orchid lantern gravel sextant", alice, nil},
		{"long passphrase of common words", "correct horse battery staple", nil, nil},
		{"repeated character", "aaaaaaaaaaaaaa", nil, []string{msgCommon}},
		{"repeated character, not letters", "!!!!!!!!!!!!", nil, []string{msgCommon}},
		{"repeated pattern", "abcabcabcabc", nil, []string{msgCommon}},
		{"repeated pair", "ab12ab12ab12ab", nil, []string{msgCommon}},
		{"number run", "123456789012", nil, []string{msgCommon}},
		{"number run backwards", "987654321098", nil, []string{msgCommon}},
		{"alphabet run", "abcdefghijklm", nil, []string{msgCommon}},
		{"keyboard run", "qwertyuiopas", nil, []string{msgCommon}},
		{"keyboard run upper case", "QWERTYUIOPASDF", nil, []string{msgCommon}},
		{"keyboard run, QWERTZ", "qwertzuiopasd", nil, []string{msgCommon}},
		{"keyboard run, AZERTY", "azertyuiopqsd", nil, []string{msgCommon}},
		{"keyboard columns", "1qaz2wsx3edc", nil, []string{msgCommon}},
		{"shifted digits", "!@#$%^&*()!@", nil, []string{msgCommon}},
		{"common with digits added", "password2024", nil, []string{msgCommon}},
		{"common with symbols added", "!!monkey!!123", nil, []string{msgCommon}},
		{"run inside a longer password is fine", "tundra-123456789-orchid", nil, nil},
		{"common word inside a longer password is fine", "dragon-lantern-gravel", nil, nil},
		{"email address", "alice.martin@clinic.example!", alice, []string{msgPersonal}},
		{"local part", "xx-alice.martin-xx", alice, []string{msgPersonal}},
		{"name word, other case", "tundra-MARTIN-orchid", alice, []string{msgPersonal}},
		{"whole name split by Check", "orchid-Martinez-gravel", []string{"Ana Martinez"}, []string{msgPersonal}},
		{"address split by Check", "tundra.orchid.aliceM", []string{"alicem@clinic.example"}, []string{msgPersonal}},
		{"short name word ignored", "gravel-bo-orchid-li", []string{"Bo Li", "bo.li@clinic.example", "bo.li"}, nil},
		{"domain alone ignored", "clinic-tundra-orchid", alice, nil},
		{"no personal data", "tundra-martin-orchid", nil, nil},
		{"every problem at once", "Martin1", alice, []string{msgShort, msgCommon, msgPersonal}},
		{"too long", strings.Repeat("Tundra-7q ", 26)[:257], nil, []string{msgTooLong}},
		{"longest", strings.Repeat("Tundra-7q ", 26)[:256], nil, nil},
		{"too long and personal", strings.Repeat("Martin-7q ", 26)[:257], alice, []string{msgTooLong, msgPersonal}},
		{"too long, repeated character", strings.Repeat("a", 300), nil, []string{msgTooLong}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := DefaultPolicy().Check(tt.password, tt.personal...)
			if !slices.Equal(got, tt.want) {
				t.Errorf("Check(%q) = %q, want %q", tt.password, got, tt.want)
			}
			if tt.want == nil && got != nil {
				t.Errorf("Check(%q) = %#v, want nil", tt.password, got)
			}
		})
	}
}

func TestPolicyMinLength(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		policy   Policy
		password string
		want     []string
	}{
		{"zero value is the default", Policy{}, "vN4#tq9!Lm2", []string{msgShort}},
		{"negative is the default", Policy{MinLength: -3}, "vN4#tq9!Lm2z", nil},
		{"shorter minimum", Policy{MinLength: 8}, "vN4#tq9!", nil},
		{"shorter minimum, too short", Policy{MinLength: 8}, "vN4#tq9", []string{"Use at least 8 characters."}},
		{"longer minimum", Policy{MinLength: 16}, "vN4#tq9!Lm2zKw8", []string{"Use at least 16 characters."}},
		{"minimum above the maximum is the maximum", Policy{MinLength: 1000}, strings.Repeat("Tundra-7q ", 26)[:256], nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.policy.Check(tt.password); !slices.Equal(got, tt.want) {
				t.Errorf("%+v.Check(%q) = %q, want %q", tt.policy, tt.password, got, tt.want)
			}
		})
	}
	if got := DefaultPolicy().MinLength; got != 12 {
		t.Errorf("DefaultPolicy().MinLength = %d, want 12", got)
	}
}

func TestCommon(t *testing.T) {
	t.Parallel()
	tests := []struct {
		password string
		want     bool
	}{
		{"password", true}, // first line of the list
		{"123456", true},   // second
		{"eyphed", true},   // last line
		{"eeeee1", true},   // next to last
		{"PassWord", true},
		{"EYPHED", true},
		{"qwerty123", true},
		{"iloveyou!", true},
		{"&amp;", true},
		{`pic\'s`, true},
		{"", false},
		{" password", false},
		{"password ", false},
		{"eyphed\r", false},
		{"password\npassword", false},
		{"correct horse battery staple", false},
		{"vN4#tq9!Lm2z", false},
	}
	for _, tt := range tests {
		if got := Common(tt.password); got != tt.want {
			t.Errorf("Common(%q) = %v, want %v", tt.password, got, tt.want)
		}
	}
}

func TestCommonListLoaded(t *testing.T) {
	t.Parallel()
	set := commonSet()
	if len(set) < 10000 {
		t.Fatalf("list has %d entries, want at least 10,000", len(set))
	}
	for w := range set {
		if w != strings.ToLower(w) || strings.ContainsAny(w, "\r\n") || w == "" {
			t.Fatalf("entry %q is not a clean lower-case line", w)
		}
	}
}

func TestTrivial(t *testing.T) {
	t.Parallel()
	tests := []struct {
		s    string
		want bool
	}{
		{"aa", true},
		{"zyxwvutsrqpo", true},
		{"mnbvcxzlkjhg", true},
		{"7890123", true},
		{"abcdabcdab", true},
		{"abcdeabcde", false}, // a pattern longer than maxUnit
		{"a", false},
		{"", false},
		{"acegikmoqsuw", false},
		{"ünïcödé", false},
	}
	for _, tt := range tests {
		if got := trivial([]rune(tt.s)); got != tt.want {
			t.Errorf("trivial(%q) = %v, want %v", tt.s, got, tt.want)
		}
	}
}

func BenchmarkCheck(b *testing.B) {
	cases := []struct{ name, password string }{
		{"acceptable", "tundra orchid lantern gravel sextant"},
		{"common", "Password1"},
		{"longest", strings.Repeat("Tundra-7q ", 26)[:256]},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			p := DefaultPolicy()
			commonSet() // load the list outside the timing
			b.ReportAllocs()
			for b.Loop() {
				p.Check(c.password, alice...)
			}
		})
	}
}

// BenchmarkLoadList measures the one-time cost of the first Check.
func BenchmarkLoadList(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		parseList(commonList)
	}
}
