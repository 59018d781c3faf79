package i18n

import (
	"io/fs"
	"regexp"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

func load(t *testing.T) *Catalogue {
	t.Helper()
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// test is a catalogue with a second language, for fallbacks.
func test(t *testing.T) *Catalogue {
	t.Helper()
	c, err := parse(fstest.MapFS{
		"en.toml": {Data: []byte(`"language.name" = "English"
"mail.inbox" = "Inbox"
"mail.sent" = "Sent"
"mail.messages.one" = "%d message"
"mail.messages.other" = "%d messages"
"mail.in.one" = "%d message in %s"
"mail.in.other" = "%d messages in %s"
"mail.expired" = "This message expired on %s"
"pct" = "100%% sure"
`)},
		"de.toml": {Data: []byte(`"language.name" = "Deutsch"
"mail.inbox" = "Posteingang"
"mail.messages.one" = "%d Nachricht"
"mail.messages.other" = "%d Nachrichten"
"mail.in.other" = "%[2]s: %[1]d Nachrichten"
`)},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestLoad(t *testing.T) {
	t.Parallel()
	c := load(t)
	if got := c.Languages(); !slices.Equal(got, []Choice{{Value: "en", Label: "English"}}) {
		t.Errorf("Languages = %v", got)
	}
	for key, want := range map[string]string{
		"mail.inbox":            "Inbox",
		"mail.empty.inbox.hint": "When someone sends you a secure message, you get a notification by email and it appears here.",
		"keys.compose":          "c — new message",
		"compose.send":          "Send securely",
	} {
		if got := c.T("en", key); got != want {
			t.Errorf("T(en, %s) = %q, want %q", key, got, want)
		}
	}
	if got := test(t).Languages(); !slices.Equal(got, []Choice{{"en", "English"}, {"de", "Deutsch"}}) {
		t.Errorf("Languages with German = %v, want English first", got)
	}
}

func TestT(t *testing.T) {
	t.Parallel()
	c := test(t)
	tests := []struct {
		name, lang, key string
		args            []any
		want            string
	}{
		{"plain", "en", "mail.inbox", nil, "Inbox"},
		{"translated", "de", "mail.inbox", nil, "Posteingang"},
		{"args", "en", "mail.expired", []any{"2026-12-31"}, "This message expired on 2026-12-31"},
		{"no args: %% is a per cent sign", "en", "pct", nil, "100% sure"},
		{"fallback to en", "de", "mail.sent", nil, "Sent"},
		{"fallback to en with args", "de", "mail.expired", []any{"31.12.2026"}, "This message expired on 31.12.2026"},
		{"unknown language", "xx", "mail.inbox", nil, "Inbox"},
		{"empty language", "", "mail.inbox", nil, "Inbox"},
		{"missing key visible", "en", "mail.nope", nil, "!mail.nope!"},
		{"missing key visible in de", "de", "mail.nope", []any{1}, "!mail.nope!"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := c.T(tc.lang, tc.key, tc.args...); got != tc.want {
				t.Errorf("T(%s, %s) = %q, want %q", tc.lang, tc.key, got, tc.want)
			}
		})
	}
	if !c.Has("de", "mail.inbox") || c.Has("de", "mail.sent") || !c.Has("en", "mail.sent") || c.Has("xx", "mail.inbox") {
		t.Error("Has falls back or misses a key")
	}
}

func TestPlural(t *testing.T) {
	t.Parallel()
	c := test(t)
	real := load(t)
	tests := []struct {
		name string
		c    *Catalogue
		lang string
		key  string
		n    int
		args []any
		want string
	}{
		{"zero", real, "en", "mail.messages", 0, nil, "0 messages"},
		{"one", real, "en", "mail.messages", 1, nil, "1 message"},
		{"two", real, "en", "mail.messages", 2, nil, "2 messages"},
		{"unread one", real, "en", "mail.unread", 1, nil, "1 unread message"},
		{"unread many", real, "en", "mail.unread", 12, nil, "12 unread messages"},
		{"translated", c, "de", "mail.messages", 1, nil, "1 Nachricht"},
		{"args", c, "en", "mail.in", 3, []any{3, "Inbox"}, "3 messages in Inbox"},
		{"reordered args", c, "de", "mail.in", 3, []any{3, "Posteingang"}, "Posteingang: 3 Nachrichten"},
		{"form falls back to en", c, "de", "mail.in", 1, []any{1, "Posteingang"}, "1 message in Posteingang"},
		{"missing", c, "en", "mail.nope", 1, nil, "!mail.nope.one!"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := tc.c.Plural(tc.lang, tc.key, tc.n, tc.args...); got != tc.want {
				t.Errorf("Plural(%s, %s, %d) = %q, want %q", tc.lang, tc.key, tc.n, got, tc.want)
			}
		})
	}
}

// TestCatalogueFile checks en.toml itself: keys unique (read line by line,
// not through the parser), texts not empty, verbs valid, plurals paired with
// the same verbs, keys grouped under their page's prefix.
func TestCatalogueFile(t *testing.T) {
	t.Parallel()
	data, err := fs.ReadFile(files, "en.toml")
	if err != nil {
		t.Fatal(err)
	}
	line := regexp.MustCompile(`^"([a-z0-9_.]+)" = "(.*)"$`)
	seen := map[string]int{}
	for i, l := range strings.Split(string(data), "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		m := line.FindStringSubmatch(l)
		if m == nil {
			t.Errorf("en.toml:%d: %q is not `\"page.key\" = \"text\"`", i+1, l)
			continue
		}
		if prev, dup := seen[m[1]]; dup {
			t.Errorf("en.toml:%d: %q is also on line %d", i+1, m[1], prev)
		}
		seen[m[1]] = i + 1
	}
	c := load(t)
	en := c.texts["en"]
	if len(en) != len(seen) || len(en) < 90 {
		t.Errorf("en.toml has %d lines of keys, the catalogue %d", len(seen), len(en))
	}
	for key, text := range en {
		if strings.TrimSpace(text) == "" {
			t.Errorf("%s is empty", key)
		}
		vs, err := verbs(text)
		if err != nil {
			t.Errorf("%s: %v", key, err)
		}
		if base, ok := strings.CutSuffix(key, ".one"); ok {
			other, ok := en[base+".other"]
			if !ok {
				t.Errorf("%s has no .other", key)
				continue
			}
			if vo, _ := verbs(other); !slices.Equal(vs, vo) {
				t.Errorf("%s has verbs %q, %s.other %q", key, vs, base, vo)
			}
		}
		if base, ok := strings.CutSuffix(key, ".other"); ok && !c.Has("en", base+".one") {
			t.Errorf("%s has no .one", key)
		}
	}
	for _, key := range []string{"mail.recalled.reason", "mail.expired", "compose.saved", "compose.invite_confirm"} {
		if vs, _ := verbs(en[key]); !slices.Equal(vs, []string{"1:s"}) {
			t.Errorf("%s has verbs %q, want one %%s", key, vs)
		}
	}
}

func TestVerbs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		text string
		want []string
		bad  bool
	}{
		{"no verbs", nil, false},
		{"100%% sure", nil, false},
		{"%d messages", []string{"1:d"}, false},
		{"%s sent %d", []string{"1:s", "2:d"}, false},
		{"%[2]d from %[1]s", []string{"1:s", "2:d"}, false},
		{"%-10s|%05.2f|%+v|%x|%q", []string{"1:s", "2:f", "3:v", "4:x", "5:q"}, false},
		{"%*d", []string{"1:*", "2:d"}, false},
		{"%[1]s and again %[1]s", []string{"1:s"}, false},
		{"%z", nil, true},
		{"50%", nil, true},
		{"%[0]d", nil, true},
		{"%!", nil, true},
		{"%é", nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.text, func(t *testing.T) {
			t.Parallel()
			got, err := verbs(tc.text)
			if (err != nil) != tc.bad || !slices.Equal(got, tc.want) {
				t.Errorf("verbs(%q) = %q, %v; want %q, error %v", tc.text, got, err, tc.want, tc.bad)
			}
		})
	}
}

func TestParseRefuses(t *testing.T) {
	t.Parallel()
	en := `"language.name" = "English"` + "\n" + `"mail.inbox" = "Inbox"` + "\n" + `"mail.messages.other" = "%d messages"` + "\n"
	tests := []struct {
		name  string
		files map[string]string
		want  string // in the error
	}{
		{"duplicate key", map[string]string{"en.toml": en + `"mail.inbox" = "In"` + "\n"}, "already defined"},
		{"empty text", map[string]string{"en.toml": en + `"mail.sent" = ""` + "\n"}, `"mail.sent" is empty`},
		{"blank text", map[string]string{"en.toml": en + `"mail.sent" = "  "` + "\n"}, `"mail.sent" is empty`},
		{"unquoted dotted key", map[string]string{"en.toml": en + `mail.sent = "Sent"` + "\n"}, "quote dotted keys"},
		{"number", map[string]string{"en.toml": en + `"mail.sent" = 3` + "\n"}, "is not text"},
		{"bad verb", map[string]string{"en.toml": en + `"mail.sent" = "Sent %z"` + "\n"}, `"%z" is not a valid fmt verb`},
		{"no english", map[string]string{"de.toml": en}, "en.toml is missing"},
		{"no language name", map[string]string{"en.toml": `"mail.inbox" = "Inbox"`}, `"language.name" is missing`},
		{"bad file name", map[string]string{"en.toml": en, "English.toml": en}, "not a language code"},
		{"key not in english", map[string]string{"en.toml": en, "de.toml": `"language.name" = "Deutsch"` + "\n" + `"mail.inbx" = "Posteingang"`}, `"mail.inbx" is not in en.toml`},
		{"translation changes verbs", map[string]string{"en.toml": en, "de.toml": `"language.name" = "Deutsch"` + "\n" + `"mail.messages.other" = "%s Nachrichten"`}, "has the verbs"},
		{"syntax", map[string]string{"en.toml": en + `"mail.sent = "Sent"` + "\n"}, "en.toml"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fsys := fstest.MapFS{}
			for name, text := range tc.files {
				fsys[name] = &fstest.MapFile{Data: []byte(text)}
			}
			c, err := parse(fsys)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("parse = %v, %v; want an error with %q", c, err, tc.want)
			}
		})
	}
	// Every problem at once.
	_, err := parse(fstest.MapFS{"en.toml": {Data: []byte(en + `"a" = ""` + "\n" + `"b" = "%z"` + "\n")}})
	if err == nil || !strings.Contains(err.Error(), `"a" is empty`) || !strings.Contains(err.Error(), `"b"`) {
		t.Errorf("parse with two problems: %v", err)
	}
}
