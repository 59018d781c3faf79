package certs

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
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
	"time"

	"golang.org/x/crypto/acme/autocert"

	"github.com/sealpost/sealpost/appliance/fault"
)

// selfSignedKey is the cache entry of the self-signed certificate.
const selfSignedKey = "self-signed.pem"

const (
	selfSignedValidity = 365 * 24 * time.Hour
	renewBefore        = 30 * 24 * time.Hour
)

// loadSelfSigned takes the self-signed certificate from the cache, or makes
// and stores a new one when there is none, it expires within 30 days, or it
// does not name the configured host.
func (m *Manager) loadSelfSigned(ctx context.Context) error {
	names := m.selfSignedNames()
	data, err := m.cfg.Cache.Get(ctx, selfSignedKey)
	switch {
	case err == nil:
		cert, err := parsePair(data, data)
		if err == nil && time.Until(cert.Leaf.NotAfter) > renewBefore && coversAll(cert.Leaf, names) {
			m.current.Store(cert)
			return nil
		}
		m.log.Info().Msg("making a new self-signed certificate: the stored one expires soon or names other hosts")
	case errors.Is(err, autocert.ErrCacheMiss):
	default:
		return fmt.Errorf("read self-signed certificate: %w", err)
	}
	data, err = makeSelfSigned(names)
	if err != nil {
		return err
	}
	cert, err := parsePair(data, data)
	if err != nil {
		return err
	}
	if err := m.cfg.Cache.Put(ctx, selfSignedKey, data); err != nil {
		return fmt.Errorf("store self-signed certificate: %w", err)
	}
	m.current.Store(cert)
	return nil
}

// selfSignedNames are the DNS names the self-signed certificate covers.
func (m *Manager) selfSignedNames() []string {
	names := []string{"localhost"}
	if m.cfg.Hostname != "" {
		names = append([]string{m.cfg.Hostname}, names...)
	}
	if h, err := os.Hostname(); err == nil && h != "" && !slices.Contains(names, h) {
		names = append(names, h)
	}
	return names
}

func coversAll(leaf *x509.Certificate, names []string) bool {
	for _, n := range names {
		if leaf.VerifyHostname(n) != nil {
			return false
		}
	}
	return true
}

// makeSelfSigned returns a PEM certificate followed by its PEM key.
func makeSelfSigned(names []string) ([]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("make key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: names[0], Organization: []string{"Sealpost appliance (self-signed)"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(selfSignedValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              names,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("make certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	pem.Encode(&buf, &pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	return buf.Bytes(), nil
}

// parsePair parses a PEM certificate chain and key and checks they match.
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

// loadFiles reads and checks a certificate and key file; the digest lets the
// reloader notice a change.
func loadFiles(certFile, keyFile string) (*tls.Certificate, [sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, sum, fault.E(fault.Invalid, fmt.Sprintf("tls.cert_file: %s cannot be read", certFile), err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, sum, fault.E(fault.Invalid, fmt.Sprintf("tls.key_file: %s cannot be read", keyFile), err)
	}
	sum = sha256.Sum256(append(append([]byte(nil), certPEM...), keyPEM...))
	if block, _ := pem.Decode(certPEM); block == nil || block.Type != "CERTIFICATE" {
		return nil, sum, fault.E(fault.Invalid, fmt.Sprintf("tls.cert_file: %s is not a PEM certificate", certFile), nil)
	}
	if block, _ := pem.Decode(keyPEM); block == nil {
		return nil, sum, fault.E(fault.Invalid, fmt.Sprintf("tls.key_file: %s is not a PEM private key", keyFile), nil)
	}
	cert, err := parsePair(certPEM, keyPEM)
	if err != nil {
		return nil, sum, fault.E(fault.Invalid, fmt.Sprintf("tls.key_file: %s does not belong to the certificate in %s", keyFile, certFile), err)
	}
	return cert, sum, nil
}

// reloader returns a check that reloads the files when their content
// changed, keeping the current pair when the new one is broken.
func (m *Manager) reloader(sum [sha256.Size]byte) func() {
	last := sum
	return func() {
		cert, sum, err := loadFiles(m.cfg.CertFile, m.cfg.KeyFile)
		if sum == last {
			return
		}
		last = sum
		if err != nil {
			m.log.Error().Err(err).Msg("new certificate files are broken; still serving the previous certificate")
			return
		}
		m.current.Store(cert)
		m.log.Info().Time("not_after", cert.Leaf.NotAfter).Msg("certificate files reloaded")
		m.warnExpiry(cert)
	}
}

func (m *Manager) warnExpiry(cert *tls.Certificate) {
	if left := time.Until(cert.Leaf.NotAfter); left < renewBefore {
		m.log.Warn().Time("not_after", cert.Leaf.NotAfter).Msg("the certificate expires within 30 days (or has expired); install a new one")
	}
}
