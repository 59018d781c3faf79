package ui

import (
	"net"
	"net/http"

	"github.com/labstack/echo/v4"
)

// setupCookie keeps an accepted setup token, so that the token need not stay
// in the address bar. __Host- binds it to this origin over HTTPS.
const setupCookie = "__Host-sealpost-setup"

type lockedPage struct {
	page
	BadToken bool
	Host     string
}

type welcomePage struct {
	page
	SetupFacts
}

// setupPage shows the first-run setup, but only to the holder of the
// one-time token printed at start.
func (s *Server) setupPage(c echo.Context) error {
	if s.opts.Setup == nil || !s.opts.Setup.Pending() {
		return echo.NewHTTPError(http.StatusNotFound)
	}
	token := c.QueryParam("token")
	if token == "" {
		if ck, err := c.Cookie(setupCookie); err == nil {
			token = ck.Value
		}
	}
	if token == "" || !s.opts.Setup.Check(token) {
		if token != "" {
			s.log.Warn().Str("remote_ip", c.RealIP()).Msg("setup refused: wrong token")
		}
		host := c.Request().Host
		if h, _, err := net.SplitHostPort(host); err == nil && h == "" {
			host = "HOST" + host
		}
		return c.Render(http.StatusForbidden, "setup/locked", lockedPage{page: s.page(), BadToken: token != "", Host: host})
	}
	c.SetCookie(&http.Cookie{
		Name: setupCookie, Value: token, Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode,
	})
	facts := SetupFacts{}
	if s.opts.SetupFacts != nil {
		facts = s.opts.SetupFacts()
	}
	return c.Render(http.StatusOK, "setup/welcome", welcomePage{page: s.page(), SetupFacts: facts})
}
