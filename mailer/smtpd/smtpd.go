// Package smtpd is the gateway's SMTP listener: the relay port, where the
// organization's mail servers hand over mail, and the submission port, where
// users send with STARTTLS and AUTH. It speaks SMTP (through go-smtp), checks
// the envelope and the MIME structure, and leaves every decision about the
// message to the integrator's callbacks.
//
// Security properties:
//   - Never an open relay. On the relay port only clients that RelayAllowed
//     accepts get a session at all; on the submission port MAIL needs STARTTLS
//     and then AUTH. Everyone else is refused before RCPT. Addresses that try
//     relay hacks (%, !, an @ in a quoted local part, address literals) are
//     refused for everyone.
//   - A 250 after DATA only once Accept returned nil, which the integrator
//     promises means the message is durable.
//   - Accept never sees a message that holds a bare CR, a bare LF or a NUL,
//     nor one whose MIME structure is broken, nor a second message smuggled
//     inside the first (SMTP smuggling): only CRLF.CRLF ends the data, and the
//     raw bytes of the data are checked as they arrive (see tap.go).
package smtpd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Port names a listener's role.
type Port string

// The two ports.
const (
	PortRelay      Port = "relay"      // the organization's mail servers, by network
	PortSubmission Port = "submission" // users: STARTTLS, then AUTH
)

// Principal is an authenticated submitter.
type Principal struct{ UserID, Address string }

// Envelope is what the client said around the message.
type Envelope struct {
	ID         string // our reference for the message: in the 250 reply ("Queued as …") and the log line
	Port       Port
	RemoteIP   netip.Addr
	Helo       string
	From       string   // MAIL FROM with its domain lower-cased; "" for the null sender
	To         []string // accepted RCPT TO addresses, domain lower-cased, each once
	Auth       *Principal
	TLS        bool
	ReceivedAt time.Time // when the data was complete (before that: when MAIL was given)
}

// Reject is an answer with its code: the integrator returns one from Accept
// or the checks. Message goes to the client as is, so it must be safe to
// show (no policy details); a code outside 400–599 becomes 451.
type Reject struct {
	Code     int
	Enhanced [3]int
	Message  string
}

func (r *Reject) Error() string {
	return fmt.Sprintf("%d %d.%d.%d %s", r.Code, r.Enhanced[0], r.Enhanced[1], r.Enhanced[2], r.Message)
}

// Options configure a Server. Callbacks run on the connection's goroutine;
// a panic in one is recovered, logged, counted (Panics) and answered with 451.
type Options struct {
	Hostname  string      // named in the greeting (never the software or its version)
	TLSConfig *tls.Config // STARTTLS on both ports (required before AUTH on submission)
	// Logger gets one line per message (port, remote_ip, size, recipients,
	// code) and the connection refusals; never subjects, bodies or addresses.
	Logger zerolog.Logger
	// Limits is read at each connection, so run-time settings apply to the
	// next connection. Nil or zero fields mean the defaults (see Limits).
	Limits func() Limits
	// RelayAllowed: the relay port serves only these clients (the
	// organization's mail servers). Required for the relay port.
	RelayAllowed func(ip netip.Addr) bool
	// Authenticate checks the user's password or an app password. An error
	// answers 535 and counts toward the per-address failure limit; a *Reject
	// with a 4xx code (say, the account store is down) is answered as is and
	// not counted. Required for the submission port.
	Authenticate func(ctx context.Context, username, password string, ip netip.Addr) (*Principal, error)
	// LocalDomain says whether a domain is the organization's. Only such a
	// domain may be a single label ("user@intranet"); nil means none is.
	LocalDomain func(domain string) bool
	// CheckSender runs at MAIL FROM: the integrator refuses unknown senders
	// (a *Reject 550 with a reason) and, after AUTH, senders that are not an
	// address of e.Auth. Required.
	CheckSender func(ctx context.Context, e *Envelope) error
	// CheckRecipient runs at each RCPT TO. Optional.
	CheckRecipient func(ctx context.Context, e *Envelope, rcpt string) error
	// Accept takes a complete, well-formed message. Nil means the message is
	// DURABLE (the integrator fsyncs before returning) and answers
	// 250 2.0.0 Queued as <e.ID>; a *Reject is answered as is; any other
	// error answers 451 4.3.0 and is logged. Required.
	Accept func(ctx context.Context, e *Envelope, m *Message) error

	// ShutdownTimeout is how long Close lets sessions finish (default 30 s).
	ShutdownTimeout time.Duration
	// Now is the clock for the AUTH failure window and ReceivedAt (default
	// time.Now). Socket deadlines always use the system clock.
	Now func() time.Time
}

// Limits are the run-time limits, read at each connection.
type Limits struct {
	MaxMessageBytes int64 // default 25 MiB; advertised in SIZE; over → 552 5.3.4, nothing accepted
	MaxRecipients   int   // default and minimum 100 (RFC 5321 §4.5.3.1.8); beyond → 452 4.5.3, earlier ones kept
	MaxLineLength   int   // default and minimum 1000 including CRLF (RFC 5321 §4.5.3.1.6)
	// ReadTimeout and WriteTimeout bound each command and each reply
	// (default 5 min, RFC 5321 §4.5.3.2).
	ReadTimeout, WriteTimeout time.Duration
	DataTimeout               time.Duration // cap on the whole DATA phase (default 10 min)
	MaxConnsPerIP             int           // per client address, IPv6 by /64 (default 20); beyond → 421 at connect
	MaxConns                  int           // overall (default 200); beyond → 421 at connect
	MaxAuthFailures           int           // failed AUTH per client address per minute (default 10); beyond → 421 and disconnect
}

// The defaults.
const (
	DefaultMaxMessageBytes = 25 << 20
	DefaultMaxRecipients   = 100
	DefaultMaxLineLength   = 1000
	DefaultReadTimeout     = 5 * time.Minute
	DefaultWriteTimeout    = 5 * time.Minute
	DefaultDataTimeout     = 10 * time.Minute
	DefaultMaxConnsPerIP   = 20
	DefaultMaxConns        = 200
	DefaultMaxAuthFailures = 10
	DefaultShutdownTimeout = 30 * time.Second
)

// withDefaults fills zero (or too small) fields.
func (l Limits) withDefaults() Limits {
	if l.MaxMessageBytes <= 0 {
		l.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if l.MaxRecipients < DefaultMaxRecipients {
		l.MaxRecipients = DefaultMaxRecipients
	}
	if l.MaxLineLength < DefaultMaxLineLength {
		l.MaxLineLength = DefaultMaxLineLength
	}
	if l.ReadTimeout <= 0 {
		l.ReadTimeout = DefaultReadTimeout
	}
	if l.WriteTimeout <= 0 {
		l.WriteTimeout = DefaultWriteTimeout
	}
	if l.DataTimeout <= 0 {
		l.DataTimeout = DefaultDataTimeout
	}
	if l.MaxConnsPerIP <= 0 {
		l.MaxConnsPerIP = DefaultMaxConnsPerIP
	}
	if l.MaxConns <= 0 {
		l.MaxConns = DefaultMaxConns
	}
	if l.MaxAuthFailures <= 0 {
		l.MaxAuthFailures = DefaultMaxAuthFailures
	}
	return l
}

// ErrServerClosed is returned by Serve after Close.
var ErrServerClosed = errors.New("smtpd: server closed")

// Server serves the relay and submission ports. It holds no resources until
// Serve; Close stops it.
type Server struct {
	opts   Options
	log    zerolog.Logger
	now    func() time.Time
	fails  *failures
	panics atomic.Int64

	ctx    context.Context // cancelled when Close gives up waiting
	cancel context.CancelFunc

	// dataSlots bounds the messages held in memory at once: a message is
	// read whole before it is judged, so 200 connections each sending the
	// largest message would otherwise need 200 times its size.
	dataSlots chan struct{}

	mu        sync.Mutex
	closing   bool
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	perIP     map[netip.Addr]int
	total     int
	wg        sync.WaitGroup // one per admitted connection
}

// New builds a server; nothing listens until Serve.
func New(opts Options) *Server {
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = DefaultShutdownTimeout
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		opts: opts, log: opts.Logger, now: now, fails: newFailures(),
		ctx: ctx, cancel: cancel,
		listeners: map[net.Listener]struct{}{}, conns: map[*conn]struct{}{}, perIP: map[netip.Addr]int{},
		dataSlots: make(chan struct{}, MaxConcurrentData),
	}
}

// MaxConcurrentData is how many messages may be received at once; further
// senders wait (up to dataWait) for a slot, their data held back by TCP.
const MaxConcurrentData = 16

var dataWait = time.Minute

// Panics counts the panics recovered so far (in callbacks and in go-smtp).
func (s *Server) Panics() int64 { return s.panics.Load() }

// check reports every option that port needs and lacks.
func (s *Server) check(port Port) error {
	var problems []string
	if port != PortRelay && port != PortSubmission {
		problems = append(problems, fmt.Sprintf("port %q is neither %q nor %q", port, PortRelay, PortSubmission))
	}
	if strings.TrimSpace(s.opts.Hostname) == "" || strings.ContainsAny(s.opts.Hostname, " \t\r\n") {
		problems = append(problems, "Hostname must be a host name")
	}
	if s.opts.Accept == nil {
		problems = append(problems, "Accept is required")
	}
	if s.opts.CheckSender == nil {
		problems = append(problems, "CheckSender is required")
	}
	if port == PortRelay && s.opts.RelayAllowed == nil {
		problems = append(problems, "RelayAllowed is required for the relay port")
	}
	if port == PortSubmission {
		if s.opts.Authenticate == nil {
			problems = append(problems, "Authenticate is required for the submission port")
		}
		if s.opts.TLSConfig == nil {
			problems = append(problems, "TLSConfig is required for the submission port (AUTH needs STARTTLS)")
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("smtpd: serve %s port: %s", port, strings.Join(problems, "; "))
	}
	return nil
}

// limits reads the run-time limits; a panicking Limits means the defaults.
func (s *Server) limits() (l Limits) {
	if s.opts.Limits == nil {
		return l.withDefaults()
	}
	defer func() {
		if v := recover(); v != nil {
			s.recovered("limits", netip.Addr{}, v)
			l = Limits{}.withDefaults()
		}
	}()
	return s.opts.Limits().withDefaults()
}

// Serve accepts connections on l for port until Close, and closes l when it
// returns. It returns nil after Close, ErrServerClosed if Close came first,
// or the options' problems.
func (s *Server) Serve(l net.Listener, port Port) error {
	if err := s.check(port); err != nil {
		l.Close()
		return err
	}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
		l.Close()
	}()

	var delay time.Duration
	for {
		raw, err := l.Accept()
		if err != nil {
			if s.isClosing() {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("accept on %s port: %w", port, err)
			}
			// Out of file descriptors and the like: wait, as net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.log.Warn().Str("port", string(port)).Err(err).Dur("retry_in", delay).Msg("smtp accept failed")
			time.Sleep(delay)
			continue
		}
		delay = 0
		s.admit(raw, port)
	}
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// Close stops accepting, lets each session finish its current command (the
// next command read answers 421), waits up to ShutdownTimeout, then cuts the
// connections that remain and cancels their callbacks' contexts. It is safe
// to call more than once and before Serve.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		s.wg.Wait()
		return nil
	}
	s.closing = true
	var err error
	for l := range s.listeners {
		if e := l.Close(); e != nil && !errors.Is(e, net.ErrClosed) && err == nil {
			err = fmt.Errorf("close listener: %w", e)
		}
	}
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()

	for _, c := range conns {
		c.stop()
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	timer := time.NewTimer(s.opts.ShutdownTimeout)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		s.mu.Lock()
		left := make([]*conn, 0, len(s.conns))
		for c := range s.conns {
			left = append(left, c)
		}
		s.mu.Unlock()
		s.log.Warn().Int("sessions", len(left)).Msg("smtp shutdown: cutting sessions that did not finish")
		s.cancel()
		for _, c := range left {
			c.Close()
		}
		<-done
	}
	s.cancel()
	return err
}
