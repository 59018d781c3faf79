package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func cleanEnv() []string { return []string{"PATH=" + os.Getenv("PATH")} }

// TestConfigCheck is the operator's `sealpost config check`: every invalid
// key named, exit 2; a valid file passes; --describe prints the sample.
func TestConfigCheck(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(bad, []byte(`
[https]
listen = "8443"
[log]
level = "verbose"
[tls]
mode = "letsencrypt"
`), 0o600); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := runCLI(t, cleanEnv(), "config", "check", "--config", bad)
	if code != 2 {
		t.Errorf("exit code = %d, want 2", code)
	}
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if len(lines) != 3 {
		t.Fatalf("want three error lines, got %d:\n%s", len(lines), stderr)
	}
	for _, key := range []string{"log.level", "https.listen", "tls.mode"} {
		if !strings.Contains(stderr, "config: "+key) {
			t.Errorf("no line names %s:\n%s", key, stderr)
		}
	}
	if stdout != "" {
		t.Errorf("stdout should be empty on failure, got %q", stdout)
	}

	good := filepath.Join(dir, "good.toml")
	if err := os.WriteFile(good, []byte("hostname = \"mail.example.org\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	stdout, _, code = runCLI(t, cleanEnv(), "config", "check", "--config", good)
	if code != 0 || !strings.Contains(stdout, "valid") {
		t.Errorf("valid file: code %d, stdout %q", code, stdout)
	}

	// The environment is checked too, and named.
	_, stderr, code = runCLI(t, append(cleanEnv(), "SEALPOST_TLS__MODE=magic"), "config", "check", "--config", good)
	if code != 2 || !strings.Contains(stderr, "tls.mode") {
		t.Errorf("bad environment: code %d, stderr %q", code, stderr)
	}

	sample, err := os.ReadFile(filepath.Join("..", "appliance", "config", "testdata", "sample.toml"))
	if err != nil {
		t.Fatal(err)
	}
	stdout, _, code = runCLI(t, cleanEnv(), "config", "check", "--config", "/dev/null", "--describe")
	if code != 0 || stdout != string(sample) {
		t.Errorf("--describe (code %d) differs from the sample configuration", code)
	}
}

func TestCLIUsage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args     []string
		code     int
		stdout   string
		stderr   string
		noStdout bool
	}{
		{args: nil, code: 2, stderr: "Usage: sealpost COMMAND", noStdout: true},
		{args: []string{"frobnicate"}, code: 2, stderr: `unknown command "frobnicate"`, noStdout: true},
		{args: []string{"help"}, code: 0, stdout: "config check"},
		{args: []string{"help", "serve"}, code: 0, stdout: "Usage: sealpost serve [--config FILE]"},
		{args: []string{"help", "config", "check"}, code: 0, stdout: "--describe"},
		{args: []string{"help", "nope"}, code: 2, stderr: "unknown command"},
		{args: []string{"version"}, code: 0, stdout: "sealpost e2e-test"},
		{args: []string{"serve", "--bogus"}, code: 2, stderr: "flag provided but not defined: -bogus"},
		{args: []string{"config", "check", "extra"}, code: 2, stderr: `unexpected argument "extra"`},
		{args: []string{"serve", "--config", "/nonexistent/sealpost.toml"}, code: 2, stderr: "does not exist"},
		// No server and no data where the configuration points: an error,
		// not a new, empty appliance made on the spot.
		{args: []string{"queue", "list"}, code: 1, stderr: "no Sealpost data in ./data and no server running there", noStdout: true},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, "_"), func(t *testing.T) {
			t.Parallel()
			stdout, stderr, code := runCLI(t, cleanEnv(), tt.args...)
			if code != tt.code {
				t.Errorf("exit code = %d, want %d (stderr %q)", code, tt.code, stderr)
			}
			if !strings.Contains(stdout, tt.stdout) || !strings.Contains(stderr, tt.stderr) {
				t.Errorf("stdout %q should contain %q; stderr %q should contain %q", stdout, tt.stdout, stderr, tt.stderr)
			}
			if tt.noStdout && stdout != "" {
				t.Errorf("stdout should be empty, got %q", stdout)
			}
		})
	}
}

// TestREADMEHelp keeps the command list in the README equal to the binary's.
func TestREADMEHelp(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	help, _, _ := runCLI(t, cleanEnv(), "help")
	const begin, end = "<!-- sealpost help -->\n```\n", "```\n<!-- end sealpost help -->"
	s := string(readme)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i < 0 || j < i {
		t.Fatalf("README.md lacks the %q … %q block", begin, end)
	}
	if got := s[i+len(begin) : j]; got != help {
		t.Errorf("README.md's command list differs from `sealpost help`; paste this:\n%s", help)
	}
}
