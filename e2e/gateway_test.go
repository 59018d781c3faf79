package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sealpost/sealpost/mailer/smtptest"
)

// gatewayAppliance is a set-up appliance whose relay port trusts
// loopback, with the administrator signed in and Pat, a professional user,
// registered.
func gatewayAppliance(t *testing.T, f *flow) (a appliance, admin, pat context.Context, patBase string) {
	t.Helper()
	a = newAppliance(t)
	a.setLevel(t, "1")
	setSettings(t, a.l, "inbound.relay_networks", "127.0.0.0/8")
	if a.in.relay == "" {
		t.Fatal("the appliance logged no smtp-relay listener")
	}
	admin = browser(t)
	a.signInAdmin(t, f, admin)
	a.invite(t, f, admin, "invite-pat", patEmail, "Pat Professional", "professional", "")
	pat = browser(t)
	link := mailLink(t, a.relay, patEmail, "register", 1)
	f.do(pat, "Pat registers",
		chromedp.Navigate(link),
		chromedp.WaitVisible(chromedp.ID("register")),
		chromedp.SetValue(chromedp.ID("password"), patPassword),
		chromedp.SetValue(chromedp.ID("confirm"), patPassword),
		chromedp.Click(chromedp.ID("register")),
		chromedp.WaitVisible(chromedp.CSS(".mailnav")),
	)
	return a, admin, pat, origin(t, link)
}

// sendSMTP speaks SMTP to addr as a mail server would and returns the
// server's reply to the end of DATA (or the first refusal).
func sendSMTP(t *testing.T, addr, from string, to []string, msg string) error {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("mx.clinic.example.test"); err != nil {
		return err
	}
	if err := c.Mail(from); err != nil {
		return err
	}
	for _, r := range to {
		if err := c.Rcpt(r); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte(strings.ReplaceAll(msg, "\n", "\r\n"))); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// TestGatewayThroughPostfix: Debian's Postfix, as the organization's mail
// server, relays a message with the secure tag in its subject to the
// gateway; it becomes a secure message, the recipient is notified (no
// content in the notice), registers and reads it; a message with a valid
// card number is refused with the policy's reason and the sender is told
// why; mail without the tag passes through unchanged.
func TestGatewayThroughPostfix(t *testing.T) {
	t.Parallel()
	f := newFlow(t, 240)
	a, admin, _, _ := gatewayAppliance(t, f)
	pf := startPostfix(t, a.in.relay)

	// The administrator blocks payment card numbers and tries the rule.
	f.do(admin, "the administrator adds a block rule for card numbers",
		chromedp.Navigate(a.base+"/admin/policy"),
		chromedp.WaitVisible(chromedp.ID("saverule")),
		chromedp.SetValue(chromedp.ID("name"), "No card numbers"),
		chromedp.SetValue(chromedp.ID("kind"), "lexicon"),
		chromedp.SetValue(chromedp.ID("lexicon"), "card"),
		chromedp.Click(chromedp.CSS(`input[name="rule_action"][value="block"]`)),
		chromedp.Click(chromedp.ID("saverule")),
		chromedp.WaitVisible(chromedp.CSS(".flash")),
	)
	f.shot(admin, "policy-rules")
	f.do(admin, "the administrator tests text with a card number",
		chromedp.Navigate(a.base+"/admin/policy/test"),
		chromedp.WaitVisible(chromedp.ID("sample")),
		chromedp.SetValue(chromedp.ID("sample"), "Please charge 4111 1111 1111 1111 for the visit; invoice to DE89 3704 0044 0532 0130 00."),
		chromedp.Click(chromedp.ID("test")),
		chromedp.WaitVisible(chromedp.ID("verdict")),
	)
	if v := pageText(t, admin, "#verdict"); !strings.Contains(v, "Blocked") || !strings.Contains(v, "payment card") {
		t.Errorf("the tester's verdict: %q", v)
	}
	if marked, _ := chromedp.Run(admin, chromedp.Evaluate[int](`document.querySelectorAll("#marked mark").length`)); marked < 2 {
		t.Errorf("the tester marks %d places; the card number and the IBAN should be", marked)
	}
	f.shot(admin, "policy-tester")
	sent := len(a.relay.Messages())

	// Pat's mail program hands the message to Postfix; Postfix relays it.
	msg := fmt.Sprintf("From: Pat Professional <%s>\nTo: Gina <%s>\nSubject: [secure] %s\nMessage-ID: <gw1@clinic.example.test>\n\n%s\n",
		patEmail, guestEmail, secretSubject, secretText)
	sendmail := exec.Command("/usr/sbin/sendmail", "-C", filepath.Join(pf.dir, "conf"), "-f", patEmail, "-t")
	sendmail.Stdin = strings.NewReader(msg)
	if out, err := sendmail.CombinedOutput(); err != nil {
		t.Logf("sendmail: %v %s; submitting over SMTP instead", err, out)
		if err := sendSMTP(t, fmt.Sprintf("127.0.0.1:%d", pf.port), patEmail, []string{guestEmail}, msg); err != nil {
			t.Fatalf("Postfix refused the message: %v", err)
		}
	}
	notice := noticeTo(t, a.relay, guestEmail, "secure message", sent+1)
	for _, secret := range []string{secretSubject, secretText} {
		if strings.Contains(notice, secret) {
			t.Errorf("the notification carries %q", secret)
		}
	}
	link := messageLinkPattern.FindString(notice)
	if link == "" {
		t.Fatalf("no link in the notification:\n%s", notice)
	}
	guest := browser(t)
	f.do(guest, "the guest registers from the gateway's notification",
		chromedp.Navigate(link),
		chromedp.WaitVisible(chromedp.ID("register")),
		chromedp.SetValue(chromedp.ID("name"), "Gina Guest"),
		chromedp.SetValue(chromedp.ID("password"), guestPassword),
		chromedp.SetValue(chromedp.ID("confirm"), guestPassword),
		chromedp.Click(chromedp.ID("register")),
		chromedp.WaitVisible(chromedp.ID("message")),
	)
	if subj := pageText(t, guest, "#subject"); subj != secretSubject {
		t.Errorf("the secure message's subject is %q (the tag must be gone)", subj)
	}
	if body := frameText(t, f, guest); !strings.Contains(body, secretText) {
		t.Errorf("the secure message's body is %q", body)
	}
	f.shot(guest, "gateway-message")

	// A valid card number is refused, with the category in the reply.
	card := fmt.Sprintf("From: %s\nTo: %s\nSubject: [secure] Payment\n\nMy card is 4111 1111 1111 1111, expiry 12/29.\n", patEmail, guestEmail)
	err := sendSMTP(t, a.in.relay, patEmail, []string{guestEmail}, card)
	if err == nil || !strings.Contains(err.Error(), "550") || !strings.Contains(err.Error(), "content policy") {
		t.Errorf("a message with a card number: %v", err)
	}
	block := noticeTo(t, a.relay, patEmail, "was not sent", 1)
	if !strings.Contains(block, "payment card") || strings.Contains(block, "4111") {
		t.Errorf("the sender's notice says:\n%s", block)
	}

	// No tag, no rule: passed on unchanged to the outbound relay.
	before := len(a.relay.Messages())
	plain := fmt.Sprintf("From: %s\nTo: colleague@partner.example.test\nSubject: Lunch on Friday\nMessage-ID: <gw2@clinic.example.test>\n\nShall we meet at noon?\n", patEmail)
	if err := sendSMTP(t, a.in.relay, patEmail, []string{"colleague@partner.example.test"}, plain); err != nil {
		t.Fatalf("a plain message: %v", err)
	}
	var passed string
	for _, m := range a.relay.Wait(before+1, 20*time.Second) {
		if m.To[0] == "colleague@partner.example.test" {
			passed = string(m.Data)
		}
	}
	if !strings.Contains(passed, "Shall we meet at noon?") || !strings.Contains(passed, "<gw2@clinic.example.test>") || !strings.Contains(passed, "(Sealpost)") {
		t.Errorf("the passed-through message:\n%s", passed)
	}
}

// TestGatewayRefusals: never an open relay, no smuggling, unknown senders
// refused; each with the right code and nothing stored.
func TestGatewayRefusals(t *testing.T) {
	t.Parallel()
	f := newFlow(t, 260)
	a, _, _, _ := gatewayAppliance(t, f)
	for _, c := range []struct {
		name, from string
		to         []string
		want       string
	}{
		{"an unknown sender", "stranger@elsewhere.example.test", []string{guestEmail}, "550"},
		{"a quoted local part with @", patEmail, []string{`"user@evil.example"@clinic.example.test`}, "5"},
		{"the percent hack", patEmail, []string{"user%evil.example@clinic.example.test"}, "5"},
		{"a bang path", patEmail, []string{"evil.example!user@clinic.example.test"}, "5"},
		{"an address literal", patEmail, []string{"user@[127.0.0.1]"}, "5"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := sendSMTP(t, a.in.relay, c.from, c.to, "Subject: [secure] x\n\nx\n")
			if err == nil || !strings.HasPrefix(strings.TrimSpace(err.Error()), c.want) {
				t.Errorf("%s: %v, want a %sxx refusal", c.name, err, c.want)
			}
		})
	}

	// A nearly full disk defers mail (452) before anything is written; with
	// the check off, the same message goes through.
	setSettings(t, a.l, "inbound.min_free_mb", "10000000") // 10 TiB: more than this machine has free
	before := a.relay.Count()
	msg := fmt.Sprintf("From: %s\nTo: %s\nSubject: [secure] Disk space\n\nWaits for room.\n", patEmail, guestEmail)
	if err := sendSMTP(t, a.in.relay, patEmail, []string{guestEmail}, msg); err == nil || !strings.HasPrefix(err.Error(), "452") || !strings.Contains(err.Error(), "4.3.1 Insufficient system storage") {
		t.Errorf("with too little free space: %v, want 452 4.3.1", err)
	}
	time.Sleep(time.Second) // the queue delivers within a few hundred milliseconds
	if got := a.relay.Count(); got != before {
		t.Errorf("%d notifications went out for refused mail", got-before)
	}
	setSettings(t, a.l, "inbound.min_free_mb", "0")
	if err := sendSMTP(t, a.in.relay, patEmail, []string{guestEmail}, msg); err != nil {
		t.Errorf("with the check off: %v", err)
	}
	noticeTo(t, a.relay, guestEmail, "secure message", before+1)
}

// TestGatewaySubmission: Pat makes an app password on the account page and
// swaks, as a mail program, submits a tagged message with STARTTLS and
// AUTH; AUTH without TLS and a wrong password are refused.
func TestGatewaySubmission(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("swaks"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("swaks is missing in CI; `make test` should have installed it (scripts/test-deps.sh)")
		}
		t.Skip("SKIP: swaks is not installed (run scripts/test-deps.sh as root)")
	}
	f := newFlow(t, 280)
	a, _, pat, base := gatewayAppliance(t, f)
	f.do(pat, "Pat makes an app password for swaks",
		chromedp.Navigate(base+"/account"),
		chromedp.WaitVisible(chromedp.ID("app_name")),
		chromedp.SetValue(chromedp.ID("app_name"), "swaks on the build server"),
		chromedp.Click(chromedp.ID("createapp")),
		chromedp.WaitVisible(chromedp.ID("newapppassword")),
	)
	f.shot(pat, "app-password")
	secret := pageText(t, pat, "#newapppassword code")
	if len(strings.ReplaceAll(secret, " ", "")) != 26 {
		t.Fatalf("the app password shown is %q", secret)
	}
	swaks := func(args ...string) (string, error) {
		base := []string{"--server", a.in.submission, "--from", patEmail, "--to", guestEmail,
			"--header", "Subject: [secure] Submitted by swaks", "--body", "Sent from a mail program.", "--timeout", "20"}
		out, err := exec.Command("swaks", append(base, args...)...).CombinedOutput()
		return string(out), err
	}
	// Before STARTTLS the port does not even offer AUTH.
	if out, err := swaks("--auth", "PLAIN", "--auth-user", patEmail, "--auth-password", secret); err == nil ||
		!strings.Contains(out, "did not advertise authentication") && !strings.Contains(out, "530") {
		t.Errorf("AUTH before STARTTLS: %v\n%s", err, out)
	}
	if out, err := swaks("--tls", "--auth", "PLAIN", "--auth-user", patEmail, "--auth-password", "not the password"); err == nil || !strings.Contains(out, "535") {
		t.Errorf("a wrong password: %v\n%s", err, out)
	}
	sent := len(a.relay.Messages())
	out, err := swaks("--tls", "--auth", "LOGIN", "--auth-user", patEmail, "--auth-password", secret)
	if err != nil || !strings.Contains(out, "250 2.0.0") {
		t.Fatalf("swaks with STARTTLS and the app password: %v\n%s", err, out)
	}
	notice := noticeTo(t, a.relay, guestEmail, "secure message", sent+1)
	if strings.Contains(notice, "Sent from a mail program") || strings.Contains(notice, "Submitted by swaks") {
		t.Errorf("the notification carries content:\n%s", notice)
	}
}

// rawSMTP plays a script of client lines to addr and returns everything
// the server answered.
func rawSMTP(t *testing.T, addr string, script ...string) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	r := bufio.NewReader(conn)
	var out strings.Builder
	readReply := func() {
		for {
			line, err := r.ReadString('\n')
			out.WriteString(line)
			if err != nil || len(line) < 4 || line[3] != '-' {
				return
			}
		}
	}
	readReply() // greeting
	for _, s := range script {
		if _, err := conn.Write([]byte(s)); err != nil {
			break
		}
		readReply()
	}
	return out.String()
}

// TestGatewaySmugglingAndSize: the published SMTP smuggling sequences and
// an oversize message, against the real binary's relay port: each refused,
// and no smuggled message reaches anyone.
func TestGatewaySmugglingAndSize(t *testing.T) {
	t.Parallel()
	relay := smtptest.Start(t, smtptest.Options{})
	l := setUp(t, relay, "inbound.relay_networks", "127.0.0.0/8", "inbound.max_message_mb", "1")
	in := start(t, l)
	const from, to = "ada@clinic.example.test", "victim@outside.example.test"
	envelope := []string{"EHLO mx.clinic.example.test\r\n", "MAIL FROM:<" + from + ">\r\n", "RCPT TO:<" + to + ">\r\n", "DATA\r\n"}
	inner := "MAIL FROM:<" + from + ">\r\nRCPT TO:<smuggled@outside.example.test>\r\nDATA\r\nSubject: [secure] smuggled\r\n\r\nsmuggled\r\n.\r\n"
	for _, c := range []struct{ name, end string }{
		{"LF.LF", "\n.\n"},
		{"CR.CR", "\r.\r"},
		{"LF.CRLF", "\n.\r\n"},
		{"CRLF.LF", "\r\n.\n"},
		{"CRLF.CR", "\r\n.\r"},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := rawSMTP(t, in.relay, append(envelope, "Subject: [secure] carrier\r\n\r\ncarrier"+c.end+inner)...)
			if strings.Contains(out, "Queued as") {
				t.Errorf("%s: a message was queued:\n%s", c.name, out)
			}
			if !strings.Contains(out, "550") && !strings.Contains(out, "500") {
				t.Errorf("%s: not refused:\n%s", c.name, out)
			}
		})
	}
	big := strings.Repeat(strings.Repeat("x", 998)+"\r\n", 2200) // about 2.2 MB, over the 1 MiB limit
	out := rawSMTP(t, in.relay, append(envelope, "Subject: [secure] big\r\n\r\n"+big+".\r\n")...)
	if !strings.Contains(out, "552") {
		t.Errorf("an oversize message:\n%.500s", out)
	}
	// The control: the same script with a clean end is queued and notified.
	control := []string{"EHLO mx.clinic.example.test\r\n", "MAIL FROM:<" + from + ">\r\n", "RCPT TO:<control@outside.example.test>\r\n", "DATA\r\n",
		"Subject: [secure] control\r\n\r\nclean\r\n.\r\n"}
	if out := rawSMTP(t, in.relay, control...); !strings.Contains(out, "Queued as") {
		t.Fatalf("a clean message was not queued:\n%s", out)
	}
	noticeTo(t, relay, "control@outside.example.test", "secure message", 1)
	for _, m := range relay.Messages() {
		if m.To[0] == "smuggled@outside.example.test" || m.To[0] == to {
			t.Errorf("a notification went to %s", m.To[0])
		}
	}
}
