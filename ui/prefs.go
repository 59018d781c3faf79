package ui

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/sealpost/sealpost/appliance/prefs"
)

// prefsPage is the preferences form.
type prefsPage struct {
	page
	Form
	Prefs       prefs.Prefs
	DateFormats []prefs.Choice
	WeekStarts  []prefs.Choice
	Zones       []string
	Languages   []prefs.Choice
}

func (s *Server) loadPrefs(uid string) (prefs.Prefs, error) {
	if s.opts.Prefs == nil {
		return prefs.Defaults(), nil
	}
	return s.opts.Prefs(uid)
}

func (s *Server) savePrefs(c echo.Context, uid string, change func(*prefs.Prefs)) error {
	return s.opts.SavePrefs(c.Request().Context(), uid, change)
}

func (s *Server) prefsData(c echo.Context) (prefsPage, error) {
	_, u, _ := current(c)
	p := prefsPage{page: s.pageFor(c, "prefs"), Form: newForm(c), DateFormats: prefs.DateFormats,
		WeekStarts: prefs.WeekStarts, Zones: prefs.Zones(), Languages: []prefs.Choice{{Value: "en", Label: "English"}}}
	var err error
	p.Prefs, err = s.loadPrefs(u.ID)
	return p, err
}

// preferencesForm shows the user's display preferences and signature.
func (s *Server) preferencesForm(c echo.Context) error {
	p, err := s.prefsData(c)
	if err != nil {
		return err
	}
	return c.Render(http.StatusOK, "account/preferences", p)
}

// preferences saves them, every problem shown next to its field.
func (s *Server) preferences(c echo.Context) error {
	_, u, _ := current(c)
	p, err := s.prefsData(c)
	if err != nil {
		return err
	}
	p.Prefs.DateFormat = c.FormValue("date_format")
	p.Prefs.Clock24 = c.FormValue("clock") != "12"
	p.Prefs.WeekStart = c.FormValue("week_start")
	p.Prefs.TimeZone = c.FormValue("time_zone")
	p.Prefs.Language = c.FormValue("language")
	p.Prefs.Signature = strings.ReplaceAll(c.FormValue("signature"), "\r\n", "\n")
	if problems := p.Prefs.Validate(); len(problems) > 0 {
		for _, fe := range problems {
			p.Form.Errors[fe.Field] = fe.Message
		}
		return c.Render(http.StatusUnprocessableEntity, "account/preferences", p)
	}
	want := p.Prefs
	if err := s.savePrefs(c, u.ID, func(old *prefs.Prefs) {
		seen := old.WelcomeSeen
		*old = want
		old.WelcomeSeen = seen
	}); err != nil {
		if problems := prefs.Problems(err); problems != nil {
			for _, fe := range problems {
				p.Form.Errors[fe.Field] = fe.Message
			}
			return c.Render(http.StatusUnprocessableEntity, "account/preferences", p)
		}
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/preferences?done="+"Preferences+saved.")
}
