package main

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/sealpost/sealpost"

// pkg is what `go list -deps -json` says of one package.
type pkg struct {
	ImportPath string
	Imports    []string
	Deps       []string
	Standard   bool
	Module     *struct{ Path string }
}

func listPackages(t *testing.T) map[string]pkg {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", "-json", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	pkgs := map[string]pkg{}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs[p.ImportPath] = p
	}
	return pkgs
}

// TestDependencyArrows checks DESIGN §2: dependencies point one way, and each
// outside library has a single package that may import it.
func TestDependencyArrows(t *testing.T) {
	pkgs := listPackages(t)
	own := func(p string) bool { return p == module || strings.HasPrefix(p, module+"/") }
	rel := func(p string) string { return strings.TrimPrefix(strings.TrimPrefix(p, module), "/") }

	// Who may import what, directly.
	owners := []struct {
		imported string // an import path prefix
		owner    string // the only package (relative path) that may import it
	}{
		{"github.com/dgraph-io/badger", "appliance/store"},
		{"github.com/blevesearch/bleve", "index"},
		{"github.com/labstack/echo", "ui"},
		{"github.com/emersion/go-smtp", "mailer"},
		{"crypto/aes", "appliance/keyring"},
		{"crypto/cipher", "appliance/keyring"},
		{"golang.org/x/crypto/argon2", "appliance/keyring"},
		{"golang.org/x/crypto/chacha20poly1305", "appliance/keyring"},
	}
	// Packages that nothing under appliance/ may depend on, even indirectly.
	upward := []string{"appliance", "ui", "mailer", "index", "backup"}

	checked := 0
	for path, p := range pkgs {
		if !own(path) {
			continue
		}
		checked++
		r := rel(path)
		for _, imp := range p.Imports {
			for _, o := range owners {
				if strings.HasPrefix(imp, o.imported) && r != o.owner && !strings.HasPrefix(r, o.owner+"/") {
					t.Errorf("%s imports %s; only %s may", r, imp, o.owner)
				}
			}
		}
		if strings.HasPrefix(r, "appliance/") {
			for _, dep := range p.Deps {
				if !own(dep) {
					continue
				}
				d := rel(dep)
				for _, up := range upward {
					if d == up || strings.HasPrefix(d, up+"/") && up != "appliance" {
						t.Errorf("%s depends on %s: appliance/* must not point up to %s", r, d, up)
					}
				}
			}
		}
		if r == "embed" {
			for _, dep := range p.Deps {
				if own(dep) {
					t.Errorf("embed must be a leaf, but depends on %s", rel(dep))
				}
			}
		}
	}
	if checked < 5 {
		t.Fatalf("go list found only %d of our packages; the check would prove nothing", checked)
	}
}
