package ui

import (
	"crypto/subtle"
	"errors"
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/sealpost/sealpost/appliance/account"
)

// Cookies. __Host- binds them to this origin, over HTTPS, for every path.
const (
	sessionCookie = "__Host-sealpost-session"
	csrfCookie    = "__Host-sealpost-csrf"
)

// Context keys.
const (
	ctxSession = "sealpost.session"
	ctxUser    = "sealpost.user"
	ctxToken   = "sealpost.token"
	ctxCSRF    = "sealpost.csrf"
	// ctxBodyToken is the cookie's token that a streamed multipart form
	// must carry as its first part.
	ctxBodyToken = "sealpost.csrf.body"
)

// csrf refuses state changes that do not come from the appliance's own
// pages: a browser's Sec-Fetch-Site must say same-origin, and a client
// without it must send the token of the double-submit cookie. The one-click
// unsubscribe (RFC 8058) is posted by mail programs and is authorized by the
// token in its link instead.
//
// A multipart body (a file upload) is never parsed to look for the token:
// net/http would spool a large file to a temporary file in plaintext
// before the handler could encrypt it. A script sends the token in the
// X-CSRF-Token header; a plain form from a browser without Sec-Fetch-Site
// reaches only the compose form, which streams its parts itself and checks
// the token, its first part, before it reads anything else (bodyToken).
func csrf() echo.MiddlewareFunc {
	config := func(lookup string) echo.MiddlewareFunc {
		return middleware.CSRFWithConfig(middleware.CSRFConfig{
			Skipper:        func(c echo.Context) bool { return c.Path() == "/unsubscribe/one-click" },
			TokenLookup:    lookup,
			ContextKey:     ctxCSRF,
			CookieName:     csrfCookie,
			CookiePath:     "/",
			CookieSecure:   true,
			CookieHTTPOnly: true,
			CookieSameSite: http.SameSiteStrictMode,
			// A browser's cross-site form is refused in the appliance's words;
			// same-site (another port or subdomain) must show the token.
			AllowSecFetchSiteFunc: func(c echo.Context) (bool, error) {
				if c.Request().Header.Get(echo.HeaderSecFetchSite) == "cross-site" {
					return false, errForeignForm
				}
				return false, nil
			},
			ErrorHandler: func(error, echo.Context) error { return errForeignForm },
		})
	}
	forms := config("header:X-CSRF-Token,form:csrf")
	uploads := config("header:X-CSRF-Token")
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		form, upload := forms(next), uploads(next)
		return func(c echo.Context) error {
			r := c.Request()
			if !strings.HasPrefix(strings.ToLower(r.Header.Get(echo.HeaderContentType)), "multipart/") {
				return form(c)
			}
			if r.Header.Get("X-CSRF-Token") == "" && r.Header.Get(echo.HeaderSecFetchSite) == "" && c.Path() == "/mail/compose" {
				ck, err := c.Cookie(csrfCookie)
				if err != nil || ck.Value == "" {
					return errForeignForm
				}
				c.Set(ctxCSRF, ck.Value)
				c.Set(ctxBodyToken, ck.Value)
				return next(c)
			}
			return upload(c)
		}
	}
}

// bodyToken checks a streamed multipart form's parts, when the middleware
// left the token to the handler: the first part must be the token, equal
// to the cookie's; anything before it is refused unread. seen says the
// token part passed already.
func bodyToken(c echo.Context, name, value string, seen bool) error {
	want, _ := c.Get(ctxBodyToken).(string)
	switch {
	case want == "" || seen:
		return nil
	case name != "csrf", subtle.ConstantTimeCompare([]byte(value), []byte(want)) != 1:
		return errForeignForm
	}
	return nil
}

var errForeignForm = echo.NewHTTPError(http.StatusForbidden,
	"This form has expired or did not come from this site. Go back, reload the page and try again.")

// loadSession finds the signed-in user, if any, for every request.
func (s *Server) loadSession(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		p := c.Request().URL.Path
		if s.opts.Accounts == nil || strings.HasPrefix(p, "/static/") || p == "/healthz" || p == "/readyz" {
			return next(c) // no store reads for assets and probes
		}
		ck, err := c.Cookie(sessionCookie)
		if err != nil || ck.Value == "" {
			return next(c)
		}
		sess, u, err := s.opts.Accounts.Authenticate(c.Request().Context(), ck.Value, c.RealIP())
		switch {
		case errors.Is(err, account.ErrNoSession):
			s.clearSession(c)
		case err != nil:
			return err
		default:
			c.Set(ctxSession, sess)
			c.Set(ctxUser, u)
			c.Set(ctxToken, ck.Value)
		}
		return next(c)
	}
}

func (s *Server) setSession(c echo.Context, token string) {
	c.SetCookie(&http.Cookie{Name: sessionCookie, Value: token, Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
}

func (s *Server) clearSession(c echo.Context) {
	c.SetCookie(&http.Cookie{Name: sessionCookie, Value: "", Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode, MaxAge: -1})
}

// current returns the request's session and user; ok is false when nobody
// is signed in.
func current(c echo.Context) (account.Session, account.User, bool) {
	sess, ok := c.Get(ctxSession).(account.Session)
	if !ok {
		return account.Session{}, account.User{}, false
	}
	u, _ := c.Get(ctxUser).(account.User)
	return sess, u, true
}

func sessionToken(c echo.Context) string {
	t, _ := c.Get(ctxToken).(string)
	return t
}

// signedIn lets only fully signed-in users through; others go to the
// sign-in page (and come back afterwards), or finish their second factor.
func signedIn(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		sess, _, ok := current(c)
		switch {
		case !ok:
			if c.Request().Method != http.MethodGet {
				return echo.NewHTTPError(http.StatusUnauthorized, "Your session has ended. Sign in again.")
			}
			return c.Redirect(http.StatusSeeOther, "/signin?next="+url.QueryEscape(c.Request().URL.RequestURI()))
		case sess.Stage == account.StageSecondFactor:
			return c.Redirect(http.StatusSeeOther, "/signin/code")
		case sess.Stage == account.StageEnrol:
			return c.Redirect(http.StatusSeeOther, "/signin/enrol")
		}
		return next(c)
	}
}

// role lets only users with one of roles through; others get 404, so the
// console does not even show that it exists.
func role(roles ...account.Role) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			_, u, _ := current(c)
			for _, r := range roles {
				if u.Has(r) {
					return next(c)
				}
			}
			return echo.ErrNotFound
		}
	}
}

// adminNetworks answers the admin console only from the configured
// networks (admin.allowed_networks).
func (s *Server) adminNetworks(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if len(s.opts.AdminNetworks) == 0 {
			return next(c)
		}
		ip, err := netip.ParseAddr(c.RealIP())
		if err == nil {
			ip = ip.Unmap()
			for _, p := range s.opts.AdminNetworks {
				if p.Contains(ip) {
					return next(c)
				}
			}
		}
		s.log.Warn().Str("remote_ip", c.RealIP()).Str("route", c.Path()).Msg("admin console refused: address outside admin.allowed_networks")
		return echo.ErrNotFound
	}
}

// safeNext is where to go after signing in: a path on this site only.
// Control characters and backslashes are refused outright: browsers drop
// tabs and newlines and read \ as /, so "/\t/evil.example" would leave.
func safeNext(next string) string {
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") ||
		strings.ContainsFunc(next, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '\\' }) {
		return "/"
	}
	return next
}
