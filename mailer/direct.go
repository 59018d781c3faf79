package mailer

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/rs/zerolog"
)

// Resolver looks up what direct delivery needs; net.Resolver is one.
type Resolver interface {
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
	LookupHost(ctx context.Context, host string) ([]string, error)
	LookupTXT(ctx context.Context, name string) ([]string, error)
}

// Direct delivers to each recipient domain's mail exchangers: MX records in
// order of preference (the domain itself when it has none), every address
// of each, until one answers. TLS is opportunistic — STARTTLS whenever the
// peer offers it, unverified — unless the domain publishes an MTA-STS policy
// in enforce mode: then only the listed MX hosts are used, over TLS whose
// certificate is verified for the MX name.
type Direct struct {
	Resolver  Resolver       // nil: the system's resolver
	STS       *MTASTS        // nil: MTA-STS is not consulted
	HelloName string         // our name in EHLO
	RootCAs   *x509.CertPool // verifies MX certificates under an enforced policy; nil: the system's roots
	Sessions  tls.ClientSessionCache
	Log       zerolog.Logger // where policy problems in testing mode are reported

	// Port is the SMTP port of every MX (25; tests use another).
	Port int
	// MaxAddresses bounds the addresses tried per delivery (default 5).
	MaxAddresses int
	// PerDomain is how many deliveries at once go to one domain (default 4).
	PerDomain int
	// Timeouts as in Relay.
	DialTimeout, CommandTimeout, DataTimeout time.Duration
}

// DomainLimit is the queue's concurrency limit per recipient domain.
func (d Direct) DomainLimit() int {
	if d.PerDomain > 0 {
		return d.PerDomain
	}
	return 4
}

func (d Direct) resolver() Resolver {
	if d.Resolver != nil {
		return d.Resolver
	}
	return net.DefaultResolver
}

// Send delivers msg to recipients that all share one domain.
func (d Direct) Send(ctx context.Context, from string, to []string, msg []byte) (string, error) {
	if len(to) == 0 {
		return "", &DeliveryError{Permanent: true, Err: errors.New("no recipient")}
	}
	domain := strings.ToLower(to[0][strings.LastIndexByte(to[0], '@')+1:])
	for _, rcpt := range to[1:] {
		if !strings.EqualFold(rcpt[strings.LastIndexByte(rcpt, '@')+1:], domain) {
			return "", &DeliveryError{Permanent: true, Err: errors.New("direct delivery takes recipients of one domain at a time")}
		}
	}
	var policy STSPolicy
	enforce := false
	if d.STS != nil {
		p, ok, err := d.STS.Policy(ctx, domain)
		if err != nil {
			d.Log.Warn().Str("to_domain", domain).Err(err).Msg("MTA-STS policy unavailable")
		}
		if ok {
			policy, enforce = p, p.Mode == STSEnforce
		}
	}
	hosts, err := d.exchangers(ctx, domain)
	if err != nil {
		return "", err
	}
	var lastErr error
	tried := 0
	maxAddrs := d.MaxAddresses
	if maxAddrs <= 0 {
		maxAddrs = 5
	}
	for _, host := range hosts {
		if policy.Mode != "" && policy.Mode != STSNone && !policy.Matches(host) {
			problem := fmt.Errorf("MX %s is not listed in the MTA-STS policy of %s", host, domain)
			if enforce {
				lastErr = problem
				continue
			}
			d.Log.Warn().Str("to_domain", domain).Err(problem).Msg("MTA-STS testing mode: would not deliver")
		}
		addrs, err := d.resolver().LookupHost(ctx, host)
		if err != nil {
			lastErr = fmt.Errorf("address of MX %s: %w", host, err)
			continue
		}
		for _, ip := range addrs {
			if tried >= maxAddrs {
				break
			}
			tried++
			reply, err := d.sendTo(ctx, host, ip, enforce, policy.Mode == STSTesting, from, to, msg)
			if err == nil {
				return reply + " (" + host + ")", nil
			}
			var de *DeliveryError
			if errors.As(err, &de) && de.Permanent {
				return "", &DeliveryError{Permanent: true, Reply: de.Reply, Err: fmt.Errorf("MX %s: %w", host, err)}
			}
			lastErr = fmt.Errorf("MX %s [%s]: %w", host, ip, err)
		}
	}
	if lastErr == nil {
		lastErr = fmt.Errorf("no MX of %s could be reached", domain)
	}
	var de *DeliveryError
	if errors.As(lastErr, &de) {
		return "", &DeliveryError{Reply: de.Reply, Err: lastErr}
	}
	return "", &DeliveryError{Err: lastErr}
}

// exchangers returns the domain's MX host names in order of preference, or
// the domain itself when it publishes no MX (RFC 5321 §5.1).
func (d Direct) exchangers(ctx context.Context, domain string) ([]string, error) {
	mxs, err := d.resolver().LookupMX(ctx, domain)
	var dnsErr *net.DNSError
	switch {
	case err == nil && len(mxs) == 1 && (mxs[0].Host == "." || mxs[0].Host == ""):
		return nil, &DeliveryError{Permanent: true, Err: fmt.Errorf("%s accepts no mail (null MX, RFC 7505)", domain)}
	case err == nil && len(mxs) > 0:
		hosts := make([]string, 0, len(mxs))
		for _, mx := range mxs {
			hosts = append(hosts, strings.TrimSuffix(mx.Host, "."))
		}
		return hosts, nil
	case err == nil, errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		// No MX: the domain's own address, if it has one.
		if _, err := d.resolver().LookupHost(ctx, domain); err != nil {
			if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
				return nil, &DeliveryError{Permanent: true, Err: fmt.Errorf("the domain %s does not exist or has no mail server", domain)}
			}
			return nil, &DeliveryError{Err: fmt.Errorf("address of %s: %w", domain, err)}
		}
		return []string{domain}, nil
	default:
		return nil, &DeliveryError{Err: fmt.Errorf("MX of %s: %w", domain, err)}
	}
}

// sendTo runs one session with one address of an MX. Under an enforced
// policy, TLS with a certificate valid for the MX name is required;
// otherwise STARTTLS is used when offered and, when its handshake fails,
// the session is tried once more in plain text.
func (d Direct) sendTo(ctx context.Context, host, ip string, enforce, testing bool, from string, to []string, msg []byte) (string, error) {
	if enforce {
		verified := &tls.Config{ServerName: host, RootCAs: d.RootCAs, MinVersion: tls.VersionTLS12, ClientSessionCache: d.Sessions}
		reply, _, err := d.session(ctx, ip, verified, true, from, to, msg)
		return reply, err
	}
	// Opportunistic (RFC 7435): encrypt without authenticating.
	opportunistic := &tls.Config{ServerName: host, InsecureSkipVerify: true, MinVersion: tls.VersionTLS12, ClientSessionCache: d.Sessions}
	if testing {
		// Deliver regardless, but report what the policy would refuse.
		opportunistic.VerifyConnection = func(cs tls.ConnectionState) error {
			if err := verifyFor(cs, host, d.RootCAs); err != nil {
				d.Log.Warn().Str("mx", host).Err(err).Msg("MTA-STS testing mode: the certificate would be refused")
			}
			return nil
		}
	}
	reply, usedTLS, err := d.session(ctx, ip, opportunistic, false, from, to, msg)
	var tlsErr *tlsFailure
	if errors.As(err, &tlsErr) {
		reply, usedTLS, err = d.session(ctx, ip, nil, false, from, to, msg)
	}
	if err == nil && testing && !usedTLS {
		d.Log.Warn().Str("mx", host).Msg("MTA-STS testing mode: delivered without TLS, which the policy would refuse")
	}
	return reply, err
}

// tlsFailure marks a failed STARTTLS handshake, after which opportunistic
// delivery tries again without TLS.
type tlsFailure struct{ err error }

func (e *tlsFailure) Error() string { return "STARTTLS: " + e.err.Error() }
func (e *tlsFailure) Unwrap() error { return e.err }

// verifyFor checks a peer's chain for the host name.
func verifyFor(cs tls.ConnectionState, host string, roots *x509.CertPool) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{DNSName: host, Roots: roots, Intermediates: inter})
	return err
}

// session connects to ip and delivers, with STARTTLS when the peer offers
// it and tlsConfig is not nil; requireTLS refuses a peer without it. It
// reports whether the message went over TLS.
func (d Direct) session(ctx context.Context, ip string, tlsConfig *tls.Config, requireTLS bool, from string, to []string, msg []byte) (string, bool, error) {
	port := d.Port
	if port == 0 {
		port = 25
	}
	addr := net.JoinHostPort(ip, strconv.Itoa(port))
	dialer := net.Dialer{Timeout: orDefault(d.DialTimeout, 30*time.Second)}
	conn, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", false, classify("connect to "+addr, err)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	helo := d.HelloName
	if helo == "" {
		helo = "localhost"
	}
	p, err := greet(conn, helo, orDefault(d.CommandTimeout, 5*time.Minute))
	if err != nil {
		conn.Close()
		// An MX that refuses the session (554 at the greeting) is one MX
		// out of service, not a verdict on the message: try the next.
		return "", false, &DeliveryError{Err: fmt.Errorf("greeting or EHLO: %w", err)}
	}
	var c net.Conn
	usedTLS := tlsConfig != nil && p.offersTLS
	switch {
	case usedTLS:
		if c, err = p.startTLS(tlsConfig); err != nil {
			conn.Close()
			var se *smtp.SMTPError
			if errors.As(err, &se) || requireTLS {
				return "", false, classify("STARTTLS", err)
			}
			return "", false, &DeliveryError{Err: &tlsFailure{err}}
		}
	case requireTLS:
		conn.Close()
		return "", false, &DeliveryError{Err: errors.New("the MX offers no STARTTLS, which the MTA-STS policy requires")}
	default:
		if c, err = p.plain(); err != nil {
			conn.Close()
			return "", false, classify("greeting", err)
		}
	}
	client := smtp.NewClient(c)
	defer client.Close()
	client.CommandTimeout = orDefault(d.CommandTimeout, 5*time.Minute)
	client.SubmissionTimeout = orDefault(d.DataTimeout, 10*time.Minute)
	reply, err := transact(client, helo, nil, from, to, msg)
	if err == nil {
		_ = client.Quit()
	}
	return reply, usedTLS, err
}
