package smtpd

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
)

// conn is one client connection: the net.Conn that go-smtp reads and writes
// (under TLS once STARTTLS is done), with this package's deadlines, limits
// and shutdown. go-smtp's Server fields are shared by all its connections
// and read without locks, while Limits are per connection, so each
// connection gets its own go-smtp Server (cheap: a struct and a map); that
// also makes go-smtp's Debug hook per connection, which is what the data tap
// needs.
type conn struct {
	net.Conn
	srv    *Server
	port   Port
	ip     netip.Addr
	key    netip.Addr // ip as counted for per-address limits (IPv6 by /64)
	lim    Limits
	ctx    context.Context // cancelled when the connection ends
	cancel context.CancelFunc

	mu       sync.Mutex
	stopping bool      // Close was called: end at the next command read
	inData   bool      // inside Session.Data
	dataEnd  time.Time // the DATA phase's deadline

	closeAfterWrite atomic.Bool // hang up once the next reply is written
	closeOnce       sync.Once

	tap tap // go-smtp's Debug writer: sees the plaintext as it is read
}

// admit applies the connection limits and the relay allowlist, then hands
// the connection to go-smtp.
func (s *Server) admit(raw net.Conn, port Port) {
	lim := s.limits()
	ip := remoteIP(raw)
	key := addrKey(ip)

	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		raw.Close()
		return
	}
	refusal := ""
	switch {
	case s.total >= lim.MaxConns:
		refusal = "421 4.3.2 Too many connections, try again later"
	case s.perIP[key] >= lim.MaxConnsPerIP:
		refusal = "421 4.7.0 Too many connections from your address, try again later"
	}
	if refusal != "" {
		s.mu.Unlock()
		s.log.Info().Str("port", string(port)).Str("remote_ip", ip.String()).Msg("smtp connection refused: too many connections")
		// A fresh socket's send buffer takes one short line without blocking.
		raw.SetWriteDeadline(time.Now().Add(time.Second))
		raw.Write([]byte(refusal + "\r\n"))
		raw.Close()
		return
	}
	ctx, cancel := context.WithCancel(s.ctx)
	c := &conn{Conn: raw, srv: s, port: port, ip: ip, key: key, lim: lim, ctx: ctx, cancel: cancel}
	s.total++
	s.perIP[key]++
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()

	if port == PortRelay && !c.relayAllowed() {
		go c.refuseRelay()
		return
	}
	srv := smtp.NewServer(&backend{c: c})
	srv.Domain = s.opts.Hostname
	srv.TLSConfig = s.opts.TLSConfig
	srv.MaxMessageBytes = lim.MaxMessageBytes
	srv.MaxRecipients = lim.MaxRecipients
	srv.MaxLineLength = lim.MaxLineLength
	// Non-zero so that go-smtp sets a deadline before every command and
	// reply; conn.SetReadDeadline turns each into this connection's own.
	srv.ReadTimeout, srv.WriteTimeout = lim.ReadTimeout, lim.WriteTimeout
	// The session decides about AUTH: it answers 530 before STARTTLS, as
	// RFC 3207 wants, where go-smtp would answer 523.
	srv.AllowInsecureAuth = true
	srv.Debug = &c.tap
	srv.ErrorLog = errorLog{c}
	// Serve takes the one connection, starts its goroutine and returns
	// when the listener says it is done.
	_ = srv.Serve(&oneConn{c: c})
}

// release undoes admit's accounting; conn.Close calls it once.
func (s *Server) release(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.total--
	if s.perIP[c.key]--; s.perIP[c.key] <= 0 {
		delete(s.perIP, c.key)
	}
	s.mu.Unlock()
	s.wg.Done()
}

// relayAllowed asks the integrator, counting a panic as a no.
func (c *conn) relayAllowed() bool {
	return c.guard("relay_allowed", func() error {
		if !c.srv.opts.RelayAllowed(c.ip) {
			return errRelayDenied
		}
		return nil
	}) == nil
}

// refuseRelay answers a client that may not use the relay port: 554 instead
// of the greeting, then, as RFC 5321 §3.1 asks, 503 to anything but QUIT
// for a little while.
func (c *conn) refuseRelay() {
	defer c.Close()
	c.srv.log.Info().Str("port", string(c.port)).Str("remote_ip", c.ip.String()).Int("code", 554).Msg("smtp connection refused: relaying not allowed")
	c.SetWriteDeadline(time.Now())
	if _, err := c.Write([]byte("554 5.7.1 Relaying is not allowed from your address\r\n")); err != nil {
		return
	}
	br := bufio.NewReaderSize(c.Conn, 1024)
	for range 10 {
		c.mu.Lock()
		d := time.Now().Add(min(c.lim.ReadTimeout, 30*time.Second))
		if c.stopping {
			d = time.Unix(1, 0)
		}
		c.Conn.SetReadDeadline(d)
		c.mu.Unlock()
		line, err := br.ReadSlice('\n')
		if err != nil {
			return
		}
		reply := "503 5.5.1 Bad sequence of commands"
		if cmd := strings.ToUpper(strings.TrimSpace(string(line))); cmd == "QUIT" {
			reply = "221 2.0.0 Bye"
		}
		c.SetWriteDeadline(time.Now())
		if _, err := c.Write([]byte(reply + "\r\n")); err != nil || strings.HasPrefix(reply, "221") {
			return
		}
	}
}

// SetReadDeadline is called by go-smtp before each command line with its
// own (server-wide) timeout; it becomes this connection's: ReadTimeout from
// now, no later than the end of the DATA phase, and at once when the server
// is shutting down (go-smtp then answers 421 and hangs up).
func (c *conn) SetReadDeadline(t time.Time) error {
	if t.IsZero() {
		return c.Conn.SetReadDeadline(t)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var d time.Time
	switch {
	case c.stopping && !c.inData:
		d = time.Unix(1, 0)
	case c.inData:
		d = time.Now().Add(c.lim.ReadTimeout)
		if c.dataEnd.Before(d) {
			d = c.dataEnd
		}
	default:
		d = time.Now().Add(c.lim.ReadTimeout)
	}
	return c.Conn.SetReadDeadline(d)
}

// SetWriteDeadline: WriteTimeout from now, for each reply.
func (c *conn) SetWriteDeadline(t time.Time) error {
	if t.IsZero() {
		return c.Conn.SetWriteDeadline(t)
	}
	return c.Conn.SetWriteDeadline(time.Now().Add(c.lim.WriteTimeout))
}

// SetDeadline sets both.
func (c *conn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

// Write sends a reply (or, after STARTTLS, a TLS record). A plaintext reply
// has its control and 8-bit characters replaced: go-smtp echoes a few bytes
// of the client's input (an unknown command, the EHLO name). After a write,
// the connection hangs up if a refusal asked for it.
func (c *conn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(printableReply(p))
	if c.closeAfterWrite.Load() {
		c.Close()
	}
	return n, err
}

// printableReply returns p with bytes outside printable ASCII (other than
// the line ends) replaced by '?', if p is a plaintext reply: three digits
// first and CRLF last. TLS records start with a byte below 0x18 and are
// never touched.
func printableReply(p []byte) []byte {
	if len(p) < 5 || !isDigit(p[0]) || !isDigit(p[1]) || !isDigit(p[2]) || !bytes.HasSuffix(p, []byte("\r\n")) {
		return p
	}
	var out []byte
	for i, b := range p {
		ok := b == '\t' || (b >= ' ' && b < 0x7f) ||
			(b == '\r' && i+1 < len(p) && p[i+1] == '\n') || (b == '\n' && i > 0 && p[i-1] == '\r')
		if ok {
			continue
		}
		if out == nil {
			out = bytes.Clone(p)
		}
		out[i] = '?'
	}
	if out == nil {
		return p
	}
	return out
}

func isDigit(b byte) bool { return b >= '0' && b <= '9' }

// Close ends the connection once: it releases the connection's place in
// the limits and cancels its context.
func (c *conn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		err = c.Conn.Close()
		c.cancel()
		c.srv.release(c)
	})
	return err
}

// stop asks the connection to end at its next command read; a DATA phase
// under way is left to finish.
func (c *conn) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopping = true
	if !c.inData {
		c.Conn.SetReadDeadline(time.Unix(1, 0))
	}
}

// beginData starts the DATA phase: its deadline, and for DATA (not BDAT)
// the raw tap.
func (c *conn) beginData(bdat bool) {
	c.mu.Lock()
	c.inData = true
	c.dataEnd = time.Now().Add(c.lim.DataTimeout)
	c.Conn.SetReadDeadline(c.dataEnd)
	c.mu.Unlock()
	if !bdat {
		c.tap.begin()
	}
}

// endData ends the DATA phase and returns what the tap saw.
func (c *conn) endData(bdat bool) scan {
	c.mu.Lock()
	c.inData = false
	c.mu.Unlock()
	if bdat {
		return scan{}
	}
	return c.tap.end()
}

// guard is the connection's one recover point: every session entry and
// every integrator callback runs inside it. A panic is logged with its
// stack, counted, and answered 451.
func (c *conn) guard(stage string, f func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			c.srv.recovered(stage, c.ip, v)
			err = errTemporary
		}
	}()
	return f()
}

func (s *Server) recovered(stage string, ip netip.Addr, v any) {
	s.panics.Add(1)
	s.log.Error().Str("stage", stage).Str("remote_ip", ip.String()).
		Str("panic", fmt.Sprint(v)).Str("stack", string(debug.Stack())).Msg("smtp panic recovered")
}

// remoteIP is the client's address, IPv4 unmapped; invalid if the
// connection has none (a pipe).
func remoteIP(c net.Conn) netip.Addr {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	}
	ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// addrKey is the address the per-client limits count: IPv4 as is, IPv6 by
// its /64, which one end site usually holds whole.
func addrKey(ip netip.Addr) netip.Addr {
	if ip.Is6() {
		p, err := ip.Prefix(64)
		if err == nil {
			return p.Addr()
		}
	}
	return ip
}

// oneConn is a listener that yields one connection and then says it is
// closed, which ends go-smtp's Serve loop (the session goes on).
type oneConn struct{ c net.Conn }

func (l *oneConn) Accept() (net.Conn, error) {
	if l.c == nil {
		return nil, net.ErrClosed
	}
	c := l.c
	l.c = nil
	return c, nil
}

func (l *oneConn) Close() error   { return nil }
func (l *oneConn) Addr() net.Addr { return dummyAddr{} }

type dummyAddr struct{}

func (dummyAddr) Network() string { return "tcp" }
func (dummyAddr) String() string  { return "smtpd" }

// errorLog takes go-smtp's own reports: its recovered panics are counted.
type errorLog struct{ c *conn }

func (e errorLog) Printf(format string, v ...any) {
	text := fmt.Sprintf(format, v...)
	if strings.HasPrefix(format, "panic serving") {
		e.c.srv.panics.Add(1)
		e.c.srv.log.Error().Str("remote_ip", e.c.ip.String()).Str("panic", text).Msg("smtp panic recovered in go-smtp")
		return
	}
	e.c.srv.log.Debug().Str("remote_ip", e.c.ip.String()).Str("error", text).Msg("smtp connection error")
}

func (e errorLog) Println(v ...any) { e.Printf("%s", fmt.Sprintln(v...)) }
