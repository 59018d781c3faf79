package mailer

import (
	"context"
	"crypto/tls"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/sealpost/sealpost/mailer/smtptest"
)

func relayFor(s *smtptest.Server, security string) Relay {
	return Relay{Host: s.Host, Port: s.Port, Security: security, HelloName: "sealpost.test", RootCAs: s.RootCAs,
		Sessions:       tls.NewLRUClientSessionCache(64),
		CommandTimeout: 5 * time.Second, DataTimeout: 5 * time.Second, DialTimeout: 5 * time.Second}
}

var testMsg = []byte("From: a@b.test\r\nTo: c@d.test\r\nSubject: t\r\n\r\nhello\r\n")

func TestRelayDelivers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		opts     smtptest.Options
		security string
		user     string
	}{
		{"starttls", smtptest.Options{}, "starttls", ""},
		{"starttls with auth", smtptest.Options{User: "sealpost", Pass: "pw"}, "starttls", "sealpost"},
		{"implicit tls with auth", smtptest.Options{ImplicitTLS: true, User: "sealpost", Pass: "pw"}, "tls", "sealpost"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := smtptest.Start(t, tt.opts)
			r := relayFor(s, tt.security)
			r.Username, r.Password = tt.user, "pw"
			reply, err := r.Send(context.Background(), "bounces+n1@b.test", []string{"c@d.test"}, testMsg)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(reply, "250") {
				t.Errorf("reply %q", reply)
			}
			got := s.Messages()
			if len(got) != 1 || got[0].From != "bounces+n1@b.test" || got[0].To[0] != "c@d.test" || !got[0].TLS || got[0].AuthUser != tt.user {
				t.Fatalf("received %+v", got)
			}
			if !strings.Contains(string(got[0].Data), "hello") {
				t.Error("body lost")
			}
		})
	}
}

func TestRelayFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		opts      smtptest.Options
		prepare   func(s *smtptest.Server, r *Relay)
		permanent bool
		want      string
	}{
		{"no STARTTLS offered", smtptest.Options{NoSTARTTLS: true}, nil, false, "does not offer STARTTLS"},
		{"untrusted certificate", smtptest.Options{}, func(_ *smtptest.Server, r *Relay) { r.RootCAs = nil }, false, "certificate"},
		{"wrong password", smtptest.Options{User: "u", Pass: "right"}, func(_ *smtptest.Server, r *Relay) { r.Username, r.Password = "u", "wrong" }, true, "535 5.7.8"},
		{"temporary failure", smtptest.Options{}, func(s *smtptest.Server, _ *Relay) {
			s.Reply(func(stage string) error {
				if stage == "rcpt" {
					return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}
				}
				return nil
			})
		}, false, "451 4.3.0 try later"},
		{"permanent failure", smtptest.Options{}, func(s *smtptest.Server, _ *Relay) {
			s.Reply(func(stage string) error {
				if stage == "data" {
					return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "rejected"}
				}
				return nil
			})
		}, true, "554 5.7.1 rejected"},
		{"peer hangs", smtptest.Options{}, func(s *smtptest.Server, r *Relay) {
			s.Hang()
			r.CommandTimeout = 300 * time.Millisecond
		}, false, "timeout"},
		{"nobody listening", smtptest.Options{}, func(_ *smtptest.Server, r *Relay) { r.Port = 1 }, false, "connect"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := smtptest.Start(t, tt.opts)
			r := relayFor(s, "starttls")
			if tt.prepare != nil {
				tt.prepare(s, &r)
			}
			start := time.Now()
			_, err := r.Send(context.Background(), "b@b.test", []string{"c@d.test"}, testMsg)
			var de *DeliveryError
			if !errors.As(err, &de) {
				t.Fatalf("Send = %v, want a DeliveryError", err)
			}
			if de.Permanent != tt.permanent || !strings.Contains(err.Error()+" "+de.Err.Error(), tt.want) {
				t.Errorf("error %q (permanent %v), want %q (permanent %v)", err, de.Permanent, tt.want, tt.permanent)
			}
			if time.Since(start) > 10*time.Second {
				t.Errorf("took %v", time.Since(start))
			}
			if len(s.Messages()) != 0 {
				t.Error("a failed delivery left a message")
			}
		})
	}
}

// TestRelayReusesConnections: with a connection cache, a run of
// notifications to the relay shares one connection (one TLS handshake,
// RSET between messages, authenticated once); a connection the relay has
// dropped while idle costs no delivery, the next one opens a new
// connection; other credentials never get a cached connection; Close
// ends the idle ones.
func TestRelayReusesConnections(t *testing.T) {
	t.Parallel()
	s := smtptest.Start(t, smtptest.Options{User: "sealpost", Pass: "pw"})
	r := relayFor(s, "starttls")
	r.Username, r.Password = "sealpost", "pw"
	r.Conns = NewConnCache()
	defer r.Conns.Close()
	ctx := context.Background()
	send := func(r Relay, n int) {
		t.Helper()
		for range n {
			if _, err := r.Send(ctx, "bounces@b.test", []string{"c@d.test"}, testMsg); err != nil {
				t.Fatal(err)
			}
		}
	}
	send(r, 20)
	if got := s.Sessions(); got != 1 {
		t.Errorf("20 messages took %d connections, want 1", got)
	}
	if got := s.Count(); got != 20 {
		t.Errorf("the relay got %d messages, want 20", got)
	}
	for _, m := range s.Messages() {
		if !m.TLS || m.AuthUser != "sealpost" || m.From != "bounces@b.test" {
			t.Fatalf("a message on the reused connection: %+v", m)
		}
	}
	if r.Conns.Idle() != 1 {
		t.Errorf("%d idle connections, want 1", r.Conns.Idle())
	}

	s.DropConnections()
	time.Sleep(50 * time.Millisecond)
	send(r, 1)
	if got, n := s.Sessions(), s.Count(); got != 2 || n != 21 {
		t.Errorf("after the relay dropped the idle connection: %d connections, %d messages; want 2 and 21", got, n)
	}

	other := r
	other.Password = "wrong"
	if _, err := other.Send(ctx, "bounces@b.test", []string{"c@d.test"}, testMsg); err == nil {
		t.Error("a wrong password delivered (it must not get the cached, authenticated connection)")
	}
	if got := s.Sessions(); got != 3 {
		t.Errorf("other credentials: %d connections, want a third", got)
	}

	r.Conns.Close()
	if r.Conns.Idle() != 0 {
		t.Errorf("%d idle connections after Close", r.Conns.Idle())
	}
	send(r, 1) // a closed cache still delivers, on a connection of its own
	if r.Conns.Idle() != 0 {
		t.Error("a closed cache kept a connection")
	}
}

// TestRelayCacheIdleTime: an idle connection is closed after IdleTime.
func TestRelayCacheIdleTime(t *testing.T) {
	t.Parallel()
	s := smtptest.Start(t, smtptest.Options{})
	r := relayFor(s, "starttls")
	r.Conns = NewConnCache()
	r.Conns.IdleTime = 100 * time.Millisecond
	if _, err := r.Send(context.Background(), "bounces@b.test", []string{"c@d.test"}, testMsg); err != nil {
		t.Fatal(err)
	}
	if r.Conns.Idle() != 1 {
		t.Fatalf("%d idle connections after a delivery, want 1", r.Conns.Idle())
	}
	for deadline := time.Now().Add(5 * time.Second); r.Conns.Idle() != 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the idle connection was never closed")
		}
	}
}

// TestRelayReuseRetriesAStaleConnection: a relay that stops serving a
// reused connection before taking the message (421 at MAIL, as one with a
// per-connection limit does) costs no delivery: it goes out on a new
// connection. A real refusal (550) is not retried.
func TestRelayReuseRetriesAStaleConnection(t *testing.T) {
	t.Parallel()
	s := smtptest.Start(t, smtptest.Options{})
	r := relayFor(s, "starttls")
	r.Conns = NewConnCache()
	defer r.Conns.Close()
	ctx := context.Background()
	if _, err := r.Send(ctx, "bounces@b.test", []string{"c@d.test"}, testMsg); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	s.Reply(func(stage string) error {
		var err error
		if stage == "mail" {
			once.Do(func() { err = &smtp.SMTPError{Code: 421, Message: "too many messages on this connection"} })
		}
		return err
	})
	if _, err := r.Send(ctx, "bounces@b.test", []string{"c@d.test"}, testMsg); err != nil {
		t.Fatalf("after a 421 on the reused connection: %v", err)
	}
	if got, n := s.Sessions(), s.Count(); got != 2 || n != 2 {
		t.Errorf("%d connections, %d messages; want 2 and 2", got, n)
	}
	s.Reply(func(stage string) error {
		if stage == "rcpt" {
			return &smtp.SMTPError{Code: 550, Message: "no such user"}
		}
		return nil
	})
	_, err := r.Send(ctx, "bounces@b.test", []string{"nobody@d.test"}, testMsg)
	var de *DeliveryError
	if !errors.As(err, &de) || !de.Permanent {
		t.Errorf("a 550 on a reused connection: %v, want a permanent failure", err)
	}
	if got := s.Sessions(); got != 2 {
		t.Errorf("a 550 was retried on a new connection (%d connections)", got)
	}
}
