package certs

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/crypto/acme/autocert"

	"github.com/sealpost/sealpost/appliance/fault"
)

// serve runs a TLS listener with cfg on loopback and returns its address.
// Every connection completes its handshake and is closed.
func serve(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				c.SetDeadline(time.Now().Add(10 * time.Second))
				c.(*tls.Conn).Handshake()
				c.Close()
			}()
		}
	}()
	return ln.Addr().String()
}

// handshake connects to addr with a real TLS client.
func handshake(addr string, cfg *tls.Config) (tls.ConnectionState, error) {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer conn.Close()
	return conn.ConnectionState(), nil
}

// served returns the certificate addr presents for serverName, unverified.
func served(t *testing.T, addr, serverName string) *x509.Certificate {
	t.Helper()
	state, err := handshake(addr, &tls.Config{InsecureSkipVerify: true, ServerName: serverName})
	if err != nil {
		t.Fatal(err)
	}
	return state.PeerCertificates[0]
}

// syncBuffer is a log sink that background goroutines write to.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// eventually polls cond every 10 ms for up to 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestOpenReportsEveryProblem: configuration errors come all at once, each
// naming its key, as an Invalid fault whose message the operator reads.
func TestOpenReportsEveryProblem(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	cache := autocert.DirCache(dir)
	tests := []struct {
		name string
		cfg  Config
		want []string
	}{
		{"unknown mode", Config{Mode: "magic"}, []string{`tls.mode: "magic" is not one of self-signed, files, acme`}},
		{"empty mode", Config{}, []string{`tls.mode: "" is not one of`}},
		{"files without paths", Config{Mode: ModeFiles}, []string{
			"tls.cert_file: required when tls.mode is files", "tls.key_file: required when tls.mode is files"}},
		{"files unreadable", Config{Mode: ModeFiles, CertFile: missing, KeyFile: missing + "2"}, []string{
			"tls.cert_file: cannot read " + missing + ": no such file", "tls.key_file: cannot read " + missing + "2: no such file"}},
		{"acme, everything wrong", Config{Mode: ModeACME, Cache: cache,
			ACME: ACMEConfig{DirectoryURL: "http://ca.example.org/dir", CAFile: missing}}, []string{
			"hostname: required when tls.mode is acme",
			`tls.acme.directory_url: "http://ca.example.org/dir" is not an https:// URL`,
			"tls.acme.ca_file: cannot read " + missing}},
		{"acme, IP address", Config{Mode: ModeACME, Cache: cache, Hostname: "192.0.2.1"}, []string{
			"hostname: 192.0.2.1 is an IP address, but tls.mode acme needs a DNS name"}},
		{"acme, single label", Config{Mode: ModeACME, Cache: cache, Hostname: "mail"}, []string{
			`hostname: "mail" is not a fully qualified DNS name`}},
		{"acme, CA file not PEM", Config{Mode: ModeACME, Cache: cache, Hostname: "mail.example.org",
			ACME: ACMEConfig{CAFile: notPEM}}, []string{"tls.acme.ca_file: " + notPEM + " holds no PEM certificate"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Open(context.Background(), tt.cfg)
			if err == nil {
				m.Close()
				t.Fatal("Open succeeded")
			}
			if fault.KindOf(err) != fault.Invalid {
				t.Errorf("kind %v, want invalid", fault.KindOf(err))
			}
			msg := fault.Message(err)
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q\ndoes not contain %q", msg, w)
				}
			}
			if n := strings.Count(msg, "; ") + 1; n != len(tt.want) {
				t.Errorf("%d problems reported, want %d: %q", n, len(tt.want), msg)
			}
		})
	}

	for _, mode := range []string{ModeSelfSigned, ModeACME} {
		_, err := Open(context.Background(), Config{Mode: mode, Hostname: "mail.example.org"})
		if err == nil || !strings.Contains(err.Error(), "needs a cache") {
			t.Errorf("%s without a cache: %v", mode, err)
		}
	}
}

func TestCloseIsSafe(t *testing.T) {
	t.Parallel()
	var nilManager *Manager
	if err := nilManager.Close(); err != nil {
		t.Error(err)
	}
	m, err := Open(context.Background(), Config{Mode: ModeACME, Hostname: "app.test", Cache: autocert.DirCache(t.TempDir()), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Error(err)
	}
	if err := m.Close(); err != nil {
		t.Error(err)
	}
}
