package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"

	"github.com/knadh/koanf/parsers/toml/v2"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/v2"
)

// DefaultFile is read when no --config is given and it exists.
const DefaultFile = "/etc/sealpost/sealpost.toml"

// EnvPrefix starts every environment variable that sets a key.
const EnvPrefix = "SEALPOST_"

// KeyError is one problem with one key.
type KeyError struct {
	Key    string // the dotted key, e.g. https.listen
	Source string // where the value came from: a file path or an environment variable; empty for defaults
	Msg    string
}

func (e *KeyError) Error() string {
	if e.Source != "" {
		return fmt.Sprintf("%s (%s): %s", e.Key, e.Source, e.Msg)
	}
	return e.Key + ": " + e.Msg
}

// Errors is every problem found, one per line.
type Errors []error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Source says where Load looks.
type Source struct {
	File     string   // the --config file; empty means DefaultFile when it exists
	Explicit bool     // File was named by the user, so a missing file is an error
	Environ  []string // KEY=VALUE pairs; nil means os.Environ()
}

// Load builds the configuration from defaults, the file and the environment,
// and validates it. On failure the error is an Errors naming every key.
func Load(src Source) (Config, error) {
	cfg := Defaults()
	var errs Errors
	sources := map[string]string{} // key → where its value came from, for messages

	path := src.File
	if path == "" {
		path = DefaultFile
	}
	if _, err := os.Stat(path); err == nil || src.Explicit {
		values, err := readFile(path)
		if err != nil {
			return cfg, Errors{err}
		}
		errs = append(errs, apply(&cfg, values, sources, func(string) string { return path })...)
	}

	values, names, err := readEnv(src.Environ)
	if err != nil {
		return cfg, Errors{err}
	}
	errs = append(errs, apply(&cfg, values, sources, func(key string) string { return names[key] })...)

	for _, err := range cfg.Validate() {
		if ke, ok := err.(*KeyError); ok && ke.Source == "" {
			ke.Source = sources[ke.Key]
		}
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return cfg, errs
	}
	return cfg, nil
}

func readFile(path string) (map[string]any, error) {
	k := koanf.New(".")
	if err := k.Load(file.Provider(path), toml.Parser()); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("configuration file %s does not exist", path)
		}
		return nil, fmt.Errorf("read configuration file %s: %w", path, err)
	}
	return k.All(), nil
}

// readEnv returns the SEALPOST_* variables as dotted keys, and for each key
// the variable it came from. SEALPOST_HTTPS__LISTEN sets https.listen.
func readEnv(environ []string) (map[string]any, map[string]string, error) {
	if environ == nil {
		environ = os.Environ()
	}
	names := map[string]string{}
	k := koanf.New(".")
	provider := env.Provider(".", env.Opt{
		Prefix:      EnvPrefix,
		EnvironFunc: func() []string { return environ },
		TransformFunc: func(name, value string) (string, any) {
			key := strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(name, EnvPrefix)), "__", ".")
			names[key] = name
			return key, value
		},
	})
	if err := k.Load(provider, nil); err != nil {
		return nil, nil, fmt.Errorf("read environment: %w", err)
	}
	return k.All(), names, nil
}

// apply sets every known key in values on cfg, records where each came from
// in sources, and reports unknown keys and values of the wrong type.
func apply(cfg *Config, values map[string]any, sources map[string]string, source func(key string) string) Errors {
	fields := fieldsByKey(cfg)
	var errs Errors
	keys := make([]string, 0, len(values))
	for key := range values {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	for _, key := range keys {
		f, ok := fields[key]
		if !ok {
			errs = append(errs, &KeyError{Key: key, Source: source(key), Msg: "unknown key" + suggestion(key, fields)})
			continue
		}
		if err := f.set(values[key]); err != nil {
			errs = append(errs, &KeyError{Key: key, Source: source(key), Msg: err.Error()})
		}
		sources[key] = source(key)
	}
	return errs
}

func suggestion(key string, fields map[string]field) string {
	best, bestDist := "", 3 // suggest only close misspellings
	for known := range fields {
		if d := editDistance(key, known); d < bestDist || d == bestDist && known < best {
			best, bestDist = known, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %s?)", best)
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// field is one key of Config, reached by reflection.
type field struct {
	key   string
	doc   string
	value reflect.Value // settable
}

func (f field) set(v any) error {
	switch f.value.Kind() {
	case reflect.String:
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("must be a string (in quotes), not %v", v)
		}
		f.value.SetString(s)
	case reflect.Slice:
		var list []string
		switch v := v.(type) {
		case string: // from the environment: comma-separated
			for _, item := range strings.Split(v, ",") {
				if item = strings.TrimSpace(item); item != "" {
					list = append(list, item)
				}
			}
		case []any:
			for _, item := range v {
				s, ok := item.(string)
				if !ok {
					return fmt.Errorf("must be a list of strings, and %v is not a string", item)
				}
				list = append(list, s)
			}
		default:
			return fmt.Errorf("must be a list of strings, like [\"10.0.0.0/8\"]")
		}
		f.value.Set(reflect.ValueOf(list))
	default:
		return fmt.Errorf("unsupported configuration type %s", f.value.Kind())
	}
	return nil
}

// fields lists Config's keys in declaration order.
func fields(cfg *Config) []field {
	var out []field
	var walk func(v reflect.Value, prefix string)
	walk = func(v reflect.Value, prefix string) {
		t := v.Type()
		for i := range t.NumField() {
			sf := t.Field(i)
			key := prefix + sf.Tag.Get("koanf")
			if sf.Type.Kind() == reflect.Struct {
				walk(v.Field(i), key+".")
				continue
			}
			out = append(out, field{key: key, doc: sf.Tag.Get("doc"), value: v.Field(i)})
		}
	}
	walk(reflect.ValueOf(cfg).Elem(), "")
	return out
}

func fieldsByKey(cfg *Config) map[string]field {
	m := map[string]field{}
	for _, f := range fields(cfg) {
		m[f.key] = f
	}
	return m
}
