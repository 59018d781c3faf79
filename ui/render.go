package ui

import (
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/sealpost/sealpost/appliance/account"
	"github.com/sealpost/sealpost/appliance/fault"
	"github.com/sealpost/sealpost/appliance/message"
	"github.com/sealpost/sealpost/embed"
	"github.com/sealpost/sealpost/internal/i18n"
)

// page carries what the layout shows on every page.
type page struct {
	Version string
	CSRF    string        // the form token, for every form's hidden csrf field
	User    *account.User // the signed-in user, if any
	Nav     string        // which navigation entry is current
	Flash   string        // a one-line confirmation of what just happened
}

func (s *Server) page() page { return page{Version: s.opts.Version} }

// pageFor is the layout data of a request: the form token and who is
// signed in.
func (s *Server) pageFor(c echo.Context, nav string) page {
	p := s.page()
	p.CSRF, _ = c.Get(ctxCSRF).(string)
	p.Nav = nav
	if sess, u, ok := current(c); ok && sess.Stage == account.StageFull {
		p.User = &u
	}
	p.Flash = c.QueryParam("done")
	return p
}

// form holds a form's values and its errors by field, to show each error
// next to its field and keep what was typed.
type Form struct {
	Values map[string]string
	Errors map[string]string
	Error  string // a problem with the form as a whole
}

func newForm(c echo.Context, fields ...string) Form {
	f := Form{Values: map[string]string{}, Errors: map[string]string{}}
	for _, k := range fields {
		f.Values[k] = c.FormValue(k)
	}
	return f
}

// fail records err on the form: field errors next to their fields, any
// other safe message at the top. It returns the status to answer with.
func (f *Form) fail(err error) int {
	if ve := account.FieldErrors(err); ve != nil {
		for _, fe := range ve.Fields {
			if f.Errors[fe.Field] == "" {
				f.Errors[fe.Field] = fe.Message
			} else {
				f.Errors[fe.Field] += " " + fe.Message
			}
		}
		return http.StatusUnprocessableEntity
	}
	f.Error = fault.Message(err)
	return statusOf[fault.KindOf(err)]
}

// renderer holds one template set per page: the layout plus that page's
// blocks. A page's name is its path under templates/ without ".html".
type renderer struct {
	pages map[string]*template.Template
}

func newRenderer() (*renderer, error) {
	cat, err := i18n.Load()
	if err != nil {
		return nil, err
	}
	fm := template.FuncMap{
		// t is a user-facing string from the catalogue. Every user sees
		// English for now; the catalogue is where other languages go.
		"t": func(key string, args ...any) string { return cat.T(i18n.Fallback, key, args...) },
	}
	layout, err := template.New("layout.html").Funcs(funcs).Funcs(fm).ParseFS(embed.Templates, "templates/layout.html", "templates/partials/*.html")
	if err != nil {
		return nil, fmt.Errorf("parse layout: %w", err)
	}
	r := &renderer{pages: map[string]*template.Template{}}
	err = fs.WalkDir(embed.Templates, "templates", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || path == "templates/layout.html" || strings.HasPrefix(path, "templates/partials/") {
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

// funcs are the helpers templates may call.
var funcs = template.FuncMap{
	"date": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return t.UTC().Format("2 Jan 2006 15:04 UTC")
	},
	"stamp": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") },
	"has":   func(u account.User, r string) bool { return u.Has(account.Role(r)) },
	"bytes": func(n int64) string {
		switch {
		case n >= 1<<30:
			return fmt.Sprintf("%.1f GB", float64(n)/(1<<30))
		case n >= 1<<20:
			return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
		case n >= 1<<10:
			return fmt.Sprintf("%.0f KB", float64(n)/(1<<10))
		}
		return fmt.Sprintf("%d B", n)
	},
	"list":        func(s ...string) []string { return s },
	"folderTitle": func() map[message.Folder]string { return folderLabels },
	"kindLabels": func() map[string]string {
		return map[string]string{"lexicon": "A lexicon", "keyword": "Keywords", "regex": "A regular expression", "domain": "Sender or recipient domains"}
	},
	"scopeLabels": func() map[string]string {
		return map[string]string{"all": "Everywhere", "subject": "The subject", "body": "The text", "attachments": "Text attachments"}
	},
	"lastDownload": func(d []message.Download) time.Time {
		if len(d) == 0 {
			return time.Time{}
		}
		return d[len(d)-1].At
	},
	"add1": func(i int) int { return i + 1 },
	// field is one labelled input of a form page, for the wfield template.
	"field": func(p any, name, label, typ, help string) fieldView {
		f := formOf(p)
		return fieldView{Name: name, Label: label, Type: typ, Help: help, Value: f.Values[name], Error: f.Errors[name]}
	},
}

// fieldView is what the wfield template shows.
type fieldView struct{ Name, Label, Type, Help, Value, Error string }

// formOf finds the Form of a page.
func formOf(p any) Form {
	if fp, ok := p.(interface{ form() Form }); ok {
		return fp.form()
	}
	return Form{}
}

func (f Form) form() Form { return f }
