package ui

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"
	"github.com/sealpost/sealpost/appliance/fault"
)

// tokenGate is a setup gate with a fixed token.
type tokenGate struct {
	token   string
	pending bool
}

func (g *tokenGate) Pending() bool           { return g.pending }
func (g *tokenGate) Check(token string) bool { return g.pending && token == g.token }

func newTestServer(t *testing.T, gate *tokenGate, ready error) (*Server, *strings.Builder) {
	t.Helper()
	var logs strings.Builder
	s, err := New(Options{
		Logger:     zerolog.New(&logs),
		Version:    "test",
		Setup:      gate,
		SetupFacts: func() SetupFacts { return SetupFacts{Hostname: "mail.example.org", CertMode: "Self-signed"} },
		Ready:      func() error { return ready },
		HSTS:       func() bool { return false },
		Registry:   prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return s, &logs
}

// TestRoutes is the scenario table of every route in setup mode and after.
func TestRoutes(t *testing.T) {
	t.Parallel()
	const token = "GOODTOKEN234567ABCDEFGHIJK"
	tests := []struct {
		name     string
		pending  bool
		ready    error
		url      string
		cookie   string
		status   int
		want     string
		wantNot  string
		location string
	}{
		{name: "healthz", pending: true, url: "/healthz", status: 200, want: `"ok"`},
		{name: "readyz ready", pending: true, url: "/readyz", status: 200, want: `"ready"`},
		{name: "readyz not ready", pending: true, ready: errors.New("store unavailable"), url: "/readyz", status: 503, want: "store unavailable"},
		{name: "setup without token", pending: true, url: "/setup", status: 403, want: "Setup token required", wantNot: "not valid"},
		{name: "setup wrong token", pending: true, url: "/setup?token=WRONG", status: 403, want: "not valid"},
		{name: "setup with token", pending: true, url: "/setup?token=" + token, status: 200, want: "mail.example.org", wantNot: token},
		{name: "setup with cookie", pending: true, url: "/setup", cookie: token, status: 200, want: "Welcome to Sealpost"},
		{name: "setup with wrong cookie", pending: true, url: "/setup", cookie: "WRONG", status: 403, want: "not valid"},
		{name: "root redirects to setup", pending: true, url: "/", status: 303, location: "/setup"},
		{name: "other paths hidden in setup mode", pending: true, url: "/admin", status: 404, want: "nothing at this address"},
		{name: "static css", pending: true, url: "/static/css/sealpost.css", status: 200, want: "--brand"},
		{name: "static missing", pending: true, url: "/static/nope.css", status: 404},
		{name: "setup gone after setup", pending: false, url: "/setup?token=" + token, status: 404},
		{name: "healthz after setup", pending: false, url: "/healthz", status: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, _ := newTestServer(t, &tokenGate{token: token, pending: tt.pending}, tt.ready)
			req := httptest.NewRequest(http.MethodGet, tt.url, nil)
			if tt.cookie != "" {
				req.AddCookie(&http.Cookie{Name: setupCookie, Value: tt.cookie})
			}
			rec := httptest.NewRecorder()
			s.Handler().ServeHTTP(rec, req)
			body := rec.Body.String()
			if rec.Code != tt.status {
				t.Errorf("status = %d, want %d; body:\n%s", rec.Code, tt.status, body)
			}
			if tt.want != "" && !strings.Contains(body, tt.want) {
				t.Errorf("body lacks %q:\n%s", tt.want, body)
			}
			if tt.wantNot != "" && strings.Contains(body, tt.wantNot) {
				t.Errorf("body contains %q", tt.wantNot)
			}
			if tt.location != "" && rec.Header().Get("Location") != tt.location {
				t.Errorf("Location = %q, want %q", rec.Header().Get("Location"), tt.location)
			}
			if rec.Header().Get("Content-Security-Policy") != contentSecurityPolicy {
				t.Error("no CSP header")
			}
			if rec.Header().Get(echo.HeaderXRequestID) == "" {
				t.Error("no request id")
			}
		})
	}
}

// TestErrorsAreSafe: a fault's safe message reaches the user, its cause only
// the log; an internal error shows nothing of itself; a panic is recovered,
// counted and answered 500 with a reference.
func TestErrorsAreSafe(t *testing.T) {
	t.Parallel()
	s, logs := newTestServer(t, &tokenGate{}, nil)
	s.echo.GET("/test/invalid", func(echo.Context) error {
		return fault.E(fault.Invalid, "the banner must be 700×45 pixels", errors.New("decoded 12x12 secret-detail"))
	})
	s.echo.GET("/test/internal", func(echo.Context) error { return errors.New("disk secret-detail") })
	s.echo.GET("/test/panic", func(echo.Context) error { panic("boom secret-detail") })

	tests := []struct {
		url    string
		status int
		want   string
	}{
		{"/test/invalid", 400, "the banner must be 700×45 pixels"},
		{"/test/internal", 500, "Something went wrong"},
		{"/test/panic", 500, "Something went wrong"},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tt.url, nil))
		body := rec.Body.String()
		if rec.Code != tt.status || !strings.Contains(body, tt.want) {
			t.Errorf("%s: %d, want %d with %q", tt.url, rec.Code, tt.status, tt.want)
		}
		if strings.Contains(body, "secret-detail") {
			t.Errorf("%s: the cause reached the user", tt.url)
		}
		if ref := rec.Header().Get(echo.HeaderXRequestID); !strings.Contains(body, ref) {
			t.Errorf("%s: the page does not show the reference %s", tt.url, ref)
		}
	}
	if !strings.Contains(logs.String(), "disk secret-detail") || !strings.Contains(logs.String(), "request handler panicked") {
		t.Error("the causes did not reach the log")
	}
	if got := testutil.ToFloat64(s.metrics.panics); got != 1 {
		t.Errorf("panics counted = %v, want 1", got)
	}
}

func TestLogsHoldNoQueryString(t *testing.T) {
	t.Parallel()
	s, logs := newTestServer(t, &tokenGate{token: "SECRETTOKEN", pending: true}, nil)
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/setup?token=SECRETTOKEN", nil))
	if rec.Code != 200 {
		t.Fatalf("status %d", rec.Code)
	}
	if strings.Contains(logs.String(), "SECRETTOKEN") {
		t.Errorf("the token reached the log: %s", logs.String())
	}
}

func TestRedirectToHTTPS(t *testing.T) {
	t.Parallel()
	tests := []struct {
		port, host, uri, want string
	}{
		{"8443", "mail.example.org:8080", "/setup?x=1", "https://mail.example.org:8443/setup?x=1"},
		{"443", "mail.example.org", "/", "https://mail.example.org/"},
		{"443", "[::1]:80", "/a", "https://[::1]/a"},
		{"8443", "[::1]:80", "/a", "https://[::1]:8443/a"},
	}
	for _, tt := range tests {
		req := httptest.NewRequest(http.MethodGet, tt.uri, nil)
		req.Host = tt.host
		rec := httptest.NewRecorder()
		RedirectToHTTPS(tt.port).ServeHTTP(rec, req)
		if rec.Code != http.StatusMovedPermanently || rec.Header().Get("Location") != tt.want {
			t.Errorf("%s%s → %d %q, want %q", tt.host, tt.uri, rec.Code, rec.Header().Get("Location"), tt.want)
		}
	}
}

func TestStaticHasNoDirectoryListing(t *testing.T) {
	t.Parallel()
	s, _ := newTestServer(t, &tokenGate{pending: true}, nil)
	for _, path := range []string{"/static/", "/static/css/", "/static/../embed.go", "/static/%2e%2e/embed.go"} {
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != http.StatusNotFound || !strings.Contains(rec.Body.String(), "nothing at this address") {
			t.Errorf("GET %s = %d, want 404 without a listing", path, rec.Code)
		}
	}
}

// TestFormRateLimit: one client address posting the forgot-password form
// over and over gets 429 after the burst, another address does not.
func TestFormRateLimit(t *testing.T) {
	t.Parallel()
	s, err := New(Options{Logger: zerolog.Nop(), Version: "test", Setup: &tokenGate{}, Registry: prometheus.NewRegistry(),
		Accounts: newAuthzAccounts(t).svc, FormBurst: 3, FormEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	post := func(ip string) int {
		req := httptest.NewRequest(http.MethodPost, "https://portal.test/forgot", strings.NewReader("email=a%40b.test"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		req.RemoteAddr = ip + ":1000"
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		return rec.Code
	}
	for i := range 3 {
		if code := post("192.0.2.1"); code != http.StatusOK {
			t.Fatalf("post %d: %d", i, code)
		}
	}
	if code := post("192.0.2.1"); code != http.StatusTooManyRequests {
		t.Errorf("after the burst: %d, want 429", code)
	}
	if code := post("192.0.2.2"); code != http.StatusOK {
		t.Errorf("another address: %d", code)
	}
}
