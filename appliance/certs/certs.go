// Package certs provides the appliance's TLS certificate in one of three
// modes: self-signed (made once and kept in the encrypted store), files
// (PEM files, reloaded when they change, the old pair kept when a new one is
// broken) and acme (autocert, its account and certificates kept in the
// store, with a configurable directory and CA for internal ACME servers).
// Every mode serves TLS 1.2 or later only.
package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"

	"github.com/sealpost/sealpost/appliance/fault"
)

// The modes.
const (
	ModeSelfSigned = "self-signed"
	ModeFiles      = "files"
	ModeACME       = "acme"
)

// ACMEConfig says where automatic certificates come from.
type ACMEConfig struct {
	DirectoryURL string // empty: Let's Encrypt
	Email        string
	CAFile       string // PEM roots for the ACME server's own HTTPS; empty: system roots
}

// Config selects and configures a mode.
type Config struct {
	Mode              string
	Hostname          string
	CertFile, KeyFile string
	ACME              ACMEConfig
	Cache             autocert.Cache // the store; required for self-signed and acme
	Logger            zerolog.Logger
	// CheckInterval is how often files are checked for change and the
	// self-signed certificate for expiry; default 2 s for files, 24 h otherwise.
	CheckInterval time.Duration
}

// Manager serves the current certificate.
type Manager struct {
	cfg     Config
	log     zerolog.Logger
	current atomic.Pointer[tls.Certificate] // self-signed and files
	acme    *autocert.Manager

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// Open validates the configuration and loads or creates the certificate.
// For acme it only prepares the manager: the first TLS handshake for the
// host name obtains the certificate.
func Open(ctx context.Context, cfg Config) (*Manager, error) {
	m := &Manager{cfg: cfg, log: cfg.Logger, stop: make(chan struct{}), done: make(chan struct{})}
	switch cfg.Mode {
	case ModeSelfSigned:
		if cfg.Cache == nil {
			return nil, fmt.Errorf("self-signed certificates need a cache")
		}
		if err := m.loadSelfSigned(ctx); err != nil {
			return nil, err
		}
		m.startChecks(24*time.Hour, func() {
			if err := m.loadSelfSigned(context.Background()); err != nil {
				m.log.Error().Err(err).Msg("renew self-signed certificate")
			}
		})
	case ModeFiles:
		cert, sum, err := loadFiles(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return nil, err
		}
		m.current.Store(cert)
		m.warnExpiry(cert)
		m.startChecks(2*time.Second, m.reloader(sum))
	case ModeACME:
		if err := m.setupACME(); err != nil {
			return nil, err
		}
		close(m.done)
	default:
		return nil, fault.E(fault.Invalid, fmt.Sprintf("tls.mode: %q is not one of self-signed, files, acme", cfg.Mode), nil)
	}
	return m, nil
}

// startChecks runs check every interval (or cfg.CheckInterval) until Close.
func (m *Manager) startChecks(interval time.Duration, check func()) {
	if m.cfg.CheckInterval > 0 {
		interval = m.cfg.CheckInterval
	}
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

func (m *Manager) setupACME() error {
	c := m.cfg
	if c.Hostname == "" {
		return fault.E(fault.Invalid, "hostname: required when tls.mode is acme", nil)
	}
	if c.Cache == nil {
		return fmt.Errorf("acme needs a cache")
	}
	client := &acme.Client{DirectoryURL: c.ACME.DirectoryURL}
	if c.ACME.CAFile != "" {
		pem, err := os.ReadFile(c.ACME.CAFile)
		if err != nil {
			return fault.E(fault.Invalid, fmt.Sprintf("tls.acme.ca_file: %s cannot be read", c.ACME.CAFile), err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fault.E(fault.Invalid, fmt.Sprintf("tls.acme.ca_file: %s holds no PEM certificate", c.ACME.CAFile), nil)
		}
		client.HTTPClient = &http.Client{
			Timeout:   30 * time.Second,
			Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}},
		}
	}
	m.acme = &autocert.Manager{
		Prompt:     autocert.AcceptTOS,
		Cache:      c.Cache,
		HostPolicy: autocert.HostWhitelist(c.Hostname),
		Email:      c.ACME.Email,
		Client:     client,
	}
	return nil
}

// TLSConfig returns the server TLS configuration.
func (m *Manager) TLSConfig() *tls.Config {
	if m.acme != nil {
		cfg := m.acme.TLSConfig()
		cfg.MinVersion = tls.VersionTLS12
		get := cfg.GetCertificate
		cfg.GetCertificate = func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			if hello.ServerName == "" { // a client that connects by address
				hello.ServerName = m.cfg.Hostname
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

// HTTPHandler answers ACME HTTP-01 challenges in acme mode and hands every
// other request to fallback.
func (m *Manager) HTTPHandler(fallback http.Handler) http.Handler {
	if m.acme == nil {
		return fallback
	}
	h := m.acme.HTTPHandler(fallback)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// autocert checks the host policy against r.Host with its port.
		if host, _, err := net.SplitHostPort(r.Host); err == nil {
			r.Host = host
		}
		h.ServeHTTP(w, r)
	})
}

// Trusted reports whether clients can verify the certificate (files and
// acme), which is when HSTS may be sent.
func (m *Manager) Trusted() bool { return m.cfg.Mode != ModeSelfSigned }

// Close stops the background checks.
func (m *Manager) Close() error {
	m.closeOnce.Do(func() {
		close(m.stop)
		<-m.done
	})
	return nil
}
