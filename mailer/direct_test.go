package mailer

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/rs/zerolog"

	"github.com/sealpost/sealpost/mailer/smtptest"
)

// zone is DNS data for the tests: the resolver is injected, the SMTP and
// HTTPS peers are real servers on loopback.
type zone struct {
	mu    sync.Mutex
	mx    map[string][]*net.MX
	hosts map[string][]string
	txt   map[string][]string
	fail  map[string]error // a lookup of this name fails so
}

func newZone() *zone {
	return &zone{mx: map[string][]*net.MX{}, hosts: map[string][]string{}, txt: map[string][]string{}, fail: map[string]error{}}
}

func notFound(name string) error {
	return &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

func (z *zone) lookup(name string) error {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.fail[name]
}

func (z *zone) LookupMX(_ context.Context, name string) ([]*net.MX, error) {
	if err := z.lookup(name); err != nil {
		return nil, err
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	if mx, ok := z.mx[name]; ok {
		return mx, nil
	}
	return nil, notFound(name)
}

func (z *zone) LookupHost(_ context.Context, name string) ([]string, error) {
	if err := z.lookup(name); err != nil {
		return nil, err
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	if a, ok := z.hosts[name]; ok {
		return a, nil
	}
	return nil, notFound(name)
}

func (z *zone) LookupTXT(_ context.Context, name string) ([]string, error) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if t, ok := z.txt[name]; ok {
		return t, nil
	}
	return nil, notFound(name)
}

func (z *zone) setTXT(name string, records ...string) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if records == nil {
		delete(z.txt, name)
	} else {
		z.txt[name] = records
	}
}

func directFor(z *zone, port int) Direct {
	return Direct{Resolver: z, Port: port, HelloName: "sealpost.test", Log: zerolog.Nop(),
		DialTimeout: 2 * time.Second, CommandTimeout: 5 * time.Second, DataTimeout: 5 * time.Second}
}

// mxOn starts a capture server as an MX at a loopback address; port 0
// picks one, and later MX hosts of a test share it on other addresses.
func mxOn(t *testing.T, ip string, port int, opts smtptest.Options) *smtptest.Server {
	opts.Listen = fmt.Sprintf("%s:%d", ip, port)
	return smtptest.Start(t, opts)
}

func TestDirectDeliversInMXOrder(t *testing.T) {
	t.Parallel()
	mx := mxOn(t, "127.0.0.1", 0, smtptest.Options{})
	z := newZone()
	// The preferred MX does not answer (nothing listens on 127.0.0.2).
	z.mx["example.test"] = []*net.MX{{Host: "mx1.example.test.", Pref: 10}, {Host: "mx2.example.test.", Pref: 20}}
	z.hosts["mx1.example.test"] = []string{"127.0.0.2"}
	z.hosts["mx2.example.test"] = []string{"127.0.0.1"}
	reply, err := directFor(z, mx.Port).Send(context.Background(), "bounces+n1@sealpost.test", []string{"pat@example.test"}, testMsg)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(reply, "250") || !strings.HasSuffix(reply, "(mx2.example.test)") {
		t.Errorf("reply %q", reply)
	}
	got := mx.Messages()
	if len(got) != 1 || !got[0].TLS || got[0].To[0] != "pat@example.test" || got[0].From != "bounces+n1@sealpost.test" {
		t.Fatalf("the MX received %+v (want one message over opportunistic TLS)", got)
	}
}

func TestDirectWithoutMXUsesTheDomain(t *testing.T) {
	t.Parallel()
	host := mxOn(t, "127.0.0.1", 0, smtptest.Options{NoSTARTTLS: true})
	z := newZone()
	z.hosts["plain.test"] = []string{"127.0.0.1"}
	if _, err := directFor(z, host.Port).Send(context.Background(), "b@s.test", []string{"x@plain.test"}, testMsg); err != nil {
		t.Fatal(err)
	}
	if got := host.Messages(); len(got) != 1 || got[0].TLS {
		t.Fatalf("received %+v (want one, in plain text: the peer offers no STARTTLS)", got)
	}
}

func TestDirectDNSOutcomes(t *testing.T) {
	t.Parallel()
	z := newZone()
	z.mx["null.test"] = []*net.MX{{Host: ".", Pref: 0}}
	z.fail["flaky.test"] = &net.DNSError{Err: "server misbehaving", Name: "flaky.test", IsTemporary: true}
	z.mx["nomx-address.test"] = []*net.MX{{Host: "mx.gone.test.", Pref: 10}}
	tests := []struct {
		domain    string
		permanent bool
		want      string
	}{
		{"null.test", true, "accepts no mail (null MX"},
		{"missing.test", true, "does not exist or has no mail server"},
		{"flaky.test", false, "server misbehaving"},
		{"nomx-address.test", false, "address of MX mx.gone.test"},
	}
	for _, tt := range tests {
		_, err := directFor(z, 2525).Send(context.Background(), "b@s.test", []string{"x@" + tt.domain}, testMsg)
		var de *DeliveryError
		if !errors.As(err, &de) || de.Permanent != tt.permanent || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v (permanent %v), want %q permanent %v", tt.domain, err, de != nil && de.Permanent, tt.want, tt.permanent)
		}
	}
}

func TestDirectReplies(t *testing.T) {
	t.Parallel()
	busy := mxOn(t, "127.0.0.1", 0, smtptest.Options{})
	backup := mxOn(t, "127.0.0.3", busy.Port, smtptest.Options{})
	z := newZone()
	z.mx["example.test"] = []*net.MX{{Host: "a.example.test", Pref: 10}, {Host: "b.example.test", Pref: 20}}
	z.hosts["a.example.test"] = []string{"127.0.0.1"}
	z.hosts["b.example.test"] = []string{"127.0.0.3"}
	d := directFor(z, busy.Port)

	// 4xx from the first MX: the next one takes it.
	busy.Reply(func(stage string) error {
		if stage == "rcpt" {
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "greylisted"}
		}
		return nil
	})
	reply, err := d.Send(context.Background(), "b@s.test", []string{"x@example.test"}, testMsg)
	if err != nil || !strings.HasSuffix(reply, "(b.example.test)") || backup.Count() != 1 {
		t.Fatalf("4xx then backup MX: %q %v, backup has %d", reply, err, backup.Count())
	}

	// 4xx everywhere: temporary, with the last reply.
	backup.Reply(func(stage string) error {
		if stage == "rcpt" {
			return &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 2, 2}, Message: "mailbox full"}
		}
		return nil
	})
	_, err = d.Send(context.Background(), "b@s.test", []string{"x@example.test"}, testMsg)
	var de *DeliveryError
	if !errors.As(err, &de) || de.Permanent || !strings.Contains(de.Reply, "452 4.2.2") {
		t.Fatalf("4xx everywhere: %v", err)
	}

	// 5xx: permanent at once; the backup is not asked.
	busy.Reply(func(stage string) error {
		if stage == "rcpt" {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
		}
		return nil
	})
	backup.Reply(nil)
	_, err = d.Send(context.Background(), "b@s.test", []string{"x@example.test"}, testMsg)
	if !errors.As(err, &de) || !de.Permanent || !strings.Contains(de.Reply, "550 5.1.1") || backup.Count() != 1 {
		t.Fatalf("5xx: %v; backup has %d", err, backup.Count())
	}
}

func TestDirectTimeout(t *testing.T) {
	t.Parallel()
	mx := mxOn(t, "127.0.0.1", 0, smtptest.Options{})
	mx.Hang()
	z := newZone()
	z.hosts["slow.test"] = []string{"127.0.0.1"}
	d := directFor(z, mx.Port)
	d.CommandTimeout = 500 * time.Millisecond
	start := time.Now()
	_, err := d.Send(context.Background(), "b@s.test", []string{"x@slow.test"}, testMsg)
	var de *DeliveryError
	if !errors.As(err, &de) || de.Permanent {
		t.Fatalf("a hanging MX: %v, want a temporary failure", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("gave up after %s", time.Since(start))
	}
}

// stsSite serves an MTA-STS policy over HTTPS with a certificate from ca.
type stsSite struct {
	policy  atomic.Value // string
	fetches atomic.Int32
	client  *http.Client
}

func newSTSSite(t *testing.T, ca *smtptest.CA, domain, policy string) *stsSite {
	site := &stsSite{}
	site.policy.Store(policy)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Host != "mta-sts."+domain || r.URL.Path != "/.well-known/mta-sts.txt" {
			http.NotFound(w, r)
			return
		}
		site.fetches.Add(1)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprint(w, site.policy.Load().(string))
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{*ca.Issue(t, "mta-sts."+domain)}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	var d net.Dialer
	site.client = stsClient(ca.Pool, func(ctx context.Context, network, _ string) (net.Conn, error) {
		return d.DialContext(ctx, network, srv.Listener.Addr().String())
	})
	return site
}

func TestDirectMTASTS(t *testing.T) {
	t.Parallel()
	ca := smtptest.NewCA(t)
	genuine := mxOn(t, "127.0.0.1", 0, smtptest.Options{Cert: ca.Issue(t, "mx.secure.test")})
	selfSigned := mxOn(t, "127.0.0.4", genuine.Port, smtptest.Options{})
	plain := mxOn(t, "127.0.0.5", genuine.Port, smtptest.Options{NoSTARTTLS: true})
	unlisted := mxOn(t, "127.0.0.6", genuine.Port, smtptest.Options{Cert: ca.Issue(t, "mx.elsewhere.test")})

	z := newZone()
	z.hosts["mx.secure.test"] = []string{"127.0.0.1"}
	z.hosts["mx2.secure.test"] = []string{"127.0.0.4"}
	z.hosts["mx3.secure.test"] = []string{"127.0.0.5"}
	z.hosts["mx.elsewhere.test"] = []string{"127.0.0.6"}
	z.txt["_mta-sts.secure.test"] = []string{"v=STSv1; id=20261101T000000;"}
	site := newSTSSite(t, ca, "secure.test", "version: STSv1\r\nmode: enforce\r\nmx: mx.secure.test\r\nmx: *.secure.test\r\nmax_age: 86400\r\n")

	sts := &MTASTS{Resolver: z, Client: site.client, Now: time.Now}
	d := directFor(z, genuine.Port)
	d.STS, d.RootCAs = sts, ca.Pool
	send := func(mx ...string) (string, error) {
		records := make([]*net.MX, len(mx))
		for i, h := range mx {
			records[i] = &net.MX{Host: h, Pref: uint16(10 * (i + 1))}
		}
		z.mu.Lock()
		z.mx["secure.test"] = records
		z.mu.Unlock()
		return d.Send(context.Background(), "b@s.test", []string{"x@secure.test"}, testMsg)
	}

	// Enforced: the listed MX with a valid certificate gets it over TLS.
	if _, err := send("mx.secure.test"); err != nil {
		t.Fatalf("enforce, genuine MX: %v", err)
	}
	if got := genuine.Messages(); len(got) != 1 || !got[0].TLS {
		t.Fatalf("the genuine MX received %+v", got)
	}
	// A certificate that does not verify, no STARTTLS, an MX not in the
	// policy: nothing is delivered, and the failure is temporary.
	for _, tt := range []struct {
		mx, want string
		srv      *smtptest.Server
	}{
		{"mx2.secure.test", "certificate", selfSigned},
		{"mx3.secure.test", "offers no STARTTLS", plain},
		{"mx.elsewhere.test", "not listed in the MTA-STS policy", unlisted},
	} {
		_, err := send(tt.mx)
		var de *DeliveryError
		if !errors.As(err, &de) || de.Permanent || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("enforce, %s: %v, want a temporary failure saying %q", tt.mx, err, tt.want)
		}
		if tt.srv.Count() != 0 {
			t.Errorf("enforce, %s: the message was delivered against the policy", tt.mx)
		}
	}
	// A bad MX first and the genuine one second: the genuine one gets it.
	if _, err := send("mx2.secure.test", "mx.secure.test"); err != nil || genuine.Count() != 2 {
		t.Fatalf("enforce, bad then genuine MX: %v", err)
	}
	// The policy was fetched once: the record's id did not change.
	if n := site.fetches.Load(); n != 1 {
		t.Errorf("policy fetched %d times, want once", n)
	}
	// The record disappears (an attacker strips it): the cached policy
	// still holds until max_age.
	z.setTXT("_mta-sts.secure.test")
	if _, err := send("mx2.secure.test"); err == nil || selfSigned.Count() != 0 {
		t.Errorf("a stripped record downgraded delivery: %v", err)
	}
	// A new id with testing mode: delivered to the self-signed MX.
	z.setTXT("_mta-sts.secure.test", "v=STSv1; id=2;")
	site.policy.Store("version: STSv1\nmode: testing\nmx: *.secure.test\nmax_age: 600\n")
	if _, err := send("mx2.secure.test"); err != nil || selfSigned.Count() != 1 {
		t.Errorf("testing mode: %v, self-signed MX has %d", err, selfSigned.Count())
	}
	if n := site.fetches.Load(); n != 2 {
		t.Errorf("policy fetched %d times after the id changed, want 2", n)
	}
}

func TestMTASTSWithoutPolicyOrBrokenPolicy(t *testing.T) {
	t.Parallel()
	ca := smtptest.NewCA(t)
	z := newZone()
	site := newSTSSite(t, ca, "broken.test", "version: STSv2\nmode: enforce\nmx: mx.broken.test\nmax_age: 600\n")
	sts := &MTASTS{Resolver: z, Client: site.client, Now: time.Now}
	if _, ok, err := sts.Policy(context.Background(), "none.test"); ok || err != nil {
		t.Errorf("no record: ok %v, %v", ok, err)
	}
	z.txt["_mta-sts.broken.test"] = []string{"v=STSv1; id=1;"}
	if _, ok, err := sts.Policy(context.Background(), "broken.test"); ok || err == nil || !strings.Contains(err.Error(), "STSv2") {
		t.Errorf("broken policy: ok %v, %v", ok, err)
	}
	z.txt["_mta-sts.two.test"] = []string{"v=STSv1; id=1;", "v=STSv1; id=2;"}
	if _, ok, err := sts.Policy(context.Background(), "two.test"); ok || err == nil {
		t.Errorf("two records: ok %v, %v", ok, err)
	}
}

func TestParseSTSPolicy(t *testing.T) {
	t.Parallel()
	good := []struct {
		in   string
		want STSPolicy
	}{
		{"version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmax_age: 604800\r\n",
			STSPolicy{Mode: STSEnforce, MX: []string{"mail.example.com", "*.example.net"}, MaxAge: 7 * 24 * time.Hour}},
		{"version: STSv1\nmode: none\nmax_age: 0\n", STSPolicy{Mode: STSNone}},
		{"version:STSv1\nmode:testing\nmx:a.test\nmax_age:99999999\nextension: ignored\n",
			STSPolicy{Mode: STSTesting, MX: []string{"a.test"}, MaxAge: maxSTSMaxAge * time.Second}},
	}
	for _, tt := range good {
		got, err := ParseSTSPolicy([]byte(tt.in))
		if err != nil || got.Mode != tt.want.Mode || got.MaxAge != tt.want.MaxAge || strings.Join(got.MX, ",") != strings.Join(tt.want.MX, ",") {
			t.Errorf("ParseSTSPolicy(%q) = %+v, %v", tt.in, got, err)
		}
	}
	bad := map[string]string{
		"mode: enforce\nmx: a.test\nmax_age: 1\n":                  "no version",
		"version: STSv1\nmode: strict\nmx: a.test\nmax_age: 1\n":   "not enforce, testing or none",
		"version: STSv1\nmode: enforce\nmax_age: 1\n":              "no mx",
		"version: STSv1\nmode: enforce\nmx: a.test\n":              "no max_age",
		"version: STSv1\nmode: enforce\nmx: a.test\nmax_age: -1\n": "not a number",
		"<html>not a policy</html>":                                "not key: value",
	}
	for in, want := range bad {
		if _, err := ParseSTSPolicy([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseSTSPolicy(%q): %v, want %q", in, err, want)
		}
	}
}

func TestSTSPolicyMatches(t *testing.T) {
	t.Parallel()
	p := STSPolicy{MX: []string{"mail.example.com", "*.example.net"}}
	for host, want := range map[string]bool{
		"mail.example.com": true, "MAIL.example.com.": true, "mx1.example.net": true,
		"example.net": false, "a.b.example.net": false, "other.example.com": false, ".example.net": false,
	} {
		if got := p.Matches(host); got != want {
			t.Errorf("Matches(%q) = %v", host, got)
		}
	}
}

func TestParseSTSRecord(t *testing.T) {
	t.Parallel()
	for records, want := range map[string]string{
		"v=STSv1; id=20160831085700Z;": "20160831085700Z",
		"v=STSv1;id=abc":               "abc",
	} {
		if id, err := parseSTSRecord([]string{records, "unrelated"}); err != nil || id != want {
			t.Errorf("%q: %q %v", records, id, err)
		}
	}
	for _, records := range [][]string{nil, {"v=STSv1; id=;"}, {"v=STSv1; id=has-dash"}, {"v=STSv1; id=" + strings.Repeat("a", 33)}} {
		if _, err := parseSTSRecord(records); err == nil {
			t.Errorf("%q: accepted", records)
		}
	}
}

func FuzzParseSTSPolicy(f *testing.F) {
	f.Add([]byte("version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmax_age: 604800\r\n"))
	f.Add([]byte("version: STSv1\nmode: none\nmax_age: 0\n"))
	f.Add([]byte("version:STSv1\nmode:testing\nmx:*.a.test\nmax_age:1\nmx:\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := ParseSTSPolicy(body)
		if err != nil {
			return
		}
		if p.Mode != STSNone && len(p.MX) == 0 || p.MaxAge < 0 || p.MaxAge > maxSTSMaxAge*time.Second {
			t.Fatalf("accepted an invalid policy %+v", p)
		}
		p.Matches("mx.example.com")
	})
}
