package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/sealpost/sealpost/mailer/smtptest"
)

// TestIntakeVersusPostfix measures secure-message intake against Debian's
// Postfix in the same run: smtp-source sends the same 10 KiB messages with
// one recipient over 16 connections to Postfix (which queues them: its
// next hop does not answer) and to the gateway's relay port (every message
// tagged secure, fsynced before its 250, its recipient invited and
// notified). `make bench` runs it (SEALPOST_COMPARE_POSTFIX=1) and fails it
// when the gateway is slower; `make test` says it is skipped.
func TestIntakeVersusPostfix(t *testing.T) {
	if os.Getenv("SEALPOST_COMPARE_POSTFIX") == "" {
		t.Skip("SKIP: the Postfix comparison is a benchmark; make bench runs it (SEALPOST_COMPARE_POSTFIX=1)")
	}
	n := 2000
	if v, err := strconv.Atoi(os.Getenv("SEALPOST_COMPARE_MESSAGES")); err == nil && v > 0 {
		n = v
	}
	source := func(addr string) float64 {
		t.Helper()
		startAt := time.Now()
		cmd := exec.Command("/usr/sbin/smtp-source", "-s", "16", "-m", strconv.Itoa(n), "-l", "10240", "-N",
			"-f", "ada@clinic.example.test", "-t", "patient@outside.example.test", "-S", "[secure] Results", addr)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("smtp-source %s: %v\n%s", addr, err, out)
		}
		return float64(n) / time.Since(startAt).Seconds()
	}

	pf := startPostfix(t, "127.0.0.1:9") // nothing answers there: Postfix keeps the mail queued
	postfixRate := source(fmt.Sprintf("127.0.0.1:%d", pf.port))

	relay := smtptest.Start(t, smtptest.Options{})
	l := newLayout(t)
	if _, errOut, code := runCLI(t, l.env(), "setup", "--config", "/dev/null", "--answers", writeAnswers(t, relay)); code != 0 {
		t.Fatalf("setup: %s", errOut)
	}
	for _, kv := range [][2]string{{"inbound.relay_networks", "127.0.0.0/8"}, {"inbound.max_connections_per_ip", "50"}} {
		if _, errOut, code := runCLI(t, l.env(), "settings", "set", "--config", "/dev/null", kv[0], kv[1]); code != 0 {
			t.Fatalf("settings set %s: %s", kv[0], errOut)
		}
	}
	in := start(t, l)
	sealpostRate := source(in.relay)
	t.Logf("%d messages of 10 KiB over 16 connections: Postfix %.0f msgs/s into its queue, Sealpost %.0f msgs/s as secure messages (each fsynced, its recipient invited and notified)",
		n, postfixRate, sealpostRate)
	if sealpostRate < postfixRate {
		t.Errorf("the gateway took %.0f msgs/s, Postfix %.0f", sealpostRate, postfixRate)
	}
}
