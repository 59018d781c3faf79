package smtpd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	netsmtp "net/smtp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

func TestGreetingAndExtensions(t *testing.T) {
	t.Parallel()
	f := start(t)

	r := dialRaw(t, f.relay)
	greeting := r.expect(220, "")
	if greeting != hostName+" ESMTP Service Ready" {
		t.Errorf("greeting %q: want the host name and nothing about the software", greeting)
	}
	ehlo := r.cmd("EHLO client.example.org", 250, "")
	for _, want := range []string{"STARTTLS", "SIZE 26214400", "LIMITS RCPTMAX=100", "PIPELINING"} {
		if !strings.Contains(ehlo, want) {
			t.Errorf("relay EHLO %q lacks %q", ehlo, want)
		}
	}
	if strings.Contains(ehlo, "AUTH") {
		t.Errorf("relay EHLO offers AUTH: %q", ehlo)
	}
	if ehlo = r.startTLS(f.roots); strings.Contains(ehlo, "AUTH") {
		t.Errorf("relay EHLO offers AUTH inside TLS: %q", ehlo)
	}
	r.cmd("AUTH PLAIN "+plain("", aliceUser, alicePass), 502, "not available")

	s := dialRaw(t, f.sub)
	if ehlo := s.hello(); strings.Contains(ehlo, "AUTH") {
		t.Errorf("submission offers AUTH before STARTTLS: %q", ehlo)
	}
	if ehlo := s.startTLS(f.roots); !strings.Contains(ehlo, "AUTH PLAIN LOGIN") {
		t.Errorf("submission EHLO inside TLS %q lacks AUTH PLAIN LOGIN", ehlo)
	}
}

func TestRelayDelivers(t *testing.T) {
	t.Parallel()
	f := start(t)
	to := []string{"bob@example.org", "Carol@Outside.EXAMPLE"}
	if err := sendPlain(t, f.relay, aliceAddr, to, testBody); err != nil {
		t.Fatalf("net/smtp SendMail: %v", err)
	}
	got := f.messages()
	if len(got) != 1 {
		t.Fatalf("Accept called %d times, want 1", len(got))
	}
	e, m := got[0].env, got[0].msg
	if e.Port != PortRelay || e.RemoteIP != netip.MustParseAddr("127.0.0.1") || e.Helo != "client.example.org" ||
		e.From != aliceAddr || e.Auth != nil || e.TLS || e.ID == "" || e.ReceivedAt.IsZero() {
		t.Errorf("envelope %+v", e)
	}
	// Outside recipients are fine from an allowed relay client: it is the
	// organization's own outbound mail.
	if want := []string{"bob@example.org", "Carol@outside.example"}; !slices.Equal(e.To, want) {
		t.Errorf("To = %q, want %q", e.To, want)
	}
	if m.Subject != "hello" || m.Text != "Hi Bob.\r\n" || m.MessageID != "1@example.org" || string(m.Raw) != testBody {
		t.Errorf("message: subject %q text %q id %q", m.Subject, m.Text, m.MessageID)
	}
	if len(m.From) != 1 || m.From[0].Address != aliceAddr {
		t.Errorf("From = %v", m.From)
	}
}

func TestQueuedReplyNamesTheID(t *testing.T) {
	t.Parallel()
	f := start(t)
	c, err := smtp.Dial(f.relay)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Mail(aliceAddr, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("bob@example.org", nil); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(testBody))
	resp, err := w.CloseWithResponse()
	if err != nil {
		t.Fatal(err)
	}
	got := f.messages()
	if len(got) != 1 || resp.StatusText != "2.0.0 Queued as "+got[0].env.ID {
		t.Errorf("reply %q, accepted %d", resp.StatusText, len(got))
	}
}

func TestRelayRefused(t *testing.T) {
	t.Parallel()
	var allowed atomic.Bool
	f := start(t, func(o *Options) {
		o.RelayAllowed = func(netip.Addr) bool { return allowed.Load() }
	})

	r := dialRaw(t, f.relay)
	r.expect(554, "Relaying is not allowed from your address")
	r.cmd("EHLO attacker.example", 503, "")
	r.cmd("MAIL FROM:<x@attacker.example>", 503, "")
	r.cmd("QUIT", 221, "")
	if !r.closed() {
		t.Error("the connection stayed open after QUIT")
	}
	if _, err := netsmtp.Dial(f.relay); err == nil || !strings.Contains(err.Error(), "554") {
		t.Errorf("net/smtp Dial: %v, want the 554", err)
	}

	// Allowed at connect, no longer at MAIL.
	allowed.Store(true)
	r = dialRaw(t, f.relay)
	r.hello()
	allowed.Store(false)
	r.cmd("MAIL FROM:<"+aliceAddr+">", 554, "Relaying is not allowed")
	r.cmd("RCPT TO:<bob@example.org>", 502, "")
	if n := len(f.messages()); n != 0 {
		t.Errorf("Accept called %d times", n)
	}
}

func TestSubmission(t *testing.T) {
	t.Parallel()
	f := start(t)

	t.Run("AUTH before STARTTLS", func(t *testing.T) {
		r := dialRaw(t, f.sub)
		r.hello()
		r.cmd("AUTH PLAIN "+plain("", aliceUser, alicePass), 530, "5.7.0 Must issue a STARTTLS command first")
		r.cmd("AUTH LOGIN", 530, "5.7.0 Must issue a STARTTLS command first")
		r.cmd("MAIL FROM:<"+aliceAddr+">", 530, "5.7.0 Must issue a STARTTLS command first")
	})
	t.Run("MAIL before AUTH", func(t *testing.T) {
		r := dialRaw(t, f.sub)
		r.hello()
		r.startTLS(f.roots)
		r.cmd("MAIL FROM:<"+aliceAddr+">", 530, "5.7.0 Authentication required")
		r.cmd("RCPT TO:<anyone@outside.example>", 502, "")
	})
	t.Run("wrong password", func(t *testing.T) {
		r := dialRaw(t, f.sub)
		r.hello()
		r.startTLS(f.roots)
		r.cmd("AUTH PLAIN "+plain("", aliceUser, "wrong"), 535, "5.7.8")
		r.cmd("AUTH PLAIN "+plain("bob", aliceUser, alicePass), 535, "5.7.8") // acting for another
		r.cmd("AUTH PLAIN "+plain("", aliceUser, alicePass), 235, "")
	})
	t.Run("LOGIN without initial response", func(t *testing.T) {
		r := dialRaw(t, f.sub)
		r.hello()
		r.startTLS(f.roots)
		r.cmd("AUTH LOGIN", 334, b64("Username:"))
		r.cmd(b64(aliceUser), 334, b64("Password:"))
		r.cmd(b64(alicePass), 235, "")
		r.cmd("MAIL FROM:<bob@example.org>", 550, "Sender address is not yours")
		r.cmd("MAIL FROM:<"+aliceAddr+">", 250, "")
	})
	t.Run("net/smtp PLAIN", func(t *testing.T) {
		c, err := netsmtp.Dial(f.sub)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.StartTLS(&tls.Config{ServerName: "localhost", RootCAs: f.roots}); err != nil {
			t.Fatal(err)
		}
		if err := c.Auth(netsmtp.PlainAuth("", aliceUser, alicePass, "127.0.0.1")); err != nil {
			t.Fatal(err)
		}
		send(t, c, aliceAddr, []string{"someone@outside.example"}, testBody)
	})
	t.Run("go-smtp LOGIN", func(t *testing.T) {
		c, err := smtp.DialStartTLS(f.sub, &tls.Config{ServerName: "localhost", RootCAs: f.roots})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Auth(sasl.NewLoginClient(aliceUser, alicePass)); err != nil {
			t.Fatal(err)
		}
		if err := c.SendMail(aliceAddr, []string{"other@outside.example"}, strings.NewReader(testBody)); err != nil {
			t.Fatal(err)
		}
	})

	var got []Envelope
	for _, a := range f.messages() {
		got = append(got, a.env)
	}
	if len(got) != 2 {
		t.Fatalf("Accept called %d times, want 2", len(got))
	}
	for _, e := range got {
		if e.Port != PortSubmission || !e.TLS || e.Auth == nil || *e.Auth != alice || e.From != aliceAddr {
			t.Errorf("envelope %+v", e)
		}
	}
}

// send is a transaction through net/smtp after HELO and AUTH.
func send(t *testing.T, c *netsmtp.Client, from string, to []string, body string) {
	t.Helper()
	if err := c.Mail(from); err != nil {
		t.Fatal(err)
	}
	for _, a := range to {
		if err := c.Rcpt(a); err != nil {
			t.Fatal(err)
		}
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(body))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestAuthFailureLimit(t *testing.T) {
	t.Parallel()
	f := start(t)
	f.setLimits(Limits{MaxAuthFailures: 10})

	// Ten failures over several connections are answered 535 …
	var r *raw
	for i := range 10 {
		if i%4 == 0 {
			r = dialRaw(t, f.sub)
			r.hello()
			r.startTLS(f.roots)
		}
		r.cmd("AUTH PLAIN "+plain("", aliceUser, fmt.Sprint("guess", i)), 535, "5.7.8")
	}
	// … then AUTH gets 421 and a hang-up, even with the right password …
	r.cmd("AUTH PLAIN "+plain("", aliceUser, alicePass), 421, "4.7.0 Too many failed authentication attempts")
	if !r.closed() {
		t.Error("the connection stayed open after 421")
	}
	r = dialRaw(t, f.sub)
	r.hello()
	r.startTLS(f.roots)
	r.cmd("AUTH LOGIN "+b64(aliceUser), 421, "4.7.0")

	// … until the minute has passed.
	f.clock.Add(time.Minute)
	r = dialRaw(t, f.sub)
	r.login(f.roots)
}

func TestSTARTTLSDropsPipelinedPlaintext(t *testing.T) {
	t.Parallel()
	f := start(t)
	r := dialRaw(t, f.sub)
	r.hello()
	// A man in the middle appends a command to STARTTLS (CVE-2011-0411).
	r.send("STARTTLS\r\nMAIL FROM:<" + aliceAddr + ">\r\n")
	r.expect(220, "")
	tc := tls.Client(r.conn, &tls.Config{ServerName: "localhost", RootCAs: f.roots})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	r.conn, r.r = tc, newReader(tc)
	r.send("NOOP\r\n")
	if code, text := r.reply(); code != 250 || !strings.Contains(text, "successfully done nothing") {
		t.Fatalf("first reply inside TLS: %d %q, want the NOOP's (the injected MAIL must be gone)", code, text)
	}
}

func TestOpenRelayAttempts(t *testing.T) {
	t.Parallel()
	f := start(t)
	tests := []struct {
		name string
		rcpt string
		code int
		want string
	}{
		{"quoted local part with @", `<"user@other.example"@example.org>`, 550, "5.7.1"},
		{"quoted local part with %", `<"user%other.example"@example.org>`, 550, "5.7.1"},
		{"percent hack", `<user%other.example@example.org>`, 550, "5.7.1"},
		{"bang path", `<other.example!user@example.org>`, 550, "5.7.1"},
		{"two @", `<user@other.example@example.org>`, 550, "5.7.1"},
		{"address literal", `<user@[127.0.0.1]>`, 553, "5.1.3"},
		{"IPv6 literal", `<user@[IPv6:::1]>`, 553, "5.1.3"},
		{"localhost", `<user@localhost>`, 553, "5.1.3"},
		{"quoted space", `<"a b"@example.org>`, 553, "5.1.3"},
		{"trailing dot", `<user@example.org.>`, 553, "5.1.3"},
		{"non-ASCII", "<us\u00e9r@example.org>", 553, "5.1.3"},
		{"null recipient", `<>`, 501, "5.5.2"}, // go-smtp's syntax error, before the session sees it
		{"empty", ``, 501, "5.5.2"},
	}
	ports := []struct {
		name  string
		begin func(t *testing.T) *raw
	}{
		{"relay", func(t *testing.T) *raw {
			r := dialRaw(t, f.relay)
			r.hello()
			return r
		}},
		{"submission", func(t *testing.T) *raw {
			r := dialRaw(t, f.sub)
			r.login(f.roots)
			return r
		}},
	}
	for _, p := range ports {
		t.Run(p.name, func(t *testing.T) {
			r := p.begin(t)
			r.cmd("MAIL FROM:<"+aliceAddr+">", 250, "")
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					r.t = t
					r.cmd("RCPT TO:"+tt.rcpt, tt.code, tt.want)
				})
			}
			r.t = t
			// A source route is dropped by go-smtp: the mail goes to the
			// mailbox it names, judged as that address, never to a or b.
			r.cmd("RCPT TO:<@a.example,@b.example:user@c.example>", 250, "")
			r.cmd("RCPT TO:<user@intranet>", 250, "") // a single-label local domain
			r.cmd("DATA", 354, "")
			r.send(testBody + ".\r\n")
			r.expect(250, "Queued as")
		})
	}
	got := f.messages()
	if len(got) != 2 {
		t.Fatalf("Accept called %d times, want 2", len(got))
	}
	for _, a := range got {
		if want := []string{"user@c.example", "user@intranet"}; !slices.Equal(a.env.To, want) {
			t.Errorf("%s: To = %q, want %q", a.env.Port, a.env.To, want)
		}
	}

	// Without AUTH on the submission port, no RCPT is ever accepted.
	r := dialRaw(t, f.sub)
	r.hello()
	r.startTLS(f.roots)
	r.cmd("MAIL FROM:<"+aliceAddr+">", 530, "")
	for _, rcpt := range []string{"<bob@example.org>", "<someone@outside.example>", `<"x@outside.example"@example.org>`} {
		r.cmd("RCPT TO:"+rcpt, 502, "Missing MAIL FROM")
	}
}

func TestDuplicateRecipientsOnce(t *testing.T) {
	t.Parallel()
	f := start(t)
	to := []string{"bob@example.org", "bob@EXAMPLE.org", "bob@example.org"}
	if err := sendPlain(t, f.relay, aliceAddr, to, testBody); err != nil {
		t.Fatal(err)
	}
	if got := f.messages(); len(got) != 1 || !slices.Equal(got[0].env.To, []string{"bob@example.org"}) {
		t.Errorf("accepted %+v", got)
	}
}

func TestAcceptAnswers(t *testing.T) {
	t.Parallel()
	var answer atomic.Value // func() error
	f := start(t, func(o *Options) {
		o.Accept = func(context.Context, *Envelope, *Message) error { return answer.Load().(func() error)() }
	})
	tests := []struct {
		name string
		err  error
		code int
		want string
	}{
		{"durable", nil, 250, "2.0.0 Queued as "},
		{"policy", &Reject{Code: 550, Enhanced: [3]int{5, 7, 1}, Message: "Blocked by policy"}, 550, "5.7.1 Blocked by policy"},
		{"wrapped reject", fmt.Errorf("policy: %w", &Reject{Code: 554, Enhanced: [3]int{5, 7, 0}, Message: "No"}), 554, "5.7.0 No"},
		{"disk full", errors.New("write /data: no space left on device"), 451, "4.3.0 Temporary failure, try again later"},
		{"a 250 is no reject", &Reject{Code: 250, Message: "fake"}, 451, "4.3.0"},
		{"text made safe", &Reject{Code: 550, Enhanced: [3]int{4, 1, 1}, Message: "no\r\n250 ok"}, 550, "5.0.0 no  250 ok"},
	}
	r := dialRaw(t, f.relay)
	r.hello()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r.t = t
			answer.Store(func() error { return tt.err })
			r.cmd("MAIL FROM:<"+aliceAddr+">", 250, "")
			r.cmd("RCPT TO:<bob@example.org>", 250, "")
			r.cmd("DATA", 354, "")
			r.send(testBody + ".\r\n")
			text := r.expect(tt.code, tt.want)
			if strings.Contains(text, "disk") || strings.Contains(text, "space") {
				t.Errorf("reply %q shows the cause", text)
			}
		})
	}
	if !strings.Contains(f.logs.String(), "no space left on device") {
		t.Error("the cause of the 451 is not in the log")
	}
}

func TestPanicsAreRecovered(t *testing.T) {
	t.Parallel()
	var where atomic.Value
	where.Store("")
	boom := func(at string) {
		if where.Load() == at {
			panic("boom in " + at)
		}
	}
	f := start(t, func(o *Options) {
		relay := o.RelayAllowed
		o.RelayAllowed = func(ip netip.Addr) bool { boom("relay"); return relay(ip) }
		check := o.CheckSender
		o.CheckSender = func(ctx context.Context, e *Envelope) error { boom("sender"); return check(ctx, e) }
		o.CheckRecipient = func(context.Context, *Envelope, string) error { boom("rcpt"); return nil }
		accept := o.Accept
		o.Accept = func(ctx context.Context, e *Envelope, m *Message) error { boom("accept"); return accept(ctx, e, m) }
	})
	f.panics = 4

	where.Store("relay")
	dialRaw(t, f.relay).expect(554, "")

	where.Store("sender")
	r := dialRaw(t, f.relay)
	r.hello()
	r.cmd("MAIL FROM:<"+aliceAddr+">", 451, "4.3.0")
	where.Store("rcpt")
	r.cmd("MAIL FROM:<"+aliceAddr+">", 250, "")
	r.cmd("RCPT TO:<bob@example.org>", 451, "4.3.0")
	where.Store("accept")
	r.cmd("RCPT TO:<bob@example.org>", 250, "")
	r.cmd("DATA", 354, "")
	r.send(testBody + ".\r\n")
	r.expect(451, "4.3.0")

	where.Store("")
	r.cmd("MAIL FROM:<"+aliceAddr+">", 250, "")
	r.cmd("RCPT TO:<bob@example.org>", 250, "")
	r.cmd("DATA", 354, "")
	r.send(testBody + ".\r\n")
	r.expect(250, "Queued as")
	if n := len(f.messages()); n != 1 {
		t.Errorf("Accept completed %d times, want 1", n)
	}
}

func TestLogLineHasNoContentOrAddresses(t *testing.T) {
	t.Parallel()
	f := start(t)
	body := "From: alice@example.org\r\nSubject: canary-subject\r\n\r\ncanary-body\r\n"
	if err := sendPlain(t, f.relay, aliceAddr, []string{"carol@outside.example"}, body); err != nil {
		t.Fatal(err)
	}
	logs := f.logs.String()
	for _, secret := range []string{"canary", "carol", "outside.example", "alice"} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log has %q:\n%s", secret, logs)
		}
	}
	for _, want := range []string{`"port":"relay"`, `"remote_ip":"127.0.0.1"`, `"size":`, `"recipients":1`, `"outside_recipients":1`, `"code":250`, `"message":"smtp message"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log lacks %s:\n%s", want, logs)
		}
	}
}

func TestServeChecksOptions(t *testing.T) {
	t.Parallel()
	listen := func() net.Listener {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	s := New(Options{})
	err := s.Serve(listen(), PortSubmission)
	for _, want := range []string{"Hostname", "Accept", "CheckSender", "Authenticate", "TLSConfig"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Serve(submission) = %v, want it to name %s", err, want)
		}
	}
	if err := s.Serve(listen(), PortRelay); err == nil || !strings.Contains(err.Error(), "RelayAllowed") {
		t.Errorf("Serve(relay) = %v, want it to name RelayAllowed", err)
	}
	if err := s.Serve(listen(), "lmtp"); err == nil || !strings.Contains(err.Error(), `"lmtp"`) {
		t.Errorf("Serve(lmtp) = %v", err)
	}
	if err := s.Close(); err != nil {
		t.Error(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	l := listen()
	if err := s.Serve(l, "lmtp"); err == nil {
		t.Error("Serve after Close: nil")
	}
	if _, err := l.Accept(); err == nil {
		t.Error("Serve left the listener open")
	}
}

func TestRelayWithSTARTTLS(t *testing.T) {
	t.Parallel()
	f := start(t)
	c, err := smtp.DialStartTLS(f.relay, &tls.Config{ServerName: "localhost", RootCAs: f.roots})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ok, _ := c.Extension("AUTH"); ok {
		t.Error("the relay port offers AUTH inside TLS")
	}
	if err := c.SendMail(aliceAddr, []string{"bob@example.org"}, strings.NewReader(testBody)); err != nil {
		t.Fatal(err)
	}
	if got := f.messages(); len(got) != 1 || !got[0].env.TLS {
		t.Errorf("accepted %+v", got)
	}
}

func TestHeloMustBePrintable(t *testing.T) {
	t.Parallel()
	f := start(t)
	r := dialRaw(t, f.relay)
	r.expect(220, "")
	r.cmd("HELO bad\x01name", 501, "Invalid EHLO/HELO argument")
	r.cmd("HELO client.example.org", 250, "")
	r.cmd("EHLO caf\xc3\xa9.example", 250, "")                            // go-smtp answers a second EHLO itself …
	r.cmd("MAIL FROM:<"+aliceAddr+">", 501, "Invalid EHLO/HELO argument") // … so MAIL checks it
}

func TestAddrKey(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"192.0.2.7":            "192.0.2.7",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::",
		"2001:db8:1:2:ff::1":   "2001:db8:1:2::",
	} {
		if got := addrKey(netip.MustParseAddr(in)); got.String() != want {
			t.Errorf("addrKey(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestOtherPanicsAreCounted(t *testing.T) {
	t.Parallel()
	s := New(Options{Limits: func() Limits { panic("bad settings") }})
	if l := s.limits(); l != (Limits{}).withDefaults() {
		t.Errorf("limits after a panic: %+v", l)
	}
	// go-smtp recovers panics in its command loop and reports them here.
	errorLog{&conn{srv: s}}.Printf("panic serving %v: %v\n%s", "127.0.0.1:1", "boom", "stack")
	errorLog{&conn{srv: s}}.Printf("error handling %v: %s", "127.0.0.1:1", "EOF")
	if got := s.Panics(); got != 2 {
		t.Errorf("Panics() = %d, want 2", got)
	}
}
