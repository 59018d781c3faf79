package smtpd

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestMessageSize(t *testing.T) {
	t.Parallel()
	f := start(t)
	f.setLimits(Limits{MaxMessageBytes: 64 << 10})
	r := dialRaw(t, f.relay)
	if ehlo := r.hello(); !strings.Contains(ehlo, "SIZE 65536") {
		t.Errorf("EHLO %q does not advertise the limit", ehlo)
	}
	r.cmd("MAIL FROM:<"+aliceAddr+"> SIZE=65537", 552, "5.3.4")
	r.cmd("MAIL FROM:<"+aliceAddr+"> SIZE=1000", 250, "")
	r.cmd("RCPT TO:<bob@example.org>", 250, "")
	r.cmd("DATA", 354, "")
	line := strings.Repeat("x", 998) + "\r\n"
	r.send(testBody + strings.Repeat(line, 70) + ".\r\n")
	r.expect(552, "5.3.4")
	// The session goes on, and a message under the limit passes.
	r.cmd("MAIL FROM:<"+aliceAddr+">", 250, "")
	r.cmd("RCPT TO:<bob@example.org>", 250, "")
	r.cmd("DATA", 354, "")
	r.send(testBody + strings.Repeat(line, 60) + ".\r\n")
	r.expect(250, "Queued as")
	if got := f.messages(); len(got) != 1 || got[0].msg.Size <= 60000 {
		t.Errorf("accepted %d", len(got))
	}
}

func TestRecipientLimit(t *testing.T) {
	t.Parallel()
	f := start(t)
	f.setLimits(Limits{MaxRecipients: 10}) // raised to RFC 5321's 100
	r := dialRaw(t, f.relay)
	if ehlo := r.hello(); !strings.Contains(ehlo, "RCPTMAX=100") {
		t.Errorf("EHLO %q", ehlo)
	}
	r.cmd("MAIL FROM:<"+aliceAddr+">", 250, "")
	for i := range 100 {
		r.cmd(fmt.Sprintf("RCPT TO:<user%d@outside.example>", i), 250, "")
	}
	r.cmd("RCPT TO:<user100@outside.example>", 452, "4.5.3")
	r.cmd("RCPT TO:<user101@outside.example>", 452, "4.5.3")
	r.cmd("DATA", 354, "")
	r.send(testBody + ".\r\n")
	r.expect(250, "")
	got := f.messages()
	if len(got) != 1 || len(got[0].env.To) != 100 || got[0].env.To[99] != "user99@outside.example" {
		t.Fatalf("accepted %+v", got)
	}
}

func TestLongLines(t *testing.T) {
	t.Parallel()
	f := start(t)

	r := dialRaw(t, f.relay)
	r.hello()
	r.cmd("NOOP "+strings.Repeat("x", 1000), 500, "Too long line")
	if !r.closed() {
		t.Error("the connection stayed open after a long command")
	}

	r = dialRaw(t, f.relay)
	r.hello()
	r.cmd("MAIL FROM:<"+aliceAddr+">", 250, "")
	r.cmd("RCPT TO:<bob@example.org>", 250, "")
	r.cmd("DATA", 354, "")
	r.send(testBody + strings.Repeat("y", 999) + "\r\n.\r\n") // 1001 with CRLF
	r.expect(500, "5.5.6 Line too long")
	if !r.closed() {
		t.Error("the connection stayed open after a long data line")
	}

	// 1000 with CRLF is fine.
	r = dialRaw(t, f.relay)
	r.hello()
	r.cmd("MAIL FROM:<"+aliceAddr+">", 250, "")
	r.cmd("RCPT TO:<bob@example.org>", 250, "")
	r.cmd("DATA", 354, "")
	r.send(testBody + strings.Repeat("y", 998) + "\r\n.\r\n")
	r.expect(250, "")
	if n := len(f.messages()); n != 1 {
		t.Errorf("accepted %d, want 1", n)
	}
}

func TestConnectionLimits(t *testing.T) {
	t.Parallel()
	f := start(t)
	f.setLimits(Limits{MaxConnsPerIP: 2, MaxConns: 3})

	a := dialRawFrom(t, f.relay, "127.0.0.1")
	a.expect(220, "")
	b := dialRawFrom(t, f.relay, "127.0.0.1")
	b.expect(220, "")
	dialRawFrom(t, f.relay, "127.0.0.1").expect(421, "4.7.0 Too many connections from your address")
	c := dialRawFrom(t, f.relay, "127.0.0.2") // another address still gets in
	c.expect(220, "")
	dialRawFrom(t, f.sub, "127.0.0.3").expect(421, "4.3.2 Too many connections") // overall, both ports

	// A place frees when a session ends.
	a.cmd("QUIT", 221, "")
	waitFor(t, func() bool {
		r := dialRawFrom(t, f.relay, "127.0.0.1")
		code, _ := r.reply()
		return code == 220
	})
}

// waitFor retries cond for a few seconds: the server frees a place once it
// has seen the client's close, which the client cannot wait for directly.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met in 5 s")
}

func TestTimeouts(t *testing.T) {
	t.Parallel()
	f := start(t)
	f.setLimits(Limits{ReadTimeout: 200 * time.Millisecond, DataTimeout: 300 * time.Millisecond})

	t.Run("command", func(t *testing.T) {
		t.Parallel()
		r := dialRaw(t, f.relay)
		r.hello()
		r.expect(421, "4.4.2") // the client said nothing more
		if !r.closed() {
			t.Error("the connection stayed open")
		}
	})
	t.Run("data", func(t *testing.T) {
		t.Parallel()
		r := dialRaw(t, f.relay)
		r.hello()
		r.cmd("MAIL FROM:<"+aliceAddr+">", 250, "")
		r.cmd("RCPT TO:<bob@example.org>", 250, "")
		r.cmd("DATA", 354, "")
		start := time.Now()
		// Slower than the DATA cap allows, though every write is well
		// inside the read timeout… (a slow-loris sender).
		for range 6 {
			r.conn.Write([]byte("x")) // fails once the server has hung up
			time.Sleep(100 * time.Millisecond)
		}
		r.expect(451, "4.4.2")
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("the DATA cap took %v", d)
		}
	})
	if n := len(f.messages()); n != 0 {
		t.Errorf("accepted %d", n)
	}
}

func TestBDAT(t *testing.T) {
	t.Parallel()
	f := start(t)
	r := dialRaw(t, f.relay)
	r.hello()
	r.cmd("MAIL FROM:<"+aliceAddr+">", 250, "")
	r.cmd("RCPT TO:<bob@example.org>", 250, "")
	head, tail := testBody[:20], testBody[20:]
	r.send(fmt.Sprintf("BDAT %d\r\n%s", len(head), head))
	r.expect(250, "")
	r.send(fmt.Sprintf("BDAT %d LAST\r\n%s", len(tail), tail))
	r.expect(250, "Queued as")

	// BDAT has no dot-stuffing, so no tap; the check of the bytes still
	// refuses a bare LF.
	r.cmd("MAIL FROM:<"+aliceAddr+">", 250, "")
	r.cmd("RCPT TO:<bob@example.org>", 250, "")
	bad := "Subject: x\r\n\r\nfirst\n.\n" + smuggled
	r.send(fmt.Sprintf("BDAT %d LAST\r\n%s", len(bad), bad))
	r.expect(550, "5.6.0")
	got := f.messages()
	if len(got) != 1 || string(got[0].msg.Raw) != testBody {
		t.Errorf("accepted %+v", got)
	}
}

func TestCloseIsGraceful(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	inAccept := make(chan struct{})
	f := start(t, func(o *Options) {
		o.Accept = func(context.Context, *Envelope, *Message) error {
			close(inAccept)
			<-release
			return nil
		}
	})

	idle := dialRaw(t, f.relay)
	idle.hello()
	busy := dialRaw(t, f.relay)
	busy.hello()
	busy.cmd("MAIL FROM:<"+aliceAddr+">", 250, "")
	busy.cmd("RCPT TO:<bob@example.org>", 250, "")
	busy.cmd("DATA", 354, "")
	busy.send(testBody + ".\r\n")
	<-inAccept

	closed := make(chan error, 1)
	go func() { closed <- f.srv.Close() }()
	idle.expect(421, "") // the idle session ends at once
	select {
	case <-closed:
		t.Fatal("Close returned while Accept was still running")
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	busy.expect(250, "Queued as") // the message in flight is answered
	busy.expect(421, "")          // and then the session ends
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if _, err := dialTimeout(f.relay); err == nil {
		t.Error("still accepting after Close")
	}
}

func TestCloseCutsAfterTimeout(t *testing.T) {
	t.Parallel()
	ctxDone := make(chan struct{})
	inAccept := make(chan struct{})
	f := start(t, func(o *Options) {
		o.ShutdownTimeout = 200 * time.Millisecond
		o.Accept = func(ctx context.Context, _ *Envelope, _ *Message) error {
			close(inAccept)
			<-ctx.Done()
			close(ctxDone)
			return ctx.Err()
		}
	})
	r := dialRaw(t, f.relay)
	r.hello()
	r.cmd("MAIL FROM:<"+aliceAddr+">", 250, "")
	r.cmd("RCPT TO:<bob@example.org>", 250, "")
	r.cmd("DATA", 354, "")
	r.send(testBody + ".\r\n")
	<-inAccept
	if err := f.srv.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ctxDone:
	case <-time.After(5 * time.Second):
		t.Fatal("Accept's context was not cancelled")
	}
	if code, _ := r.reply(); code == 250 {
		t.Error("a cut session got 250")
	}
}
