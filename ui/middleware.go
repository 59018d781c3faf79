package ui

import (
	"crypto/rand"
	"fmt"
	"log"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/rs/zerolog"
)

// contentSecurityPolicy allows only the appliance's own scripts, styles and
// images: no inline script, no plugins, no framing, no outside hosts.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"font-src 'self'; connect-src 'self'; frame-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"

func (s *Server) securityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=(), usb=()")
		if strings.HasPrefix(c.Request().URL.Path, "/static/") {
			h.Set("Cache-Control", "public, max-age=3600")
		} else {
			h.Set("Cache-Control", "no-store")
		}
		if s.opts.HSTS != nil && s.opts.HSTS() {
			h.Set("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
		}
		return next(c)
	}
}

// setupMode hides everything but setup, static files and health checks
// until setup is finished.
func (s *Server) setupMode(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if s.opts.Setup == nil || !s.opts.Setup.Pending() {
			return next(c)
		}
		p := c.Request().URL.Path
		switch {
		case p == "/setup" || strings.HasPrefix(p, "/setup/") || strings.HasPrefix(p, "/static/") || p == "/healthz" || p == "/readyz":
			return next(c)
		case p == "/":
			return c.Redirect(http.StatusSeeOther, "/setup")
		default:
			return echo.ErrNotFound
		}
	}
}

// recoverPanics is the one recover point for requests: it logs, counts and
// answers 500 with a reference id.
func (s *Server) recoverPanics(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			if r := recover(); r != nil {
				if r == http.ErrAbortHandler {
					panic(r)
				}
				s.metrics.panics.Inc()
				s.log.Error().Str("request_id", requestID(c)).Str("panic", fmt.Sprint(r)).
					Bytes("stack", debug.Stack()).Msg("request handler panicked")
				err = echo.NewHTTPError(http.StatusInternalServerError)
			}
		}()
		return next(c)
	}
}

// logRequests logs one line per request: never the query string (it may
// hold a token), never bodies.
func (s *Server) logRequests(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		status := c.Response().Status
		route := c.Path()
		if route == "" {
			route = "unmatched"
		}
		elapsed := time.Since(start)
		s.metrics.observe(c.Request().Method, route, status, elapsed)
		level := zerolog.DebugLevel
		if status >= 500 {
			level = zerolog.WarnLevel
		}
		s.log.WithLevel(level).Str("request_id", requestID(c)).Str("method", c.Request().Method).
			Str("route", route).Int("status", status).Dur("duration", elapsed).
			Str("remote_ip", c.RealIP()).Msg("http request")
		return nil
	}
}

func requestID(c echo.Context) string {
	return c.Response().Header().Get(echo.HeaderXRequestID)
}

// newRequestID makes a short id that users can quote and operators can grep.
func newRequestID() string {
	return strings.ToLower(rand.Text()[:12])
}

// newStdLogger sends net/http's own messages (TLS handshake errors and the
// like) to the log at debug level: they are noise from scanners, mostly.
func newStdLogger(l zerolog.Logger) *log.Logger {
	return log.New(zerologWriter{l}, "", 0)
}

type zerologWriter struct{ l zerolog.Logger }

func (w zerologWriter) Write(p []byte) (int, error) {
	w.l.Debug().Str("detail", strings.TrimSpace(string(p))).Msg("http server")
	return len(p), nil
}
