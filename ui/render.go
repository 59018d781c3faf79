package ui

import (
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/sealpost/sealpost/embed"
)

// page carries what the layout shows on every page.
type page struct {
	Version string
}

func (s *Server) page() page { return page{Version: s.opts.Version} }

// renderer holds one template set per page: the layout plus that page's
// blocks. A page's name is its path under templates/ without ".html".
type renderer struct {
	pages map[string]*template.Template
}

func newRenderer() (*renderer, error) {
	layout, err := template.ParseFS(embed.Templates, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("parse layout: %w", err)
	}
	r := &renderer{pages: map[string]*template.Template{}}
	err = fs.WalkDir(embed.Templates, "templates", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || path == "templates/layout.html" {
			return err
		}
		t, err := template.Must(layout.Clone()).ParseFS(embed.Templates, path)
		if err != nil {
			return fmt.Errorf("parse %s: %w", path, err)
		}
		r.pages[strings.TrimSuffix(strings.TrimPrefix(path, "templates/"), ".html")] = t
		return nil
	})
	return r, err
}

// Render implements echo.Renderer.
func (r *renderer) Render(w io.Writer, name string, data any, _ echo.Context) error {
	t, ok := r.pages[name]
	if !ok {
		return fmt.Errorf("no template %q", name)
	}
	return t.ExecuteTemplate(w, "layout", data)
}
