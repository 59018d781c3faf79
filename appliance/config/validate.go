package config

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Validate reports every invalid value, each naming its key.
func (c *Config) Validate() Errors {
	var errs Errors
	bad := func(key, format string, args ...any) {
		errs = append(errs, &KeyError{Key: key, Msg: fmt.Sprintf(format, args...)})
	}

	if strings.TrimSpace(c.DataDir) == "" {
		bad("data_dir", "required")
	}
	if strings.TrimSpace(c.KeyFile) == "" {
		bad("key_file", "required")
	} else if c.DataDir != "" && within(c.KeyFile, c.DataDir) {
		bad("key_file", "%s is inside data_dir %s; keep the key apart from the data it protects", c.KeyFile, c.DataDir)
	}
	if c.Hostname != "" {
		if err := checkHostname(c.Hostname); err != nil {
			bad("hostname", "%v", err)
		}
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}

	listeners := []struct{ key, addr string }{
		{"https.listen", c.HTTPS.Listen},
		{"http.listen", c.HTTP.Listen},
		{"smtp.relay_listen", c.SMTP.RelayListen},
		{"smtp.submission_listen", c.SMTP.SubmissionListen},
		{"metrics.listen", c.Metrics.Listen},
	}
	if c.HTTPS.Listen == "" {
		bad("https.listen", "required: the setup wizard, the console and the webmail are served over HTTPS")
	}
	type bound struct{ key, host, port string }
	var used []bound
	for _, l := range listeners {
		if l.addr == "" {
			continue
		}
		host, port, err := checkListen(l.addr)
		if err != nil {
			bad(l.key, "%v", err)
			continue
		}
		for _, u := range used {
			if u.port == port && port != "0" && (u.host == host || u.host == "" || host == "") {
				bad(l.key, "%s is already used by %s", l.addr, u.key)
			}
		}
		used = append(used, bound{l.key, host, port})
	}

	switch c.TLS.Mode {
	case TLSSelfSigned:
	case TLSFiles:
		for _, f := range []struct{ key, path string }{{"tls.cert_file", c.TLS.CertFile}, {"tls.key_file", c.TLS.KeyFile}} {
			if f.path == "" {
				bad(f.key, "required when tls.mode is files")
			} else if err := readable(f.path); err != nil {
				bad(f.key, "%v", err)
			}
		}
	case TLSACME:
		if c.Hostname == "" {
			bad("hostname", "required when tls.mode is acme: the certificate is issued for it")
		}
	default:
		bad("tls.mode", "%q is not one of self-signed, files, acme", c.TLS.Mode)
	}
	if u := c.TLS.ACME.DirectoryURL; u != "" {
		if parsed, err := url.Parse(u); err != nil || parsed.Scheme != "https" || parsed.Host == "" {
			bad("tls.acme.directory_url", "%q is not an https:// URL", u)
		}
	}
	if e := c.TLS.ACME.Email; e != "" {
		if a, err := mail.ParseAddress(e); err != nil || a.Address != e {
			bad("tls.acme.email", "%q is not an email address", e)
		}
	}
	if f := c.TLS.ACME.CAFile; f != "" {
		if err := checkCAFile(f); err != nil {
			bad("tls.acme.ca_file", "%v", err)
		}
	}
	for _, n := range c.Admin.AllowedNetworks {
		if _, err := netip.ParsePrefix(n); err != nil {
			hint := ""
			if _, ipErr := netip.ParseAddr(n); ipErr == nil {
				hint = fmt.Sprintf(" (for one address write %s/32, or /128 for IPv6)", n)
			}
			bad("admin.allowed_networks", "%q is not a network in CIDR form%s", n, hint)
		}
	}
	return errs
}

// within reports whether path is dir or lies below it.
func within(path, dir string) bool {
	p, err1 := filepath.Abs(path)
	d, err2 := filepath.Abs(dir)
	if err1 != nil || err2 != nil {
		return false
	}
	rel, err := filepath.Rel(d, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

func checkListen(addr string) (host, port string, err error) {
	host, port, err = net.SplitHostPort(addr)
	if err != nil {
		return "", "", fmt.Errorf("%q is not host:port (write :8443 for every address)", addr)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return "", "", fmt.Errorf("port %q in %q is not a number from 0 to 65535", port, addr)
	}
	if host != "" {
		if _, err := netip.ParseAddr(host); err != nil {
			if checkHostname(host) != nil {
				return "", "", fmt.Errorf("host %q in %q is neither an IP address nor a host name", host, addr)
			}
		}
	}
	return host, port, nil
}

func checkHostname(name string) error {
	if strings.Contains(name, "://") || strings.ContainsAny(name, ":/") {
		return fmt.Errorf("%q must be a bare host name, without scheme or port", name)
	}
	if len(name) > 253 {
		return fmt.Errorf("%q is longer than 253 characters", name)
	}
	for _, label := range strings.Split(strings.TrimSuffix(name, "."), ".") {
		if label == "" || len(label) > 63 || strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") {
			return fmt.Errorf("%q is not a valid host name", name)
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return fmt.Errorf("%q is not a valid host name", name)
			}
		}
	}
	return nil
}

func readable(path string) error {
	f, err := os.Open(path)
	if err != nil {
		if os.IsNotExist(err) {
			return fmt.Errorf("%s does not exist", path)
		}
		return fmt.Errorf("%s cannot be read: %v", path, err)
	}
	return f.Close()
}

func checkCAFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		if os.IsNotExist(err) {
			return fmt.Errorf("%s does not exist", path)
		}
		return fmt.Errorf("%s cannot be read: %v", path, err)
	}
	found := false
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			return fmt.Errorf("%s holds a certificate that cannot be parsed: %v", path, err)
		}
		found = true
	}
	if !found {
		return fmt.Errorf("%s holds no PEM certificate", path)
	}
	return nil
}
