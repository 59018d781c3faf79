// Package smtptest runs a real SMTP server (go-smtp) on loopback for tests:
// it captures what it receives, speaks STARTTLS or implicit TLS with a test
// certificate, can require AUTH, and can be told to answer with an error or
// to hang. It stands in for the organization's relay or a recipient's MX.
package smtptest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Message is one received message.
type Message struct {
	From     string
	To       []string
	Data     []byte
	TLS      bool
	AuthUser string
}

// Options shape the server.
type Options struct {
	ImplicitTLS bool   // TLS from the first byte (port 465 style)
	NoSTARTTLS  bool   // do not offer STARTTLS
	User, Pass  string // require AUTH PLAIN with these
	CountOnly   bool   // keep no messages, only count them (for load tests)
	// Cert replaces the server's self-signed certificate (see NewCA).
	Cert *tls.Certificate
	// Listen is the address to listen on; default 127.0.0.1 on a free port.
	// Any 127.0.0.0/8 address works on Linux, so several "MX hosts" can
	// share one port.
	Listen string
}

// Server is a running capture server.
type Server struct {
	Addr    string
	Host    string
	Port    int
	RootCAs *x509.CertPool // trusts the server's certificate
	CertDER []byte         // the server's self-signed certificate

	mu       sync.Mutex
	messages []Message
	count    int
	reply    func(stage string) error // stage: "mail", "rcpt", "data"
	hang     chan struct{}
	received chan struct{}             // signalled (never blocking) when a message arrives
	accepted int                       // connections accepted
	open     map[*trackedConn]struct{} // and not yet closed
}

// quietLog is go-smtp's error log without the noise of clients that hang
// up abruptly (an appliance killed by a test while it keeps a connection
// open for reuse); anything else goes to standard error.
type quietLog struct{}

func (quietLog) Printf(format string, v ...any) { quietLog{}.Println(fmt.Sprintf(format, v...)) }

func (quietLog) Println(v ...any) {
	line := fmt.Sprintln(v...)
	if strings.Contains(line, "connection reset by peer") || strings.Contains(line, "broken pipe") {
		return
	}
	fmt.Fprint(os.Stderr, "smtp/server "+line)
}

// trackedConn is an accepted connection the server counts and can drop.
type trackedConn struct {
	net.Conn
	s    *Server
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.s.mu.Lock()
		delete(c.s.open, c)
		c.s.mu.Unlock()
	})
	return c.Conn.Close()
}

// countingListener counts and tracks the connections it accepts.
type countingListener struct {
	net.Listener
	s *Server
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, s: l.s}
	l.s.mu.Lock()
	l.s.accepted++
	l.s.open[tc] = struct{}{}
	l.s.mu.Unlock()
	return tc, nil
}

// Sessions counts the connections the server has accepted.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted
}

// DropConnections closes every connection the server has accepted, as a
// relay that times idle clients out does.
func (s *Server) DropConnections() {
	s.mu.Lock()
	var open []*trackedConn
	for c := range s.open {
		open = append(open, c)
	}
	s.mu.Unlock()
	for _, c := range open {
		c.Close()
	}
}

// Start runs a server on 127.0.0.1 and stops it when the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	cert, pool := testCert(t)
	if opts.Cert != nil {
		cert = *opts.Cert
	}
	s := &Server{RootCAs: pool, CertDER: cert.Certificate[0], received: make(chan struct{}, 1), open: map[*trackedConn]struct{}{}}
	srv := smtp.NewServer(&backend{s: s, opts: opts})
	srv.Domain = "relay.test"
	srv.ErrorLog = quietLog{}
	srv.ReadTimeout, srv.WriteTimeout = 30*time.Second, 30*time.Second
	srv.MaxMessageBytes = 64 << 20
	srv.MaxRecipients = 1000
	srv.AllowInsecureAuth = false
	tlsConfig := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if !opts.NoSTARTTLS || opts.ImplicitTLS {
		srv.TLSConfig = tlsConfig
	}
	listen := opts.Listen
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	ln = countingListener{Listener: ln, s: s}
	if opts.ImplicitTLS {
		ln = tls.NewListener(ln, tlsConfig)
	}
	s.Addr = ln.Addr().String()
	host, port, _ := net.SplitHostPort(s.Addr)
	s.Host = host
	s.Port, _ = strconv.Atoi(port)
	go srv.Serve(ln)
	t.Cleanup(func() {
		s.mu.Lock()
		if s.hang != nil {
			close(s.hang)
			s.hang = nil
		}
		s.mu.Unlock()
		srv.Close()
	})
	return s
}

// Messages returns what the server has received so far.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.messages...)
}

// Count returns how many messages the server has accepted.
func (s *Server) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count
}

// Wait blocks until n messages have arrived in total or the timeout ends,
// and returns what has arrived.
func (s *Server) Wait(n int, timeout time.Duration) []Message {
	deadline := time.After(timeout)
	for {
		if m := s.Messages(); len(m) >= n {
			return m
		}
		select {
		case <-s.received:
		case <-deadline:
			return s.Messages()
		}
	}
}

// Reply makes the server answer with the error f returns at each stage
// ("mail", "rcpt", "data"); nil f or a nil error accepts.
func (s *Server) Reply(f func(stage string) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reply = f
}

// Hang makes the server stop answering at MAIL FROM until the test ends.
func (s *Server) Hang() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hang = make(chan struct{})
}

func (s *Server) check(stage string) error {
	s.mu.Lock()
	reply, hang := s.reply, s.hang
	s.mu.Unlock()
	if hang != nil && stage == "mail" {
		<-hang
		return errors.New("hung")
	}
	if reply != nil {
		return reply(stage)
	}
	return nil
}

type backend struct {
	s    *Server
	opts Options
}

func (b *backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	_, isTLS := c.TLSConnectionState()
	return &session{b: b, tls: isTLS, conn: c}, nil
}

type session struct {
	b    *backend
	conn *smtp.Conn
	tls  bool
	user string
	msg  Message
}

func (s *session) AuthMechanisms() []string {
	if s.b.opts.User == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (s *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != s.b.opts.User || pass != s.b.opts.Pass {
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "bad credentials"}
		}
		s.user = user
		return nil
	}), nil
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if s.b.opts.User != "" && s.user == "" {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "authentication required"}
	}
	if err := s.b.s.check("mail"); err != nil {
		return err
	}
	s.msg = Message{From: from}
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if err := s.b.s.check("rcpt"); err != nil {
		return err
	}
	s.msg.To = append(s.msg.To, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if err := s.b.s.check("data"); err != nil {
		return err
	}
	_, s.msg.TLS = s.conn.TLSConnectionState()
	s.msg.Data, s.msg.AuthUser = data, s.user
	s.b.s.mu.Lock()
	s.b.s.count++
	if !s.b.opts.CountOnly {
		s.b.s.messages = append(s.b.s.messages, s.msg)
	}
	s.b.s.mu.Unlock()
	// A signal, not a count: a full channel already wakes Wait, which then
	// counts. (A buffered send per message blocked the server for good
	// once 65,536 messages had gone unwaited.)
	select {
	case s.b.s.received <- struct{}{}:
	default:
	}
	return nil
}

func (s *session) Reset()        { s.msg = Message{} }
func (s *session) Logout() error { return nil }

// testCert makes a certificate for 127.0.0.1 and localhost and a pool that
// trusts it.
func testCert(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "relay.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: []string{"localhost", "relay.test"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// CA is a test certificate authority, for peers whose certificates must
// verify for a host name (MTA-STS).
type CA struct {
	Pool *x509.CertPool
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// NewCA makes a CA.
func NewCA(t testing.TB) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "Sealpost test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &CA{Pool: pool, cert: cert, key: key}
}

// Issue makes a server certificate for the names.
func (ca *CA) Issue(t testing.TB, names ...string) *tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: names[0]},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: names, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}
