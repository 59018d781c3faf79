package e2e

import (
	"bytes"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-smtp"

	"github.com/sealpost/sealpost/mailer/smtptest"
)

// TestMailTest is the operator's check of outbound mail: configure the relay
// with `sealpost settings set`, then `sealpost mail test` delivers a branded
// test message that a real SMTP server on loopback receives over TLS.
func TestMailTest(t *testing.T) {
	t.Parallel()
	relay := smtptest.Start(t, smtptest.Options{User: "sealpost", Pass: "relay-pw"})
	caFile := filepath.Join(t.TempDir(), "relay-ca.pem")
	if err := os.WriteFile(caFile, relayCertPEM(t, relay), 0o644); err != nil {
		t.Fatal(err)
	}

	l := newLayout(t)
	in := start(t, l)
	cli := func(args ...string) (string, string, int) {
		return runCLI(t, l.env(), append([]string{args[0], args[1], "--config", "/dev/null"}, args[2:]...)...)
	}

	_, errOut, code := cli("mail", "test", "--to", "someone@example.test")
	if code != 2 || !strings.Contains(errOut, "outbound mail is not configured: set mail.from_address and mail.relay_host") {
		t.Errorf("unconfigured: exit %d, %q", code, errOut)
	}

	for _, kv := range [][2]string{
		{"organization.name", "Example Clinic"}, {"organization.postal_address", "1 Harbour Street, Springfield"},
		{"mail.relay_host", relay.Host}, {"mail.relay_port", fmt.Sprint(relay.Port)},
		{"mail.relay_ca_file", caFile}, {"mail.relay_username", "sealpost"}, {"mail.relay_password", "relay-pw"},
		{"mail.from_address", "no-reply@clinic.example.test"}, {"mail.from_name", "Example Clinic"},
	} {
		if _, errOut, code := cli("settings", "set", kv[0], kv[1]); code != 0 {
			t.Fatalf("settings set %s: %d %s", kv[0], code, errOut)
		}
	}
	out, errOut, code := cli("mail", "test", "--to", "someone@example.test")
	if code != 0 || !strings.Contains(out, "The peer answered: 250") {
		t.Fatalf("mail test: exit %d\nstdout %s\nstderr %s", code, out, errOut)
	}
	got := relay.Wait(1, 10*time.Second)
	if len(got) != 1 {
		t.Fatalf("the relay received %d messages", len(got))
	}
	m := got[0]
	body := string(m.Data)
	if !m.TLS || m.AuthUser != "sealpost" || m.To[0] != "someone@example.test" || !strings.HasPrefix(m.From, "bounces+") {
		t.Errorf("envelope %+v", m)
	}
	for _, want := range []string{"Subject: Test message from Example Clinic", "Auto-Submitted: auto-generated",
		"From: \"Example Clinic\" <no-reply@clinic.example.test>", "1 Harbour Street", "text/html"} {
		if !strings.Contains(body, want) {
			t.Errorf("the test message lacks %q", want)
		}
	}

	// DKIM: publish what `mail dkim` prints, turn signing on, and the next
	// test message carries two signatures that verify against those records.
	out, errOut, code = cli("mail", "dkim")
	if code != 0 {
		t.Fatalf("mail dkim: %d %s", code, errOut)
	}
	dns := parseZone(out)
	if len(dns) != 2 {
		t.Fatalf("mail dkim printed %d records:\n%s", len(dns), out)
	}
	if _, errOut, code := cli("settings", "set", "mail.dkim_sign", "true"); code != 0 {
		t.Fatal(errOut)
	}
	if _, errOut, code := cli("mail", "test", "--to", "someone@example.test"); code != 0 {
		t.Fatal(errOut)
	}
	signed := relay.Wait(2, 10*time.Second)[1].Data
	verifications, err := dkim.VerifyWithOptions(bytes.NewReader(signed), &dkim.VerifyOptions{
		LookupTXT: func(domain string) ([]string, error) {
			if v, ok := dns[domain]; ok {
				return []string{v}, nil
			}
			return nil, fmt.Errorf("no record for %s", domain)
		}})
	if err != nil || len(verifications) != 2 {
		t.Fatalf("DKIM: %v, %d signatures", err, len(verifications))
	}
	for _, v := range verifications {
		if v.Err != nil || v.Domain != "clinic.example.test" {
			t.Errorf("DKIM signature of %s: %v", v.Domain, v.Err)
		}
	}

	// A relay that refuses: exit 1 with its reply.
	relay.Reply(func(stage string) error {
		if stage == "rcpt" {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
		}
		return nil
	})
	_, errOut, code = cli("mail", "test", "--to", "nobody@example.test")
	if code != 1 || !strings.Contains(errOut, "550 5.1.1 no such user") {
		t.Errorf("refused: exit %d, %q", code, errOut)
	}
	if strings.Contains(in.Stdout(), "relay-pw") {
		t.Error("the relay password reached the log")
	}
	in.stop(syscall.SIGTERM)
}

func relayCertPEM(t *testing.T, s *smtptest.Server) []byte {
	t.Helper()
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.CertDER})
}

// TestQueueCLI sends test messages through the server's outbound queue and
// manages a failed one with `sealpost queue list|retry|drop`.
func TestQueueCLI(t *testing.T) {
	t.Parallel()
	relay := smtptest.Start(t, smtptest.Options{})
	caFile := filepath.Join(t.TempDir(), "relay-ca.pem")
	if err := os.WriteFile(caFile, relayCertPEM(t, relay), 0o644); err != nil {
		t.Fatal(err)
	}
	l := newLayout(t)
	in := start(t, l)
	cli := func(args ...string) (string, string, int) {
		return runCLI(t, l.env(), append([]string{args[0], args[1], "--config", "/dev/null"}, args[2:]...)...)
	}
	for _, kv := range [][2]string{{"mail.relay_host", relay.Host}, {"mail.relay_port", fmt.Sprint(relay.Port)},
		{"mail.relay_ca_file", caFile}, {"mail.from_address", "no-reply@clinic.example.test"}} {
		if _, errOut, code := cli("settings", "set", kv[0], kv[1]); code != 0 {
			t.Fatalf("settings set %s: %s", kv[0], errOut)
		}
	}
	if out, _, code := cli("queue", "list"); code != 0 || !strings.Contains(out, "empty") {
		t.Errorf("empty queue list: %d %q", code, out)
	}

	out, errOut, code := cli("mail", "test", "--to", "a@example.test", "--queue")
	if code != 0 || !strings.Contains(out, "queued") {
		t.Fatalf("mail test --queue: %d %q %q", code, out, errOut)
	}
	if got := relay.Wait(1, 15*time.Second); len(got) != 1 {
		t.Fatalf("the queue delivered %d messages", len(got))
	}

	// A refused notification shows as failed, can be retried, then dropped.
	relay.Reply(func(stage string) error {
		if stage == "rcpt" {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
		}
		return nil
	})
	out, _, _ = cli("mail", "test", "--to", "b@refused.example.test", "--queue")
	id := strings.Fields(out)[2]
	deadline := time.Now().Add(15 * time.Second)
	for {
		out, _, _ = cli("queue", "list")
		if strings.Contains(out, "failed") || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, want := range []string{id, "failed", "refused.example.test", "550 5.1.1 no such user"} {
		if !strings.Contains(out, want) {
			t.Errorf("queue list lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "b@refused") {
		t.Errorf("queue list shows the full address:\n%s", out)
	}
	relay.Reply(nil)
	if out, errOut, code := cli("queue", "retry", id); code != 0 {
		t.Fatalf("queue retry: %d %q %q", code, out, errOut)
	}
	if got := relay.Wait(2, 15*time.Second); len(got) != 2 {
		t.Fatalf("after retry the relay has %d messages", len(got))
	}
	if _, errOut, code := cli("queue", "drop", "nosuchid"); code != 2 || !strings.Contains(errOut, "no notification nosuchid") {
		t.Errorf("drop of an unknown id: %d %q", code, errOut)
	}
	in.stop(syscall.SIGTERM)
}

// parseZone reads `name. IN TXT "a" "b"` lines into name → joined value.
func parseZone(out string) map[string]string {
	records := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		name, rest, ok := strings.Cut(line, ". IN TXT ")
		if !ok {
			continue
		}
		var value strings.Builder
		for _, part := range strings.Split(rest, `" "`) {
			value.WriteString(strings.Trim(part, `"`))
		}
		records[name] = value.String()
	}
	return records
}
