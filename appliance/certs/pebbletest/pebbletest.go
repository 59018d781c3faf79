// Package pebbletest runs Let's Encrypt's test ACME CA, pebble, on loopback
// for tests: pebble-challtestsrv answers every DNS name with 127.0.0.1, and
// pebble validates challenges against ports the test chooses. Both tools are
// pinned in go.mod and built once into the user's cache directory.
package pebbletest

import (
	"bytes"
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
	"testing"
	"time"
)

// pebbleVersion must match the tool directive in go.mod.
const pebbleVersion = "v2.10.1"

// tool builds a pebble command once and caches the binary across runs.
func tool(t testing.TB, name string) string {
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

func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// CA is a running pebble on loopback.
type CA struct {
	Directory string // https URL
	CAFile    string // trusts pebble's own HTTPS
	Mgmt      string // management API host:port
	HTTPPort  int    // where pebble checks HTTP-01
	TLSPort   int    // where pebble checks TLS-ALPN-01
}

// Start runs pebble-challtestsrv as the DNS server (every name is
// 127.0.0.1) and pebble validating challenges against the given ports.
func Start(t testing.TB) *CA {
	t.Helper()
	dir := t.TempDir()
	p := &CA{HTTPPort: FreePort(t), TLSPort: FreePort(t)}
	listen, mgmt, dns, dnsMgmt := FreePort(t), FreePort(t), FreePort(t), FreePort(t)
	p.Mgmt = fmt.Sprintf("127.0.0.1:%d", mgmt)
	p.Directory = fmt.Sprintf("https://127.0.0.1:%d/dir", listen)

	// Pebble's own HTTPS certificate, from a CA the client trusts via CAFile.
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeServerCert(t, certFile, keyFile)
	p.CAFile = certFile

	config := map[string]any{"pebble": map[string]any{
		"listenAddress":           fmt.Sprintf("127.0.0.1:%d", listen),
		"managementListenAddress": p.Mgmt,
		"certificate":             certFile,
		"privateKey":              keyFile,
		"httpPort":                p.HTTPPort,
		"tlsPort":                 p.TLSPort,
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
		// Pebble is a test tool, not the product: it uses SHA-1 for key ids
		// and would panic under the product's GODEBUG=fips140=only runs.
		cmd.Env = append(withoutGODEBUG(os.Environ()), env...)
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
		resp, err := client.Get(p.Directory)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("pebble did not answer at %s: %v", p.Directory, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func insecureClient() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
}

// Roots returns pebble's current root, which signs what it issues.
func (p *CA) Roots(t testing.TB) *x509.CertPool {
	t.Helper()
	resp, err := insecureClient().Get("https://" + p.Mgmt + "/roots/0")
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

// writeServerCert makes pebble's own HTTPS certificate, self-signed for
// 127.0.0.1 and localhost; CAFile points at it so clients can trust pebble.
func writeServerCert(t testing.TB, certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "pebble test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
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
}

func withoutGODEBUG(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, "GODEBUG=") {
			out = append(out, kv)
		}
	}
	return out
}
