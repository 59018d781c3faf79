package smtpd

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net"
	"net/netip"
	netsmtp "net/smtp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sealpost/sealpost/mailer/smtptest"

	"github.com/sealpost/sealpost/internal/clocktest"
)

// The fixture's accounts and domains.
const (
	hostName  = "mx.sealpost.test"
	localDom  = "example.org"
	aliceUser = "alice"
	alicePass = "correct horse"
	aliceAddr = "alice@example.org"
)

var alice = Principal{UserID: "u-alice", Address: aliceAddr}

// fixture is a Server on loopback with both ports, recording what Accept
// got. Its CheckSender is a small policy: on submission the sender must be
// the principal's address, on the relay port an address at example.org.
type fixture struct {
	t       testing.TB
	srv     *Server
	relay   string // host:port
	sub     string
	roots   *x509.CertPool
	logs    *syncBuffer
	clock   *clocktest.Clock
	panics  int64 // how many panics the test expects
	limitMu sync.Mutex
	lim     Limits

	mu       sync.Mutex
	accepted []accepted
}

type accepted struct {
	env Envelope
	msg *Message
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var (
	certOnce sync.Once
	testCert *tls.Certificate
	testPool *x509.CertPool
)

func testTLS(t testing.TB) (*tls.Config, *x509.CertPool) {
	certOnce.Do(func() {
		ca := smtptest.NewCA(t)
		testCert = ca.Issue(t, "localhost")
		testPool = ca.Pool
	})
	return &tls.Config{Certificates: []tls.Certificate{*testCert}, MinVersion: tls.VersionTLS12}, testPool
}

// start runs a fixture; mod changes its options before New.
func start(t testing.TB, mod ...func(*Options)) *fixture {
	t.Helper()
	cfg, pool := testTLS(t)
	f := &fixture{t: t, roots: pool, logs: &syncBuffer{}, clock: clocktest.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))}
	opts := Options{
		Hostname:  hostName,
		TLSConfig: cfg,
		Logger:    zerolog.New(f.logs),
		Limits: func() Limits {
			f.limitMu.Lock()
			defer f.limitMu.Unlock()
			return f.lim
		},
		RelayAllowed: func(ip netip.Addr) bool { return ip.IsLoopback() },
		Authenticate: func(_ context.Context, user, pass string, _ netip.Addr) (*Principal, error) {
			if user == aliceUser && pass == alicePass {
				p := alice
				return &p, nil
			}
			return nil, fmt.Errorf("no such user or wrong password")
		},
		LocalDomain: func(d string) bool { return d == localDom || d == "intranet" },
		CheckSender: func(_ context.Context, e *Envelope) error {
			switch {
			case e.Auth != nil && e.From != e.Auth.Address:
				return &Reject{Code: 550, Enhanced: [3]int{5, 7, 1}, Message: "Sender address is not yours"}
			case e.Auth == nil && !strings.HasSuffix(e.From, "@"+localDom):
				return &Reject{Code: 550, Enhanced: [3]int{5, 7, 1}, Message: "Unknown sender"}
			}
			return nil
		},
		Accept: func(_ context.Context, e *Envelope, m *Message) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.accepted = append(f.accepted, accepted{*e, m})
			return nil
		},
		ShutdownTimeout: 5 * time.Second,
		Now:             f.clock.Now,
	}
	for _, m := range mod {
		m(&opts)
	}
	f.srv = New(opts)
	f.relay = f.serve(PortRelay)
	f.sub = f.serve(PortSubmission)
	t.Cleanup(func() {
		if err := f.srv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if got := f.srv.Panics(); got != f.panics {
			t.Errorf("Panics() = %d, want %d; log:\n%s", got, f.panics, f.logs)
		}
	})
	return f
}

func (f *fixture) serve(port Port) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- f.srv.Serve(l, port) }()
	f.t.Cleanup(func() {
		select {
		case err := <-done:
			if err != nil && err != ErrServerClosed { // Close may come before Serve starts
				f.t.Errorf("Serve(%s): %v", port, err)
			}
		case <-time.After(10 * time.Second):
			f.t.Errorf("Serve(%s) did not return after Close", port)
		}
	})
	return l.Addr().String()
}

func (f *fixture) setLimits(l Limits) {
	f.limitMu.Lock()
	defer f.limitMu.Unlock()
	f.lim = l
}

func (f *fixture) messages() []accepted {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]accepted(nil), f.accepted...)
}

// raw is a hand-driven client for scripts that real clients will not send.
type raw struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
}

func dialRaw(t testing.TB, addr string) *raw {
	t.Helper()
	return dialRawFrom(t, addr, "")
}

// dialRawFrom dials from a given loopback address ("" for any).
func dialRawFrom(t testing.TB, addr, from string) *raw {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &raw{t: t, conn: c, r: bufio.NewReader(c)}
}

func (r *raw) send(s string) {
	r.t.Helper()
	r.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.conn.Write([]byte(s)); err != nil {
		r.t.Fatalf("send %q: %v", s, err)
	}
}

// reply reads one reply, all its lines; code 0 means the connection ended.
func (r *raw) reply() (int, string) {
	r.t.Helper()
	r.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var lines []string
	for {
		line, err := r.r.ReadString('\n')
		if err != nil {
			if len(lines) == 0 {
				return 0, err.Error()
			}
			r.t.Fatalf("reply cut short after %q: %v", lines, err)
		}
		if !strings.HasSuffix(line, "\r\n") || len(line) < 5 {
			r.t.Fatalf("malformed reply line %q", line)
		}
		line = strings.TrimSuffix(line, "\r\n")
		lines = append(lines, line[4:])
		if line[3] == ' ' {
			code, err := strconv.Atoi(line[:3])
			if err != nil {
				r.t.Fatalf("malformed reply line %q", line)
			}
			return code, strings.Join(lines, "\n")
		}
	}
}

// expect reads a reply and checks its code and that it has want in it.
func (r *raw) expect(code int, want string) string {
	r.t.Helper()
	got, text := r.reply()
	if got != code || !strings.Contains(text, want) {
		r.t.Fatalf("reply %d %q, want %d with %q", got, text, code, want)
	}
	return text
}

// cmd sends a line and checks the reply.
func (r *raw) cmd(line string, code int, want string) string {
	r.t.Helper()
	r.send(line + "\r\n")
	return r.expect(code, want)
}

// hello reads the greeting and says EHLO.
func (r *raw) hello() string {
	r.t.Helper()
	r.expect(220, hostName)
	return r.cmd("EHLO client.example.org", 250, "")
}

// startTLS upgrades the connection and says EHLO again.
func (r *raw) startTLS(roots *x509.CertPool) string {
	r.t.Helper()
	r.cmd("STARTTLS", 220, "")
	tc := tls.Client(r.conn, &tls.Config{ServerName: "localhost", RootCAs: roots})
	tc.SetDeadline(time.Now().Add(5 * time.Second))
	if err := tc.Handshake(); err != nil {
		r.t.Fatalf("TLS handshake: %v", err)
	}
	r.conn = tc
	r.r = bufio.NewReader(tc)
	return r.cmd("EHLO client.example.org", 250, "")
}

// login does STARTTLS and AUTH PLAIN as alice on the submission port.
func (r *raw) login(roots *x509.CertPool) {
	r.t.Helper()
	r.hello()
	r.startTLS(roots)
	r.cmd("AUTH PLAIN "+plain("", aliceUser, alicePass), 235, "")
}

// closed says whether the server hung up.
func (r *raw) closed() bool {
	r.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	b := make([]byte, 1)
	_, err := r.r.Read(b)
	return err != nil
}

// sendPlain sends one message with net/smtp without STARTTLS (its
// SendMail would use STARTTLS, verifying against the system's roots).
func sendPlain(t testing.TB, addr, from string, to []string, body string) error {
	t.Helper()
	c, err := netsmtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("client.example.org"); err != nil {
		return err
	}
	if err := c.Mail(from); err != nil {
		return err
	}
	for _, a := range to {
		if err := c.Rcpt(a); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte(body)); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

func dialTimeout(addr string) (net.Conn, error) { return net.DialTimeout("tcp", addr, time.Second) }

func newReader(c net.Conn) *bufio.Reader { return bufio.NewReader(c) }

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func plain(identity, user, pass string) string {
	return b64(identity + "\x00" + user + "\x00" + pass)
}

const testBody = "From: Alice <alice@example.org>\r\nTo: bob@example.org\r\nSubject: hello\r\nMessage-ID: <1@example.org>\r\n\r\nHi Bob.\r\n"
