package certs

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"

	"github.com/sealpost/sealpost/appliance/certs/pebbletest"
)

// countingCache counts writes, to show a restart serves from the store.
type countingCache struct {
	autocert.Cache
	puts atomic.Int32
}

func (c *countingCache) Put(ctx context.Context, name string, data []byte) error {
	c.puts.Add(1)
	return c.Cache.Put(ctx, name, data)
}

// TestACME obtains certificates from a real ACME CA (pebble) on loopback,
// once through TLS-ALPN-01 and once through HTTP-01, verifies them against
// pebble's root, and restarts with the same cache while any contact with a
// CA would be counted.
func TestACME(t *testing.T) {
	t.Parallel()
	for _, challenge := range []string{"tls-alpn-01", "http-01"} {
		t.Run(challenge, func(t *testing.T) {
			t.Parallel()
			ca := pebbletest.Start(t)
			const host = "app.test"
			cache := &countingCache{Cache: autocert.DirCache(t.TempDir())}
			cfg := Config{Mode: ModeACME, Hostname: host, Cache: cache, Logger: zerolog.Nop(),
				ACME: ACMEConfig{DirectoryURL: ca.Directory, Email: "it@app.test", CAFile: ca.CAFile}}
			m, err := Open(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if !m.Trusted() {
				t.Error("acme mode should count as trusted")
			}
			tlsConfig := m.TLSConfig()
			if tlsConfig.MinVersion != tls.VersionTLS12 || !slices.Equal(tlsConfig.NextProtos, []string{"h2", "http/1.1", acme.ALPNProto}) {
				t.Errorf("MinVersion %x, NextProtos %v", tlsConfig.MinVersion, tlsConfig.NextProtos)
			}

			// The HTTPS listener is where pebble checks TLS-ALPN-01; for
			// the HTTP-01 run nothing listens there, so TLS-ALPN-01 fails
			// and autocert falls back to HTTP-01 on the HTTP port.
			httpsPort := ca.TLSPort
			if challenge == "http-01" {
				httpsPort = pebbletest.FreePort(t)
			}
			ln, err := tls.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", httpsPort), tlsConfig)
			if err != nil {
				t.Fatal(err)
			}
			hello := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "hello") })
			srv := &http.Server{Handler: hello}
			go srv.Serve(ln)
			defer srv.Close()

			httpLn, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", ca.HTTPPort))
			if err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			var fetched []string // challenge requests pebble made over HTTP: host and path
			acmeHandler := m.HTTPHandler(http.NotFoundHandler())
			httpSrv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if strings.HasPrefix(r.URL.Path, "/.well-known/acme-challenge/") {
					mu.Lock()
					fetched = append(fetched, r.Host+r.URL.Path)
					mu.Unlock()
				}
				acmeHandler.ServeHTTP(w, r)
			})}
			go httpSrv.Serve(httpLn)
			defer httpSrv.Close()

			// The first handshake obtains the certificate; a client that
			// trusts only pebble's root verifies it.
			client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
				TLSClientConfig: &tls.Config{RootCAs: ca.Roots(t), ServerName: host},
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
			if !slices.Equal(leaf.DNSNames, []string{host}) || !strings.Contains(leaf.Issuer.CommonName, "Pebble") {
				t.Errorf("certificate for %v issued by %q", leaf.DNSNames, leaf.Issuer.CommonName)
			}
			t.Logf("%s: certificate issued in %v", challenge, time.Since(start).Round(time.Millisecond))

			mu.Lock()
			if challenge == "http-01" {
				// pebble sends Host with the port, which autocert alone
				// would refuse.
				if len(fetched) == 0 || !strings.HasPrefix(fetched[0], fmt.Sprintf("%s:%d/", host, ca.HTTPPort)) {
					t.Errorf("HTTP-01 requests %v, want one for %s:%d", fetched, host, ca.HTTPPort)
				}
			} else if len(fetched) > 0 {
				t.Errorf("pebble fetched HTTP-01 challenges %v in the TLS-ALPN-01 run", fetched)
			}
			mu.Unlock()

			// A client that connects by address sends no server name and
			// still gets the host's certificate.
			if got := served(t, fmt.Sprintf("127.0.0.1:%d", httpsPort), ""); !bytes.Equal(got.Raw, leaf.Raw) {
				t.Errorf("without SNI the server shows %v", got.DNSNames)
			}

			// A restart with the same cache serves the stored certificate;
			// its directory URL now points at a listener that counts
			// connections, so any contact with a CA would show.
			srv.Close()
			puts := cache.puts.Load()
			contacts := countConnections(t)
			cfg.ACME.DirectoryURL = "https://" + contacts.addr + "/dir"
			m2, err := Open(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer m2.Close()
			ln2, err := tls.Listen("tcp", "127.0.0.1:0", m2.TLSConfig())
			if err != nil {
				t.Fatal(err)
			}
			srv2 := &http.Server{Handler: hello}
			go srv2.Serve(ln2)
			defer srv2.Close()
			resp, err = client.Get("https://" + ln2.Addr().String() + "/")
			if err != nil {
				t.Fatalf("after a restart: %v", err)
			}
			resp.Body.Close()
			if !bytes.Equal(resp.TLS.PeerCertificates[0].Raw, leaf.Raw) {
				t.Error("after a restart the server shows another certificate")
			}
			if n, p := contacts.n.Load(), cache.puts.Load()-puts; n != 0 || p != 0 {
				t.Errorf("after a restart: %d connections to the CA, %d cache writes; want none", n, p)
			}
		})
	}
}

// connCounter is a TCP listener that counts and drops connections.
type connCounter struct {
	addr string
	n    atomic.Int32
}

func countConnections(t *testing.T) *connCounter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	c := &connCounter{addr: ln.Addr().String()}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			c.n.Add(1)
			conn.Close()
		}
	}()
	return c
}

// TestACMEHTTPHandler: challenge paths reach autocert with the port
// stripped from Host (autocert compares Host with its port to the host
// policy, which would refuse every challenge on a port other than 80), and
// everything else reaches the fallback untouched.
func TestACMEHTTPHandler(t *testing.T) {
	t.Parallel()
	m, err := Open(context.Background(), Config{Mode: ModeACME, Hostname: "app.test", Cache: autocert.DirCache(t.TempDir()), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	fallback := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTeapot)
		io.WriteString(w, "fallback "+r.Host)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: m.HTTPHandler(fallback)}
	go srv.Serve(ln)
	defer srv.Close()
	tests := []struct {
		host, path string
		status     int
		body       string
	}{
		// An unknown token for an allowed host is a 404, not autocert's 403.
		{"app.test:8080", "/.well-known/acme-challenge/unknown-token", http.StatusNotFound, ""},
		{"app.test", "/.well-known/acme-challenge/unknown-token", http.StatusNotFound, ""},
		{"other.test:8080", "/.well-known/acme-challenge/unknown-token", http.StatusForbidden, ""},
		{"app.test:8080", "/login", http.StatusTeapot, "fallback app.test:8080"},
	}
	for _, tt := range tests {
		req, err := http.NewRequest("GET", "http://"+ln.Addr().String()+tt.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = tt.host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.status || !strings.Contains(string(body), tt.body) {
			t.Errorf("GET %s%s = %d %q, want %d %q", tt.host, tt.path, resp.StatusCode, body, tt.status, tt.body)
		}
	}
}
