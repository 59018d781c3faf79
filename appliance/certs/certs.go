// Package certs provides the appliance's HTTPS certificate, in one of three
// modes (boot setting tls.mode):
//
//   - self-signed: an ECDSA P-256 certificate for the host name, localhost,
//     127.0.0.1 and ::1, made once and kept in the cache (the encrypted
//     store), so a restart serves the same certificate; it is replaced
//     30 days before it expires or when the configured host name changes.
//   - files: a PEM certificate chain and key, checked at start (an error
//     names the file and the key) and polled for changes, so a renewal or a
//     symlink swap takes effect without a restart; a new pair that does not
//     load is logged and the previous pair keeps serving.
//   - acme: autocert, with its account and certificates kept in the cache,
//     for the configured host name only; the directory URL and the CA that
//     signs the ACME server's own HTTPS are configurable for internal CAs.
//     TLS-ALPN-01 is answered through TLSConfig, HTTP-01 through HTTPHandler.
//
// Whatever the mode, the server never offers less than TLS 1.2 and never
// serves a certificate whose key does not match it.
package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"

	"github.com/sealpost/sealpost/appliance/fault"
)

// The modes, as written in tls.mode.
const (
	ModeSelfSigned = "self-signed"
	ModeFiles      = "files"
	ModeACME       = "acme"
)

// DefaultReloadInterval is how often files mode looks for new files.
const DefaultReloadInterval = 2 * time.Second

// renewBefore is how long before expiry a self-signed certificate is
// replaced and a certificate from files is warned about.
const renewBefore = 30 * 24 * time.Hour

// ACMEConfig says where automatic certificates come from (tls.acme.*).
type ACMEConfig struct {
	DirectoryURL string // empty: Let's Encrypt
	Email        string // contact for the CA; may be empty
	CAFile       string // PEM roots that sign the ACME server's HTTPS; empty: the system roots
}

// Config selects and configures a mode.
type Config struct {
	Mode              string // ModeSelfSigned, ModeFiles or ModeACME
	Hostname          string // the appliance's name; required for acme
	CertFile, KeyFile string // files mode
	ACME              ACMEConfig
	Cache             autocert.Cache // the store; required for self-signed and acme
	Logger            zerolog.Logger
	ReloadInterval    time.Duration // files mode; 0 means DefaultReloadInterval

	now func() time.Time // tests set a clock; nil means time.Now
}

// Manager serves the current certificate. Its methods are safe for
// concurrent use.
type Manager struct {
	cfg     Config
	host    string // cfg.Hostname, lower case, without a trailing dot
	log     zerolog.Logger
	now     func() time.Time
	current atomic.Pointer[tls.Certificate] // self-signed and files
	acme    *autocert.Manager
	files   fileState // owned by the reloader goroutine

	stop      chan struct{}
	done      chan struct{} // nil when no goroutine runs
	closeOnce sync.Once
}

// Open checks the configuration, reporting every problem at once, each
// naming its configuration key, and loads or makes the certificate. In files
// mode it starts polling the files; Close stops that. In acme mode nothing is
// requested yet: the first handshake for the host name obtains the
// certificate (or reads it from the cache).
func Open(ctx context.Context, cfg Config) (*Manager, error) {
	m := &Manager{
		cfg:  cfg,
		host: strings.ToLower(strings.TrimSuffix(cfg.Hostname, ".")),
		log:  cfg.Logger,
		now:  cfg.now,
		stop: make(chan struct{}),
	}
	if m.now == nil {
		m.now = time.Now
	}
	if (cfg.Mode == ModeSelfSigned || cfg.Mode == ModeACME) && cfg.Cache == nil {
		return nil, fmt.Errorf("open certificates: tls.mode %s needs a cache", cfg.Mode)
	}
	var p problems
	switch cfg.Mode {
	case ModeSelfSigned:
	case ModeFiles:
		if cfg.CertFile == "" {
			p.add("tls.cert_file", "required when tls.mode is files", nil)
		}
		if cfg.KeyFile == "" {
			p.add("tls.key_file", "required when tls.mode is files", nil)
		}
	case ModeACME:
		m.checkACME(&p)
	default:
		p.add("tls.mode", fmt.Sprintf("%q is not one of self-signed, files, acme", cfg.Mode), nil)
	}
	if err := p.err(); err != nil {
		return nil, err
	}

	switch cfg.Mode {
	case ModeSelfSigned:
		if err := m.loadSelfSigned(ctx); err != nil {
			return nil, err
		}
		m.every(selfSignedCheckInterval, func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := m.loadSelfSigned(ctx); err != nil {
				m.log.Error().Err(err).Msg("renew the self-signed certificate")
			}
		})
	case ModeFiles:
		if err := m.openFiles(); err != nil {
			return nil, err
		}
		interval := cfg.ReloadInterval
		if interval <= 0 {
			interval = DefaultReloadInterval
		}
		m.every(interval, m.reloadFiles)
	case ModeACME:
		if err := m.openACME(); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// every runs check every interval until Close.
func (m *Manager) every(interval time.Duration, check func()) {
	m.done = make(chan struct{})
	go func() {
		defer close(m.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-m.stop:
				return
			case <-t.C:
				check()
			}
		}
	}()
}

// TLSConfig returns a server configuration for the HTTPS listener: TLS 1.2
// or later, HTTP/2 and HTTP/1.1, and in acme mode the TLS-ALPN-01 protocol.
// In acme mode a handshake without a server name, or with another name,
// gets the certificate for the configured host name.
func (m *Manager) TLSConfig() *tls.Config {
	if m.acme != nil {
		cfg := m.acme.TLSConfig() // NextProtos h2, http/1.1, acme-tls/1
		cfg.MinVersion = tls.VersionTLS12
		get := cfg.GetCertificate
		cfg.GetCertificate = func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			if !slices.Contains(hello.SupportedProtos, acme.ALPNProto) && !m.isHost(hello.ServerName) {
				// autocert refuses other names (and none at all, as when
				// a client connects by address); show the appliance's
				// certificate instead of failing the handshake.
				h := *hello
				h.ServerName = m.host
				hello = &h
			}
			return get(hello)
		}
		return cfg
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return m.current.Load(), nil
		},
	}
}

func (m *Manager) isHost(serverName string) bool {
	return strings.EqualFold(strings.TrimSuffix(serverName, "."), m.host)
}

// HTTPHandler returns the handler for the plain-HTTP listener. In acme mode
// it answers HTTP-01 challenges under /.well-known/acme-challenge/ (on any
// port) and hands every other request to fallback; in the other modes it is
// fallback. A nil fallback answers 404.
func (m *Manager) HTTPHandler(fallback http.Handler) http.Handler {
	if fallback == nil {
		fallback = http.NotFoundHandler()
	}
	if m.acme == nil {
		return fallback
	}
	challenge := m.acme.HTTPHandler(fallback)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/.well-known/acme-challenge/") {
			fallback.ServeHTTP(w, r)
			return
		}
		// autocert checks the host policy against r.Host with its port,
		// which refuses every challenge on a port other than 80.
		if host, _, err := net.SplitHostPort(r.Host); err == nil {
			r = r.Clone(r.Context())
			r.Host = host
		}
		challenge.ServeHTTP(w, r)
	})
}

// Trusted reports whether clients can be expected to verify the
// certificate (files and acme, not self-signed): only then may HSTS be sent.
func (m *Manager) Trusted() bool { return m.cfg.Mode != ModeSelfSigned }

// Close stops polling. It is safe to call more than once and on nil.
func (m *Manager) Close() error {
	if m == nil {
		return nil
	}
	m.closeOnce.Do(func() {
		close(m.stop)
		if m.done != nil {
			<-m.done
		}
	})
	return nil
}

// checkACME adds the problems of an acme configuration to p.
func (m *Manager) checkACME(p *problems) {
	switch {
	case m.host == "":
		p.add("hostname", "required when tls.mode is acme", nil)
	case net.ParseIP(m.host) != nil:
		p.add("hostname", fmt.Sprintf("%s is an IP address, but tls.mode acme needs a DNS name", m.host), nil)
	case !strings.Contains(m.host, ".") || strings.ContainsAny(m.host, "*/: "):
		p.add("hostname", fmt.Sprintf("%q is not a fully qualified DNS name, which tls.mode acme needs", m.cfg.Hostname), nil)
	}
	if u := m.cfg.ACME.DirectoryURL; u != "" {
		if parsed, err := url.Parse(u); err != nil || parsed.Scheme != "https" || parsed.Host == "" {
			p.add("tls.acme.directory_url", fmt.Sprintf("%q is not an https:// URL", u), err)
		}
	}
	if f := m.cfg.ACME.CAFile; f != "" {
		if _, err := readCAFile(f); err != nil {
			p.add("tls.acme.ca_file", err.Error(), nil)
		}
	}
}

// openACME prepares the autocert manager; checkACME has passed.
func (m *Manager) openACME() error {
	client := &acme.Client{DirectoryURL: m.cfg.ACME.DirectoryURL, UserAgent: "sealpost"}
	if f := m.cfg.ACME.CAFile; f != "" {
		pool, err := readCAFile(f)
		if err != nil {
			return fault.E(fault.Invalid, "tls.acme.ca_file: "+err.Error(), nil)
		}
		transport := http.DefaultTransport.(*http.Transport).Clone() // keeps the proxy settings
		transport.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		client.HTTPClient = &http.Client{Transport: transport, Timeout: time.Minute}
	}
	m.acme = &autocert.Manager{
		Prompt:     autocert.AcceptTOS,
		Cache:      m.cfg.Cache,
		HostPolicy: autocert.HostWhitelist(m.host),
		Email:      m.cfg.ACME.Email,
		Client:     client,
	}
	return nil
}

// readCAFile reads a PEM bundle of CA certificates.
func readCAFile(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, readError(path, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}

// readError says why path cannot be read, naming it once.
func readError(path string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return fmt.Errorf("cannot read %s: %w", path, err)
}

// problems collects configuration problems, each naming its key.
type problems struct {
	msgs   []string
	causes []error
}

func (p *problems) add(key, msg string, cause error) {
	p.msgs = append(p.msgs, key+": "+msg)
	if cause != nil {
		p.causes = append(p.causes, cause)
	}
}

// err returns nil or one Invalid fault whose message lists every problem;
// the operator reads it at start-up.
func (p *problems) err() error {
	if len(p.msgs) == 0 {
		return nil
	}
	return fault.E(fault.Invalid, strings.Join(p.msgs, "; "), errors.Join(p.causes...))
}
