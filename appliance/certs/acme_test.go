package certs

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/crypto/acme/autocert"
)

// pebbleVersion must match the tool directive in go.mod.
const pebbleVersion = "v2.10.1"

// tool builds a pebble command once and caches the binary across runs.
func tool(t *testing.T, name string) string {
	t.Helper()
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	bin := filepath.Join(cache, "sealpost-test-tools", "pebble-"+pebbleVersion, name)
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	cmd := exec.Command("go", "build", "-o", bin, "github.com/letsencrypt/pebble/v2/cmd/"+name)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", name, err, out)
	}
	return bin
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// pebble is a running ACME CA on loopback.
type pebble struct {
	directory string // https URL
	caFile    string // trusts pebble's own HTTPS
	mgmt      string // management API host:port
	httpPort  int    // where pebble checks HTTP-01
	tlsPort   int    // where pebble checks TLS-ALPN-01
}

// startPebble runs pebble-challtestsrv as the DNS server (every name is
// 127.0.0.1) and pebble validating challenges against the given ports.
func startPebble(t *testing.T) *pebble {
	t.Helper()
	dir := t.TempDir()
	p := &pebble{httpPort: freePort(t), tlsPort: freePort(t)}
	listen, mgmt, dns, dnsMgmt := freePort(t), freePort(t), freePort(t), freePort(t)
	p.mgmt = fmt.Sprintf("127.0.0.1:%d", mgmt)
	p.directory = fmt.Sprintf("https://127.0.0.1:%d/dir", listen)

	// Pebble's own HTTPS certificate, from a CA the client trusts via CAFile.
	pair, err := makeSelfSigned([]string{"localhost"})
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(pair, []byte("-----BEGIN PRIVATE KEY"))
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pair[:i], 0o600)
	os.WriteFile(keyFile, pair[i:], 0o600)
	p.caFile = certFile

	config := map[string]any{"pebble": map[string]any{
		"listenAddress":           fmt.Sprintf("127.0.0.1:%d", listen),
		"managementListenAddress": p.mgmt,
		"certificate":             certFile,
		"privateKey":              keyFile,
		"httpPort":                p.httpPort,
		"tlsPort":                 p.tlsPort,
		"ocspResponderURL":        "",
		"retryAfter":              map[string]int{"authz": 1, "order": 1},
		"keyAlgorithm":            "ecdsa",
		// Only the 90-day profile: a 6-day certificate is inside autocert's
		// renewal window and would renew in a loop.
		"profiles": map[string]any{"default": map[string]any{"description": "test", "validityPeriod": 7776000}},
	}}
	data, _ := json.Marshal(config)
	configFile := filepath.Join(dir, "pebble.json")
	os.WriteFile(configFile, data, 0o600)

	run := func(name string, env []string, args ...string) {
		cmd := exec.Command(tool(t, name), args...)
		cmd.Env = append(os.Environ(), env...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cmd.Process.Kill()
			cmd.Wait()
			if t.Failed() {
				t.Logf("%s output:\n%s", name, out.String())
			}
		})
	}
	run("pebble-challtestsrv", nil, "-dnsserver", fmt.Sprintf("127.0.0.1:%d", dns), "-http01", "", "-https01", "",
		"-tlsalpn01", "", "-doh", "", "-management", fmt.Sprintf("127.0.0.1:%d", dnsMgmt), "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "")
	run("pebble", []string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0"},
		"-config", configFile, "-dnsserver", fmt.Sprintf("127.0.0.1:%d", dns))

	client := insecureClient()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get(p.directory)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("pebble did not answer at %s: %v", p.directory, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func insecureClient() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
}

// roots returns pebble's current root, which signs what it issues.
func (p *pebble) roots(t *testing.T) *x509.CertPool {
	t.Helper()
	resp, err := insecureClient().Get("https://" + p.mgmt + "/roots/0")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		t.Fatalf("pebble roots: %s", data)
	}
	return pool
}

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
			p := startPebble(t)
			const host = "app.test"
			cache := &countingCache{Cache: autocert.DirCache(t.TempDir())}
			cfg := Config{Mode: ModeACME, Hostname: host, Cache: cache, Logger: zerolog.Nop(),
				ACME: ACMEConfig{DirectoryURL: p.directory, Email: "it@app.test", CAFile: p.caFile}}
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
			httpsPort := p.tlsPort
			if challenge == "http-01" {
				httpsPort = freePort(t)
			}
			ln, err := tls.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", httpsPort), m.TLSConfig())
			if err != nil {
				t.Fatal(err)
			}
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "hello") })}
			go srv.Serve(ln)
			defer srv.Close()
			httpLn, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p.httpPort))
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
				TLSClientConfig: &tls.Config{RootCAs: p.roots(t), ServerName: host},
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
