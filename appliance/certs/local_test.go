package certs

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/crypto/acme/autocert"
)

// serve runs a TLS listener with m's configuration on loopback and returns
// its address.
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
				c.(*tls.Conn).Handshake()
				c.Close()
			}()
		}
	}()
	return ln.Addr().String()
}

// peer returns the certificate a real handshake with addr presents.
func peer(t *testing.T, addr, serverName string) *x509.Certificate {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, ServerName: serverName})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}

func TestSelfSignedMadeOnceAndKept(t *testing.T) {
	t.Parallel()
	cache := autocert.DirCache(t.TempDir())
	open := func() *Manager {
		m, err := Open(context.Background(), Config{Mode: ModeSelfSigned, Hostname: "mail.example.org", Cache: cache, Logger: zerolog.Nop()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		return m
	}
	first := open()
	addr := serve(t, first.TLSConfig())
	cert := peer(t, addr, "mail.example.org")
	for _, name := range []string{"mail.example.org", "localhost"} {
		if err := cert.VerifyHostname(name); err != nil {
			t.Errorf("certificate does not cover %s: %v", name, err)
		}
	}
	if err := cert.VerifyHostname("127.0.0.1"); err != nil {
		t.Errorf("certificate does not cover 127.0.0.1: %v", err)
	}
	if left := time.Until(cert.NotAfter); left < 300*24*time.Hour {
		t.Errorf("certificate valid for only %v", left)
	}
	if first.Trusted() {
		t.Error("a self-signed certificate counts as trusted (HSTS would be sent)")
	}

	again := peer(t, serve(t, open().TLSConfig()), "localhost")
	if !bytes.Equal(again.Raw, cert.Raw) {
		t.Error("a second Open made a new certificate instead of using the stored one")
	}

	// Another host name makes a new certificate that names it.
	m, err := Open(context.Background(), Config{Mode: ModeSelfSigned, Hostname: "other.example.org", Cache: cache, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if c := peer(t, serve(t, m.TLSConfig()), "other.example.org"); c.VerifyHostname("other.example.org") != nil {
		t.Error("changing the host name did not renew the certificate")
	}
}

func TestTLS12Minimum(t *testing.T) {
	t.Parallel()
	m, err := Open(context.Background(), Config{Mode: ModeSelfSigned, Cache: autocert.DirCache(t.TempDir()), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	addr := serve(t, m.TLSConfig())
	_, err = tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11})
	if err == nil {
		t.Error("a TLS 1.1 handshake succeeded")
	}
}

// syncBuffer is a log sink the reloader goroutine writes to.
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

func writePair(t *testing.T, certFile, keyFile, name string) {
	t.Helper()
	pair, err := makeSelfSigned([]string{name})
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(pair, []byte("-----BEGIN PRIVATE KEY"))
	// Write to temporary files and rename, as certbot and friends do.
	for _, f := range []struct {
		path string
		data []byte
	}{{certFile, pair[:i]}, {keyFile, pair[i:]}} {
		tmp := f.path + ".new"
		if err := os.WriteFile(tmp, f.data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, f.path); err != nil {
			t.Fatal(err)
		}
	}
}

// waitFor polls a handshake until the served certificate names host.
func waitFor(t *testing.T, addr, host string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if peer(t, addr, host).Subject.CommonName == host {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the server did not switch to the certificate for %s", host)
}

func TestFilesReloaded(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writePair(t, certFile, keyFile, "a.example.org")
	var logs syncBuffer
	m, err := Open(context.Background(), Config{Mode: ModeFiles, CertFile: certFile, KeyFile: keyFile,
		Logger: zerolog.New(&logs), CheckInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if !m.Trusted() {
		t.Error("files mode should count as trusted")
	}
	addr := serve(t, m.TLSConfig())
	if cn := peer(t, addr, "a.example.org").Subject.CommonName; cn != "a.example.org" {
		t.Fatalf("serving %s, want a.example.org", cn)
	}

	writePair(t, certFile, keyFile, "b.example.org")
	waitFor(t, addr, "b.example.org")

	// A broken key keeps the previous pair serving, and says so in the log.
	if err := os.WriteFile(keyFile, []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "still serving the previous certificate") {
		if time.Now().After(deadline) {
			t.Fatalf("no log line about the broken files; log:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if cn := peer(t, addr, "b.example.org").Subject.CommonName; cn != "b.example.org" {
		t.Errorf("after a broken write the server shows %s", cn)
	}
}

func TestFilesErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certA, keyA := filepath.Join(dir, "a.pem"), filepath.Join(dir, "a.key")
	certB, keyB := filepath.Join(dir, "b.pem"), filepath.Join(dir, "b.key")
	writePair(t, certA, keyA, "a.example.org")
	writePair(t, certB, keyB, "b.example.org")
	notPEM := filepath.Join(dir, "not.pem")
	os.WriteFile(notPEM, []byte("hello"), 0o600)
	tests := []struct {
		name, cert, key, want string
	}{
		{"mismatched key", certA, keyB, "tls.key_file: " + keyB + " does not belong to the certificate"},
		{"missing cert", filepath.Join(dir, "nope.pem"), keyA, "tls.cert_file"},
		{"cert not PEM", notPEM, keyA, "is not a PEM certificate"},
		{"key not PEM", certA, notPEM, "is not a PEM private key"},
	}
	for _, tt := range tests {
		_, err := Open(context.Background(), Config{Mode: ModeFiles, CertFile: tt.cert, KeyFile: tt.key, Logger: zerolog.Nop()})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Open = %v, want %q", tt.name, err, tt.want)
		}
	}
	if _, err := Open(context.Background(), Config{Mode: "magic"}); err == nil || !strings.Contains(err.Error(), "tls.mode") {
		t.Errorf("unknown mode: %v", err)
	}
	if _, err := Open(context.Background(), Config{Mode: ModeACME, Cache: autocert.DirCache(dir)}); err == nil || !strings.Contains(err.Error(), "hostname") {
		t.Errorf("acme without hostname: %v", err)
	}
}
