package e2e

import (
	"fmt"
	"net/smtp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sealpost/sealpost/mailer/smtptest"
)

// submit sends one message to the relay port and reports whether it got
// its 250.
func submit(addr, from, to, subject string) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("mx.clinic.example.test"); err != nil {
		return err
	}
	if err := c.Mail(from); err != nil {
		return err
	}
	if err := c.Rcpt(to); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "From: %s\r\nTo: %s\r\nSubject: [secure] %s\r\n\r\n%s\r\n", from, to, subject, strings.Repeat("Results follow, line by line.\r\n", 320))
	return w.Close() // the reply to the end of DATA: nil means 250
}

// TestGatewaySIGKILL kills the appliance with SIGKILL while 8 mail servers
// send secure messages to it: after a restart, every message that got its
// 250 is there (its notification, committed in the same transaction, goes
// out), and the store opens cleanly.
func TestGatewaySIGKILL(t *testing.T) {
	t.Parallel()
	relay := smtptest.Start(t, smtptest.Options{})
	l := setUp(t, relay, "inbound.relay_networks", "127.0.0.0/8")
	in := start(t, l)
	const sender = "ada@clinic.example.test" // the first administrator is also a professional user
	var mu sync.Mutex
	accepted := map[string]bool{}
	attempted := map[string]bool{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				to := fmt.Sprintf("r%d-%d@outside.example.test", g, i)
				mu.Lock()
				attempted[to] = true
				mu.Unlock()
				if err := submit(in.relay, sender, to, fmt.Sprintf("Load %d-%d", g, i)); err != nil {
					if i == 0 && g == 0 {
						t.Logf("the first message: %v", err)
					}
					if strings.Contains(err.Error(), "connection refused") {
						return
					}
					continue
				}
				mu.Lock()
				accepted[to] = true
				mu.Unlock()
			}
		})
	}
	time.Sleep(4 * time.Second)
	in.stop(syscall.SIGKILL)
	close(stop)
	wg.Wait()
	if len(accepted) == 0 {
		t.Fatal("no message got a 250 before the kill")
	}
	t.Logf("%d messages got 250 before SIGKILL (%d attempted)", len(accepted), len(attempted))

	before := len(relay.Messages())
	start(t, l) // the store must open; the queue delivers what was committed
	defer func() { t.Logf("%d notifications went out after the restart", len(relay.Messages())-before) }()
	deadline := time.Now().Add(90 * time.Second)
	for {
		got := map[string]bool{}
		for _, m := range relay.Messages() {
			got[m.To[0]] = true
		}
		var missing []string
		for to := range accepted {
			if !got[to] {
				missing = append(missing, to)
			}
		}
		for to := range got {
			if strings.HasPrefix(to, "r") && !attempted[to] {
				t.Errorf("a notification to %s, which nobody sent to", to)
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d messages that got 250 never reached their recipient, e.g. %v", len(missing), len(accepted), missing[:min(5, len(missing))])
		}
		time.Sleep(500 * time.Millisecond)
	}
}
