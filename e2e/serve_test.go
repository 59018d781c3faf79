package e2e

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestFirstStart is the newcomer's first run: the appliance creates its key
// and data, serves HTTPS on a self-signed certificate, and guards /setup
// with the one-time token it printed.
func TestFirstStart(t *testing.T) {
	t.Parallel()
	l := newLayout(t)
	in := start(t, l)

	if in.token == "" || !strings.HasPrefix(in.setupURL, "https://127.0.0.1:") {
		t.Fatalf("no setup line with a token on stdout:\n%s", in.Stdout())
	}
	base := "https://" + in.https

	t.Run("key and token files", func(t *testing.T) {
		info, err := os.Stat(l.keyFile)
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != 0o600 {
			t.Errorf("key file mode = %v, want 0600", info.Mode().Perm())
		}
		tokenFile := filepath.Join(l.dataDir, "setup-token")
		data, err := os.ReadFile(tokenFile)
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(string(data)) != in.token {
			t.Errorf("setup-token file does not hold the printed token")
		}
		if info, _ := os.Stat(tokenFile); info.Mode().Perm() != 0o600 {
			t.Errorf("setup-token mode = %v, want 0600", info.Mode().Perm())
		}
	})

	t.Run("healthz and readyz", func(t *testing.T) {
		for _, path := range []string{"/healthz", "/readyz"} {
			resp, body := get(t, base+path)
			if resp.StatusCode != 200 {
				t.Errorf("GET %s = %d %s", path, resp.StatusCode, body)
			}
		}
	})

	t.Run("setup needs the token", func(t *testing.T) {
		tests := []struct {
			name, url string
			status    int
			want      string
		}{
			{"no token", base + "/setup", 403, "Setup token required"},
			{"wrong token", base + "/setup?token=AAAAAAAAAAAAAAAAAAAAAAAAAA", 403, "not valid"},
			{"right token", base + "/setup?token=" + in.token, 200, "Welcome to Sealpost"},
		}
		for _, tt := range tests {
			resp, body := get(t, tt.url)
			if resp.StatusCode != tt.status || !strings.Contains(body, tt.want) {
				t.Errorf("%s: GET /setup = %d, want %d with %q", tt.name, resp.StatusCode, tt.status, tt.want)
			}
			if strings.Contains(body, in.token) {
				t.Errorf("%s: the page shows the token", tt.name)
			}
		}
	})

	t.Run("only setup exists before setup", func(t *testing.T) {
		resp, _ := get(t, base+"/")
		if resp.StatusCode != 303 || resp.Header.Get("Location") != "/setup" {
			t.Errorf("GET / = %d to %q, want 303 to /setup", resp.StatusCode, resp.Header.Get("Location"))
		}
		resp, body := get(t, base+"/admin")
		if resp.StatusCode != 404 || !strings.Contains(body, "nothing at this address") {
			t.Errorf("GET /admin = %d, want the 404 page", resp.StatusCode)
		}
		resp, body = get(t, base+"/admin", "Accept", "application/json")
		if resp.StatusCode != 404 || !strings.Contains(body, `"reference"`) {
			t.Errorf("GET /admin as JSON = %d %s", resp.StatusCode, body)
		}
	})

	t.Run("security headers", func(t *testing.T) {
		resp, _ := get(t, base+"/setup?token="+in.token)
		want := map[string]string{
			"X-Content-Type-Options": "nosniff",
			"Referrer-Policy":        "no-referrer",
			"Cache-Control":          "no-store",
			"X-Frame-Options":        "DENY",
		}
		for k, v := range want {
			if got := resp.Header.Get(k); got != v {
				t.Errorf("%s = %q, want %q", k, got, v)
			}
		}
		csp := resp.Header.Get("Content-Security-Policy")
		for _, part := range []string{"default-src 'none'", "script-src 'self'", "frame-ancestors 'none'", "object-src 'none'", "base-uri 'none'"} {
			if !strings.Contains(csp, part) {
				t.Errorf("CSP %q lacks %q", csp, part)
			}
		}
		if strings.Contains(csp, "unsafe-inline") {
			t.Errorf("CSP allows inline code: %q", csp)
		}
		if resp.Header.Get("Strict-Transport-Security") != "" {
			t.Error("HSTS sent on a self-signed certificate")
		}
		cookie := resp.Header.Get("Set-Cookie")
		for _, attr := range []string{"__Host-", "Secure", "HttpOnly", "SameSite=Strict", "Path=/"} {
			if !strings.Contains(cookie, attr) {
				t.Errorf("setup cookie %q lacks %s", cookie, attr)
			}
		}
	})

	t.Run("http redirects to https", func(t *testing.T) {
		resp, _ := get(t, "http://"+in.http+"/setup?x=1")
		_, httpsPort, _ := net.SplitHostPort(in.https)
		want := "https://127.0.0.1:" + httpsPort + "/setup?x=1"
		if resp.StatusCode != 301 || resp.Header.Get("Location") != want {
			t.Errorf("GET http:// = %d to %q, want 301 to %q", resp.StatusCode, resp.Header.Get("Location"), want)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		resp, body := get(t, "http://"+in.metrics+"/metrics")
		if resp.StatusCode != 200 || !strings.Contains(body, `sealpost_build_info{version="e2e-test"} 1`) ||
			!strings.Contains(body, "sealpost_http_requests_total") || !strings.Contains(body, "sealpost_store_healthy 1") ||
			!strings.Contains(body, `sealpost_store_bytes{part="value_log"}`) {
			t.Errorf("GET /metrics = %d; missing sealpost metrics", resp.StatusCode)
		}
	})

	t.Run("certificate", func(t *testing.T) {
		cert := serverCert(t, in.https)
		if !strings.Contains(strings.Join(cert.DNSNames, ","), "localhost") {
			t.Errorf("self-signed certificate names %v, want localhost among them", cert.DNSNames)
		}
	})

	if code := in.stop(syscall.SIGTERM); code != 0 {
		t.Errorf("exit code after SIGTERM = %d, want 0\nstderr:\n%s", code, in.Stderr())
	}
	if !strings.Contains(in.Stdout(), "shutting down") {
		t.Error("no shutdown line in the log")
	}
	if strings.Count(in.Stdout(), in.token) != 1 {
		t.Error("the setup token appears in the log besides the setup line")
	}
}

// TestRestartKeepsCertificateAndData: the self-signed certificate is made
// once and kept in the store; each start makes a new setup token.
func TestRestartKeepsCertificateAndData(t *testing.T) {
	t.Parallel()
	l := newLayout(t)
	first := start(t, l)
	fp1 := fingerprint(serverCert(t, first.https).Raw)
	if code := first.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("first run exit code %d", code)
	}
	second := start(t, l)
	if fp2 := fingerprint(serverCert(t, second.https).Raw); fp2 != fp1 {
		t.Error("the self-signed certificate changed across a restart")
	}
	if second.token == first.token {
		t.Error("the setup token did not change across a restart")
	}
	resp, _ := get(t, "https://"+second.https+"/setup?token="+first.token)
	if resp.StatusCode != 403 {
		t.Errorf("the old token still opens setup: %d", resp.StatusCode)
	}
}

// TestRefusesWrongOrExposedKey: a wrong key, a key file others can read, and
// a missing key for existing data stop start-up with a message saying what to
// do, and change nothing on disk.
func TestRefusesWrongOrExposedKey(t *testing.T) {
	t.Parallel()
	l := newLayout(t)
	in := start(t, l)
	if code := in.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	goodKey, err := os.ReadFile(l.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	other := newLayout(t)
	start(t, other).stop(syscall.SIGTERM)
	otherKey, err := os.ReadFile(other.keyFile)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		prepare func(t *testing.T)
		want    []string
	}{
		{"wrong key", func(t *testing.T) {
			writeKey(t, l.keyFile, otherKey, 0o600)
		}, []string{"does not match", l.keyFile}},
		{"key readable by others", func(t *testing.T) {
			writeKey(t, l.keyFile, goodKey, 0o644)
		}, []string{"chmod 600 " + l.keyFile}},
		{"key missing", func(t *testing.T) {
			if err := os.Remove(l.keyFile); err != nil {
				t.Fatal(err)
			}
		}, []string{"missing", "backup"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.prepare(t)
			before := treeDigest(t, l.dataDir, filepath.Dir(l.keyFile))
			_, stderr, code := runCLI(t, l.env(), "serve", "--config", "/dev/null")
			if code != 1 {
				t.Errorf("exit code = %d, want 1", code)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr %q should contain %q", stderr, w)
				}
			}
			if after := treeDigest(t, l.dataDir, filepath.Dir(l.keyFile)); after != before {
				t.Error("the refused start changed files on disk")
			}
		})
	}

	// With the right key back, the data opens again.
	writeKey(t, l.keyFile, goodKey, 0o600)
	start(t, l).stop(syscall.SIGTERM)
}

func writeKey(t *testing.T, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// TestSystemdReadiness: under systemd (NOTIFY_SOCKET set) the appliance
// reports READY=1 once it listens, and STOPPING=1 on SIGTERM.
func TestSystemdReadiness(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	in := start(t, newLayout(t), "NOTIFY_SOCKET="+sock)
	read := func() string {
		buf := make([]byte, 512)
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("read notify socket: %v", err)
		}
		return string(buf[:n])
	}
	if msg := read(); !strings.Contains(msg, "READY=1") {
		t.Errorf("first notification = %q, want READY=1", msg)
	}
	in.stop(syscall.SIGTERM)
	if msg := read(); !strings.Contains(msg, "STOPPING=1") {
		t.Errorf("notification on stop = %q, want STOPPING=1", msg)
	}
}

func serverCert(t *testing.T, addr string) *x509.Certificate {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}

func fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// TestFIPSOnlyMode: every primitive the appliance uses is allowed by Go's
// FIPS 140-3 module, so it starts and serves under GODEBUG=fips140=only.
func TestFIPSOnlyMode(t *testing.T) {
	t.Parallel()
	in := start(t, newLayout(t), "GODEBUG=fips140=only")
	for _, path := range []string{"/healthz", "/setup?token=" + in.token} {
		if resp, body := get(t, "https://"+in.https+path); resp.StatusCode != 200 {
			t.Errorf("GET %s under fips140=only = %d %s", path, resp.StatusCode, body)
		}
	}
	if code := in.stop(syscall.SIGTERM); code != 0 {
		t.Errorf("exit code %d\n%s", code, in.Stderr())
	}
}
