package ui

import (
	"encoding/base64"
	"html/template"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/labstack/echo/v4"

	"github.com/sealpost/sealpost/appliance/branding"
	"github.com/sealpost/sealpost/appliance/fault"
	"github.com/sealpost/sealpost/appliance/setup"
)

// wizard is the setup draft: what the administrator has entered so far.
// It lives in memory only (the admin's password among it) and goes with
// the process; the setup token changes at every start anyway.
type wizard struct {
	mu      sync.Mutex
	answers setup.Answers
	certs   setup.Certificates
	confirm string          // the password typed again
	done    map[string]bool // steps that passed their checks
}

func newWizard() *wizard {
	w := &wizard{done: map[string]bool{}}
	w.certs.Mode = "self-signed"
	w.answers.Branding.AccentColor = "#0f7b6c"
	w.answers.Inbound.SubjectTag, w.answers.Inbound.SecureHeader = "[secure]", "X-Sealpost-Secure"
	w.answers.Mail.Mode, w.answers.Mail.RelayPort, w.answers.Mail.RelaySecurity = "relay", 587, "starttls"
	return w
}

// setupAccess lets only the holder of the one-time token through: from
// the address once, then from its cookie.
func (s *Server) setupAccess(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if s.opts.Setup == nil || !s.opts.Setup.Pending() {
			return echo.ErrNotFound
		}
		token := c.QueryParam("token")
		if token == "" {
			if ck, err := c.Cookie(setupCookie); err == nil {
				token = ck.Value
			}
		}
		if token == "" || !s.opts.Setup.Check(token) {
			if token != "" {
				s.log.Warn().Str("remote_ip", c.RealIP()).Msg("setup refused: wrong token")
			}
			return c.Render(http.StatusForbidden, "setup/locked", lockedPage{page: s.page(), BadToken: token != "", Host: hostForLocked(c)})
		}
		c.SetCookie(&http.Cookie{Name: setupCookie, Value: token, Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
		return next(c)
	}
}

// stepInfo names a step in the progress list.
type stepInfo struct {
	ID, Title string
	Done      bool
	Current   bool
}

var stepTitles = map[string]string{
	setup.StepOrganization: "Organization", setup.StepBranding: "Branding", setup.StepAdmin: "First administrator",
	setup.StepCertificates: "Certificates", setup.StepMail: "Outbound mail", setup.StepInbound: "Inbound mail",
	setup.StepSummary: "Summary",
}

type wizardPage struct {
	page
	Form
	Step     string
	Title    string
	Number   int
	Steps    []stepInfo
	Answers  setup.Answers
	Certs    setup.Certificates
	Facts    SetupFacts
	Banner   template.URL
	Icon     template.URL
	TestSent string // the peer's answer to the test message
	Config   string // the [tls] lines for the configuration file
	Postfix  string
	Exchange string
}

func (s *Server) wizardPage(c echo.Context, step string) wizardPage {
	w := s.wizard
	p := wizardPage{page: s.pageFor(c, ""), Form: newForm(c), Step: step, Title: stepTitles[step],
		Number: slices.Index(setup.Steps, step) + 1, Answers: w.answers, Certs: w.certs}
	for _, id := range setup.Steps {
		p.Steps = append(p.Steps, stepInfo{ID: id, Title: stepTitles[id], Done: w.done[id], Current: id == step})
	}
	if s.opts.SetupFacts != nil {
		p.Facts = s.opts.SetupFacts()
	}
	p.Banner, p.Icon = s.brandingPreview(w.answers)
	if w.certs.Mode != "self-signed" {
		p.Config = w.certs.ConfigLines()
	}
	p.Postfix, p.Exchange = inboundLines(p.Facts, w.answers)
	return p
}

// brandingPreview is the banner and icon as they will be: uploaded, or
// drawn from the organization's name.
func (s *Server) brandingPreview(a setup.Answers) (banner, icon template.URL) {
	img := func(kind branding.Kind, uploaded []byte) template.URL {
		data := uploaded
		if data == nil {
			var err error
			if data, err = branding.Default(kind, a.Organization.Name, a.Branding.AccentColor); err != nil {
				return ""
			}
		}
		return template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(data))
	}
	return img(branding.Banner, a.Branding.Banner), img(branding.Icon, a.Branding.Icon)
}

// inboundLines are what to paste into Postfix and Exchange Online.
func inboundLines(f SetupFacts, a setup.Answers) (postfix, exchange string) {
	host, port := f.Hostname, f.RelayPort
	if port == "" {
		port = "25"
	}
	tag := a.Inbound.SubjectTag
	postfix = "# /etc/postfix/main.cf: send outbound mail through Sealpost, which secures what\n" +
		"# policy says and passes the rest on to the relay configured in Sealpost.\n" +
		"relayhost = [" + host + "]:" + port + "\n" +
		"smtp_tls_security_level = encrypt\n\n" +
		"# then: postfix reload"
	exchange = "Mail flow → Connectors → Add a connector\n" +
		"  From: Office 365   To: Partner organization\n" +
		"  Use only when a transport rule redirects messages to it\n" +
		"  Route email through this smart host: " + host + " (port " + port + ")\n" +
		"  Always use TLS; the certificate must match " + host + "\n\n" +
		"Mail flow → Rules → Add a rule\n" +
		"  Apply if: the subject includes " + strconv.Quote(tag) + "\n" +
		"  Do: redirect the message to the connector above"
	return postfix, exchange
}

func (s *Server) wizardStep(c echo.Context) error {
	step := c.Param("step")
	if _, ok := stepTitles[step]; !ok {
		return echo.ErrNotFound
	}
	s.wizard.mu.Lock()
	defer s.wizard.mu.Unlock()
	p := s.wizardPage(c, step)
	s.fillForm(&p)
	return c.Render(http.StatusOK, "setup/step", p)
}

// fillForm shows the draft's values in the step's fields.
func (s *Server) fillForm(p *wizardPage) {
	a, cert := p.Answers, p.Certs
	v := p.Values
	v["name"], v["domains"], v["website"], v["postal_address"] = a.Organization.Name, strings.Join(a.Organization.Domains, ", "), a.Organization.Website, a.Organization.PostalAddress
	v["accent_color"] = a.Branding.AccentColor
	v["admin_name"], v["admin_email"] = a.Admin.Name, a.Admin.Email
	v["cert_mode"], v["hostname"], v["cert_file"], v["key_file"], v["acme_email"], v["directory_url"] = cert.Mode, cert.Hostname, cert.CertFile, cert.KeyFile, cert.Email, cert.DirectoryURL
	m := a.Mail
	v["mode"], v["relay_host"], v["relay_port"], v["relay_security"] = m.Mode, m.RelayHost, strconv.Itoa(m.RelayPort), m.RelaySecurity
	v["relay_username"], v["from_address"], v["from_name"], v["relay_ca_file"] = m.RelayUsername, m.FromAddress, m.FromName, m.RelayCAFile
	v["relay_networks"], v["subject_tag"], v["secure_header"] = strings.Join(a.Inbound.RelayNetworks, ", "), a.Inbound.SubjectTag, a.Inbound.SecureHeader
}

func splitList(s string) []string {
	var out []string
	for _, item := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '\n' || r == ' ' }) {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// readStep takes a step's fields into the draft; it reports upload problems.
func (s *Server) readStep(c echo.Context, step string) []setup.Problem {
	w := s.wizard
	a := &w.answers
	switch step {
	case setup.StepOrganization:
		a.Organization.Name, a.Organization.Website = strings.TrimSpace(c.FormValue("name")), strings.TrimSpace(c.FormValue("website"))
		a.Organization.Domains = splitList(strings.ToLower(c.FormValue("domains")))
		a.Organization.PostalAddress = strings.TrimSpace(c.FormValue("postal_address"))
	case setup.StepBranding:
		a.Branding.AccentColor = strings.TrimSpace(c.FormValue("accent_color"))
		var problems []setup.Problem
		for _, img := range []struct {
			kind branding.Kind
			dst  *[]byte
		}{{branding.Banner, &a.Branding.Banner}, {branding.Icon, &a.Branding.Icon}} {
			if c.FormValue("default_"+string(img.kind)) == "on" {
				*img.dst = nil
				continue
			}
			fh, err := c.FormFile(string(img.kind))
			if err != nil {
				continue // nothing uploaded: keep what there is
			}
			f, err := fh.Open()
			if err != nil {
				return append(problems, setup.Problem{Key: "branding." + string(img.kind), Message: "The upload could not be read; try again."})
			}
			data, err := io.ReadAll(io.LimitReader(f, branding.MaxUploadBytes+1))
			f.Close()
			if err == nil {
				var png []byte
				if png, err = branding.Check(img.kind, data); err == nil {
					*img.dst = png
				}
			}
			if err != nil {
				problems = append(problems, setup.Problem{Key: "branding." + string(img.kind), Message: fault.Message(err)})
			}
		}
		return problems
	case setup.StepAdmin:
		a.Admin.Name, a.Admin.Email = strings.TrimSpace(c.FormValue("admin_name")), strings.TrimSpace(c.FormValue("admin_email"))
		if pw := c.FormValue("password"); pw != "" || c.FormValue("action") != "back" {
			a.Admin.Password, w.confirm = pw, c.FormValue("confirm")
		}
	case setup.StepCertificates:
		w.certs = setup.Certificates{Mode: c.FormValue("cert_mode"), Hostname: strings.TrimSpace(c.FormValue("hostname")),
			CertFile: strings.TrimSpace(c.FormValue("cert_file")), KeyFile: strings.TrimSpace(c.FormValue("key_file")),
			Email: strings.TrimSpace(c.FormValue("acme_email")), DirectoryURL: strings.TrimSpace(c.FormValue("directory_url"))}
	case setup.StepMail:
		m := &a.Mail
		m.Mode, m.RelayHost, m.RelaySecurity = c.FormValue("mode"), strings.TrimSpace(c.FormValue("relay_host")), c.FormValue("relay_security")
		m.RelayPort, _ = strconv.Atoi(strings.TrimSpace(c.FormValue("relay_port")))
		m.RelayUsername, m.FromAddress, m.FromName = strings.TrimSpace(c.FormValue("relay_username")), strings.TrimSpace(c.FormValue("from_address")), strings.TrimSpace(c.FormValue("from_name"))
		m.RelayCAFile = strings.TrimSpace(c.FormValue("relay_ca_file"))
		if pw := c.FormValue("relay_password"); pw != "" {
			m.RelayPassword = pw
		}
	case setup.StepInbound:
		a.Inbound.RelayNetworks = splitList(c.FormValue("relay_networks"))
		a.Inbound.SubjectTag, a.Inbound.SecureHeader = strings.TrimSpace(c.FormValue("subject_tag")), strings.TrimSpace(c.FormValue("secure_header"))
	}
	return nil
}

// wizardSubmit saves a step: Back keeps the input and goes back unchecked;
// Continue checks the step and goes on only when all is right.
func (s *Server) wizardSubmit(c echo.Context) error {
	step := c.Param("step")
	i := slices.Index(setup.Steps, step)
	if i < 0 {
		return echo.ErrNotFound
	}
	w := s.wizard
	w.mu.Lock()
	defer w.mu.Unlock()
	problems := s.readStep(c, step)
	action := c.FormValue("action")
	if action == "back" && i > 0 {
		return c.Redirect(http.StatusSeeOther, "/setup/"+setup.Steps[i-1])
	}
	problems = append(problems, setup.CheckStep(step, w.answers, w.certs)...)
	if step == setup.StepAdmin && w.answers.Admin.Password != w.confirm {
		problems = append(problems, setup.Problem{Key: "admin.confirm", Message: "The two passwords are not the same."})
	}
	p := s.wizardPage(c, step)
	s.fillForm(&p)
	p.Values["test_to"] = strings.TrimSpace(c.FormValue("test_to"))
	if action == "test" && len(problems) == 0 {
		reply, err := s.opts.SendTestMail(c.Request().Context(), w.answers, p.Values["test_to"])
		if err != nil {
			p.Errors["test_to"] = fault.Message(err)
			return c.Render(http.StatusUnprocessableEntity, "setup/step", p)
		}
		p.TestSent = reply
		return c.Render(http.StatusOK, "setup/step", p)
	}
	if step == setup.StepSummary {
		return s.finishSetup(c, p)
	}
	if len(problems) > 0 {
		for _, pr := range problems {
			p.Errors[fieldOf(pr.Key)] = strings.TrimSpace(p.Errors[fieldOf(pr.Key)] + " " + pr.Message)
		}
		return c.Render(http.StatusUnprocessableEntity, "setup/step", p)
	}
	w.done[step] = true
	return c.Redirect(http.StatusSeeOther, "/setup/"+setup.Steps[i+1])
}

// fieldOf maps a problem's key to the form field it belongs next to.
func fieldOf(key string) string {
	switch {
	case strings.HasPrefix(key, "organization."):
		return strings.TrimPrefix(key, "organization.")
	case strings.HasPrefix(key, "admin."):
		return "admin_" + strings.TrimPrefix(key, "admin.")
	case key == "certificates.email":
		return "acme_email"
	case key == "certificates.mode":
		return "cert_mode"
	}
	_, field, _ := strings.Cut(key, ".")
	return field
}

// finishSetup applies every answer, or sends the administrator to the
// first step with a problem.
func (s *Server) finishSetup(c echo.Context, p wizardPage) error {
	w := s.wizard
	for _, step := range setup.Steps[:len(setup.Steps)-1] {
		if len(setup.CheckStep(step, w.answers, w.certs)) > 0 {
			return c.Redirect(http.StatusSeeOther, "/setup/"+step)
		}
	}
	admin, err := s.opts.ApplySetup(c.Request().Context(), w.answers)
	if err != nil {
		for _, pr := range setup.AnswersProblems(err) {
			p.Errors[fieldOf(pr.Key)] = pr.Message
			p.Error = "Setup was not saved: " + pr.Key + ": " + pr.Message
		}
		if p.Error == "" {
			p.Error = fault.Message(err)
		}
		return c.Render(statusOf[fault.KindOf(err)], "setup/step", p)
	}
	fresh := newWizard()
	w.answers, w.certs, w.confirm, w.done = fresh.answers, fresh.certs, "", fresh.done
	c.SetCookie(&http.Cookie{Name: setupCookie, Value: "", Path: "/", Secure: true, HttpOnly: true, MaxAge: -1})
	return c.Redirect(http.StatusSeeOther, "/signin?done="+urlEscape("Setup is complete. Sign in as "+admin.Email+" to open the admin console."))
}

// brandImage serves the organization's banner or icon (public: the
// sign-in page shows them).
func (s *Server) brandImage(c echo.Context) error {
	var kind branding.Kind
	switch c.Param("kind") {
	case "banner.png":
		kind = branding.Banner
	case "icon.png":
		kind = branding.Icon
	default:
		return echo.ErrNotFound
	}
	if s.opts.BrandImage == nil {
		return echo.ErrNotFound
	}
	png, err := s.opts.BrandImage(kind)
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "public, max-age=300")
	return c.Blob(http.StatusOK, "image/png", png)
}
