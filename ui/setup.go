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

// setupPage is the wizard's welcome: the appliance's identity, to check
// before anything is entered. setupAccess has checked the token.
func (s *Server) setupPage(c echo.Context) error {
	facts := SetupFacts{}
	if s.opts.SetupFacts != nil {
		facts = s.opts.SetupFacts()
	}
	return c.Render(http.StatusOK, "setup/welcome", welcomePage{page: s.pageFor(c, ""), SetupFacts: facts})
}

// hostForLocked is the host to show in the locked page's example link.
func hostForLocked(c echo.Context) string {
	host := c.Request().Host
	if h, _, err := net.SplitHostPort(host); err == nil && h == "" {
		host = "HOST" + host
	}
	return host
}
