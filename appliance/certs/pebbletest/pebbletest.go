// Package pebbletest runs Let's Encrypt's test ACME CA, pebble, on loopback
// for tests: pebble-challtestsrv answers every DNS name with 127.0.0.1, and
// pebble validates challenges against ports the test chooses. Both tools
// are built from the versions go.mod pins, once, into the user's cache
// directory (sealpost-test-tools/pebble-VERSION), so later runs start in
// milliseconds. Nothing here is used outside tests.
package pebbletest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// module is the Go module that provides both tools.
const module = "github.com/letsencrypt/pebble/v2"

// CA is a running pebble on loopback.
type CA struct {
	Directory string // the ACME directory, https://127.0.0.1:PORT/dir
	CAFile    string // PEM file that trusts pebble's own HTTPS (for tls.acme.ca_file)
	Mgmt      string // management API host:port (same TLS certificate)
	HTTPPort  int    // where pebble checks HTTP-01 (on 127.0.0.1)
	TLSPort   int    // where pebble checks TLS-ALPN-01 (on 127.0.0.1)

	client *http.Client // trusts CAFile
}

// Start runs pebble-challtestsrv as the DNS server (every name is
// 127.0.0.1) and pebble validating challenges against two free ports,
// and returns when both answer. Cleanup kills them and, when the test
// failed, logs their output.
func Start(t testing.TB) *CA {
	t.Helper()
	dir := t.TempDir()
	ports := FreePorts(t, 6)
	p := &CA{HTTPPort: ports[0], TLSPort: ports[1]}
	listen := fmt.Sprintf("127.0.0.1:%d", ports[2])
	p.Mgmt = fmt.Sprintf("127.0.0.1:%d", ports[3])
	dns, dnsMgmt := fmt.Sprintf("127.0.0.1:%d", ports[4]), fmt.Sprintf("127.0.0.1:%d", ports[5])
	p.Directory = "https://" + listen + "/dir"

	// Pebble's own HTTPS certificate, made here rather than taken from the
	// module cache; clients trust it through CAFile.
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	pool := writeServerCert(t, certFile, keyFile)
	p.CAFile = certFile
	p.client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool},
	}}

	config := map[string]any{"pebble": map[string]any{
		"listenAddress":           listen,
		"managementListenAddress": p.Mgmt,
		"certificate":             certFile,
		"privateKey":              keyFile,
		"httpPort":                p.HTTPPort,
		"tlsPort":                 p.TLSPort,
		"ocspResponderURL":        "",
		"retryAfter":              map[string]int{"authz": 1, "order": 1},
		"keyAlgorithm":            "ecdsa",
		// Only the 90-day profile: pebble picks a profile at random, and a
		// 6-day "shortlived" certificate is inside autocert's renewal
		// window, so it would renew in a loop.
		"profiles": map[string]any{"default": map[string]any{"description": "test", "validityPeriod": 7776000}},
	}}
	data, err := json.Marshal(config)
	if err != nil {
		t.Fatal(err)
	}
	configFile := filepath.Join(dir, "pebble.json")
	if err := os.WriteFile(configFile, data, 0o600); err != nil {
		t.Fatal(err)
	}

	run(t, "pebble-challtestsrv", nil, "-dnsserver", dns, "-http01", "", "-https01", "", "-tlsalpn01", "",
		"-doh", "", "-management", dnsMgmt, "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "")
	run(t, "pebble", []string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0"},
		"-config", configFile, "-dnsserver", dns)

	// Ready when the DNS server resolves a test name and pebble serves its
	// directory.
	resolver := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, dns)
	}}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		addrs, dnsErr := resolver.LookupHost(ctx, "ready.test")
		cancel()
		err := dnsErr
		if err == nil && (len(addrs) != 1 || addrs[0] != "127.0.0.1") {
			err = fmt.Errorf("challtestsrv answered %v", addrs)
		}
		if err == nil {
			var resp *http.Response
			if resp, err = p.client.Get(p.Directory); err == nil {
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					err = fmt.Errorf("GET %s: %s", p.Directory, resp.Status)
				}
			}
		}
		if err == nil {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("pebble not ready after 30 s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Roots returns pebble's current root, which signs what it issues; pebble
// makes a new one every time it starts.
func (p *CA) Roots(t testing.TB) *x509.CertPool {
	t.Helper()
	resp, err := p.client.Get("https://" + p.Mgmt + "/roots/0")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		t.Fatalf("pebble roots: %s %q", resp.Status, data)
	}
	return pool
}

// FreePorts returns n distinct TCP ports that were free on 127.0.0.1 a
// moment ago.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, n)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close() // held until all are chosen, so they differ
		ports[i] = ln.Addr().(*net.TCPAddr).Port
	}
	return ports
}

// FreePort returns a TCP port that was free on 127.0.0.1 a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	return FreePorts(t, 1)[0]
}

// run starts a tool and kills it in t.Cleanup.
func run(t testing.TB, name string, env []string, args ...string) {
	t.Helper()
	cmd := exec.Command(tool(t, name), args...)
	// Pebble is a test tool, not the product: it uses SHA-1 for key ids
	// and would panic under the product's GODEBUG=fips140=only runs.
	cmd.Env = append(withoutGODEBUG(os.Environ()), env...)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("%s output:\n%s", name, out.String())
		}
	})
}

var (
	buildMu sync.Mutex // guards the build and the two below
	root    string     // the module's directory
	version string     // pebble's version in go.mod
)

// tool returns the path of a pebble command, building it on first use.
// The binary goes into a temporary name and is renamed into place, so
// parallel tests and test binaries never run a half-written file.
func tool(t testing.TB, name string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skipf("pebble: the go command is not on PATH, so the test ACME CA cannot be built: %v", err)
	}
	if version == "" {
		root = moduleRoot(t)
		version = goCmd(t, root, "list", "-m", "-f", "{{.Version}}", module)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "sealpost-test-tools", "pebble-"+version)
	bin := filepath.Join(dir, name)
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := fmt.Sprintf("%s.%d.tmp", bin, os.Getpid())
	goCmd(t, root, "build", "-o", tmp, module+"/cmd/"+name)
	if err := os.Rename(tmp, bin); err != nil {
		t.Fatal(err)
	}
	return bin
}

// moduleRoot is the directory of this module's go.mod, whose tool
// directives pin pebble.
func moduleRoot(t testing.TB) string {
	gomod := goCmd(t, "", "env", "GOMOD")
	if gomod == "" || gomod == os.DevNull {
		t.Fatalf("pebble: not inside the sealpost module (go env GOMOD = %q)", gomod)
	}
	return filepath.Dir(gomod)
}

func goCmd(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Env = withoutGODEBUG(os.Environ())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// writeServerCert makes pebble's own HTTPS certificate, self-signed for
// 127.0.0.1 and localhost, and returns a pool that trusts it.
func writeServerCert(t testing.TB, certFile, keyFile string) *x509.CertPool {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano()), Subject: pkix.Name{CommonName: "pebble test server"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1).To4(), net.IPv6loopback},
		BasicConstraintsValid: true, IsCA: true, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return pool
}

func withoutGODEBUG(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if !strings.HasPrefix(kv, "GODEBUG=") {
			out = append(out, kv)
		}
	}
	return out
}

// syncBuffer collects a process's output from exec's copying goroutines.
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
