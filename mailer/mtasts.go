package mailer

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// MTA-STS (RFC 8461): a domain publishes, over HTTPS, which of its MX hosts
// are genuine and that they must be reached over verified TLS. Direct
// delivery honours such a policy; without one, TLS is opportunistic.

// STS policy modes.
const (
	STSEnforce = "enforce" // deliver only to listed MX hosts over verified TLS
	STSTesting = "testing" // deliver as without a policy; report what would fail
	STSNone    = "none"    // the domain withdrew its policy
)

// STSPolicy is a domain's published policy.
type STSPolicy struct {
	ID     string // from the _mta-sts TXT record
	Mode   string
	MX     []string // host names or "*.example.com" patterns
	MaxAge time.Duration
}

// Matches reports whether the MX host is one the policy lists. A pattern
// "*.example.com" matches exactly one left-most label.
func (p STSPolicy) Matches(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, pattern := range p.MX {
		pattern = strings.ToLower(strings.TrimSuffix(pattern, "."))
		if rest, ok := strings.CutPrefix(pattern, "*."); ok {
			label, parent, found := strings.Cut(host, ".")
			if found && label != "" && parent == rest {
				return true
			}
		} else if host == pattern {
			return true
		}
	}
	return false
}

// maxSTSMaxAge is the longest max_age RFC 8461 allows (one year).
const maxSTSMaxAge = 31557600

// ParseSTSPolicy reads a policy file (RFC 8461 §3.2).
func ParseSTSPolicy(body []byte) (STSPolicy, error) {
	var p STSPolicy
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.ReplaceAll(string(body), "\r\n", "\n"), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		key, value, ok := strings.Cut(line, ":")
		if !ok {
			return p, fmt.Errorf("line %q is not key: value", truncate(line, 80))
		}
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if key != "mx" && seen[key] {
			continue // the first occurrence counts
		}
		seen[key] = true
		switch key {
		case "version":
			if value != "STSv1" {
				return p, fmt.Errorf("version %q is not STSv1", truncate(value, 40))
			}
		case "mode":
			switch value {
			case STSEnforce, STSTesting, STSNone:
				p.Mode = value
			default:
				return p, fmt.Errorf("mode %q is not enforce, testing or none", truncate(value, 40))
			}
		case "mx":
			if value == "" || strings.ContainsAny(value, " \t") {
				return p, fmt.Errorf("mx %q is not a host name pattern", truncate(value, 80))
			}
			p.MX = append(p.MX, value)
		case "max_age":
			n, err := strconv.Atoi(value)
			if err != nil || n < 0 || len(value) > 10 {
				return p, fmt.Errorf("max_age %q is not a number of seconds", truncate(value, 40))
			}
			p.MaxAge = time.Duration(min(n, maxSTSMaxAge)) * time.Second
		}
	}
	switch {
	case !seen["version"]:
		return p, errors.New("no version field")
	case p.Mode == "":
		return p, errors.New("no mode field")
	case !seen["max_age"]:
		return p, errors.New("no max_age field")
	case p.Mode != STSNone && len(p.MX) == 0:
		return p, errors.New("no mx field")
	}
	return p, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// parseSTSRecord reads the id of a _mta-sts TXT record set (RFC 8461 §3.1).
// Exactly one record must start with v=STSv1.
func parseSTSRecord(records []string) (string, error) {
	var found []string
	for _, r := range records {
		if strings.HasPrefix(r, "v=STSv1") {
			found = append(found, r)
		}
	}
	if len(found) != 1 {
		return "", fmt.Errorf("%d v=STSv1 records, need exactly one", len(found))
	}
	id := ""
	for _, field := range strings.Split(found[0], ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(field), "=")
		if k == "id" {
			id = v
		}
	}
	if id == "" || len(id) > 32 || strings.IndexFunc(id, func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9')
	}) >= 0 {
		return "", fmt.Errorf("id %q is not 1 to 32 letters and digits", truncate(id, 40))
	}
	return id, nil
}

// TXTResolver looks up TXT records; net.Resolver is one.
type TXTResolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
}

// MTASTS finds and caches the policies of recipient domains. The cache
// lives as long as the process: a policy is fetched again after a restart.
type MTASTS struct {
	Resolver TXTResolver
	// Client fetches policies; nil: a client that verifies with the
	// system's roots. It must not follow redirects (RFC 8461 §3.3).
	Client *http.Client
	Now    func() time.Time

	mu    sync.Mutex
	cache map[string]cachedPolicy
}

type cachedPolicy struct {
	policy  STSPolicy
	expires time.Time
}

// NewMTASTS returns a policy finder. roots verify the policy hosts' HTTPS
// (nil: the system's roots).
func NewMTASTS(resolver TXTResolver, roots *x509.CertPool) *MTASTS {
	return &MTASTS{Resolver: resolver, Client: stsClient(roots, nil), Now: time.Now}
}

// stsClient fetches policies: verified HTTPS, no redirects, short timeouts.
func stsClient(roots *x509.CertPool, dial func(ctx context.Context, network, addr string) (net.Conn, error)) *http.Client {
	tr := &http.Transport{
		TLSClientConfig:       &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		DialContext:           dial,
		TLSHandshakeTimeout:   15 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		MaxIdleConns:          4,
		IdleConnTimeout:       30 * time.Second,
	}
	return &http.Client{Transport: tr, Timeout: 60 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// maxPolicyBytes bounds a policy file (RFC 8461 suggests 64 KiB).
const maxPolicyBytes = 64 << 10

// Policy returns the domain's policy, or ok false when it publishes none
// (or none could be fetched and none is cached): then TLS is opportunistic.
// err says why a published policy could not be used, for the log.
func (m *MTASTS) Policy(ctx context.Context, domain string) (p STSPolicy, ok bool, err error) {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	now := m.Now()
	m.mu.Lock()
	cached, haveCached := m.cache[domain]
	m.mu.Unlock()
	haveCached = haveCached && now.Before(cached.expires)

	records, lookupErr := m.Resolver.LookupTXT(ctx, "_mta-sts."+domain)
	id, recordErr := parseSTSRecord(records)
	if lookupErr != nil || recordErr != nil {
		// No (usable) record: a cached policy still holds until it expires
		// (RFC 8461 §5.1), which is what defeats a stripped record.
		if haveCached {
			return cached.policy, cached.policy.Mode != STSNone, nil
		}
		var dnsErr *net.DNSError
		if lookupErr != nil && !(errors.As(lookupErr, &dnsErr) && dnsErr.IsNotFound) {
			return p, false, fmt.Errorf("MTA-STS record of %s: %w", domain, lookupErr)
		}
		if lookupErr == nil && len(records) > 0 && recordErr != nil {
			return p, false, fmt.Errorf("MTA-STS record of %s: %w", domain, recordErr)
		}
		return p, false, nil
	}
	if haveCached && cached.policy.ID == id {
		return cached.policy, cached.policy.Mode != STSNone, nil
	}
	p, err = m.fetch(ctx, domain)
	if err != nil {
		if haveCached {
			return cached.policy, cached.policy.Mode != STSNone, err
		}
		return p, false, err
	}
	p.ID = id
	m.mu.Lock()
	if m.cache == nil {
		m.cache = map[string]cachedPolicy{}
	}
	m.cache[domain] = cachedPolicy{policy: p, expires: now.Add(p.MaxAge)}
	m.mu.Unlock()
	return p, p.Mode != STSNone, nil
}

func (m *MTASTS) fetch(ctx context.Context, domain string) (STSPolicy, error) {
	url := "https://mta-sts." + domain + "/.well-known/mta-sts.txt"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return STSPolicy{}, fmt.Errorf("MTA-STS policy of %s: %w", domain, err)
	}
	client := m.Client
	if client == nil {
		client = stsClient(nil, nil)
	}
	resp, err := client.Do(req)
	if err != nil {
		return STSPolicy{}, fmt.Errorf("MTA-STS policy of %s: %w", domain, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return STSPolicy{}, fmt.Errorf("MTA-STS policy of %s: %s answered %s", domain, url, resp.Status)
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/plain" {
		return STSPolicy{}, fmt.Errorf("MTA-STS policy of %s: Content-Type %q is not text/plain", domain, mt)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxPolicyBytes+1))
	if err != nil {
		return STSPolicy{}, fmt.Errorf("MTA-STS policy of %s: %w", domain, err)
	}
	if len(body) > maxPolicyBytes {
		return STSPolicy{}, fmt.Errorf("MTA-STS policy of %s is larger than %d bytes", domain, maxPolicyBytes)
	}
	p, err := ParseSTSPolicy(body)
	if err != nil {
		return p, fmt.Errorf("MTA-STS policy of %s: %w", domain, err)
	}
	return p, nil
}
