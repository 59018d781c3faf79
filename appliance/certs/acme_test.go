package certs

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/sealpost/sealpost/appliance/certs/pebbletest"
	"golang.org/x/crypto/acme/autocert"
)

// countingCache counts cache reads and writes, to show a restart serves
// from the store without asking the CA again.
type countingCache struct {
	autocert.Cache
	mu   sync.Mutex
	puts int
}

func (c *countingCache) Put(ctx context.Context, name string, data []byte) error {
	c.mu.Lock()
	c.puts++
	c.mu.Unlock()
	return c.Cache.Put(ctx, name, data)
}

func (c *countingCache) Puts() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.puts
}

// TestACME obtains certificates from a real ACME CA (pebble) on loopback,
// once through TLS-ALPN-01 and once through HTTP-01.
func TestACME(t *testing.T) {
	t.Parallel()
	for _, challenge := range []string{"tls-alpn-01", "http-01"} {
		t.Run(challenge, func(t *testing.T) {
			t.Parallel()
			p := pebbletest.Start(t)
			const host = "app.test"
			cache := &countingCache{Cache: autocert.DirCache(t.TempDir())}
			cfg := Config{Mode: ModeACME, Hostname: host, Cache: cache, Logger: zerolog.Nop(),
				ACME: ACMEConfig{DirectoryURL: p.Directory, Email: "it@app.test", CAFile: p.CAFile}}
			m, err := Open(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if !m.Trusted() {
				t.Error("acme mode should count as trusted")
			}

			// The appliance's HTTPS port is where pebble checks TLS-ALPN-01;
			// for the HTTP-01 run nothing listens there, so autocert has to
			// fall back to HTTP-01 on the HTTP port.
			httpsPort := p.TLSPort
			if challenge == "http-01" {
				httpsPort = pebbletest.FreePort(t)
			}
			ln, err := tls.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", httpsPort), m.TLSConfig())
			if err != nil {
				t.Fatal(err)
			}
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "hello") })}
			go srv.Serve(ln)
			defer srv.Close()
			httpLn, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p.HTTPPort))
			if err != nil {
				t.Fatal(err)
			}
			var challenges sync.Map // paths pebble fetched over HTTP
			acmeHandler := m.HTTPHandler(http.NotFoundHandler())
			httpSrv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				challenges.Store(r.URL.Path, true)
				acmeHandler.ServeHTTP(w, r)
			})}
			go httpSrv.Serve(httpLn)
			defer httpSrv.Close()

			// The first handshake obtains the certificate; a client that
			// trusts pebble's root then verifies it.
			client := &http.Client{Timeout: 90 * time.Second, Transport: &http.Transport{
				TLSClientConfig: &tls.Config{RootCAs: p.Roots(t), ServerName: host},
			}}
			start := time.Now()
			resp, err := client.Get(fmt.Sprintf("https://127.0.0.1:%d/", httpsPort))
			if err != nil {
				t.Fatalf("HTTPS with a verified ACME certificate: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(body) != "hello" {
				t.Errorf("body %q", body)
			}
			leaf := resp.TLS.PeerCertificates[0]
			if leaf.VerifyHostname(host) != nil || !strings.Contains(leaf.Issuer.CommonName, "Pebble") {
				t.Errorf("certificate for %v issued by %q", leaf.DNSNames, leaf.Issuer.CommonName)
			}
			t.Logf("%s: certificate issued in %v", challenge, time.Since(start).Round(time.Millisecond))
			usedHTTP := false
			challenges.Range(func(path, _ any) bool {
				usedHTTP = usedHTTP || strings.HasPrefix(path.(string), "/.well-known/acme-challenge/")
				return true
			})
			if usedHTTP != (challenge == "http-01") {
				t.Errorf("pebble fetched an HTTP-01 challenge: %v; want that only in the http-01 run", usedHTTP)
			}

			// A restart serves the stored certificate without asking the CA.
			puts := cache.Puts()
			srv.Close()
			m2, err := Open(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer m2.Close()
			ln2, err := tls.Listen("tcp", "127.0.0.1:0", m2.TLSConfig())
			if err != nil {
				t.Fatal(err)
			}
			srv2 := &http.Server{Handler: srv.Handler}
			go srv2.Serve(ln2)
			defer srv2.Close()
			resp, err = client.Get("https://" + ln2.Addr().String() + "/")
			if err != nil {
				t.Fatalf("after a restart: %v", err)
			}
			resp.Body.Close()
			if !bytes.Equal(resp.TLS.PeerCertificates[0].Raw, leaf.Raw) || cache.Puts() != puts {
				t.Error("after a restart the certificate was obtained again instead of read from the store")
			}
		})
	}
}

// TestACMEHTTPHandlerStripsPort: autocert compares the Host header with its
// port against the host policy, which would refuse every challenge on a
// non-default port.
func TestACMEHTTPHandlerStripsPort(t *testing.T) {
	t.Parallel()
	m, err := Open(context.Background(), Config{Mode: ModeACME, Hostname: "app.test", Cache: autocert.DirCache(t.TempDir()), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	srv := http.Server{Handler: m.HTTPHandler(http.NotFoundHandler())}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go srv.Serve(ln)
	defer srv.Close()
	req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+"/.well-known/acme-challenge/unknown-token", nil)
	req.Host = "app.test:8080"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// Without stripping, autocert answers 403 (host not allowed); with it, the
	// unknown token is a 404.
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("challenge for an unknown token on app.test:8080 = %d, want 404", resp.StatusCode)
	}
}
