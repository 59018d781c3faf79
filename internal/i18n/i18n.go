// Package i18n is the one catalogue of user-facing strings, one embedded
// <lang>.toml per language (English now), so other languages can follow.
// Load refuses a catalogue with a duplicate key, an empty text or a text
// whose fmt verbs are invalid or differ from the English text, so a
// translation cannot make Sprintf print "%!" garbage. A missing key shows
// as "!key!" instead of an empty string. Texts are plain text: callers
// escape them (html/template does).
package i18n

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// Fallback is the language every other one falls back to; its catalogue
// must exist and has every key.
const Fallback = "en"

//go:embed *.toml
var files embed.FS

// Choice is one option of a select: the stored value and what the user sees.
type Choice struct{ Value, Label string }

// Catalogue holds the texts of every language. It is read-only once loaded
// and safe for concurrent use.
type Catalogue struct {
	texts map[string]map[string]string // language → key → text
	langs []string                     // sorted, Fallback first
}

// Load parses every embedded <lang>.toml.
func Load() (*Catalogue, error) { return parse(files) }

var langCode = regexp.MustCompile(`^[a-z]{2,3}(-[A-Z]{2})?$`)

// parse reads every *.toml at the top of fsys.
func parse(fsys fs.FS) (*Catalogue, error) {
	names, err := fs.Glob(fsys, "*.toml")
	if err != nil {
		return nil, fmt.Errorf("list catalogues: %w", err)
	}
	c := &Catalogue{texts: map[string]map[string]string{}}
	var errs []error
	for _, name := range names {
		lang := strings.TrimSuffix(path.Base(name), ".toml")
		if !langCode.MatchString(lang) {
			errs = append(errs, fmt.Errorf("%s: the file name is not a language code like en or pt-BR", name))
			continue
		}
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("read catalogue %s: %w", name, err)
		}
		var raw map[string]any
		if err := toml.Unmarshal(data, &raw); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			continue
		}
		texts := map[string]string{}
		for _, key := range sortedKeys(raw) {
			text, ok := raw[key].(string)
			switch {
			case !ok:
				errs = append(errs, fmt.Errorf("%s: %q is not text; quote dotted keys: \"mail.inbox\" = \"Inbox\"", name, key))
			case strings.TrimSpace(text) == "":
				errs = append(errs, fmt.Errorf("%s: %q is empty", name, key))
			default:
				if _, err := verbs(text); err != nil {
					errs = append(errs, fmt.Errorf("%s: %q: %w", name, key, err))
				}
				texts[key] = text
			}
		}
		if _, ok := texts["language.name"]; !ok {
			errs = append(errs, fmt.Errorf("%s: \"language.name\" is missing", name))
		}
		c.texts[lang] = texts
		c.langs = append(c.langs, lang)
	}
	base, ok := c.texts[Fallback]
	if !ok {
		errs = append(errs, fmt.Errorf("%s.toml is missing", Fallback))
	}
	for _, lang := range c.langs {
		if lang == Fallback || !ok {
			continue
		}
		for _, key := range sortedKeys(c.texts[lang]) {
			want, found := base[key]
			if !found {
				errs = append(errs, fmt.Errorf("%s.toml: %q is not in %s.toml", lang, key, Fallback))
				continue
			}
			got, err1 := verbs(c.texts[lang][key])
			exp, err2 := verbs(want)
			if err1 == nil && err2 == nil && !slices.Equal(got, exp) {
				errs = append(errs, fmt.Errorf("%s.toml: %q has the verbs %q, %s.toml has %q", lang, key, got, Fallback, exp))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("load catalogue: %w", err)
	}
	slices.SortFunc(c.langs, func(a, b string) int {
		switch {
		case a == b:
			return 0
		case a == Fallback:
			return -1
		case b == Fallback:
			return 1
		}
		return strings.Compare(a, b)
	})
	return c, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Languages returns the languages for a select, English first, each
// labelled with its own name (the key "language.name").
func (c *Catalogue) Languages() []Choice {
	cs := make([]Choice, len(c.langs))
	for i, lang := range c.langs {
		cs[i] = Choice{Value: lang, Label: c.texts[lang]["language.name"]}
	}
	return cs
}

// Has reports whether lang itself has key, without falling back.
func (c *Catalogue) Has(lang, key string) bool {
	_, ok := c.texts[lang][key]
	return ok
}

// T returns the text of key in lang, formatted with fmt.Sprintf when args
// are given; texts write a per cent sign as "%%" either way. A key lang
// lacks (or an unknown lang) falls back to English; a key English lacks too
// shows as "!key!".
func (c *Catalogue) T(lang, key string, args ...any) string {
	text, ok := c.texts[lang][key]
	if !ok {
		text, ok = c.texts[Fallback][key]
	}
	if !ok {
		return "!" + key + "!"
	}
	if len(args) == 0 {
		return strings.ReplaceAll(text, "%%", "%")
	}
	return fmt.Sprintf(text, args...)
}

// Plural returns the text of key+".one" or key+".other", chosen by n
// under lang's plural rule, formatted with args, or with n alone when no
// args are given: Plural("en", "mail.messages", 3) is "3 messages".
func (c *Catalogue) Plural(lang, key string, n int, args ...any) string {
	if len(args) == 0 {
		args = []any{n}
	}
	return c.T(lang, key+"."+pluralForm(lang, n), args...)
}

// pluralForm is the CLDR plural category of n in lang. Only "one" and
// "other" are supported; a language with more forms adds its rule here.
func pluralForm(lang string, n int) string {
	switch lang {
	case "fr", "pt":
		if n == 0 || n == 1 {
			return "one"
		}
		return "other"
	}
	if n == 1 {
		return "one"
	}
	return "other"
}

// verbRE is one fmt directive: flags, an optional argument index, width
// and precision (each maybe * or indexed), then the verb.
var verbRE = regexp.MustCompile(`^%[-+# 0]*(\[\d+\])?(\d+|\*)?(\.(\[\d+\])?(\d+|\*)?)?(\[\d+\])?(.)`)

// validVerbs are the fmt verbs a text may use.
const validVerbs = "vTtbcdoOqxXUeEfFgGsp"

// verbs returns what text's fmt directives do with the arguments, as
// sorted "argument:verb" pairs counted from 1 the way fmt numbers them
// ("%[2]d %[1]s" is ["1:s" "2:d"]; a "*" width or precision is verb '*'),
// so a translation that reorders its arguments matches. "%%" is no verb. An
// invalid directive is an error naming it.
func verbs(text string) ([]string, error) {
	var out []string
	arg := 0 // the next argument, from 0
	index := func(s string) (int, error) {
		var n int
		if _, err := fmt.Sscanf(s, "[%d]", &n); err != nil || n < 1 {
			return 0, fmt.Errorf("%q is not a valid argument index", s)
		}
		return n - 1, nil
	}
	use := func(verb string) {
		out = append(out, fmt.Sprintf("%d:%s", arg+1, verb))
		arg++
	}
	for i := 0; i < len(text); i++ {
		if text[i] != '%' {
			continue
		}
		if strings.HasPrefix(text[i:], "%%") {
			i++
			continue
		}
		m := verbRE.FindStringSubmatch(text[i:])
		if m == nil || !strings.Contains(validVerbs, m[7]) {
			d := text[i:min(len(text), i+2)]
			if m != nil {
				d = m[0]
			}
			return nil, fmt.Errorf("%q is not a valid fmt verb (use %%s, %%d… or %%%% for a per cent sign)", d)
		}
		// Flags, [index] width, .[index]precision, [index] verb, as fmt reads them.
		for _, step := range []struct{ index, star string }{{m[1], m[2]}, {m[4], m[5]}, {m[6], ""}} {
			if step.index != "" {
				n, err := index(step.index)
				if err != nil {
					return nil, err
				}
				arg = n
			}
			if step.star == "*" {
				use("*")
			}
		}
		use(m[7])
		i += len(m[0]) - 1
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}
