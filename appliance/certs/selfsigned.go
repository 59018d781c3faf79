package certs

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/acme/autocert"
)

// selfSignedKey is the cache entry holding the self-signed certificate and
// its key, both PEM. It never collides with autocert's entries, which are
// host names and "acme_account+key".
const selfSignedKey = "self-signed.pem"

const (
	selfSignedValidity      = 365 * 24 * time.Hour
	selfSignedCheckInterval = 12 * time.Hour
)

// loadSelfSigned serves the certificate kept in the cache. It makes and
// stores a new one when there is none, when the stored one cannot be read,
// expires within renewBefore or does not name the configured host name.
// With no host name configured the stored certificate is kept whatever the
// machine is called now (a container gets a new name on every run).
func (m *Manager) loadSelfSigned(ctx context.Context) error {
	now := m.now()
	reason := "none stored"
	data, err := m.cfg.Cache.Get(ctx, selfSignedKey)
	switch {
	case err == nil:
		cert, err := parsePair(data, data)
		switch {
		case err != nil:
			reason = "the stored one cannot be read"
			m.log.Warn().Err(err).Msg("the stored self-signed certificate cannot be read; making a new one")
		case now.After(cert.Leaf.NotAfter.Add(-renewBefore)):
			reason = "the stored one expires within 30 days"
		case m.host != "" && cert.Leaf.VerifyHostname(m.host) != nil:
			reason = "the stored one does not name the host name"
		default:
			if cur := m.current.Load(); cur == nil || !bytes.Equal(cur.Certificate[0], cert.Certificate[0]) {
				m.current.Store(cert)
			}
			return nil
		}
	case errors.Is(err, autocert.ErrCacheMiss):
	default:
		return fmt.Errorf("read the self-signed certificate: %w", err)
	}

	dnsNames, ips := selfSignedNames(m.host)
	data, err = makeSelfSigned(dnsNames, ips, now)
	if err != nil {
		return err
	}
	cert, err := parsePair(data, data)
	if err != nil {
		return fmt.Errorf("parse the new self-signed certificate: %w", err)
	}
	if err := m.cfg.Cache.Put(ctx, selfSignedKey, data); err != nil {
		return fmt.Errorf("store the self-signed certificate: %w", err)
	}
	m.current.Store(cert)
	m.log.Info().Str("reason", reason).Strs("dns_names", dnsNames).Time("not_after", cert.Leaf.NotAfter).
		Msg("made a self-signed certificate")
	return nil
}

// selfSignedNames returns what a self-signed certificate for host covers:
// host (or, when empty, the machine's name), localhost, 127.0.0.1 and ::1.
func selfSignedNames(host string) (dnsNames []string, ips []net.IP) {
	if host == "" {
		if h, err := os.Hostname(); err == nil {
			host = strings.ToLower(strings.TrimSuffix(h, "."))
		}
	}
	ips = []net.IP{net.IPv4(127, 0, 0, 1).To4(), net.IPv6loopback}
	if ip := net.ParseIP(host); ip != nil {
		if !slices.ContainsFunc(ips, ip.Equal) {
			ips = append([]net.IP{ip}, ips...)
		}
	} else if host != "" && host != "localhost" {
		dnsNames = append(dnsNames, host)
	}
	return append(dnsNames, "localhost"), ips
}

// makeSelfSigned returns a new PEM certificate followed by its PEM key,
// valid from an hour before now for selfSignedValidity.
func makeSelfSigned(dnsNames []string, ips []net.IP, now time.Time) ([]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("make a key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("make a serial number: %w", err)
	}
	cn := "localhost"
	if len(dnsNames) > 0 {
		cn = dnsNames[0]
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"Sealpost appliance (self-signed)"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(selfSignedValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              dnsNames,
		IPAddresses:           ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("make a certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode the key: %w", err)
	}
	var buf bytes.Buffer
	buf.Write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	buf.Write(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	return buf.Bytes(), nil
}

// parsePair parses a PEM certificate chain and its key, checks that they
// match and fills in Leaf.
func parsePair(certPEM, keyPEM []byte) (*tls.Certificate, error) {
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, err
		}
	}
	return &cert, nil
}
