package certs

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// pair makes a certificate and key (PEM) for name, valid from now.
func pair(t *testing.T, name string, now time.Time) (certPEM, keyPEM []byte) {
	t.Helper()
	data, err := makeSelfSigned([]string{name}, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(data, []byte("-----BEGIN PRIVATE KEY"))
	return data[:i], data[i:]
}

// The ways operators and tools replace certificate files; each writes
// cert.pem and key.pem in dir.
var writers = []struct {
	name  string
	write func(t *testing.T, dir string, certPEM, keyPEM []byte)
}{
	{"rewrite in place", func(t *testing.T, dir string, certPEM, keyPEM []byte) {
		for name, data := range map[string][]byte{"cert.pem": certPEM, "key.pem": keyPEM} {
			if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}},
	{"rename over", func(t *testing.T, dir string, certPEM, keyPEM []byte) {
		for name, data := range map[string][]byte{"cert.pem": certPEM, "key.pem": keyPEM} {
			tmp := filepath.Join(dir, name+".new")
			if err := os.WriteFile(tmp, data, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
				t.Fatal(err)
			}
		}
	}},
	// As Kubernetes updates a mounted secret: the files are symlinks
	// through ..data, which is swapped to a new directory in one rename.
	{"symlink swap", func(t *testing.T, dir string, certPEM, keyPEM []byte) {
		version := filepath.Join(dir, fmt.Sprintf("..%d", time.Now().UnixNano()))
		if err := os.Mkdir(version, 0o700); err != nil {
			t.Fatal(err)
		}
		for name, data := range map[string][]byte{"cert.pem": certPEM, "key.pem": keyPEM} {
			if err := os.WriteFile(filepath.Join(version, name), data, 0o600); err != nil {
				t.Fatal(err)
			}
			link := filepath.Join(dir, name)
			if _, err := os.Lstat(link); os.IsNotExist(err) {
				if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
					t.Fatal(err)
				}
			}
		}
		tmp := filepath.Join(dir, "..data_tmp")
		if err := os.Symlink(filepath.Base(version), tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}},
}

// TestFilesReloaded: a new pair is served within the poll interval however
// it is written; a pair that does not load is logged and the previous one
// keeps serving.
func TestFilesReloaded(t *testing.T) {
	t.Parallel()
	for _, w := range writers {
		t.Run(w.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			now := time.Now()
			certA, keyA := pair(t, "a.example.org", now)
			w.write(t, dir, certA, keyA)
			var logs syncBuffer
			m, err := Open(context.Background(), Config{Mode: ModeFiles, Hostname: "a.example.org",
				CertFile: filepath.Join(dir, "cert.pem"), KeyFile: filepath.Join(dir, "key.pem"),
				Logger: zerolog.New(&logs), ReloadInterval: 50 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if !m.Trusted() {
				t.Error("files mode should count as trusted")
			}
			addr := serve(t, m.TLSConfig())
			serving := func() string { return served(t, addr, "a.example.org").Subject.CommonName }
			if cn := serving(); cn != "a.example.org" {
				t.Fatalf("serving %s, want a.example.org", cn)
			}

			certB, keyB := pair(t, "b.example.org", now)
			w.write(t, dir, certB, keyB)
			eventually(t, "serving b.example.org", func() bool { return serving() == "b.example.org" })

			// A pair whose key is broken is logged once it stays broken;
			// B keeps serving.
			w.write(t, dir, certB, []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"))
			// (Rewritten in place, a torn read of the certificate may be
			// logged first; the key's problem must follow.)
			keyProblem := "tls.key_file: " + filepath.Join(dir, "key.pem") + " holds a private key that cannot be parsed"
			eventually(t, "a log line that names the broken key", func() bool {
				return strings.Contains(logs.String(), keyProblem)
			})
			if !strings.Contains(logs.String(), "do not load; still serving the previous certificate") {
				t.Errorf("the log does not say the old certificate stays:\n%s", logs.String())
			}
			if cn := serving(); cn != "b.example.org" {
				t.Errorf("after a broken write the server shows %s", cn)
			}

			// Repaired, the files are served again.
			certC, keyC := pair(t, "c.example.org", now)
			w.write(t, dir, certC, keyC)
			eventually(t, "serving c.example.org", func() bool { return serving() == "c.example.org" })
			if n := strings.Count(logs.String(), "do not load"); n != 1 {
				t.Errorf("%d log lines about broken files, want 1:\n%s", n, logs.String())
			}
		})
	}
}

// TestFilesErrors: a pair that does not load stops Open with a message that
// names the key and the file.
func TestFilesErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := func(name string, data []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	now := time.Now()
	a, aKey := pair(t, "a.example.org", now)
	_, bKey := pair(t, "b.example.org", now)
	certA, keyA, keyB := file("a.pem", a), file("a.key", aKey), file("b.key", bKey)
	notPEM := file("not.pem", []byte("hello"))
	encrypted := file("enc.key", []byte("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"))
	missing := filepath.Join(dir, "missing.pem")
	tests := []struct {
		name, cert, key string
		want            []string
	}{
		{"key of another certificate", certA, keyB, []string{"tls.key_file: " + keyB + " does not match the certificate in " + certA}},
		{"missing certificate", missing, keyA, []string{"tls.cert_file: cannot read " + missing + ": no such file or directory"}},
		{"certificate not PEM", notPEM, keyA, []string{"tls.cert_file: " + notPEM + " holds no PEM certificate"}},
		{"key not PEM", certA, notPEM, []string{"tls.key_file: " + notPEM + " holds no PEM private key"}},
		{"swapped", keyA, certA, []string{
			"tls.cert_file: " + keyA + " holds a private key, not a certificate (are tls.cert_file and tls.key_file swapped?)",
			"tls.key_file: " + certA + " holds a certificate, not a private key"}},
		{"encrypted key", certA, encrypted, []string{"tls.key_file: " + encrypted + " holds an encrypted private key"}},
	}
	for _, tt := range tests {
		_, err := Open(context.Background(), Config{Mode: ModeFiles, CertFile: tt.cert, KeyFile: tt.key, Logger: zerolog.Nop()})
		if err == nil {
			t.Errorf("%s: Open succeeded", tt.name)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: Open = %v\nwant %q", tt.name, err, w)
			}
		}
	}
}

// TestFilesWarnings: a certificate clients will refuse is served, with a
// warning that says why.
func TestFilesWarnings(t *testing.T) {
	t.Parallel()
	now := time.Now()
	tests := []struct {
		name     string
		issued   time.Time
		hostname string
		want     string
	}{
		{"expired", now.Add(-400 * 24 * time.Hour), "a.example.org", "has expired"},
		{"expires soon", now.Add(-350 * 24 * time.Hour), "a.example.org", "expires within 30 days"},
		{"not yet valid", now.Add(2 * time.Hour), "a.example.org", "is not valid yet"},
		{"other host name", now, "mail.example.org", "does not name the host name"},
		{"fine", now, "a.example.org", ""},
	}
	for _, tt := range tests {
		dir := t.TempDir()
		certPEM, keyPEM := pair(t, "a.example.org", tt.issued)
		writers[0].write(t, dir, certPEM, keyPEM)
		var logs syncBuffer
		m, err := Open(context.Background(), Config{Mode: ModeFiles, Hostname: tt.hostname,
			CertFile: filepath.Join(dir, "cert.pem"), KeyFile: filepath.Join(dir, "key.pem"), Logger: zerolog.New(&logs)})
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		m.Close()
		if cn := m.current.Load().Leaf.Subject.CommonName; cn != "a.example.org" {
			t.Errorf("%s: serving %s", tt.name, cn)
		}
		warned := strings.Contains(logs.String(), `"level":"warn"`)
		if tt.want == "" && warned || tt.want != "" && !strings.Contains(logs.String(), tt.want) {
			t.Errorf("%s: log %s\nwant a warning %q", tt.name, logs.String(), tt.want)
		}
	}
}
