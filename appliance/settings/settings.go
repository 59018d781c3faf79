// Package settings holds what administrators change at run time:
// organization identity, branding texts, outbound mail, notification
// options. Settings live in the encrypted store, one validated struct per
// area; every change is validated (all problems at once, each naming its key)
// and audited, and secrets (the relay password) are never shown back.
package settings

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sealpost/sealpost/appliance/audit"
	"github.com/sealpost/sealpost/appliance/fault"
	"github.com/sealpost/sealpost/appliance/store"
)

// Settings is every run-time setting. The key tag names a key's last part;
// the area's tag its first: mail.relay_host.
type Settings struct {
	Organization  Organization  `key:"organization"`
	Branding      Branding      `key:"branding"`
	Mail          Mail          `key:"mail"`
	Notifications Notifications `key:"notifications"`
	Security      Security      `key:"security"`
	Registration  Registration  `key:"registration"`
	Inbound       Inbound       `key:"inbound"`
	Messages      Messages      `key:"messages"`
}

// Messages are the bounds within which senders choose a secure message's
// options, and how long deleted messages stay in the trash.
type Messages struct {
	ExpiryDefaultDays int  `key:"expiry_default_days" doc:"Days after which a new secure message expires unless the sender chooses otherwise; 0: never."`
	ExpiryMaxDays     int  `key:"expiry_max_days" doc:"Longest expiry a sender may choose, in days; 0: no limit (messages may never expire)."`
	TrashDays         int  `key:"trash_days" doc:"Days a message stays in the trash before it is removed for good."`
	Restrictions      bool `key:"restrictions" doc:"Senders may restrict what recipients do (no reply, no forward, no print or download)."`
	ReadNotification  bool `key:"read_notification" doc:"New messages ask for a notice on each recipient's first opening, unless the sender turns it off."`
	MaxRecipients     int  `key:"max_recipients" doc:"Most recipients (to, cc and bcc) of one secure message."`
	MaxBodyKB         int  `key:"max_body_kb" doc:"Largest message text, in KiB."`
}

// Inbound is how the organization's mail servers reach the gateway, and
// what makes a message secure.
type Inbound struct {
	RelayNetworks  []string `key:"relay_networks" doc:"Networks (CIDR) of the mail servers that may relay to Sealpost, comma-separated."`
	SubjectTag     string   `key:"subject_tag" doc:"A message whose subject holds this tag goes secure; the tag is removed."`
	SecureHeader   string   `key:"secure_header" doc:"A message with this header set (to anything but no, false or 0) goes secure."`
	NotSecure      string   `key:"not_secure" doc:"What happens to mail that no rule makes secure: pass (on to the outbound relay, unchanged) or refuse."`
	MaxMessageMB   int      `key:"max_message_mb" doc:"Largest message the gateway accepts, in MiB."`
	MaxRecipients  int      `key:"max_recipients" doc:"Most recipients of one message (at least 100, as RFC 5321 requires); further ones are deferred with 452."`
	MaxConnsPerIP  int      `key:"max_connections_per_ip" doc:"Concurrent SMTP connections one client address may hold."`
	Timeout        int      `key:"timeout_seconds" doc:"An SMTP client that sends nothing for this many seconds is disconnected."`
	ProvisionLocal bool     `key:"provision_local" doc:"An unknown sender with an address of an organization domain gets a professional account (invited) instead of a refusal."`
	MinFreeMB      int      `key:"min_free_mb" doc:"New mail is deferred (452) while the data directory's file system has less than this many MiB free; 0: no check."`
}

// Organization is who runs the appliance.
type Organization struct {
	Name          string   `key:"name" doc:"Organization name, shown in pages and notifications."`
	Domains       []string `key:"domains" doc:"Email domains of the organization, comma-separated; the first is primary."`
	Website       string   `key:"website" doc:"Website (https://…), the banner's link."`
	PostalAddress string   `key:"postal_address" doc:"Postal address appended to every notification."`
}

// Branding is how pages and notifications look.
type Branding struct {
	AccentColor    string `key:"accent_color" doc:"Accent colour as #rrggbb."`
	SignInMessage  string `key:"sign_in_message" doc:"Text shown on the sign-in page."`
	WelcomeMessage string `key:"welcome_message" doc:"Text of the welcome message new users get."`
}

// Mail is how notifications leave the appliance.
type Mail struct {
	Mode          string `key:"mode" doc:"relay (through the organization's mail server) or mx (directly to each recipient domain's MX: STARTTLS when offered, MTA-STS honoured)."`
	RelayHost     string `key:"relay_host" doc:"Relay host name or address."`
	RelayPort     int    `key:"relay_port" doc:"Relay port: 587 with STARTTLS, 465 with implicit TLS, 25."`
	RelaySecurity string `key:"relay_security" doc:"starttls (required, the default) or tls (implicit TLS)."`
	RelayUsername string `key:"relay_username" doc:"SMTP AUTH user name; empty for no AUTH. AUTH is only ever sent over TLS."`
	RelayPassword string `key:"relay_password" secret:"true" doc:"SMTP AUTH password. Never shown back."`
	RelayCAFile   string `key:"relay_ca_file" doc:"PEM file of the CA that signed the relay's certificate, for an internal CA; empty: the system's roots."`
	FromAddress   string `key:"from_address" doc:"Sender of notifications, e.g. no-reply@example.org."`
	FromName      string `key:"from_name" doc:"Display name of the sender."`
	DKIMSelector  string `key:"dkim_selector" doc:"Base of the DKIM selectors: SELECTOR-ed25519 and SELECTOR-rsa."`
	DKIMSign      bool   `key:"dkim_sign" doc:"Sign notifications with DKIM for the from_address domain; publish the records that sealpost mail dkim prints first."`
}

// Notifications are options of the notification mail.
type Notifications struct {
	ShowSubject bool   `key:"show_subject" doc:"Show the message's subject in notifications (off: a generic subject)."`
	Disclaimer  string `key:"disclaimer" doc:"Legal text appended to every notification and secure message."`
}

// Security are the lifetimes of sessions and links, and the password policy.
type Security struct {
	SessionIdleMinutes   int  `key:"session_idle_minutes" doc:"A session ends after this many minutes without a request."`
	SessionLifetimeHours int  `key:"session_lifetime_hours" doc:"A session ends this many hours after sign-in, however active."`
	SessionBindIP        bool `key:"session_bind_ip" doc:"End a session when a request comes from another IP address than the sign-in."`
	ResetLinkHours       int  `key:"reset_link_hours" doc:"Password-reset links are valid for this many hours."`
	AuthCodeMinutes      int  `key:"auth_code_minutes" doc:"Emailed authorization codes are valid for this many minutes."`
	InvitationDays       int  `key:"invitation_days" doc:"Invitations are valid for this many days."`
	PasswordMinLength    int  `key:"password_min_length" doc:"Shortest password accepted (at least 8; 12 or more recommended)."`
	SignInAttempts       int  `key:"sign_in_attempts" doc:"Failed sign-ins in a row after which the account is locked for lockout_minutes."`
	LockoutMinutes       int  `key:"lockout_minutes" doc:"How long an account stays locked after too many failed sign-ins."`
	RequireTOTPForAll    bool `key:"require_totp_for_all" doc:"Require a second factor of every user (administrators always need one)."`
	AdminRequiresTOTP    bool `key:"admin_requires_totp" doc:"Administrators and auditors must use a second factor (strongly recommended; on by default)."`
}

// Registration is who may register, and how.
type Registration struct {
	Access             string   `key:"access" doc:"open (anyone may register) or controlled (only addresses a registration filter allows)."`
	InvitationOnly     bool     `key:"invitation_only" doc:"Only invited people may register (recommended)."`
	Level              int      `key:"level" doc:"Security level of registration: 1 quick, 2 confirm the email with a code, 3 also a passcode from the inviter."`
	CRAExcludedDomains []string `key:"cra_excluded_domains" doc:"Domains for which level 3 falls back to level 2, comma-separated."`
}

// Defaults are the settings of a new appliance.
func Defaults() Settings {
	return Settings{
		Branding: Branding{AccentColor: "#0f7b6c"},
		Mail:     Mail{Mode: "relay", RelayPort: 587, RelaySecurity: "starttls", DKIMSelector: "sealpost"},
		Security: Security{SessionIdleMinutes: 60, SessionLifetimeHours: 12, ResetLinkHours: 4, AuthCodeMinutes: 10,
			InvitationDays: 14, PasswordMinLength: 12, SignInAttempts: 5, LockoutMinutes: 15, AdminRequiresTOTP: true},
		Registration: Registration{Access: "open", InvitationOnly: true, Level: 2},
		Inbound: Inbound{SubjectTag: "[secure]", SecureHeader: "X-Sealpost-Secure", NotSecure: "pass",
			MaxMessageMB: 25, MaxRecipients: 500, MaxConnsPerIP: 20, Timeout: 300, MinFreeMB: 1024},
		Messages: Messages{TrashDays: 30, Restrictions: true, ReadNotification: true,
			MaxRecipients: 500, MaxBodyKB: 2048},
	}
}

const recordPrefix = "settings/"

// areas lists the areas with their store keys.
func areas(s *Settings) []struct {
	name  string
	value reflect.Value
} {
	v := reflect.ValueOf(s).Elem()
	out := make([]struct {
		name  string
		value reflect.Value
	}, v.NumField())
	for i := range v.NumField() {
		out[i].name, out[i].value = v.Type().Field(i).Tag.Get("key"), v.Field(i).Addr()
	}
	return out
}

// Load reads every area, with defaults for what was never set.
func Load(tx *store.Tx) (Settings, error) {
	v, err := tx.Memo(memoKey, func() (any, error) { return cached(tx) })
	if err != nil {
		return Settings{}, err
	}
	return v.(Settings).clone(), nil
}

const (
	memoKey    = "settings"
	changedKey = "settings.changed" // memo: this transaction saved settings
)

// decoded is the settings last decoded from one store. Nearly every
// request and every message reads the settings, which change rarely.
// Inside a transaction the copy is checked against the version of the
// stamp record that every save rewrites (one key lookup instead of reading,
// unsealing and decoding every area); outside one, Read checks a count of
// committed saves kept in memory, which is exact because only this process
// writes its store.
type decoded struct {
	mu      sync.Mutex
	version uint64    // of the stamp record the copy was decoded under
	s       *Settings // the copy; nil until decoded

	saves     atomic.Uint64 // committed saves
	readSaves uint64        // saves when Read last decoded
	read      *Settings     // what Read last decoded
}

var decodedByStore sync.Map // *store.Store → *decoded

func decodedOf(st *store.Store) *decoded {
	v, _ := decodedByStore.LoadOrStore(st, &decoded{})
	return v.(*decoded)
}

// stampKey is rewritten with every save, so its version changes with
// every change of any area.
var stampKey = []byte(recordPrefix + ".stamp")

// cached is load through the decoded copy, when the records are the ones
// it came from. A transaction that saved reads its own writes.
func cached(tx *store.Tx) (Settings, error) {
	if changed, _ := tx.Memo(changedKey, func() (any, error) { return false, nil }); changed.(bool) {
		return load(tx)
	}
	version, err := tx.Version(stampKey)
	if err != nil {
		return Settings{}, err
	}
	d := decodedOf(tx.Store())
	d.mu.Lock()
	if d.s != nil && d.version == version {
		s := *d.s
		d.mu.Unlock()
		return s, nil
	}
	d.mu.Unlock()
	s, err := load(tx)
	if err != nil {
		return s, err
	}
	keep := s.clone()
	d.mu.Lock()
	d.version, d.s = version, &keep
	d.mu.Unlock()
	return s, nil
}

// clone copies the lists, so that a caller's changes stay its own.
func (s Settings) clone() Settings {
	s.Organization.Domains = slices.Clone(s.Organization.Domains)
	s.Inbound.RelayNetworks = slices.Clone(s.Inbound.RelayNetworks)
	s.Registration.CRAExcludedDomains = slices.Clone(s.Registration.CRAExcludedDomains)
	return s
}

func load(tx *store.Tx) (Settings, error) {
	s := Defaults()
	for _, a := range areas(&s) {
		data, err := tx.Get([]byte(recordPrefix + a.name))
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return s, err
		}
		if err := json.Unmarshal(data, a.value.Interface()); err != nil {
			return s, fmt.Errorf("read settings %s: %w", a.name, err)
		}
	}
	return s, nil
}

func save(tx *store.Tx, s *Settings) error {
	tx.Forget(memoKey)
	tx.Forget(changedKey)
	if _, err := tx.Memo(changedKey, func() (any, error) { return true, nil }); err != nil {
		return err
	}
	d := decodedOf(tx.Store())
	tx.OnDone(func(committed bool) {
		if committed {
			d.saves.Add(1)
		}
	})
	if err := tx.Put(stampKey, fmt.Appendf(nil, "%d", time.Now().UnixNano())); err != nil {
		return err
	}
	for _, a := range areas(s) {
		if err := store.PutJSON(tx, []byte(recordPrefix+a.name), a.value.Interface()); err != nil {
			return err
		}
	}
	return nil
}

// Read loads the settings as last committed.
func Read(st *store.Store) (Settings, error) {
	d := decodedOf(st)
	saves := d.saves.Load()
	d.mu.Lock()
	if d.read != nil && d.readSaves == saves {
		s := d.read.clone()
		d.mu.Unlock()
		return s, nil
	}
	d.mu.Unlock()
	var s Settings
	err := st.View(func(tx *store.Tx) error {
		var err error
		s, err = Load(tx)
		return err
	})
	if err != nil {
		return s, err
	}
	// The snapshot began after saves was read, so it holds at least those
	// saves; a later one makes the next Read decode again.
	d.mu.Lock()
	keep := s.clone()
	d.read, d.readSaves = &keep, saves
	d.mu.Unlock()
	return s, nil
}

// field is one settable key.
type field struct {
	Key    string
	Doc    string
	Secret bool
	value  reflect.Value
}

// fields lists every key of s in declaration order.
func fields(s *Settings) []field {
	var out []field
	for _, a := range areas(s) {
		v := a.value.Elem()
		for i := range v.NumField() {
			sf := v.Type().Field(i)
			out = append(out, field{
				Key: a.name + "." + sf.Tag.Get("key"), Doc: sf.Tag.Get("doc"),
				Secret: sf.Tag.Get("secret") == "true", value: v.Field(i),
			})
		}
	}
	return out
}

func lookup(s *Settings, key string) (field, error) {
	for _, f := range fields(s) {
		if f.Key == key {
			return f, nil
		}
	}
	return field{}, fault.E(fault.Invalid, fmt.Sprintf("%s: unknown setting; `sealpost settings get` lists them", key), nil)
}

// KeyDoc is a setting's key and what it means.
type KeyDoc struct{ Key, Doc string }

// Keys lists every setting with its documentation.
func Keys() []KeyDoc {
	s := Defaults()
	var out []KeyDoc
	for _, f := range fields(&s) {
		out = append(out, KeyDoc{f.Key, f.Doc})
	}
	return out
}

// Get returns the value of key as text; a secret shows only whether it is set.
func Get(s Settings, key string) (string, error) {
	f, err := lookup(&s, key)
	if err != nil {
		return "", err
	}
	return f.show(), nil
}

func (f field) show() string {
	if f.Secret {
		if f.value.String() == "" {
			return "(not set)"
		}
		return "(set)"
	}
	switch f.value.Kind() {
	case reflect.Slice:
		return strings.Join(f.value.Interface().([]string), ",")
	case reflect.Int:
		return strconv.Itoa(int(f.value.Int()))
	case reflect.Bool:
		return strconv.FormatBool(f.value.Bool())
	}
	return f.value.String()
}

// All returns every key with its shown value, sorted by key.
func All(s Settings) [][2]string {
	var out [][2]string
	for _, f := range fields(&s) {
		out = append(out, [2]string{f.Key, f.show()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
	return out
}

func (f field) parse(text string) error {
	switch f.value.Kind() {
	case reflect.String:
		f.value.SetString(text)
	case reflect.Int:
		n, err := strconv.Atoi(strings.TrimSpace(text))
		if err != nil {
			return fault.E(fault.Invalid, fmt.Sprintf("%s: %q is not a whole number", f.Key, text), nil)
		}
		f.value.SetInt(int64(n))
	case reflect.Bool:
		b, err := strconv.ParseBool(strings.TrimSpace(text))
		if err != nil {
			return fault.E(fault.Invalid, fmt.Sprintf("%s: %q is not true or false", f.Key, text), nil)
		}
		f.value.SetBool(b)
	case reflect.Slice:
		var list []string
		for _, item := range strings.Split(text, ",") {
			if item = strings.TrimSpace(item); item != "" {
				list = append(list, item)
			}
		}
		f.value.Set(reflect.ValueOf(list))
	}
	return nil
}

// Change is one key set to one value.
type Change struct{ Key, Value string }

// Set applies changes in one transaction: every problem is reported at
// once, nothing is saved unless all of the result is valid, and each change
// is audited (a secret's value never reaches the audit trail).
func Set(ctx context.Context, st *store.Store, trail *audit.Trail, actor string, changes ...Change) error {
	return st.Update(ctx, func(tx *store.Tx) error { return SetTx(tx, trail, actor, changes...) })
}

// InvalidError is every problem with a Set, each naming its key.
type InvalidError struct{ Problems []*SettingError }

func (e *InvalidError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// Problems returns the problems of an invalid Set, or nil.
func Problems(err error) []*SettingError {
	var ie *InvalidError
	if errors.As(err, &ie) {
		return ie.Problems
	}
	return nil
}

// apply makes changes to s and validates the result: the fields changed,
// and every problem (of the changes and of the whole) with its key.
func apply(s *Settings, changes []Change) ([]field, *InvalidError) {
	invalid := &InvalidError{}
	var changed []field
	for _, c := range changes {
		f, err := lookup(s, c.Key)
		if err == nil {
			err = f.parse(c.Value)
		}
		if err != nil {
			invalid.Problems = append(invalid.Problems, &SettingError{Key: c.Key, Msg: strings.TrimPrefix(fault.Message(err), c.Key+": ")})
			continue
		}
		changed = append(changed, f)
	}
	for _, err := range s.Validate() {
		se, ok := err.(*SettingError)
		if !ok {
			se = &SettingError{Msg: err.Error()}
		}
		invalid.Problems = append(invalid.Problems, se)
	}
	return changed, invalid
}

// Check validates changes against the defaults without a store (the setup
// wizard checks each step before anything is saved): the settings that
// result, and every problem.
func Check(changes ...Change) (Settings, []*SettingError) {
	s := Defaults()
	_, invalid := apply(&s, changes)
	return s, invalid.Problems
}

// SetTx is Set inside the caller's transaction.
func SetTx(tx *store.Tx, trail *audit.Trail, actor string, changes ...Change) error {
	s, err := Load(tx)
	if err != nil {
		return err
	}
	changed, invalid := apply(&s, changes)
	if len(invalid.Problems) > 0 {
		return fault.E(fault.Invalid, invalid.Error(), invalid)
	}
	if err := save(tx, &s); err != nil {
		return err
	}
	for _, f := range changed {
		shown := f.show()
		if f.Secret {
			shown = "(changed)"
		}
		err := trail.Append(tx, audit.Event{Actor: actor, Action: "settings.change", Object: "settings/" + f.Key,
			Detail: map[string]string{"value": shown}})
		if err != nil {
			return err
		}
	}
	return nil
}
