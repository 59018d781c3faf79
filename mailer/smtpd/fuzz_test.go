package smtpd

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/rs/zerolog"
)

// sessionFuzz is one server for a whole fuzzing run (each worker process
// makes its own); the fuzz function's calls in a process run one at a time.
type sessionFuzz struct {
	srv         *Server
	relay, sub  string
	mu          sync.Mutex
	accepted    []accepted
	initErr     error
	initialized sync.Once
}

var fuzzServer sessionFuzz

func (z *sessionFuzz) init(t *testing.T) {
	z.initialized.Do(func() {
		cfg, _ := testTLS(t)
		z.srv = New(Options{
			Hostname: hostName, TLSConfig: cfg, Logger: zerolog.Nop(),
			Limits:       func() Limits { return Limits{MaxConnsPerIP: 1000, MaxConns: 1000, MaxMessageBytes: 1 << 20} },
			RelayAllowed: func(ip netip.Addr) bool { return ip.IsLoopback() },
			Authenticate: func(context.Context, string, string, netip.Addr) (*Principal, error) {
				return nil, errors.New("no")
			},
			LocalDomain: func(d string) bool { return d == localDom },
			CheckSender: func(context.Context, *Envelope) error { return nil },
			Accept: func(_ context.Context, e *Envelope, m *Message) error {
				z.mu.Lock()
				defer z.mu.Unlock()
				z.accepted = append(z.accepted, accepted{*e, m})
				return nil
			},
		})
		for _, p := range []Port{PortRelay, PortSubmission} {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				z.initErr = err
				return
			}
			go z.srv.Serve(l, p)
			if p == PortRelay {
				z.relay = l.Addr().String()
			} else {
				z.sub = l.Addr().String()
			}
		}
	})
}

func (z *sessionFuzz) take() []accepted {
	z.mu.Lock()
	defer z.mu.Unlock()
	a := z.accepted
	z.accepted = nil
	return a
}

// FuzzSession sends arbitrary client bytes and checks: no panic; every reply line is well formed; every 250 "Queued
// as" matches exactly one Accept; and every message Accept got is clean
// (no bare CR, LF or NUL, well-formed MIME) and was sent whole, ended by a
// real CRLF.CRLF.
func FuzzSession(f *testing.F) {
	seeds := []string{
		"EHLO a\r\nMAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n",
		"EHLO a\r\nMAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.org>\r\nBDAT 12 LAST\r\nSubject: x\r\n\r\nQUIT\r\n",
		"HELO a\r\nMAIL FROM:<> SIZE=99\r\nRCPT TO:<\"a@b\"@example.org>\r\nRCPT TO:<@x,@y:u@z.example>\r\nRSET\r\nNOOP\r\nQUIT\r\n",
		"EHLO a\r\nAUTH PLAIN AGEAYg==\r\nAUTH LOGIN\r\n*\r\nSTARTTLS\r\n\x16\x03\x01garbage\r\n",
		"\x01\x02\x03\x04\r\nEHLO \xff\r\r\nVRFY x\r\n",
		harnessSeed,
	}
	for _, s := range seeds {
		f.Add(byte(0), []byte(s))
		f.Add(byte(2), []byte(s))
	}
	for _, sm := range smuggling {
		f.Add(byte(2), []byte("EHLO a\r\nMAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\nSubject: a\r\n\r\nx"+sm.seq+smuggled))
	}
	// mode: bit 0 picks the port (relay, submission); bit 1 makes the
	// client wait for the reply to each DATA line before sending on, as a
	// client must (otherwise all of input goes at once).
	f.Fuzz(func(t *testing.T, mode byte, input []byte) {
		fuzzServer.init(t)
		if fuzzServer.initErr != nil {
			t.Fatal(fuzzServer.initErr)
		}
		addr := fuzzServer.relay
		if mode&1 == 1 {
			addr = fuzzServer.sub
		}
		before := fuzzServer.srv.Panics()
		out := converse(t, addr, input, mode&2 == 2)
		if p := fuzzServer.srv.Panics(); p != before {
			t.Fatalf("%d panics", p-before)
		}
		queued := checkReplies(t, out)
		got := fuzzServer.take()
		if len(got) != len(queued) {
			t.Fatalf("Accept called %d times, %d replies say queued", len(got), len(queued))
		}
		for i, a := range got {
			if a.env.ID != queued[i] {
				t.Fatalf("queued as %q, Accept got %q", queued[i], a.env.ID)
			}
			checkAccepted(t, input, a)
		}
	})
}

const harnessSeed = "EHLO a\r\nMAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n" +
	"Subject: x\r\n\r\nhi\r\n..dot\r\n.\r\nQUIT\r\n"

// The harness must be able to get a message accepted, or the fuzz checks
// of accepted messages prove nothing.
func TestFuzzHarnessReachesAccept(t *testing.T) {
	fuzzServer.init(t)
	fuzzServer.take()
	out := converse(t, fuzzServer.relay, []byte(harnessSeed), true)
	queued := checkReplies(t, out)
	got := fuzzServer.take()
	if len(queued) != 1 || len(got) != 1 || string(got[0].msg.Raw) != "Subject: x\r\n\r\nhi\r\n.dot\r\n" {
		t.Fatalf("queued %v, accepted %d; server said %q", queued, len(got), out)
	}
	checkAccepted(t, []byte(harnessSeed), got[0])
}

// converse plays input to addr, with a half-close at the end, and returns
// everything the server said. With waitData, it sends input in pieces that
// end with a DATA line and waits for the server to answer (354, or a
// pause) before the next.
func converse(t *testing.T, addr string, input []byte, waitData bool) []byte {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))

	var (
		mu   sync.Mutex
		out  []byte
		more = make(chan struct{}, 1)
		done = make(chan error, 1)
	)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			mu.Lock()
			out = append(out, buf[:n]...)
			mu.Unlock()
			select {
			case more <- struct{}{}:
			default:
			}
			if err != nil {
				done <- err
				return
			}
		}
	}()
	pieces := [][]byte{input}
	if waitData {
		pieces = splitAfterData(input)
	}
	// The server may hang up before it has read everything: writes fail.
	for i, p := range pieces {
		mu.Lock()
		seen := len(out)
		mu.Unlock()
		if _, err := c.Write(p); err != nil {
			break
		}
		if i == len(pieces)-1 {
			break
		}
		for answered := false; !answered; {
			select {
			case <-more:
				mu.Lock()
				answered = bytes.Contains(out[seen:], []byte("354 "))
				mu.Unlock()
			case <-time.After(100 * time.Millisecond):
				answered = true
			}
		}
	}
	c.(*net.TCPConn).CloseWrite()
	err = <-done
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server did not end the session; it said %q", out)
	}
	mu.Lock()
	defer mu.Unlock()
	return out
}

// splitAfterData cuts b after each line that is a DATA command.
func splitAfterData(b []byte) [][]byte {
	var pieces [][]byte
	start := 0
	for i := 0; i < len(b); {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			break
		}
		line := bytes.TrimRight(b[i:i+j], "\r")
		i += j + 1
		if bytes.EqualFold(line, []byte("DATA")) {
			pieces = append(pieces, b[start:i])
			start = i
		}
	}
	return append(pieces, b[start:])
}

// checkReplies checks that out is whole reply lines, each a 2xx–5xx code
// then a space or a dash, in printable ASCII; it returns the IDs of the
// 250 "Queued as" replies.
func checkReplies(t *testing.T, out []byte) []string {
	var queued []string
	if i := bytes.Index(out, []byte("220 2.0.0 Ready to start TLS\r\n")); i >= 0 {
		out = out[:i+len("220 2.0.0 Ready to start TLS\r\n")] // then TLS records, or the handshake's failure
	}
	if len(out) > 0 && !bytes.HasSuffix(out, []byte("\r\n")) {
		t.Fatalf("output does not end with CRLF: %q", out)
	}
	for line := range strings.SplitSeq(strings.TrimSuffix(string(out), "\r\n"), "\r\n") {
		if len(out) == 0 {
			break
		}
		if len(line) < 4 || line[0] < '2' || line[0] > '5' || !isDigit(line[1]) || !isDigit(line[2]) ||
			(line[3] != ' ' && line[3] != '-') {
			t.Fatalf("malformed reply line %q in %q", line, out)
		}
		for i := 0; i < len(line); i++ {
			if c := line[i]; c != '\t' && (c < ' ' || c > '~') {
				t.Fatalf("reply line %q has byte %#x", line, c)
			}
		}
		if id, ok := strings.CutPrefix(line, "250 2.0.0 Queued as "); ok {
			queued = append(queued, id)
		}
	}
	return queued
}

// checkAccepted checks one message Accept got against the client's input.
func checkAccepted(t *testing.T, input []byte, a accepted) {
	raw := a.msg.Raw
	if p := bareProblem(raw); p != "" {
		t.Fatalf("accepted a message with a %s: %q", p, raw)
	}
	if _, err := ParseMessage(raw); err != nil {
		t.Fatalf("accepted a message ParseMessage refuses: %v", err)
	}
	if len(a.env.To) == 0 {
		t.Fatal("accepted a message without recipients")
	}
	for _, rcpt := range append([]string{a.env.From}, a.env.To...) {
		if rcpt == "" {
			continue
		}
		if _, err := checkAddress(rcpt, func(d string) bool { return d == localDom }); err != nil {
			t.Fatalf("accepted address %q: %v", rcpt, err)
		}
	}
	// Sent whole: through DATA, dot-stuffed and ended by CRLF.CRLF (or the
	// start of the data), or through BDAT as is.
	stuffed := strings.ReplaceAll("\r\n"+string(raw), "\r\n.", "\r\n..")[2:]
	viaData := bytes.Contains(input, []byte("\r\n"+stuffed+".\r\n")) || (len(raw) == 0 && bytes.Contains(input, []byte("\r\n.\r\n")))
	bdat := bytes.Contains(bytes.ToUpper(input), []byte("BDAT")) // chunks are not contiguous in input
	if !viaData && !bdat {
		t.Fatalf("accepted %q, which the client did not send as one message", raw)
	}
}

// FuzzParseMessage: no panic; an error is a MalformedError with a fixed
// text; a message has decoded, well-formed parts.
func FuzzParseMessage(f *testing.F) {
	f.Add([]byte(goodMultipart))
	f.Add([]byte(testBody))
	f.Add([]byte(nested(5)))
	f.Add([]byte(manyParts(3)))
	for _, tt := range malformedMIME {
		if len(tt.raw) < 10000 {
			f.Add([]byte(tt.raw))
		}
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := ParseMessage(raw)
		if err != nil {
			var me *MalformedError
			if !errors.As(err, &me) || !strings.HasPrefix(err.Error(), "malformed MIME: ") || strings.ContainsAny(me.Reason, "\r\n") {
				t.Fatalf("error %q is not a MalformedError", err)
			}
			return
		}
		if m.Size != int64(len(raw)) || !bytes.Equal(m.Raw, raw) {
			t.Fatal("Raw and Size are not the input")
		}
		if !utf8.ValidString(m.Text) || !utf8.ValidString(m.HTML) || !utf8.ValidString(m.Subject) {
			t.Fatal("Text, HTML or Subject is not UTF-8")
		}
		if strings.ContainsFunc(m.Subject, func(r rune) bool { return r < ' ' || r == 0x7f }) {
			t.Fatalf("Subject %q has control characters", m.Subject)
		}
		for _, p := range m.Parts {
			if p.ContentType == "" || p.ContentType != strings.ToLower(p.ContentType) {
				t.Fatalf("part content type %q", p.ContentType)
			}
			if strings.ContainsAny(p.Filename, "/\\\x00\r\n") || len(p.Filename) > 255 {
				t.Fatalf("file name %q", p.Filename)
			}
		}
	})
}
