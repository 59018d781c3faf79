package certs

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/sealpost/sealpost/internal/clocktest"
	"golang.org/x/crypto/acme/autocert"
)

func openSelfSigned(t *testing.T, cfg Config) *Manager {
	t.Helper()
	cfg.Mode = ModeSelfSigned
	m, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func TestSelfSignedMadeOnceAndKept(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var logs syncBuffer
	m := openSelfSigned(t, Config{Hostname: "Mail.Example.org.", Cache: autocert.DirCache(dir), Logger: zerolog.New(&logs)})
	if m.Trusted() {
		t.Error("a self-signed certificate counts as trusted (HSTS would be sent)")
	}
	addr := serve(t, m.TLSConfig())
	cert := served(t, addr, "mail.example.org")

	if key, ok := cert.PublicKey.(*ecdsa.PublicKey); !ok || key.Curve != elliptic.P256() {
		t.Errorf("key %T, want ECDSA P-256", cert.PublicKey)
	}
	if d := cert.NotAfter.Sub(cert.NotBefore); d < 364*24*time.Hour || d > 367*24*time.Hour {
		t.Errorf("valid for %v, want about a year", d)
	}
	if !slices.Equal(cert.DNSNames, []string{"mail.example.org", "localhost"}) {
		t.Errorf("DNS names %v", cert.DNSNames)
	}
	if len(cert.IPAddresses) != 2 || !cert.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) || !cert.IPAddresses[1].Equal(net.IPv6loopback) {
		t.Errorf("IP addresses %v, want 127.0.0.1 and ::1", cert.IPAddresses)
	}

	// A client that trusts this certificate verifies it under every name
	// it carries, in a real handshake.
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	for _, name := range []string{"mail.example.org", "localhost", ""} { // "": by address, 127.0.0.1
		state, err := handshake(addr, &tls.Config{RootCAs: roots, ServerName: name})
		if err != nil {
			t.Errorf("verified handshake as %q: %v", name, err)
		} else if state.Version < tls.VersionTLS12 {
			t.Errorf("negotiated %x", state.Version)
		}
	}
	if err := cert.VerifyHostname("::1"); err != nil {
		t.Error(err)
	}
	if !strings.Contains(logs.String(), "made a self-signed certificate") {
		t.Errorf("no log line about the new certificate: %s", logs.String())
	}

	// The certificate and its key are in the cache under one fixed entry.
	data, err := os.ReadFile(dir + "/" + selfSignedKey)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte("PRIVATE KEY")) {
		t.Error("the stored entry holds no key")
	}

	// A restart serves the same certificate.
	for range 2 {
		again := served(t, serve(t, openSelfSigned(t, Config{Hostname: "mail.example.org", Cache: autocert.DirCache(dir), Logger: zerolog.Nop()}).TLSConfig()), "localhost")
		if !bytes.Equal(again.Raw, cert.Raw) {
			t.Fatal("a second Open made a new certificate instead of using the stored one")
		}
	}

	// Another host name gets a new certificate that names it.
	other := served(t, serve(t, openSelfSigned(t, Config{Hostname: "other.example.org", Cache: autocert.DirCache(dir), Logger: zerolog.Nop()}).TLSConfig()), "")
	if other.VerifyHostname("other.example.org") != nil || bytes.Equal(other.Raw, cert.Raw) {
		t.Errorf("after changing the host name the certificate names %v", other.DNSNames)
	}
}

func TestSelfSignedNames(t *testing.T) {
	t.Parallel()
	machine, err := os.Hostname()
	if err != nil || machine == "" {
		t.Skipf("os.Hostname gives %q, %v: cannot test the default name", machine, err)
	}
	machine = strings.ToLower(machine)
	tests := []struct {
		hostname string
		dns      []string
		ips      []string
	}{
		{"", []string{machine, "localhost"}, []string{"127.0.0.1", "::1"}},
		{"192.0.2.10", []string{"localhost"}, []string{"192.0.2.10", "127.0.0.1", "::1"}},
		{"localhost", []string{"localhost"}, []string{"127.0.0.1", "::1"}},
	}
	if machine == "localhost" || net.ParseIP(machine) != nil {
		tests[0].dns = []string{"localhost"}
	}
	for _, tt := range tests {
		cache := autocert.DirCache(t.TempDir())
		m := openSelfSigned(t, Config{Hostname: tt.hostname, Cache: cache, Logger: zerolog.Nop()})
		cert := served(t, serve(t, m.TLSConfig()), "")
		var ips []string
		for _, ip := range cert.IPAddresses {
			ips = append(ips, ip.String())
		}
		if !slices.Equal(cert.DNSNames, tt.dns) || !slices.Equal(ips, tt.ips) {
			t.Errorf("hostname %q: DNS names %v, IPs %v; want %v, %v", tt.hostname, cert.DNSNames, ips, tt.dns, tt.ips)
		}
	}
}

// TestSelfSignedRenewed: 30 days before expiry the running appliance, and
// an appliance starting then, replace the certificate, and keep the new one.
func TestSelfSignedRenewed(t *testing.T) {
	t.Parallel()
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := clocktest.New(start)
	cache := autocert.DirCache(t.TempDir())
	cfg := Config{Hostname: "mail.example.org", Cache: cache, Logger: zerolog.Nop(), now: clk.Now}
	m := openSelfSigned(t, cfg)
	first := m.current.Load().Leaf

	// 331 days on, 34 days are left: nothing changes.
	clk.Set(start.Add(331 * 24 * time.Hour))
	if err := m.loadSelfSigned(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m.current.Load().Leaf.Raw, first.Raw) {
		t.Fatal("renewed with 34 days left")
	}

	// 340 days on, 25 days are left: a new certificate, valid for a year
	// from now, served and stored.
	clk.Set(start.Add(340 * 24 * time.Hour))
	if err := m.loadSelfSigned(context.Background()); err != nil {
		t.Fatal(err)
	}
	renewed := m.current.Load().Leaf
	if bytes.Equal(renewed.Raw, first.Raw) || !renewed.NotAfter.After(clk.Now().Add(360*24*time.Hour)) {
		t.Fatalf("not renewed: valid until %v", renewed.NotAfter)
	}
	if got := openSelfSigned(t, cfg).current.Load().Leaf; !bytes.Equal(got.Raw, renewed.Raw) {
		t.Error("the renewed certificate was not stored")
	}

	// An appliance that was off during the renewal window renews at start.
	clk.Set(start.Add(700 * 24 * time.Hour))
	if got := openSelfSigned(t, cfg).current.Load().Leaf; bytes.Equal(got.Raw, renewed.Raw) {
		t.Error("a stored certificate within 30 days of expiry was served at start")
	}
}

// TestSelfSignedBadCacheEntry: an unreadable stored entry is replaced.
func TestSelfSignedBadCacheEntry(t *testing.T) {
	t.Parallel()
	cache := autocert.DirCache(t.TempDir())
	if err := cache.Put(context.Background(), selfSignedKey, []byte("garbage")); err != nil {
		t.Fatal(err)
	}
	m := openSelfSigned(t, Config{Cache: cache, Logger: zerolog.Nop()})
	data, err := cache.Get(context.Background(), selfSignedKey)
	if err != nil {
		t.Fatal(err)
	}
	if cert, err := parsePair(data, data); err != nil || !bytes.Equal(cert.Leaf.Raw, m.current.Load().Leaf.Raw) {
		t.Errorf("stored entry not replaced by the served certificate: %v", err)
	}
}

func TestTLSConfig(t *testing.T) {
	t.Parallel()
	m := openSelfSigned(t, Config{Cache: autocert.DirCache(t.TempDir()), Logger: zerolog.Nop()})
	cfg := m.TLSConfig()
	if cfg.MinVersion != tls.VersionTLS12 || !slices.Equal(cfg.NextProtos, []string{"h2", "http/1.1"}) {
		t.Errorf("MinVersion %x, NextProtos %v", cfg.MinVersion, cfg.NextProtos)
	}
	addr := serve(t, cfg)
	if _, err := handshake(addr, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11}); err == nil {
		t.Error("a TLS 1.1 handshake succeeded")
	}
	state, err := handshake(addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
	if err != nil || state.NegotiatedProtocol != "h2" {
		t.Errorf("ALPN h2: %q, %v", state.NegotiatedProtocol, err)
	}
	if h := m.HTTPHandler(nil); h == nil {
		t.Error("HTTPHandler(nil) is nil")
	}
}
