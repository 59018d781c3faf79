package smtpd

import (
	"crypto/rand"
	"encoding/base32"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Replies. Texts are for the client: short, and no policy details.
var (
	errRelayDenied  = reply(554, 5, 7, 1, "Relaying is not allowed from your address")
	errNeedTLS      = reply(530, 5, 7, 0, "Must issue a STARTTLS command first")
	errNeedAuth     = reply(530, 5, 7, 0, "Authentication required")
	errNotRelayed   = reply(550, 5, 7, 1, "Relaying denied")
	errNoAuthHere   = reply(502, 5, 5, 1, "AUTH is not available on this port")
	errAuthFailed   = reply(535, 5, 7, 8, "Authentication credentials invalid")
	errAuthBlocked  = reply(421, 4, 7, 0, "Too many failed authentication attempts, try again later")
	errMechanism    = reply(504, 5, 5, 4, "Unsupported authentication mechanism")
	errBadHelo      = reply(501, 5, 5, 2, "Invalid EHLO/HELO argument")
	errTemporary    = reply(451, 4, 3, 0, "Temporary failure, try again later")
	errTooBig       = reply(552, 5, 3, 4, "Message too big")
	errLongLine     = reply(500, 5, 5, 6, "Line too long")
	errDataTimeout  = reply(451, 4, 4, 2, "Timeout waiting for the message data")
	errBareNewline  = reply(550, 5, 6, 0, "Message refused: it contains a bare CR, a bare LF or a NUL (lines must end with CRLF)")
	errPipelinedMsg = reply(550, 5, 5, 0, "Message refused: data sent before the 354 reply")
)

func reply(code, a, b, c int, text string) *smtp.SMTPError {
	return &smtp.SMTPError{Code: code, EnhancedCode: smtp.EnhancedCode{a, b, c}, Message: text}
}

// backend makes the session for one connection (each has its own).
type backend struct{ c *conn }

var _ smtp.Backend = (*backend)(nil)

// NewSession runs at the first EHLO or HELO, and again at the first one
// after STARTTLS.
func (b *backend) NewSession(sc *smtp.Conn) (smtp.Session, error) {
	if !validHelo(sc.Hostname()) {
		return nil, errBadHelo
	}
	_, isTLS := sc.TLSConnectionState()
	return &session{c: b.c, sc: sc, tls: isTLS}, nil
}

// session is one SMTP session: between EHLOs, reset by STARTTLS.
type session struct {
	c         *conn
	sc        *smtp.Conn
	tls       bool
	principal *Principal

	// env is the transaction under way; nil before MAIL. Under BDAT, Data
	// runs on its own goroutine while an RSET may call Reset.
	mu  sync.Mutex
	env *Envelope
}

var (
	_ smtp.Session     = (*session)(nil)
	_ smtp.AuthSession = (*session)(nil)
)

// AuthMechanisms are advertised on the submission port inside TLS only.
func (s *session) AuthMechanisms() []string {
	if s.c.port != PortSubmission || !s.tls {
		return nil
	}
	return []string{sasl.Plain, sasl.Login}
}

// Auth starts an AUTH exchange.
func (s *session) Auth(mech string) (srv sasl.Server, err error) {
	err = s.c.guard("auth", func() error {
		srv, err = s.auth(mech)
		return err
	})
	return srv, err
}

func (s *session) auth(mech string) (sasl.Server, error) {
	switch {
	case s.c.port != PortSubmission:
		return nil, errNoAuthHere
	case !s.tls:
		return nil, errNeedTLS
	case s.c.srv.fails.blocked(s.c.key, s.c.srv.now(), s.c.lim.MaxAuthFailures):
		s.c.srv.log.Warn().Str("remote_ip", s.c.ip.String()).Int("code", 421).Msg("smtp auth refused: too many failures")
		s.c.closeAfterWrite.Store(true)
		return nil, errAuthBlocked
	}
	check := func(username, password string) error {
		return s.c.guard("authenticate", func() error { return s.authenticate(username, password) })
	}
	switch strings.ToUpper(mech) {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, username, password string) error {
			if identity != "" && identity != username {
				return s.authFailed() // no acting for another user
			}
			return check(username, password)
		}), nil
	case sasl.Login:
		return &loginServer{auth: check}, nil
	}
	return nil, errMechanism
}

func (s *session) authenticate(username, password string) error {
	if username == "" || password == "" {
		return s.authFailed()
	}
	p, err := s.c.srv.opts.Authenticate(s.c.ctx, username, password, s.c.ip)
	if err == nil && p != nil {
		s.principal = &Principal{UserID: p.UserID, Address: p.Address}
		return nil
	}
	var rj *Reject
	if errors.As(err, &rj) && rj.Code/100 == 4 {
		return toSMTP(rj) // a temporary failure on our side is not the client's
	}
	return s.authFailed()
}

func (s *session) authFailed() error {
	n := s.c.srv.fails.add(s.c.key, s.c.srv.now())
	s.c.srv.log.Info().Str("remote_ip", s.c.ip.String()).Int("failures", n).Int("code", 535).Msg("smtp auth failed")
	return errAuthFailed
}

// Mail starts a transaction. Nobody gets past here without the right to
// relay: the relay port's clients are allowed networks (checked at connect
// and again here), the submission port's are authenticated inside TLS.
func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	return s.c.guard("mail", func() error { return s.mail(from) })
}

func (s *session) mail(from string) error {
	if !validHelo(s.sc.Hostname()) { // a second EHLO does not pass NewSession
		return errBadHelo
	}
	switch s.c.port {
	case PortRelay:
		if !s.c.relayAllowed() {
			return errRelayDenied
		}
	case PortSubmission:
		if !s.tls {
			return errNeedTLS
		}
		if s.principal == nil {
			return errNeedAuth
		}
	}
	if from != "" {
		a, err := checkAddress(from, s.c.srv.opts.LocalDomain)
		if err != nil {
			return reply(553, 5, 1, 7, "Bad sender address syntax")
		}
		from = a
	}
	e := &Envelope{
		ID: newID(), Port: s.c.port, RemoteIP: s.c.ip, Helo: s.sc.Hostname(), From: from,
		TLS: s.tls, ReceivedAt: s.c.srv.now(),
	}
	if s.principal != nil {
		p := *s.principal
		e.Auth = &p
	}
	if err := s.c.srv.opts.CheckSender(s.c.ctx, e); err != nil {
		r := s.answer("check_sender", err)
		s.c.srv.log.Info().Str("port", string(s.c.port)).Str("remote_ip", s.c.ip.String()).
			Str("msg_id", e.ID).Int("code", r.Code).Msg("smtp sender refused")
		return r
	}
	s.mu.Lock()
	s.env = e
	s.mu.Unlock()
	return nil
}

// Rcpt adds a recipient.
//
// Which recipients: on the relay port any recipient is accepted from an
// allowed network — outside ones too, since that is the organization's own
// outbound mail; on submission any recipient after AUTH; everyone else was
// refused before RCPT (at connect or at MAIL) and would be refused here
// again. What no one may do is hide a second hop in the address: %, ! and an
// @ in the local part, address literals. go-smtp v0.25.1 drops a source
// route ("<@a,@b:user@c>" arrives as "user@c", as RFC 5321 §4.1.1.3 and
// Appendix C allow), so a route gains nothing: the address is judged as the
// mailbox it names.
func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	return s.c.guard("rcpt", func() error { return s.rcpt(to) })
}

func (s *session) rcpt(to string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.env == nil || !s.mayRelay() {
		return errNotRelayed
	}
	a, err := checkAddress(to, s.c.srv.opts.LocalDomain)
	if err != nil {
		return err
	}
	for _, have := range s.env.To {
		if have == a {
			return nil // once is enough
		}
	}
	if f := s.c.srv.opts.CheckRecipient; f != nil {
		if err := f(s.c.ctx, s.env, a); err != nil {
			return s.answer("check_recipient", err)
		}
	}
	s.env.To = append(s.env.To, a)
	return nil
}

func (s *session) mayRelay() bool {
	switch s.c.port {
	case PortRelay:
		return s.c.relayAllowed()
	case PortSubmission:
		return s.tls && s.principal != nil
	}
	return false
}

// Data reads the message, refuses it if it is malformed in any way, and
// otherwise hands it to Accept. A 250 is sent only when Accept returned nil.
func (s *session) Data(r io.Reader) error {
	return s.c.guard("data", func() error { return s.data(r) })
}

func (s *session) data(r io.Reader) error {
	start := time.Now()
	s.mu.Lock()
	e := s.env
	s.mu.Unlock()
	if e == nil { // go-smtp calls Data only after MAIL and RCPT
		return errNotRelayed
	}
	select {
	case s.c.srv.dataSlots <- struct{}{}:
		defer func() { <-s.c.srv.dataSlots }()
	case <-time.After(dataWait):
		s.c.closeAfterWrite.Store(true)
		s.logMessage(e, 0, 451, "busy", start)
		return reply(451, 4, 3, 2, "Too many messages arriving at once; try again later")
	}
	// BDAT (CHUNKING, which go-smtp always offers) hands Data a pipe fed
	// from the command loop: raw bytes, no dot-stuffing, nothing dropped.
	_, bdat := r.(*io.PipeReader)
	s.c.beginData(bdat)
	raw, rerr := io.ReadAll(r)
	seen := s.c.endData(bdat)

	refuse := func(r *smtp.SMTPError, reason string, hangUp bool) error {
		if hangUp {
			s.c.closeAfterWrite.Store(true)
		}
		s.logMessage(e, int64(len(raw)), r.Code, reason, start)
		return r
	}
	var ne net.Error
	switch {
	case rerr == nil:
	case rerr == smtp.ErrDataTooLarge:
		return refuse(errTooBig, "too big", false)
	case rerr == smtp.ErrTooLongLine:
		return refuse(errLongLine, "line too long", true)
	case errors.As(rerr, &ne) && ne.Timeout():
		return refuse(errDataTimeout, "data timeout", true)
	default: // the client went away, or RSET in the middle of BDAT
		s.logMessage(e, int64(len(raw)), 0, "aborted", start)
		return rerr
	}
	if p := bareProblem(raw); p != "" {
		return refuse(errBareNewline, p, true)
	}
	if !bdat {
		if seen.bad != "" {
			return refuse(errBareNewline, seen.bad, true)
		}
		if !seen.done || seen.out != int64(len(raw)) {
			return refuse(errPipelinedMsg, "data before 354", true)
		}
	}
	m, err := ParseMessage(raw)
	if err != nil {
		// Not the parser's cause: it quotes the message's lines.
		return refuse(reply(554, 5, 6, 0, err.Error()), err.Error(), false)
	}
	env := *e
	env.To = append([]string(nil), e.To...)
	env.ReceivedAt = s.c.srv.now()
	if err := s.c.srv.opts.Accept(s.c.ctx, &env, m); err != nil {
		r := s.answer("accept", err)
		s.logMessage(e, m.Size, r.Code, "not accepted", start)
		return r
	}
	s.logMessage(e, m.Size, 250, "", start)
	// go-smtp answers an *SMTPError with its code, so this is the 250.
	return reply(250, 2, 0, 0, "Queued as "+e.ID)
}

// answer turns a callback's error into the reply: a *Reject as given (made
// safe), anything else 451 with the cause in the log only.
func (s *session) answer(stage string, err error) *smtp.SMTPError {
	var rj *Reject
	if errors.As(err, &rj) {
		return toSMTP(rj)
	}
	s.c.srv.log.Error().Str("stage", stage).Str("remote_ip", s.c.ip.String()).Err(err).Msg("smtp temporary failure")
	return errTemporary
}

// toSMTP makes a Reject safe to send: a 4xx or 5xx code, an enhanced code
// of the same class, one line of printable text.
func toSMTP(r *Reject) *smtp.SMTPError {
	code := r.Code
	if code < 400 || code > 599 {
		return errTemporary
	}
	enh := smtp.EnhancedCode(r.Enhanced)
	if enh[0] != code/100 || enh[1] < 0 || enh[1] > 999 || enh[2] < 0 || enh[2] > 999 {
		enh = smtp.EnhancedCode{code / 100, 0, 0}
	}
	text := strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f || r > 0x7e {
			return ' '
		}
		return r
	}, r.Message)
	text = strings.TrimSpace(text)
	if len(text) > 400 {
		text = text[:400]
	}
	if text == "" {
		text = "Refused"
		if code/100 == 4 {
			text = "Try again later"
		}
	}
	return &smtp.SMTPError{Code: code, EnhancedCode: enh, Message: text}
}

// logMessage writes the one line per message: no addresses, no content.
func (s *session) logMessage(e *Envelope, size int64, code int, reason string, start time.Time) {
	ev := s.c.srv.log.Info()
	if code == 0 || code >= 400 {
		ev = s.c.srv.log.Warn()
	}
	outside := 0
	for _, a := range e.To {
		if !isLocal(s.c.srv.opts.LocalDomain, a[strings.LastIndexByte(a, '@')+1:]) {
			outside++
		}
	}
	ev = ev.Str("port", string(s.c.port)).Str("remote_ip", s.c.ip.String()).Str("msg_id", e.ID).
		Int64("size", size).Int("recipients", len(e.To)).Int("outside_recipients", outside).
		Int("code", code).Bool("tls", s.tls).Dur("duration", time.Since(start))
	if e.Auth != nil {
		ev = ev.Str("user_id", e.Auth.UserID)
	}
	if reason != "" {
		ev = ev.Str("reason", reason)
	}
	ev.Msg("smtp message")
}

// Reset ends the transaction (RSET, a new EHLO, the end of DATA).
func (s *session) Reset() {
	s.mu.Lock()
	s.env = nil
	s.mu.Unlock()
}

// Logout ends the session.
func (s *session) Logout() error { return nil }

// newID is a message's reference: 80 random bits, base32.
func newID() string {
	var b [10]byte
	rand.Read(b[:])
	return strings.ToLower(base32.StdEncoding.EncodeToString(b[:]))
}

// validHelo accepts a host name or an address literal: printable ASCII.
func validHelo(h string) bool {
	if h == "" || len(h) > 255 {
		return false
	}
	for i := 0; i < len(h); i++ {
		if h[i] <= ' ' || h[i] >= 0x7f {
			return false
		}
	}
	return true
}
