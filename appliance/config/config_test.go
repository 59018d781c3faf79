package config

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

// load runs Load on a TOML text and environment, never reading the machine's
// own /etc/sealpost or environment.
func load(t *testing.T, toml string, environ ...string) (Config, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sealpost.toml")
	if err := os.WriteFile(path, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	if environ == nil {
		environ = []string{}
	}
	return Load(Source{File: path, Explicit: true, Environ: environ})
}

func TestDefaultsAreValid(t *testing.T) {
	t.Parallel()
	cfg, err := load(t, "")
	if err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	want := Defaults()
	if cfg.HTTPS.Listen != ":8443" || cfg.HTTP.Listen != ":8080" || cfg.SMTP.RelayListen != ":2525" ||
		cfg.SMTP.SubmissionListen != ":2587" || cfg.Metrics.Listen != "127.0.0.1:9090" ||
		cfg.DataDir != "./data" || cfg.KeyFile != "./sealpost.key" || cfg.Log.Level != "info" ||
		cfg.TLS.Mode != "self-signed" || len(cfg.Admin.AllowedNetworks) != len(want.Admin.AllowedNetworks) {
		t.Errorf("defaults differ from SPEC §2: %+v", cfg)
	}
}

func TestPrecedenceFileThenEnvironment(t *testing.T) {
	t.Parallel()
	cfg, err := load(t, "hostname = \"file.example\"\n[https]\nlisten = \":9443\"\n[log]\nlevel = \"debug\"\n",
		"SEALPOST_HTTPS__LISTEN=127.0.0.1:7443", "SEALPOST_SMTP__RELAY_LISTEN=",
		"SEALPOST_ADMIN__ALLOWED_NETWORKS=10.1.0.0/16, 192.0.2.0/24", "OTHER_VAR=1")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTPS.Listen != "127.0.0.1:7443" {
		t.Errorf("environment should win over the file: https.listen = %q", cfg.HTTPS.Listen)
	}
	if cfg.Hostname != "file.example" || cfg.Log.Level != "debug" {
		t.Errorf("file values lost: %+v", cfg)
	}
	if cfg.SMTP.RelayListen != "" {
		t.Errorf("an empty environment value should turn the relay listener off, got %q", cfg.SMTP.RelayListen)
	}
	if got := strings.Join(cfg.Admin.AllowedNetworks, "|"); got != "10.1.0.0/16|192.0.2.0/24" {
		t.Errorf("allowed networks from the environment = %q", got)
	}
}

func TestMissingExplicitFile(t *testing.T) {
	t.Parallel()
	_, err := Load(Source{File: filepath.Join(t.TempDir(), "nope.toml"), Explicit: true, Environ: []string{}})
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("want a does-not-exist error, got %v", err)
	}
}

func TestMalformedTOML(t *testing.T) {
	t.Parallel()
	_, err := load(t, "[https\nlisten = 1")
	if err == nil || !strings.Contains(err.Error(), "sealpost.toml") {
		t.Fatalf("want an error naming the file, got %v", err)
	}
}

// TestValidationRules has one row per rule; each row must produce an error
// naming its key, and only that key.
func TestValidationRules(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile := writePair(t, dir)
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		toml    string
		env     []string
		wantKey string // empty: must be valid
		wantMsg string
	}{
		{"empty data dir", `data_dir = ""`, nil, "data_dir", "required"},
		{"empty key file", `key_file = ""`, nil, "key_file", "required"},
		{"key inside data", "data_dir = \"/var/x\"\nkey_file = \"/var/x/k\"", nil, "key_file", "inside data_dir"},
		{"hostname with port", `hostname = "a.example:443"`, nil, "hostname", "bare host name"},
		{"hostname with scheme", `hostname = "https://a.example"`, nil, "hostname", "bare host name"},
		{"hostname bad label", `hostname = "a_b.example"`, nil, "hostname", "not a valid host name"},
		{"hostname ok", `hostname = "mail.example.org"`, nil, "", ""},
		{"log level", "[log]\nlevel = \"loud\"", nil, "log.level", "not one of"},
		{"https required", "[https]\nlisten = \"\"", nil, "https.listen", "required"},
		{"listen not host:port", "[https]\nlisten = \"8443\"", nil, "https.listen", "not host:port"},
		{"listen port range", "[http]\nlisten = \":99999\"", nil, "http.listen", "0 to 65535"},
		{"listen bad host", "[metrics]\nlisten = \"no_such host:9090\"", nil, "metrics.listen", "neither an IP"},
		{"listen collision", "[smtp]\nrelay_listen = \":8443\"", nil, "smtp.relay_listen", "already used by https.listen"},
		{"listen off", "[smtp]\nsubmission_listen = \"\"", nil, "", ""},
		{"listen port zero twice", "[https]\nlisten = \"127.0.0.1:0\"\n[http]\nlisten = \"127.0.0.1:0\"", nil, "", ""},
		{"tls mode", "[tls]\nmode = \"magic\"", nil, "tls.mode", "not one of"},
		{"files needs cert", "[tls]\nmode = \"files\"\nkey_file = \"" + keyFile + "\"", nil, "tls.cert_file", "required when tls.mode is files"},
		{"files needs key", "[tls]\nmode = \"files\"\ncert_file = \"" + certFile + "\"", nil, "tls.key_file", "required when tls.mode is files"},
		{"files missing", "[tls]\nmode = \"files\"\ncert_file = \"/nonexistent/c.pem\"\nkey_file = \"" + keyFile + "\"", nil, "tls.cert_file", "does not exist"},
		{"files ok", "[tls]\nmode = \"files\"\ncert_file = \"" + certFile + "\"\nkey_file = \"" + keyFile + "\"", nil, "", ""},
		{"acme needs hostname", "[tls]\nmode = \"acme\"", nil, "hostname", "required when tls.mode is acme"},
		{"acme directory url", "hostname = \"a.example\"\n[tls]\nmode = \"acme\"\n[tls.acme]\ndirectory_url = \"http://ca.local/dir\"", nil, "tls.acme.directory_url", "not an https:// URL"},
		{"acme email", "[tls.acme]\nemail = \"not-an-address\"", nil, "tls.acme.email", "not an email address"},
		{"acme ca file missing", "[tls.acme]\nca_file = \"/nonexistent/ca.pem\"", nil, "tls.acme.ca_file", "does not exist"},
		{"acme ca file not PEM", "[tls.acme]\nca_file = \"" + notPEM + "\"", nil, "tls.acme.ca_file", "no PEM certificate"},
		{"acme ok", "hostname = \"a.example\"\n[tls]\nmode = \"acme\"\n[tls.acme]\ndirectory_url = \"https://ca.local/dir\"\nemail = \"it@a.example\"\nca_file = \"" + certFile + "\"", nil, "", ""},
		{"admin network", "[admin]\nallowed_networks = [\"10.0.0.0/8\", \"10.0.0.300/8\"]", nil, "admin.allowed_networks", "not a network in CIDR form"},
		{"admin bare IP hint", "[admin]\nallowed_networks = [\"192.0.2.1\"]", nil, "admin.allowed_networks", "192.0.2.1/32"},
		{"admin not a list", "[admin]\nallowed_networks = 5", nil, "admin.allowed_networks", "list of strings"},
		{"wrong type", "[https]\nlisten = 8443", nil, "https.listen", "must be a string"},
		{"unknown key", "[https]\nlisen = \":1\"", nil, "https.lisen", "unknown key (did you mean"},
		{"unknown env", "", []string{"SEALPOST_HTPS__LISTEN=:1"}, "htps.listen (SEALPOST_HTPS__LISTEN)", "unknown key"},
		{"env value checked", "", []string{"SEALPOST_LOG__LEVEL=chatty"}, "log.level", "not one of"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := load(t, tt.toml, tt.env...)
			if tt.wantKey == "" {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			errs, ok := err.(Errors)
			if !ok || len(errs) != 1 {
				t.Fatalf("want exactly one error for %s, got %v", tt.wantKey, err)
			}
			if msg := errs[0].Error(); !strings.HasPrefix(msg, tt.wantKey) || !strings.Contains(msg, tt.wantMsg) {
				t.Errorf("error %q should start with %q and contain %q", msg, tt.wantKey, tt.wantMsg)
			}
		})
	}
}

func TestEveryProblemReportedAtOnce(t *testing.T) {
	t.Parallel()
	_, err := load(t, "[log]\nlevel = \"x\"\n[tls]\nmode = \"y\"\n[http]\nlisten = \"z\"\n")
	errs, ok := err.(Errors)
	if !ok || len(errs) != 3 {
		t.Fatalf("want three errors, got %v", err)
	}
	for i, key := range []string{"log.level", "http.listen", "tls.mode"} {
		if !strings.HasPrefix(errs[i].Error(), key+" (") || !strings.Contains(errs[i].Error(), "sealpost.toml): ") {
			t.Errorf("error %d = %q, want it to name %s and the file", i, errs[i], key)
		}
	}
}

// TestSampleGolden keeps the sample configuration in testdata and the
// packaged configuration equal to what Describe prints.
func TestSampleGolden(t *testing.T) {
	var buf bytes.Buffer
	if err := Describe(&buf, Defaults()); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "sample.toml")
	if *update {
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("Describe(Defaults()) differs from %s; run go test ./appliance/config -update\n%s", golden, buf.String())
	}

	// The sample parses back to the defaults.
	cfg, err := load(t, buf.String())
	if err != nil {
		t.Fatalf("the sample does not load: %v", err)
	}
	var again bytes.Buffer
	if err := Describe(&again, cfg); err != nil {
		t.Fatal(err)
	}
	if again.String() != buf.String() {
		t.Error("loading the sample and describing it again changes it")
	}
}

func TestPackagedConfigIsDescribeOutput(t *testing.T) {
	path := filepath.Join("..", "..", "packaging", "sealpost.toml")
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(Source{File: path, Explicit: true, Environ: []string{}})
	if err != nil {
		// The packaged paths need not exist here; only validation of files may fail.
		t.Fatalf("packaged configuration does not validate: %v", err)
	}
	var got bytes.Buffer
	if err := Describe(&got, cfg); err != nil {
		t.Fatal(err)
	}
	if got.String() != string(want) {
		t.Errorf("%s is not the output of `sealpost config check --config %s --describe`; regenerate it with make packaging/sealpost.toml", path, path)
	}
	if cfg.HTTPS.Listen != ":443" || cfg.HTTP.Listen != ":80" || cfg.SMTP.RelayListen != ":25" ||
		cfg.SMTP.SubmissionListen != ":587" || cfg.DataDir != "/var/lib/sealpost" || cfg.KeyFile != "/etc/sealpost/sealpost.key" {
		t.Errorf("packaged configuration should use the system ports and paths (DESIGN §6): %+v", cfg)
	}
}

func FuzzLoad(f *testing.F) {
	f.Add("[https]\nlisten = \":8443\"\n")
	f.Add("[admin]\nallowed_networks = [\"10.0.0.0/8\"]\n[tls.acme]\nemail = \"a@b.c\"")
	f.Add("hostname = 5\n[[x]]\n")
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, toml string) {
		path := filepath.Join(dir, "fuzz.toml")
		if err := os.WriteFile(path, []byte(toml), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := Load(Source{File: path, Explicit: true, Environ: []string{}})
		if err == nil {
			if errs := cfg.Validate(); len(errs) > 0 {
				t.Fatalf("Load accepted a configuration that Validate rejects: %v", errs)
			}
		}
	})
}

func writePair(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}
