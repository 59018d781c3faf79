package setup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"

	"github.com/sealpost/sealpost/appliance/account"
	"github.com/sealpost/sealpost/appliance/audit"
	"github.com/sealpost/sealpost/appliance/branding"
	"github.com/sealpost/sealpost/appliance/fault"
	"github.com/sealpost/sealpost/appliance/settings"
	"github.com/sealpost/sealpost/appliance/store"
)

// Answers are the wizard's answers: the web wizard fills them step by step,
// `sealpost setup --answers FILE` reads them from TOML. Both end in Apply.
type Answers struct {
	Organization struct {
		Name          string   `toml:"name"`
		Domains       []string `toml:"domains"`
		Website       string   `toml:"website"`
		PostalAddress string   `toml:"postal_address"`
	} `toml:"organization"`
	Branding struct {
		AccentColor string `toml:"accent_color"`
		BannerFile  string `toml:"banner_file"` // PNG or JPEG, 700×45
		IconFile    string `toml:"icon_file"`   // PNG or JPEG, 64×64
		Banner      []byte `toml:"-"`           // checked and re-encoded by branding.Check
		Icon        []byte `toml:"-"`
	} `toml:"branding"`
	Admin struct {
		Name     string `toml:"name"`
		Email    string `toml:"email"`
		Password string `toml:"password"`
	} `toml:"admin"`
	Mail struct {
		Mode          string `toml:"mode"`
		RelayHost     string `toml:"relay_host"`
		RelayPort     int    `toml:"relay_port"`
		RelaySecurity string `toml:"relay_security"`
		RelayUsername string `toml:"relay_username"`
		RelayPassword string `toml:"relay_password"`
		RelayCAFile   string `toml:"relay_ca_file"`
		FromAddress   string `toml:"from_address"`
		FromName      string `toml:"from_name"`
	} `toml:"mail"`
	Inbound struct {
		RelayNetworks []string `toml:"relay_networks"`
		SubjectTag    string   `toml:"subject_tag"`
		SecureHeader  string   `toml:"secure_header"`
	} `toml:"inbound"`
}

// ParseAnswers reads an answers file; unknown keys are errors, so a typo is
// not silently ignored.
func ParseAnswers(data []byte) (Answers, error) {
	var a Answers
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		var sm *toml.StrictMissingError
		if errors.As(err, &sm) {
			var keys []string
			for _, e := range sm.Errors {
				keys = append(keys, strings.Join(e.Key(), "."))
			}
			return a, fault.E(fault.Invalid, "unknown keys in the answers: "+strings.Join(keys, ", "), err)
		}
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, col := de.Position()
			return a, fault.E(fault.Invalid, fmt.Sprintf("the answers are not valid TOML (line %d, column %d): %s", row, col, de.Error()), err)
		}
		return a, fault.E(fault.Invalid, "the answers are not valid TOML: "+err.Error(), err)
	}
	return a, nil
}

// changes turns the answers into settings changes; what is not answered
// keeps its default.
func (a Answers) changes() []settings.Change {
	var ch []settings.Change
	add := func(key, value string) {
		if value != "" {
			ch = append(ch, settings.Change{Key: key, Value: value})
		}
	}
	o := a.Organization
	add("organization.name", o.Name)
	add("organization.domains", strings.Join(o.Domains, ","))
	add("organization.website", o.Website)
	add("organization.postal_address", o.PostalAddress)
	add("branding.accent_color", a.Branding.AccentColor)
	m := a.Mail
	add("mail.mode", m.Mode)
	add("mail.relay_host", m.RelayHost)
	if m.RelayPort != 0 {
		add("mail.relay_port", strconv.Itoa(m.RelayPort))
	}
	add("mail.relay_security", m.RelaySecurity)
	add("mail.relay_username", m.RelayUsername)
	add("mail.relay_password", m.RelayPassword)
	add("mail.relay_ca_file", m.RelayCAFile)
	add("mail.from_address", m.FromAddress)
	add("mail.from_name", m.FromName)
	add("inbound.relay_networks", strings.Join(a.Inbound.RelayNetworks, ","))
	add("inbound.subject_tag", a.Inbound.SubjectTag)
	add("inbound.secure_header", a.Inbound.SecureHeader)
	return ch
}

// Problem is one thing wrong with the answers, with the key it concerns
// ("organization.name", "admin.password").
type Problem struct{ Key, Message string }

// ProblemsError is every problem with the answers at once.
type ProblemsError struct{ Problems []Problem }

func (e *ProblemsError) Error() string {
	var lines []string
	for _, p := range e.Problems {
		lines = append(lines, p.Key+": "+p.Message)
	}
	return strings.Join(lines, "\n")
}

// Apply completes setup from the answers in one transaction: the settings,
// the first administrator, the audit events and the mark that setup is
// done. Every problem is reported at once (*ProblemsError inside an
// Invalid fault) and nothing is saved unless all is valid. Afterwards the
// wizard is gone and the token file removed.
func (g *Gate) Apply(ctx context.Context, st *store.Store, trail *audit.Trail, accounts *account.Service, a Answers) (account.User, error) {
	if !g.Pending() {
		return account.User{}, fault.E(fault.Conflict, "Setup is finished already; change settings in the admin console.", nil)
	}
	problems := required(a)
	var admin account.User
	err := st.Update(ctx, func(tx *store.Tx) error {
		problems := problems
		if err := settings.SetTx(tx, trail, "setup", a.changes()...); err != nil {
			invalid := settings.Problems(err)
			if invalid == nil {
				return err
			}
			for _, p := range invalid {
				problems = append(problems, Problem{p.Key, p.Msg})
			}
		}
		var err error
		admin, err = accounts.CreateAdmin(ctx, tx, a.Admin.Email, a.Admin.Name, a.Admin.Password)
		if err != nil {
			ve := account.FieldErrors(err)
			if ve == nil {
				return err
			}
			for _, f := range ve.Fields {
				problems = append(problems, Problem{"admin." + f.Field, f.Message})
			}
		}
		if len(problems) > 0 {
			return fault.E(fault.Invalid, "The answers need attention.", &ProblemsError{Problems: problems})
		}
		for kind, png := range map[branding.Kind][]byte{branding.Banner: a.Branding.Banner, branding.Icon: a.Branding.Icon} {
			if png != nil {
				if err := branding.Save(tx, kind, png); err != nil {
					return err
				}
			}
		}
		if err := trail.Append(tx, audit.Event{Actor: "setup", Action: "setup.complete", Object: "setup"}); err != nil {
			return err
		}
		return tx.Put(completedKey, []byte("1"))
	})
	if err != nil {
		return account.User{}, err
	}
	accounts.Committed(admin)
	return admin, g.finish()
}

// AnswersProblems returns the problems inside an Apply error, or nil.
func AnswersProblems(err error) []Problem {
	var pe *ProblemsError
	if errors.As(err, &pe) {
		return pe.Problems
	}
	return nil
}

// required are the answers that have no default.
func required(a Answers) []Problem {
	var problems []Problem
	if strings.TrimSpace(a.Organization.Name) == "" {
		problems = append(problems, Problem{"organization.name", "Give the organization's name."})
	}
	if len(a.Organization.Domains) == 0 {
		problems = append(problems, Problem{"organization.domains", "Give at least the primary email domain, such as example.org."})
	}
	if strings.TrimSpace(a.Admin.Name) == "" {
		problems = append(problems, Problem{"admin.name", "Give the administrator's name."})
	}
	return problems
}

// LoadImages reads the branding files an answers file names, relative to
// dir, and checks them as the web wizard checks uploads.
func (a *Answers) LoadImages(dir string) []Problem {
	var problems []Problem
	for _, img := range []struct {
		kind branding.Kind
		file string
		dst  *[]byte
	}{{branding.Banner, a.Branding.BannerFile, &a.Branding.Banner}, {branding.Icon, a.Branding.IconFile, &a.Branding.Icon}} {
		if img.file == "" {
			continue
		}
		path := img.file
		if !filepath.IsAbs(path) {
			path = filepath.Join(dir, path)
		}
		data, err := os.ReadFile(path)
		if err == nil {
			*img.dst, err = branding.Check(img.kind, data)
		}
		if err != nil {
			msg := fault.Message(err)
			if fault.KindOf(err) == fault.Internal {
				msg = "cannot be read: " + err.Error()
			}
			problems = append(problems, Problem{"branding." + string(img.kind) + "_file", msg})
		}
	}
	return problems
}

// Settings are the run-time settings the answers give, over the defaults,
// and their problems (the wizard's test message uses them before setup is
// saved).
func (a Answers) Settings() (settings.Settings, []*settings.SettingError) {
	return settings.Check(a.changes()...)
}
