package mailer

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Relay delivers through the organization's mail server. TLS is always on:
// STARTTLS is required (a relay that does not offer it is an error, never a
// silent plaintext fallback), or the connection starts in TLS. AUTH is sent
// only inside TLS.
type Relay struct {
	Host      string
	Port      int
	Security  string // "starttls" or "tls"
	Username  string
	Password  string
	HelloName string         // our name in EHLO
	RootCAs   *x509.CertPool // nil: the system's roots
	// Sessions resumes TLS sessions across deliveries, which saves the
	// handshake's public-key work on every notification after the first.
	Sessions tls.ClientSessionCache
	// Conns, when set, keeps connections open between deliveries.
	Conns *ConnCache
	// Timeouts; zero means the RFC 5321 values (5 minutes per command,
	// 10 minutes after the final dot) and 30 seconds to connect.
	DialTimeout, CommandTimeout, DataTimeout time.Duration
}

// DeliveryError is a failed delivery: the peer's reply when there was one.
type DeliveryError struct {
	Permanent bool   // a 5xx reply: retrying will not help
	Reply     string // what the peer said, e.g. "550 5.1.1 no such user"
	Err       error
}

func (e *DeliveryError) Error() string {
	if e.Reply != "" {
		return e.Reply
	}
	return e.Err.Error()
}

func (e *DeliveryError) Unwrap() error { return e.Err }

// classify turns an SMTP or network error into a DeliveryError.
func classify(stage string, err error) error {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		reply := strconv.Itoa(se.Code)
		if se.EnhancedCode != smtp.NoEnhancedCode && se.EnhancedCode != (smtp.EnhancedCode{}) {
			reply += fmt.Sprintf(" %d.%d.%d", se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2])
		}
		reply += " " + oneLine(se.Message)
		return &DeliveryError{Permanent: se.Code >= 500, Reply: reply, Err: fmt.Errorf("%s: %w", stage, err)}
	}
	return &DeliveryError{Err: fmt.Errorf("%s: %w", stage, err)}
}

// Send delivers msg from the envelope sender to the recipients and returns
// the peer's reply to the final dot. With Conns it first tries an idle
// connection to the same relay (after RSET; one that fails there is
// dropped and the next tried, so a stale connection costs no delivery),
// and keeps the connection for the next message when all went well.
func (r Relay) Send(ctx context.Context, from string, to []string, msg []byte) (string, error) {
	if r.Conns != nil && ctx.Err() == nil {
		key := r.cacheKey()
		for c := r.Conns.take(key); c != nil; c = r.Conns.take(key) {
			stop := context.AfterFunc(ctx, func() { c.raw.SetDeadline(time.Now()) })
			if err := c.c.Reset(); err == nil {
				reply, err, sentDot := send(c.c, from, to, msg)
				// A reused connection the relay has given up on (closed, or
				// 421 after its per-connection limit) before the message was
				// handed over is dropped; the next one, or a new one, serves.
				if err == nil || sentDot || !staleConnection(err) || ctx.Err() != nil {
					r.release(c, stop, err)
					return reply, err
				}
			}
			stop()
			c.c.Close()
		}
	}
	c, err := r.dial(ctx)
	if err != nil {
		return "", err
	}
	stop := context.AfterFunc(ctx, func() { c.raw.SetDeadline(time.Now()) })
	reply, err := transact(c.c, r.helo(), r.auth(), from, to, msg)
	r.release(c, stop, err)
	return reply, err
}

// staleConnection says whether err is what a connection the peer no
// longer serves gives: no SMTP reply at all, or 421 (closing).
func staleConnection(err error) bool {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code == 421
	}
	return true
}

// release ends a delivery on c: the connection goes back to the cache
// when the delivery went through and the context did not interrupt it.
func (r Relay) release(c *cachedConn, stop func() bool, err error) {
	interrupted := !stop()
	switch {
	case err != nil || interrupted:
		c.c.Close()
	case r.Conns != nil:
		r.Conns.put(r.cacheKey(), c)
	default:
		_ = c.c.Quit()
		c.c.Close()
	}
}

// cacheKey names everything a connection was made with, so that a cached
// one is used only for the same relay, credentials and trust.
func (r Relay) cacheKey() string {
	sum := sha256.Sum256([]byte(r.Password))
	return fmt.Sprintf("%s|%d|%s|%s|%x|%p|%s", r.Host, r.Port, r.Security, r.Username, sum[:8], r.RootCAs, r.helo())
}

func (r Relay) helo() string {
	if r.HelloName == "" {
		return "localhost"
	}
	return r.HelloName
}

func (r Relay) auth() sasl.Client {
	if r.Username == "" {
		return nil
	}
	return sasl.NewPlainClient("", r.Username, r.Password)
}

// dial connects to the relay and sets up TLS; the client has not said
// EHLO yet.
func (r Relay) dial(ctx context.Context) (*cachedConn, error) {
	addr := net.JoinHostPort(r.Host, strconv.Itoa(r.Port))
	d := net.Dialer{Timeout: orDefault(r.DialTimeout, 30*time.Second)}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, classify("connect to "+addr, err)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	tlsConfig := &tls.Config{ServerName: r.Host, RootCAs: r.RootCAs, MinVersion: tls.VersionTLS12, ClientSessionCache: r.Sessions}
	var c *smtp.Client
	switch r.Security {
	case "tls":
		tc := tls.Client(conn, tlsConfig)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, classify("TLS with "+addr, err)
		}
		c = smtp.NewClient(tc)
	case "starttls":
		p, err := greet(conn, r.helo(), orDefault(r.CommandTimeout, 5*time.Minute))
		if err == nil && !p.offersTLS {
			err = errors.New("the relay does not offer STARTTLS, which is required (set mail.relay_security to tls for implicit TLS)")
		}
		var tc net.Conn
		if err == nil {
			tc, err = p.startTLS(tlsConfig)
		}
		if err != nil {
			conn.Close()
			return nil, classify("STARTTLS with "+addr, err)
		}
		c = smtp.NewClient(tc)
	default:
		conn.Close()
		return nil, &DeliveryError{Err: fmt.Errorf("relay security %q is not starttls or tls", r.Security)}
	}
	c.CommandTimeout = orDefault(r.CommandTimeout, 5*time.Minute)
	c.SubmissionTimeout = orDefault(r.DataTimeout, 10*time.Minute)
	return &cachedConn{c: c, raw: conn, born: time.Now()}, nil
}

// transact runs one mail transaction on a newly connected client: EHLO,
// AUTH when given, then send; it returns the reply to the final dot. The
// connection stays open.
func transact(c *smtp.Client, helo string, auth sasl.Client, from string, to []string, msg []byte) (string, error) {
	if err := c.Hello(helo); err != nil {
		return "", classify("EHLO", err)
	}
	if auth != nil {
		if err := c.Auth(auth); err != nil {
			return "", classify("AUTH", err)
		}
	}
	reply, err, _ := send(c, from, to, msg)
	return reply, err
}

// send is MAIL, RCPT and DATA on a client that has said EHLO. sentDot says
// whether it got as far as ending the data, after which the peer may have
// taken the message whatever went wrong.
func send(c *smtp.Client, from string, to []string, msg []byte) (reply string, err error, sentDot bool) {
	// RET=HDRS where the peer supports DSN: a bounce carries the headers
	// back (enough to match it), not the notification.
	if err := c.Mail(from, &smtp.MailOptions{Return: smtp.DSNReturnHeaders}); err != nil {
		return "", classify("MAIL FROM", err), false
	}
	for _, rcpt := range to {
		if err := c.Rcpt(rcpt, nil); err != nil {
			return "", classify("RCPT TO", err), false
		}
	}
	w, err := c.Data()
	if err != nil {
		return "", classify("DATA", err), false
	}
	if _, err := w.Write(msg); err != nil {
		return "", classify("DATA", err), false
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		return "", classify("end of DATA", err), true
	}
	return "250 " + oneLine(resp.StatusText), nil, true
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// preamble is a connection after the greeting and our EHLO, before the
// client library takes over. go-smtp's own STARTTLS introduces itself as
// "localhost"; reading the greeting ourselves lets us give our real name and
// see whether STARTTLS is offered before deciding.
type preamble struct {
	conn      net.Conn
	tp        *textproto.Conn
	br        *bufio.Reader
	offersTLS bool
	timeout   time.Duration
}

// greet reads the greeting and says EHLO.
func greet(conn net.Conn, helo string, timeout time.Duration) (*preamble, error) {
	conn.SetDeadline(time.Now().Add(timeout))
	defer conn.SetDeadline(time.Time{})
	br := bufio.NewReader(conn)
	p := &preamble{conn: conn, br: br, timeout: timeout, tp: textproto.NewConn(struct {
		io.Reader
		io.Writer
		io.Closer
	}{br, conn, conn})}
	if _, _, err := p.tp.ReadResponse(220); err != nil {
		return nil, smtpErr(err)
	}
	if err := p.tp.PrintfLine("EHLO %s", helo); err != nil {
		return nil, err
	}
	_, ext, err := p.tp.ReadResponse(250)
	if err != nil {
		return nil, smtpErr(err)
	}
	for _, line := range strings.Split(ext, "\n") {
		if strings.EqualFold(strings.Fields(line + " x")[0], "STARTTLS") {
			p.offersTLS = true
		}
	}
	return p, nil
}

// startTLS says STARTTLS and returns the TLS connection, ready for a client
// that expects a greeting. Bytes the peer sent before the TLS handshake (a
// STARTTLS injection) are refused.
func (p *preamble) startTLS(config *tls.Config) (net.Conn, error) {
	p.conn.SetDeadline(time.Now().Add(p.timeout))
	defer p.conn.SetDeadline(time.Time{})
	if err := p.tp.PrintfLine("STARTTLS"); err != nil {
		return nil, err
	}
	if _, _, err := p.tp.ReadResponse(220); err != nil {
		return nil, smtpErr(err)
	}
	if p.br.Buffered() > 0 {
		return nil, errors.New("the peer sent data before the TLS handshake")
	}
	tc := tls.Client(p.conn, config)
	if err := tc.Handshake(); err != nil {
		return nil, err
	}
	// go-smtp expects a greeting; after STARTTLS there is none (RFC 3207).
	return &greetedConn{Conn: tc, greeting: strings.NewReader("220 resumed after STARTTLS\r\n")}, nil
}

// plain returns the connection without TLS, for a peer that offers none
// where TLS is opportunistic.
func (p *preamble) plain() (net.Conn, error) {
	if p.br.Buffered() > 0 {
		return nil, errors.New("the peer sent data it was not asked for")
	}
	return &greetedConn{Conn: p.conn, greeting: strings.NewReader("220 again\r\n")}, nil
}

// greetedConn replays a greeting before the TLS stream.
type greetedConn struct {
	net.Conn
	greeting *strings.Reader
}

func (g *greetedConn) Read(p []byte) (int, error) {
	if g.greeting.Len() > 0 {
		return g.greeting.Read(p)
	}
	return g.Conn.Read(p)
}

// smtpErr turns a textproto reply error into go-smtp's error type, so that
// classify sees its code.
func smtpErr(err error) error {
	var te *textproto.Error
	if errors.As(err, &te) {
		return &smtp.SMTPError{Code: te.Code, Message: te.Msg}
	}
	return err
}
