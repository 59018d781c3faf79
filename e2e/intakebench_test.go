package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
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
	l := setUp(t, relay, "inbound.relay_networks", "127.0.0.0/8", "inbound.max_connections_per_ip", "50")
	var sealpostRate float64
	if dir := os.Getenv("SEALPOST_COMPARE_PROFILE"); dir != "" {
		// A profiling build: CPU, mutex and block profiles of the run go to dir.
		in := startBinary(t, taggedBinary(t, "sealpost_pprof"), l, "SEALPOSTTEST_PPROF=127.0.0.1:6061")
		done := make(chan struct{})
		go func() {
			defer close(done)
			saveProfile(t, "http://127.0.0.1:6061/debug/pprof/profile?seconds=8", filepath.Join(dir, "cpu.pprof"))
		}()
		sealpostRate = source(in.relay)
		<-done
		for _, p := range []string{"mutex", "block", "heap"} {
			saveProfile(t, "http://127.0.0.1:6061/debug/pprof/"+p, filepath.Join(dir, p+".pprof"))
		}
	} else {
		sealpostRate = source(start(t, l).relay)
	}
	t.Logf("%d messages of 10 KiB over 16 connections: Postfix %.0f msgs/s into its queue, Sealpost %.0f msgs/s as secure messages (each fsynced, its recipient invited and notified)",
		n, postfixRate, sealpostRate)
	if sealpostRate < postfixRate {
		t.Errorf("the gateway took %.0f msgs/s, Postfix %.0f", sealpostRate, postfixRate)
	}
}

func saveProfile(t *testing.T, url, path string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Errorf("profile %s: %v", url, err)
		return
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		t.Error(err)
		return
	}
	defer f.Close()
	if _, err := io.Copy(f, resp.Body); err != nil {
		t.Error(err)
	}
}
