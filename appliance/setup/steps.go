package setup

import (
	"net/url"
	"strings"

	"github.com/sealpost/sealpost/appliance/account"
	"github.com/sealpost/sealpost/appliance/fault"
	"github.com/sealpost/sealpost/appliance/passwords"
	"github.com/sealpost/sealpost/appliance/settings"
)

// The wizard's steps, in order (SPEC §3).
const (
	StepOrganization = "organization"
	StepBranding     = "branding"
	StepAdmin        = "admin"
	StepCertificates = "certificates"
	StepMail         = "mail"
	StepInbound      = "inbound"
	StepSummary      = "summary"
)

// Steps lists the steps in order.
var Steps = []string{StepOrganization, StepBranding, StepAdmin, StepCertificates, StepMail, StepInbound, StepSummary}

// Certificates is the certificate step's choice. TLS is a boot setting
// (tls.* in the configuration file, read at start), so the wizard checks the
// choice and shows the lines to put in the file; it changes nothing itself.
type Certificates struct {
	Mode         string // "self-signed", "files" or "acme"
	Hostname     string
	CertFile     string
	KeyFile      string
	Email        string // ACME contact
	DirectoryURL string // ACME directory
}

// ConfigLines is the [tls] part of sealpost.toml for the choice.
func (c Certificates) ConfigLines() string {
	lines := []string{`hostname = "` + c.Hostname + `"`, "", "[tls]", `mode = "` + c.Mode + `"`}
	switch c.Mode {
	case "files":
		lines = append(lines, `cert_file = "`+c.CertFile+`"`, `key_file = "`+c.KeyFile+`"`)
	case "acme":
		lines = append(lines, "", "[tls.acme]", `email = "`+c.Email+`"`)
		if c.DirectoryURL != "" {
			lines = append(lines, `directory_url = "`+c.DirectoryURL+`"`)
		}
	}
	return strings.Join(lines, "\n")
}

// prefixes are the settings keys each step answers.
var prefixes = map[string][]string{
	StepOrganization: {"organization."},
	StepBranding:     {"branding."},
	StepMail:         {"mail."},
	StepInbound:      {"inbound."},
}

// CheckStep reports every problem with one step's answers, each with its
// key, before anything is saved; Apply checks all of them again.
func CheckStep(step string, a Answers, certs Certificates) []Problem {
	var problems []Problem
	for _, p := range required(a) {
		if strings.HasPrefix(p.Key, step+".") {
			problems = append(problems, p)
		}
	}
	_, invalid := settings.Check(a.changes()...)
	for _, p := range invalid {
		for _, prefix := range prefixes[step] {
			if strings.HasPrefix(p.Key, prefix) {
				problems = append(problems, Problem{p.Key, p.Msg})
			}
		}
	}
	switch step {
	case StepAdmin:
		if _, err := account.NormalizeAddress(a.Admin.Email); err != nil {
			problems = append(problems, Problem{"admin.email", fault.Message(err)})
		}
		policy := passwords.Policy{MinLength: settings.Defaults().Security.PasswordMinLength}
		if msgs := policy.Check(a.Admin.Password, a.Admin.Email, a.Admin.Name); len(msgs) > 0 {
			problems = append(problems, Problem{"admin.password", strings.Join(msgs, " ")})
		}
	case StepMail:
		if a.Mail.FromAddress == "" {
			problems = append(problems, Problem{"mail.from_address", "Give the address notifications come from, such as no-reply@example.org."})
		}
		if a.Mail.Mode != "mx" && a.Mail.RelayHost == "" {
			problems = append(problems, Problem{"mail.relay_host", "Give the relay's host name, or choose direct delivery."})
		}
	case StepCertificates:
		problems = append(problems, certs.check()...)
	}
	return problems
}

func (c Certificates) check() []Problem {
	var problems []Problem
	bad := func(key, msg string) { problems = append(problems, Problem{"certificates." + key, msg}) }
	switch c.Mode {
	case "self-signed":
	case "files", "acme":
		if !hostname(c.Hostname) {
			bad("hostname", "Give the name users reach the appliance by, such as secure.example.org.")
		}
	default:
		bad("mode", "Choose one of the three.")
	}
	if c.Mode == "files" {
		if !strings.HasPrefix(c.CertFile, "/") {
			bad("cert_file", "Give the full path of the certificate file (PEM), such as /etc/sealpost/cert.pem.")
		}
		if !strings.HasPrefix(c.KeyFile, "/") {
			bad("key_file", "Give the full path of the private key file (PEM), such as /etc/sealpost/key.pem.")
		}
	}
	if c.Mode == "acme" {
		if _, err := account.NormalizeAddress(c.Email); err != nil {
			bad("email", "Give a contact address for the certificate authority.")
		}
		if u, err := url.Parse(c.DirectoryURL); c.DirectoryURL != "" && (err != nil || u.Scheme != "https" || u.Host == "") {
			bad("directory_url", "Give the directory's https:// address, or leave it empty for Let's Encrypt.")
		}
	}
	return problems
}

func hostname(h string) bool {
	if h == "" || len(h) > 253 || !strings.Contains(h, ".") {
		return false
	}
	for _, l := range strings.Split(h, ".") {
		if l == "" || len(l) > 63 || strings.HasPrefix(l, "-") || strings.HasSuffix(l, "-") {
			return false
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}
