package config

import (
	"fmt"
	"io"
	"reflect"
	"strings"
)

// Describe writes cfg as a commented TOML file: every key with its
// documentation and its environment variable. With Defaults() it is the sample
// configuration; with a loaded configuration it reproduces that file.
func Describe(w io.Writer, cfg Config) error {
	var b strings.Builder
	b.WriteString(wrap("Sealpost boot configuration, written by `sealpost config check --describe`. " +
		"Values come from the built-in defaults, then this file, then SEALPOST_* environment variables " +
		"(SEALPOST_ plus the key in upper case, with __ for each dot). " +
		"Everything else is set at run time in the admin console and kept in the encrypted store."))

	section := ""
	for _, f := range fields(&cfg) {
		table, name := "", f.key
		if i := strings.LastIndex(f.key, "."); i >= 0 {
			table, name = f.key[:i], f.key[i+1:]
		}
		b.WriteString("\n")
		if table != section {
			section = table
			if doc := tableDoc(table); doc != "" {
				b.WriteString(wrap(doc))
			}
			fmt.Fprintf(&b, "[%s]\n", table)
		}
		b.WriteString(wrap(f.doc))
		fmt.Fprintf(&b, "# Environment: %s%s\n", EnvPrefix, strings.ToUpper(strings.ReplaceAll(f.key, ".", "__")))
		fmt.Fprintf(&b, "%s = %s\n", name, tomlValue(f.value))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// tableDoc returns the doc tag of the struct field that a TOML table stands for.
func tableDoc(table string) string {
	t := reflect.TypeFor[Config]()
	doc := ""
	for _, part := range strings.Split(table, ".") {
		found := false
		for i := range t.NumField() {
			if sf := t.Field(i); sf.Tag.Get("koanf") == part {
				t, doc, found = sf.Type, sf.Tag.Get("doc"), true
				break
			}
		}
		if !found {
			return ""
		}
	}
	return doc
}

func tomlValue(v reflect.Value) string {
	if v.Kind() == reflect.Slice {
		items := make([]string, v.Len())
		for i := range items {
			items[i] = tomlString(v.Index(i).String())
		}
		return "[" + strings.Join(items, ", ") + "]"
	}
	return tomlString(v.String())
}

// tomlString quotes s as a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, "\\u%04X", r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// wrap formats text as comment lines of at most 78 columns.
func wrap(text string) string {
	if text == "" {
		return ""
	}
	var b strings.Builder
	line := "#"
	for _, word := range strings.Fields(text) {
		if len(line)+1+len(word) > 78 && line != "#" {
			b.WriteString(line + "\n")
			line = "#"
		}
		line += " " + word
	}
	b.WriteString(line + "\n")
	return b.String()
}
