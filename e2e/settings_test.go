package e2e

import (
	"strings"
	"syscall"
	"testing"
)

// TestSettingsCLI changes settings through the running server's control
// socket and, with the server stopped, through the store directly.
func TestSettingsCLI(t *testing.T) {
	t.Parallel()
	l := newLayout(t)
	in := start(t, l)
	env := l.env()
	cli := func(args ...string) (string, string, int) {
		return runCLI(t, env, append([]string{args[0], args[1], "--config", "/dev/null"}, args[2:]...)...)
	}

	// Server running: the CLI goes through the control socket.
	if out, errOut, code := cli("settings", "set", "mail.relay_host", "smtp.example.test"); code != 0 || !strings.Contains(out, "changed") {
		t.Fatalf("settings set via the server: %d %q %q", code, out, errOut)
	}
	if out, _, code := cli("settings", "get", "mail.relay_host"); code != 0 || out != "smtp.example.test\n" {
		t.Errorf("settings get = %d %q", code, out)
	}
	_, errOut, code := cli("settings", "set", "mail.relay_port", "seventy")
	if code != 2 || !strings.Contains(errOut, "mail.relay_port") {
		t.Errorf("invalid value: exit %d, stderr %q", code, errOut)
	}
	if _, errOut, code := cli("settings", "set", "mail.relay_password", "s3cret-pw"); code != 0 {
		t.Fatalf("set password: %d %s", code, errOut)
	}
	out, _, _ := cli("settings", "get")
	if !strings.Contains(out, "mail.relay_password = (set)") || strings.Contains(out, "s3cret-pw") {
		t.Errorf("settings get shows the secret or lacks it:\n%s", out)
	}
	if strings.Contains(in.Stdout(), "s3cret-pw") || strings.Contains(in.Stdout(), "smtp.example.test") {
		t.Error("the server logged a setting's value")
	}
	if code := in.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit code %d", code)
	}

	// Server stopped: the CLI opens the store itself and sees the same data.
	if out, errOut, code := cli("settings", "get", "mail.relay_host"); code != 0 || out != "smtp.example.test\n" {
		t.Errorf("offline settings get = %d %q %q", code, out, errOut)
	}
	if _, errOut, code := cli("settings", "set", "organization.name", "Example Clinic"); code != 0 {
		t.Errorf("offline settings set = %d %q", code, errOut)
	}
	if _, errOut, code := cli("settings", "get", "no.such_key"); code != 2 || !strings.Contains(errOut, "unknown setting") {
		t.Errorf("unknown key: %d %q", code, errOut)
	}
	if _, errOut, code := cli("settings", "set", "organization.name"); code != 2 || !strings.Contains(errOut, "usage") {
		t.Errorf("missing value: %d %q", code, errOut)
	}

	// And the restarted server has it.
	again := start(t, l)
	if out, _, _ := cli("settings", "get", "organization.name"); out != "Example Clinic\n" {
		t.Errorf("after restart: %q", out)
	}
	again.stop(syscall.SIGTERM)
}
