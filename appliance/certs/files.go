package certs

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"strings"
)

// fileState is what the reloader saw last.
type fileState struct {
	sum [sha256.Size]byte // of the two files' contents, or of why they could not be read
	// unreported is set when the files changed to a pair that does not
	// load; it is logged if the files stay that way for another interval,
	// since a pair being copied in is briefly mismatched.
	unreported bool
}

// openFiles loads the pair at start; any problem stops start-up.
func (m *Manager) openFiles() error {
	cert, sum, err := loadFiles(m.cfg.CertFile, m.cfg.KeyFile)
	if err != nil {
		return err
	}
	m.files.sum = sum
	m.current.Store(cert)
	m.log.Info().Str("cert_file", m.cfg.CertFile).Strs("dns_names", cert.Leaf.DNSNames).
		Time("not_after", cert.Leaf.NotAfter).Msg("serving the certificate from tls.cert_file")
	m.checkLeaf(cert.Leaf)
	return nil
}

// reloadFiles serves the files' pair when their contents changed and the new
// pair loads. It reads both files every time: the content decides, so a
// rewrite within one mtime tick, a rename over the file and a symlink swap
// are all seen.
func (m *Manager) reloadFiles() {
	cert, sum, err := loadFiles(m.cfg.CertFile, m.cfg.KeyFile)
	if sum == m.files.sum {
		if err != nil && m.files.unreported {
			m.files.unreported = false
			m.log.Error().Err(err).Str("cert_file", m.cfg.CertFile).Str("key_file", m.cfg.KeyFile).
				Msg("the certificate files changed but do not load; still serving the previous certificate")
		}
		return
	}
	m.files.sum = sum
	m.files.unreported = err != nil
	if err != nil {
		return
	}
	m.current.Store(cert)
	m.log.Info().Str("cert_file", m.cfg.CertFile).Strs("dns_names", cert.Leaf.DNSNames).
		Time("not_after", cert.Leaf.NotAfter).Msg("certificate files reloaded")
	m.checkLeaf(cert.Leaf)
}

// checkLeaf warns about a certificate from files that clients will refuse
// or question. It is served anyway: the operator may be replacing it.
func (m *Manager) checkLeaf(leaf *x509.Certificate) {
	now := m.now()
	ev := m.log.Warn().Str("cert_file", m.cfg.CertFile).Time("not_before", leaf.NotBefore).Time("not_after", leaf.NotAfter)
	switch {
	case now.After(leaf.NotAfter):
		ev.Msg("the certificate in tls.cert_file has expired; clients will refuse it until it is replaced")
	case now.Before(leaf.NotBefore):
		ev.Msg("the certificate in tls.cert_file is not valid yet; check the clock")
	case now.After(leaf.NotAfter.Add(-renewBefore)):
		ev.Msg("the certificate in tls.cert_file expires within 30 days; install a new one")
	case m.host != "" && leaf.VerifyHostname(m.host) != nil:
		ev.Str("hostname", m.host).Strs("dns_names", leaf.DNSNames).
			Msg("the certificate in tls.cert_file does not name the host name; browsers will warn")
	default:
		ev.Discard()
	}
}

// loadFiles reads and checks a certificate file and a key file. The digest
// covers what was read, or why it could not be, so the reloader notices any
// change. The error reports every problem, each naming its key and file.
func loadFiles(certFile, keyFile string) (*tls.Certificate, [sha256.Size]byte, error) {
	certPEM, certErr := os.ReadFile(certFile)
	keyPEM, keyErr := os.ReadFile(keyFile)
	h := sha256.New()
	for _, f := range []struct {
		data []byte
		err  error
	}{{certPEM, certErr}, {keyPEM, keyErr}} {
		if f.err != nil {
			fmt.Fprintf(h, "error %v\n", f.err)
		} else {
			fmt.Fprintf(h, "%d\n", len(f.data))
			h.Write(f.data)
		}
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])

	var p problems
	if certErr != nil {
		p.add("tls.cert_file", readError(certFile, certErr).Error(), nil)
	} else if msg := checkCertPEM(certPEM); msg != "" {
		p.add("tls.cert_file", certFile+" "+msg, nil)
	}
	if keyErr != nil {
		p.add("tls.key_file", readError(keyFile, keyErr).Error(), nil)
	} else if msg := checkKeyPEM(keyPEM); msg != "" {
		p.add("tls.key_file", keyFile+" "+msg, nil)
	}
	if err := p.err(); err != nil {
		return nil, sum, err
	}
	cert, err := parsePair(certPEM, keyPEM)
	if err != nil {
		p.add("tls.key_file", fmt.Sprintf("%s does not match the certificate in %s", keyFile, certFile), err)
		return nil, sum, p.err()
	}
	return cert, sum, nil
}

// checkCertPEM says what is wrong with a certificate file, or "".
func checkCertPEM(data []byte) string {
	var sawKey bool
	for rest := data; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		switch {
		case b.Type == "CERTIFICATE":
			if _, err := x509.ParseCertificate(b.Bytes); err != nil {
				return "holds a certificate that cannot be parsed: " + err.Error()
			}
			return ""
		case strings.HasSuffix(b.Type, "PRIVATE KEY"):
			sawKey = true
		}
	}
	if sawKey {
		return "holds a private key, not a certificate (are tls.cert_file and tls.key_file swapped?)"
	}
	return "holds no PEM certificate"
}

// checkKeyPEM says what is wrong with a key file, or "".
func checkKeyPEM(data []byte) string {
	var sawCert bool
	for rest := data; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		switch {
		case b.Type == "ENCRYPTED PRIVATE KEY" || strings.Contains(b.Headers["Proc-Type"], "ENCRYPTED"):
			return "holds an encrypted private key, which cannot be used: store it unencrypted, readable only by the sealpost user"
		case strings.HasSuffix(b.Type, "PRIVATE KEY"):
			if _, err := x509.ParsePKCS8PrivateKey(b.Bytes); err == nil {
				return ""
			}
			if _, err := x509.ParsePKCS1PrivateKey(b.Bytes); err == nil {
				return ""
			}
			if _, err := x509.ParseECPrivateKey(b.Bytes); err == nil {
				return ""
			}
			return "holds a private key that cannot be parsed"
		case b.Type == "CERTIFICATE":
			sawCert = true
		}
	}
	if sawCert {
		return "holds a certificate, not a private key"
	}
	return "holds no PEM private key"
}
