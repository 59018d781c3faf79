// Package ui serves Sealpost's web interface over HTTP with echo: the setup
// wizard, and later the admin console and the webmail. It guarantees that
// every response carries the security headers (strict CSP without inline
// script, nosniff, no referrer, no framing, no caching of personal pages),
// that errors show a safe message with a reference id while the cause goes
// only to the log, and that while setup is unfinished nothing but the setup
// page (behind its one-time token), static files and health checks exists.
package ui

import (
	"context"
	"net/http"
	"net/netip"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/sealpost/sealpost/appliance/account"
	"github.com/sealpost/sealpost/appliance/audit"
	"github.com/sealpost/sealpost/appliance/branding"
	"github.com/sealpost/sealpost/appliance/message"
	"github.com/sealpost/sealpost/appliance/policy"
	"github.com/sealpost/sealpost/appliance/prefs"
	"github.com/sealpost/sealpost/appliance/settings"
	"github.com/sealpost/sealpost/appliance/setup"
)

// SetupGate says whether first-run setup is pending and checks its token.
type SetupGate interface {
	Pending() bool
	Check(token string) bool
}

// SetupFacts are shown on the setup page so the administrator can check that
// this is the appliance they installed.
type SetupFacts struct {
	Hostname        string
	CertMode        string
	CertFingerprint string // SHA-256 of the self-signed certificate, empty otherwise
	RelayPort       string // the SMTP relay port, for the mail-server lines
}

// Options are what the web interface needs from the rest of the appliance.
type Options struct {
	Logger     zerolog.Logger
	Version    string
	Setup      SetupGate
	SetupFacts func() SetupFacts
	Ready      func() error // nil when the appliance can serve; the error says what is not ready
	HSTS       func() bool  // true once the certificate is trusted
	Registry   prometheus.Registerer

	// Accounts is the account domain; nil while only setup is served.
	Accounts *account.Service
	// AdminNetworks are the only client networks the admin console answers
	// (admin.allowed_networks); empty: every network.
	AdminNetworks []netip.Prefix
	ReadSettings  func() (settings.Settings, error)
	SaveSettings  func(ctx context.Context, actor string, changes ...settings.Change) error

	// ApplySetup finishes the wizard; SendTestMail sends the outbound-mail
	// step's test message with the answers so far and returns the peer's
	// reply.
	ApplySetup   func(ctx context.Context, a setup.Answers) (account.User, error)
	SendTestMail func(ctx context.Context, a setup.Answers, to string) (string, error)
	// AuditPage is a page of the audit trail, newest first, and the number
	// of events; VerifyAudit checks the whole chain.
	AuditPage   func(skip uint64, limit int) ([]audit.Event, uint64, error)
	VerifyAudit func() (uint64, error)
	// FormBurst is how many mail-sending or code-checking form posts
	// (forgot, reset, register) one client address may make at once,
	// refilled at one per FormEvery; zero means 10 and 6 seconds.
	FormBurst int
	FormEvery time.Duration
	// Messages is the message domain; Prefs and SavePrefs read and change
	// a user's preferences; Welcome is the administrator's welcome text.
	Messages  *message.Service
	Prefs     func(userID string) (prefs.Prefs, error)
	SavePrefs func(ctx context.Context, userID string, change func(*prefs.Prefs)) error
	Welcome   func() string
	// LoadPolicy and SavePolicy read and change the content filter.
	LoadPolicy func() (policy.Policy, error)
	SavePolicy func(ctx context.Context, actor string, p policy.Policy) error
	// BrandImage is the organization's banner or icon as PNG.
	BrandImage func(kind branding.Kind) ([]byte, error)
}

// Server is the HTTPS handler.
type Server struct {
	echo    *echo.Echo
	opts    Options
	log     zerolog.Logger
	metrics *metrics
	wizard  *wizard
}

// New builds the handler. It holds no resources.
func New(opts Options) (*Server, error) {
	m, err := newMetrics(opts.Registry)
	if err != nil {
		return nil, err
	}
	r, err := newRenderer()
	if err != nil {
		return nil, err
	}
	s := &Server{echo: echo.New(), opts: opts, log: opts.Logger, metrics: m, wizard: newWizard()}
	e := s.echo
	e.HideBanner, e.HidePort = true, true
	e.Renderer = r
	e.IPExtractor = echo.ExtractIPDirect() // no proxy is trusted to set X-Forwarded-For
	e.HTTPErrorHandler = s.handleError
	e.Use(
		middleware.RequestIDWithConfig(middleware.RequestIDConfig{Generator: newRequestID}),
		s.logRequests,
		s.recoverPanics,
		s.securityHeaders,
		s.setupMode,
		s.loadSession,
		csrf(),
	)
	s.routes()
	return s, nil
}

// Handler returns the http.Handler for the HTTPS listener.
func (s *Server) Handler() http.Handler { return s.echo }

// NewHTTPServer wraps a handler in an http.Server with timeouts against slow
// clients.
func NewHTTPServer(h http.Handler, log zerolog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      120 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          newStdLogger(log),
	}
}
