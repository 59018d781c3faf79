package e2e

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sealpost/sealpost/appliance/certs/pebbletest"
)

// TestACMECertificate runs the real binary in acme mode against pebble on
// loopback: the first handshake obtains a certificate through TLS-ALPN-01
// that a client trusting pebble's root verifies, HSTS is sent on it, and a
// restart serves it from the encrypted store.
func TestACMECertificate(t *testing.T) {
	t.Parallel()
	ca := pebbletest.Start(t)
	const host = "app.test"
	l := newLayout(t)
	env := []string{
		"SEALPOST_HOSTNAME=" + host,
		"SEALPOST_TLS__MODE=acme",
		"SEALPOST_TLS__ACME__DIRECTORY_URL=" + ca.Directory,
		"SEALPOST_TLS__ACME__CA_FILE=" + ca.CAFile,
		"SEALPOST_TLS__ACME__EMAIL=it@app.test",
		fmt.Sprintf("SEALPOST_HTTPS__LISTEN=127.0.0.1:%d", ca.TLSPort),
		fmt.Sprintf("SEALPOST_HTTP__LISTEN=127.0.0.1:%d", ca.HTTPPort),
	}
	in := start(t, l, env...)
	if !strings.HasPrefix(in.setupURL, fmt.Sprintf("https://%s:%d/setup", host, ca.TLSPort)) {
		t.Errorf("setup link %q does not use the host name", in.setupURL)
	}

	client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: ca.Roots(t), ServerName: host},
	}}
	healthz := fmt.Sprintf("https://127.0.0.1:%d/healthz", ca.TLSPort)
	resp, err := client.Get(healthz)
	if err != nil {
		t.Fatalf("GET /healthz with a verified ACME certificate: %v\n%s", err, in.Stdout())
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	leaf := resp.TLS.PeerCertificates[0]
	if resp.StatusCode != 200 || !strings.Contains(leaf.Issuer.CommonName, "Pebble") {
		t.Errorf("status %d, issuer %q", resp.StatusCode, leaf.Issuer.CommonName)
	}
	if hsts := resp.Header.Get("Strict-Transport-Security"); !strings.Contains(hsts, "max-age=31536000") {
		t.Errorf("no HSTS on a trusted certificate: %q", hsts)
	}
	if code := in.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit code %d", code)
	}

	// Restart: the certificate comes from the store, not from a new order.
	again := start(t, l, env...)
	resp, err = client.Get(healthz)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if fingerprint(resp.TLS.PeerCertificates[0].Raw) != fingerprint(leaf.Raw) {
		t.Error("after a restart the appliance obtained a new certificate instead of using the stored one")
	}
	again.stop(syscall.SIGTERM)
}
