package ui

import (
	"io/fs"
	"regexp"
	"strings"
	"testing"

	"github.com/sealpost/sealpost/appliance/message"
	"github.com/sealpost/sealpost/embed"
	"github.com/sealpost/sealpost/internal/i18n"
)

// TestTemplatesUseKnownStrings: every string a template takes from the
// catalogue is in it, so no page shows a "!key!".
func TestTemplatesUseKnownStrings(t *testing.T) {
	t.Parallel()
	cat, err := i18n.Load()
	if err != nil {
		t.Fatal(err)
	}
	key := regexp.MustCompile(`\{\{-?\s*t\s+"([^"]+)"`)
	n := 0
	err = fs.WalkDir(embed.Templates, "templates", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(embed.Templates, path)
		if err != nil {
			return err
		}
		for _, m := range key.FindAllStringSubmatch(string(data), -1) {
			n++
			if !cat.Has(i18n.Fallback, m[1]) {
				t.Errorf("%s uses %q, which the catalogue lacks", path, m[1])
			}
		}
		if strings.Contains(string(data), `(print "mail.empty." .Folder)`) {
			for _, f := range append(message.Folders, message.Shared) {
				for _, k := range []string{"mail.empty." + string(f), "mail.empty." + string(f) + ".hint"} {
					if !cat.Has(i18n.Fallback, k) {
						t.Errorf("%s needs %q for the empty %s folder", path, k, f)
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 100 {
		t.Errorf("only %d catalogue strings in the templates", n)
	}
}
