package settings

import (
	"crypto/x509"
	"fmt"
	"net"
	"net/mail"
	"net/netip"
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

	sec := s.Security
	between := func(key string, v, lo, hi int) {
		if v < lo || v > hi {
			bad(key, "%d is not from %d to %d", v, lo, hi)
		}
	}
	between("security.session_idle_minutes", sec.SessionIdleMinutes, 5, 24*60)
	between("security.session_lifetime_hours", sec.SessionLifetimeHours, 1, 24*30)
	if sec.SessionLifetimeHours*60 < sec.SessionIdleMinutes {
		bad("security.session_lifetime_hours", "%d hours is shorter than the idle timeout of %d minutes", sec.SessionLifetimeHours, sec.SessionIdleMinutes)
	}
	between("security.reset_link_hours", sec.ResetLinkHours, 1, 72)
	between("security.auth_code_minutes", sec.AuthCodeMinutes, 2, 60)
	between("security.invitation_days", sec.InvitationDays, 1, 90)
	between("security.password_min_length", sec.PasswordMinLength, 8, 128)
	between("security.sign_in_attempts", sec.SignInAttempts, 3, 50)
	between("security.lockout_minutes", sec.LockoutMinutes, 1, 24*60)

	r := s.Registration
	switch r.Access {
	case "open", "controlled":
	default:
		bad("registration.access", "%q is not open or controlled", r.Access)
	}
	between("registration.level", r.Level, 1, 3)

	for _, n := range s.Inbound.RelayNetworks {
		if _, err := netip.ParsePrefix(n); err != nil {
			bad("inbound.relay_networks", "%q is not a network in CIDR form such as 192.0.2.0/24", n)
		}
	}
	text("inbound.subject_tag", s.Inbound.SubjectTag, 64, false)
	if h := s.Inbound.SecureHeader; h != "" && !headerName.MatchString(h) {
		bad("inbound.secure_header", "%q is not a header name (letters, digits and hyphens)", h)
	}
	in := s.Inbound
	switch in.NotSecure {
	case "pass", "refuse":
	default:
		bad("inbound.not_secure", "%q is not pass or refuse", in.NotSecure)
	}
	between("inbound.max_message_mb", in.MaxMessageMB, 1, 2048)
	between("inbound.max_recipients", in.MaxRecipients, 100, 10000)
	between("inbound.max_connections_per_ip", in.MaxConnsPerIP, 1, 1000)
	between("inbound.min_free_mb", in.MinFreeMB, 0, 10_000_000)
	between("inbound.timeout_seconds", in.Timeout, 10, 3600)
	msg := s.Messages
	between("messages.expiry_default_days", msg.ExpiryDefaultDays, 0, 3650)
	between("messages.expiry_max_days", msg.ExpiryMaxDays, 0, 3650)
	if msg.ExpiryMaxDays > 0 && (msg.ExpiryDefaultDays == 0 || msg.ExpiryDefaultDays > msg.ExpiryMaxDays) {
		bad("messages.expiry_default_days", "must be from 1 to messages.expiry_max_days (%d) when a longest expiry is set", msg.ExpiryMaxDays)
	}
	between("messages.trash_days", msg.TrashDays, 1, 365)
	between("messages.max_recipients", msg.MaxRecipients, 100, 5000)
	between("messages.max_body_kb", msg.MaxBodyKB, 64, 20480)
	for _, d := range r.CRAExcludedDomains {
		if !isHostname(d) {
			bad("registration.cra_excluded_domains", "%q is not a domain", d)
		}
	}
	return errs
}

var headerName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,62}$`)

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
