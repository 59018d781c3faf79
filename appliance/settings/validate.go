package settings

import (
	"crypto/x509"
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"os"
	"regexp"
	"strings"
	"unicode/utf8"
)

// SettingError is one invalid value.
type SettingError struct{ Key, Msg string }

func (e *SettingError) Error() string { return e.Key + ": " + e.Msg }

var (
	hostLabel = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)
	color     = regexp.MustCompile(`^#[0-9a-fA-F]{6}$`)
)

// Validate reports every invalid value, each naming its key.
func (s *Settings) Validate() []error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, &SettingError{Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	text := func(key, value string, max int, multiline bool) {
		switch {
		case !utf8.ValidString(value):
			bad(key, "is not valid UTF-8")
		case len(value) > max:
			bad(key, "is longer than %d bytes", max)
		case !multiline && strings.ContainsAny(value, "\r\n"):
			bad(key, "must be one line")
		}
	}

	o := s.Organization
	text("organization.name", o.Name, 200, false)
	for _, d := range o.Domains {
		if !isHostname(d) || !strings.Contains(d, ".") {
			bad("organization.domains", "%q is not a domain name", d)
		}
	}
	if o.Website != "" {
		if u, err := url.Parse(o.Website); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			bad("organization.website", "%q is not an http(s):// address", o.Website)
		}
	}
	text("organization.postal_address", o.PostalAddress, 500, true)

	b := s.Branding
	if !color.MatchString(b.AccentColor) {
		bad("branding.accent_color", "%q is not a colour like #0f7b6c", b.AccentColor)
	}
	text("branding.sign_in_message", b.SignInMessage, 2000, true)
	text("branding.welcome_message", b.WelcomeMessage, 5000, true)

	m := s.Mail
	switch m.Mode {
	case "relay", "mx":
	default:
		bad("mail.mode", "%q is not relay or mx", m.Mode)
	}
	if m.RelayHost != "" && !isHostname(m.RelayHost) && net.ParseIP(m.RelayHost) == nil {
		bad("mail.relay_host", "%q is neither a host name nor an IP address (give the port in mail.relay_port)", m.RelayHost)
	}
	if m.RelayPort < 1 || m.RelayPort > 65535 {
		bad("mail.relay_port", "%d is not a port from 1 to 65535", m.RelayPort)
	}
	switch m.RelaySecurity {
	case "starttls", "tls":
	default:
		bad("mail.relay_security", "%q is not starttls or tls", m.RelaySecurity)
	}
	text("mail.relay_username", m.RelayUsername, 256, false)
	text("mail.relay_password", m.RelayPassword, 256, false)
	if m.RelayCAFile != "" {
		if _, err := LoadCAFile(m.RelayCAFile); err != nil {
			bad("mail.relay_ca_file", "%v", err)
		}
	}
	if m.FromAddress != "" {
		if a, err := mail.ParseAddress(m.FromAddress); err != nil || a.Address != m.FromAddress || a.Name != "" {
			bad("mail.from_address", "%q is not an email address", m.FromAddress)
		}
	}
	text("mail.from_name", m.FromName, 200, false)
	if !hostLabel.MatchString(m.DKIMSelector) {
		bad("mail.dkim_selector", "%q is not a DNS label (letters, digits, hyphens)", m.DKIMSelector)
	}

	text("notifications.disclaimer", s.Notifications.Disclaimer, 5000, true)
	return errs
}

func isHostname(name string) bool {
	name = strings.TrimSuffix(name, ".")
	if name == "" || len(name) > 253 {
		return false
	}
	for _, label := range strings.Split(name, ".") {
		if !hostLabel.MatchString(label) {
			return false
		}
	}
	return true
}

// LoadCAFile reads a PEM bundle of CA certificates.
func LoadCAFile(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s cannot be read", path)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}

// Ready reports what is missing before notifications can be sent.
func (m Mail) Ready() error {
	var missing []string
	if m.FromAddress == "" {
		missing = append(missing, "mail.from_address")
	}
	if m.Mode == "relay" && m.RelayHost == "" {
		missing = append(missing, "mail.relay_host")
	}
	if len(missing) > 0 {
		return fmt.Errorf("outbound mail is not configured: set %s (sealpost settings set KEY VALUE)", strings.Join(missing, " and "))
	}
	return nil
}
