package ui

import (
	"context"
	"crypto/fips140"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	ptotp "github.com/pquerna/otp/totp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/sealpost/sealpost/appliance/account"
	"github.com/sealpost/sealpost/appliance/audit"
	"github.com/sealpost/sealpost/appliance/branding"
	"github.com/sealpost/sealpost/appliance/message"
	"github.com/sealpost/sealpost/appliance/policy"
	"github.com/sealpost/sealpost/appliance/settings"
	"github.com/sealpost/sealpost/appliance/store"
	"github.com/sealpost/sealpost/appliance/store/storetest"
)

// The sessions of the authorization matrix: nobody, the four roles, and the
// two half sign-ins (password accepted, second factor still to enrol or to
// enter).
const (
	asAnonymous    = "anonymous"
	asGuest        = "guest"
	asProfessional = "professional"
	asAuditor      = "auditor"
	asAdmin        = "admin"
	asEnrolling    = "enrolling"     // an administrator whose group needs a second factor not yet set up
	asSecondFactor = "second_factor" // a professional whose sign-in waits for the code
)

var matrixSessions = []string{asAnonymous, asGuest, asProfessional, asAuditor, asAdmin, asEnrolling, asSecondFactor}

const (
	authzAdminPassword = "correct horse battery staple"
	authzPassword      = "a long and private passphrase"
	authzIP            = "10.0.0.5"
	authzRemote        = authzIP + ":1234"
	authzBase          = "https://mail.clinic.test"
)

// authzNow is the service's clock: fixed, so that nothing expires while the
// matrix runs.
var authzNow = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

// noticeBox keeps the notices the account flows send, so that the fixture
// can follow the links in them as a person would, and the message notices.
type noticeBox struct {
	mu             sync.Mutex
	notices        []account.Notice
	messageNotices []message.Notice
}

func (b *noticeBox) Notify(_ *store.Tx, n account.Notice) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.notices = append(b.notices, n)
	return nil
}

func (b *noticeBox) last(t *testing.T, kind, to string) account.Notice {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for i := len(b.notices) - 1; i >= 0; i-- {
		if n := b.notices[i]; n.Kind == kind && n.To == to {
			return n
		}
	}
	t.Fatalf("no %s notice to %s", kind, to)
	return account.Notice{}
}

// token is the secret of a notice's link.
func (b *noticeBox) token(t *testing.T, kind, to string) string {
	t.Helper()
	u, err := url.Parse(b.last(t, kind, to).Link)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query().Get("token")
}

// lockedBuffer is a log sink that parallel requests may share.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// authzAccounts is an account service, and the message domain, over a
// real, encrypted store.
type authzAccounts struct {
	st        *store.Store
	trail     *audit.Trail
	svc       *account.Service
	msgs      *message.Service
	mail      *noticeBox
	adminUser account.User
}

func newAuthzAccounts(t *testing.T, kv ...string) *authzAccounts {
	t.Helper()
	ctx := context.Background()
	st, keys := storetest.Open(t, t.TempDir())
	now := func() time.Time { return authzNow }
	a := &authzAccounts{st: st, trail: audit.New(keys, now), mail: &noticeBox{}}
	var err error
	a.svc, err = account.New(ctx, account.Options{Store: st, Audit: a.trail, Notifier: a.mail, Logger: zerolog.Nop(),
		Now: now, BaseURL: func() string { return authzBase }})
	if err != nil {
		t.Fatal(err)
	}
	a.msgs = newAuthzMessages(t, a, keys, now)
	var changes []settings.Change
	for i := 0; i+1 < len(kv); i += 2 {
		changes = append(changes, settings.Change{Key: kv[i], Value: kv[i+1]})
	}
	if err := settings.Set(ctx, st, a.trail, "test", changes...); err != nil {
		t.Fatal(err)
	}
	err = st.Update(ctx, func(tx *store.Tx) error {
		a.adminUser, err = a.svc.CreateAdmin(ctx, tx, "admin@clinic.test", "Ada Admin", authzAdminPassword)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	a.svc.Committed(a.adminUser)
	return a
}

// register invites someone as the administrator would and registers them
// (level 1) as they would from the link.
func (a *authzAccounts) register(t *testing.T, email, name string, role account.Role, group string) account.SignInResult {
	t.Helper()
	ctx := context.Background()
	if _, err := a.svc.Invite(ctx, a.adminUser.ID, account.Invite{Email: email, Name: name, Role: role, Group: group}); err != nil {
		t.Fatalf("invite %s: %v", email, err)
	}
	reg, err := a.svc.Register(ctx, a.mail.token(t, "invitation", email), account.Registration{Name: name, Password: authzPassword, Confirm: authzPassword}, authzIP, "authz-test")
	if err != nil || reg.CodeSent || reg.SignIn.Token == "" {
		t.Fatalf("register %s: %+v %v", email, reg, err)
	}
	return reg.SignIn
}

func (a *authzAccounts) server(t *testing.T, logs *lockedBuffer, networks ...netip.Prefix) *Server {
	t.Helper()
	s, err := New(Options{
		Logger:   zerolog.New(logs),
		Version:  "test",
		Setup:    &tokenGate{token: "SETUPTOKEN", pending: false},
		Ready:    func() error { return nil },
		HSTS:     func() bool { return true },
		Registry: prometheus.NewRegistry(),
		Accounts: a.svc,
		// Every row comes from one address; the form limit has its own test.
		FormBurst: 100000, FormEvery: time.Millisecond,
		ReadSettings: func() (settings.Settings, error) {
			return settings.Read(a.st)
		},
		SaveSettings: func(ctx context.Context, actor string, changes ...settings.Change) error {
			return settings.Set(ctx, a.st, a.trail, actor, changes...)
		},
		AdminNetworks: networks,
		AuditPage: func(skip uint64, limit int) ([]audit.Event, uint64, error) {
			var evs []audit.Event
			err := a.st.View(func(tx *store.Tx) error {
				var err error
				evs, err = audit.List(tx, 0, 1_000_000)
				return err
			})
			slices.Reverse(evs)
			total := uint64(len(evs))
			evs = evs[min(skip, total):]
			return evs[:min(len(evs), limit)], total, err
		},
		VerifyAudit: func() (n uint64, err error) {
			err = a.st.View(func(tx *store.Tx) error { n, err = a.trail.Verify(tx); return err })
			return n, err
		},
		BrandImage: func(kind branding.Kind) ([]byte, error) {
			return []byte("\x89PNG\r\n\x1a\n" + string(kind)), nil
		},
		// The webmail, wired as appliance/app.go wires it.
		Messages:  a.msgs,
		Prefs:     a.loadPrefs,
		SavePrefs: a.savePrefs,
		Welcome:   func() string { return authzWelcome },
		LoadPolicy: func() (p policy.Policy, err error) {
			err = a.st.View(func(tx *store.Tx) error { p, err = policy.Load(tx); return err })
			return p, err
		},
		SavePolicy: func(ctx context.Context, actor string, p policy.Policy) error {
			return policy.Save(ctx, a.st, a.trail, actor, p)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (a *authzAccounts) events(r *authzReport) []audit.Event {
	var evs []audit.Event
	err := a.st.View(func(tx *store.Tx) error {
		var err error
		evs, err = audit.List(tx, 0, 1_000_000)
		return err
	})
	if err != nil {
		r.errorf("read the audit trail: %v", err)
	}
	return evs
}

// authzEnv is the matrix's appliance: one user per role, the objects the
// rows act on, and two servers over them (every network may reach the
// console; only 127.0.0.0/8 may).
type authzEnv struct {
	*authzAccounts
	srv        *Server
	restricted *Server
	logs       *lockedBuffer
	users      map[string]account.User // by fixture name
	tokens     map[string]string       // each user's session token
	sessions   map[string]string       // each user's session id
	vars       map[string]string       // placeholders of the table
	secrets    []string                // must never reach the log
	// mine are each session's own message and its file ({mine},
	// {mineAtt}, …); forbidden is content that no response may show
	// (other users' messages, a recalled message's text).
	mine      map[string]map[string]string
	forbidden []string
}

func newAuthzEnv(t *testing.T) *authzEnv {
	t.Helper()
	ctx := context.Background()
	a := newAuthzAccounts(t, "security.admin_requires_totp", "false", "registration.level", "1")
	e := &authzEnv{authzAccounts: a, logs: &lockedBuffer{}, users: map[string]account.User{asAdmin: a.adminUser},
		tokens: map[string]string{}, sessions: map[string]string{}, vars: map[string]string{}}
	keep := func(name string, res account.SignInResult) {
		e.users[name], e.tokens[name], e.sessions[name] = res.User, res.Token, res.Session.ID
	}
	adminRes, err := a.svc.SignIn(ctx, "admin@clinic.test", authzAdminPassword, authzIP, "authz-test")
	if err != nil || adminRes.Session.Stage != account.StageFull {
		t.Fatalf("admin sign-in: %v, stage %q", err, adminRes.Session.Stage)
	}
	keep(asAdmin, adminRes)

	strict, err := a.svc.SaveGroup(ctx, account.ActorOf(a.adminUser.ID), account.Group{Name: "Strict", QuotaPeriodDays: 30,
		AttachmentLimitMB: 100, RequireTOTP: true})
	if err != nil {
		t.Fatal(err)
	}
	people := []struct {
		name, email, display string
		role                 account.Role
		group                string
	}{
		{asGuest, "guest@outside.test", "Gus Guest", account.RoleGuest, ""},
		{asProfessional, "pro@clinic.test", "Pat Pro", account.RoleProfessional, ""},
		{asAuditor, "auditor@clinic.test", "Audrey Auditor", account.RoleProfessional, ""},
		{asEnrolling, "half@clinic.test", "Hal Half", account.RoleProfessional, strict.ID},
		{asSecondFactor, "tf@clinic.test", "Tess Factor", account.RoleProfessional, ""},
		{"other", "other@clinic.test", "Otto Other", account.RoleProfessional, ""},
		{"other2", "other2@clinic.test", "Olive Other", account.RoleProfessional, ""},
		{"target", "target@clinic.test", "Tara Target", account.RoleProfessional, ""},
		{"leaver", "leaver@clinic.test", "Lee Leaver", account.RoleProfessional, ""},
		{"changer", "changer@clinic.test", "Cole Changer", account.RoleProfessional, ""},
		{"resetter", "resetter@clinic.test", "Rhea Resetter", account.RoleProfessional, ""},
		{"quitter", "quitter@outside.test", "Quinn Quitter", account.RoleGuest, ""},
	}
	for _, p := range people {
		keep(p.name, a.register(t, p.email, p.display, p.role, p.group))
	}
	if got := e.sessionStage(t, asEnrolling); got != account.StageEnrol {
		t.Fatalf("the Strict group's member signed in at stage %q, want %q", got, account.StageEnrol)
	}

	// Roles the invitation cannot give: an auditor, and an administrator
	// (in the Strict group) who has not set up a second factor yet.
	change := func(name string, roles ...account.Role) {
		u, err := a.svc.ChangeUser(ctx, a.adminUser.ID, e.users[name].ID, account.UserChange{Roles: roles})
		if err != nil {
			t.Fatalf("roles of %s: %v", name, err)
		}
		e.users[name] = u
	}
	change(asAuditor, account.RoleAuditor)
	change(asEnrolling, account.RoleAdmin, account.RoleProfessional)

	// A second factor for tf@, whose next sign-in waits for a code.
	enr, err := a.svc.StartTOTP(ctx, e.users[asSecondFactor].ID, "Sealpost")
	if err != nil {
		t.Fatal(err)
	}
	var code string
	fips140.WithoutEnforcement(func() { code, err = ptotp.GenerateCode(enr.Secret, authzNow) }) // HMAC-SHA-1, as the apps do
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.svc.ConfirmTOTP(ctx, e.tokens[asSecondFactor], code, authzIP); err != nil {
		t.Fatal(err)
	}
	half, err := a.svc.SignIn(ctx, "tf@clinic.test", authzPassword, authzIP, "authz-test")
	if err != nil || half.Session.Stage != account.StageSecondFactor {
		t.Fatalf("tf@ sign-in: %v, stage %q", err, half.Session.Stage)
	}
	keep(asSecondFactor, half)

	// Another user's objects: a confirmed alias, a pending one, a session.
	other := e.users["other"].ID
	if err := a.svc.AddAlias(ctx, other, other, "otto@clinic.test"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.svc.ConfirmAlias(ctx, a.mail.token(t, "alias_confirm", "otto@clinic.test")); err != nil {
		t.Fatal(err)
	}
	for _, alias := range []string{"otto.new@clinic.test", "otto.scan@clinic.test"} {
		if err := a.svc.AddAlias(ctx, other, other, alias); err != nil {
			t.Fatal(err)
		}
	}

	// Messages and drafts: the session users' own, another user's, a
	// recalled one.
	e.mailFixtures(t)

	// Links from mail: resets, invitations, unsubscribes.
	for _, email := range []string{"pro@clinic.test", "resetter@clinic.test"} {
		if err := a.svc.StartPasswordReset(ctx, email, authzIP); err != nil {
			t.Fatal(err)
		}
	}
	for _, email := range []string{"pending@outside.test", "newcomer@outside.test", "resend@outside.test"} {
		res, err := a.svc.Invite(ctx, a.adminUser.ID, account.Invite{Email: email, Role: account.RoleGuest})
		if err != nil {
			t.Fatal(err)
		}
		e.users[strings.TrimSuffix(email, "@outside.test")] = res.User
	}
	var unsubQuitter, unsubPro string
	err = a.st.Update(ctx, func(tx *store.Tx) error {
		var err error
		if unsubQuitter, err = a.svc.UnsubscribeLink(tx, e.users["quitter"].ID); err != nil {
			return err
		}
		unsubPro, err = a.svc.UnsubscribeLink(tx, e.users[asProfessional].ID)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	linkToken := func(link string) string {
		u, err := url.Parse(link)
		if err != nil {
			t.Fatal(err)
		}
		return u.Query().Get("token")
	}

	for name, u := range e.users {
		e.vars["{"+name+"}"] = u.ID
	}
	e.vars["{otherSession}"] = e.sessions["other"]
	e.vars["{strict}"] = strict.ID
	for k, v := range map[string]string{
		"{resetPro}":     a.mail.token(t, "password_reset", "pro@clinic.test"),
		"{resetDone}":    a.mail.token(t, "password_reset", "resetter@clinic.test"),
		"{invPending}":   a.mail.token(t, "invitation", "pending@outside.test"),
		"{invNewcomer}":  a.mail.token(t, "invitation", "newcomer@outside.test"),
		"{aliasNew}":     a.mail.token(t, "alias_confirm", "otto.new@clinic.test"),
		"{aliasScan}":    a.mail.token(t, "alias_confirm", "otto.scan@clinic.test"),
		"{unsubQuitter}": linkToken(unsubQuitter),
		"{unsubPro}":     linkToken(unsubPro),
	} {
		e.vars[k] = v
		e.secrets = append(e.secrets, v)
	}
	for _, tok := range e.tokens {
		e.secrets = append(e.secrets, tok)
	}
	e.secrets = append(e.secrets, authzPassword, authzAdminPassword, code)

	e.srv = a.server(t, e.logs)
	e.restricted = a.server(t, e.logs, netip.MustParsePrefix("127.0.0.0/8"))
	return e
}

func (e *authzEnv) sessionStage(t *testing.T, name string) string {
	t.Helper()
	sess, _, err := e.svc.Authenticate(context.Background(), e.tokens[name], authzIP)
	if err != nil {
		t.Fatalf("session of %s: %v", name, err)
	}
	return sess.Stage
}

func (e *authzEnv) password(name string) string {
	if name == asAdmin {
		return authzAdminPassword
	}
	return authzPassword
}

// alive reports whether a session token still authenticates.
func (e *authzEnv) alive(token string) bool {
	_, _, err := e.svc.Authenticate(context.Background(), token, authzIP)
	return err == nil
}

// csrfMode is how a request meets the CSRF check.
type csrfMode int

const (
	csrfSameOrigin   csrfMode = iota // a browser on the appliance's own page: Sec-Fetch-Site: same-origin
	csrfCrossSite                    // a browser on another site's page
	csrfSameSite                     // a browser on a sibling site, without the form token
	csrfNoHeader                     // a client without fetch metadata and without the token
	csrfDoubleSubmit                 // no fetch metadata; the cookie and form token a page handed out
	csrfWrongToken                   // no fetch metadata; a cookie and a different form token
)

// auditWant is an audit event a row must (or must not) leave. Object "x*"
// matches any object that begins with x; detail must be a subset.
type auditWant struct {
	actor, action, object string
	detail                map[string]string
}

func auditEv(actor, action, object string, kv ...string) auditWant {
	w := auditWant{actor: actor, action: action, object: object}
	if len(kv) > 0 {
		w.detail = map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			w.detail[kv[i]] = kv[i+1]
		}
	}
	return w
}

func (w auditWant) resolve(rep *strings.Replacer) auditWant {
	out := auditWant{actor: rep.Replace(w.actor), action: w.action, object: rep.Replace(w.object)}
	if w.detail != nil {
		out.detail = map[string]string{}
		for k, v := range w.detail {
			out.detail[k] = rep.Replace(v)
		}
	}
	return out
}

func (w auditWant) matches(e audit.Event) bool {
	if e.Actor != w.actor || e.Action != w.action {
		return false
	}
	if p, ok := strings.CutSuffix(w.object, "*"); ok {
		if !strings.HasPrefix(e.Object, p) {
			return false
		}
	} else if e.Object != w.object {
		return false
	}
	for k, v := range w.detail {
		if e.Detail[k] != v {
			return false
		}
	}
	return true
}

func (w auditWant) String() string {
	return fmt.Sprintf("%s %s %s %v", w.actor, w.action, w.object, w.detail)
}

// authzReport collects a row's problems, so that a row marked as a known bug
// can be reported as such.
type authzReport struct{ problems []string }

func (r *authzReport) errorf(format string, args ...any) {
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
}

// finishRow fails the test with the problems, or, for a row marked as a known
// bug, skips it saying why (and fails once the bug is gone, so that the mark
// is removed).
func finishRow(t *testing.T, bug string, problems []string) {
	t.Helper()
	switch {
	case bug == "":
		for _, p := range problems {
			t.Error(p)
		}
	case len(problems) > 0:
		t.Skipf("KNOWN BUG (not fixed yet): %s\n\t%s", bug, strings.Join(problems, "\n\t"))
	default:
		t.Errorf("this row is marked as the known bug %q but passes now: remove the mark", bug)
	}
}

// authzCase is one row: a request by one session, and what must follow.
type authzCase struct {
	name       string
	restricted bool   // the server whose console answers 127.0.0.0/8 only
	as         string // the session
	fresh      bool   // a new session of that user, for this row alone
	cookie     string // a raw session cookie instead of the user's
	remote     string
	method     string
	path       string
	form       url.Values
	header     map[string]string
	csrf       csrfMode
	status     int
	location   string // exact, or a prefix when it ends in "*"
	want       []string
	wantNot    []string
	audit      []auditWant
	noAudit    []auditWant
	check      func(e *authzEnv, res *authzResult, r *authzReport)
	bug        string // a known bug this row shows; see finishRow
	stream     bool   // a server-sent event stream: read up to the first event, then end the request
	multipart  bool   // post the form as multipart/form-data, with files
	files      []authzFile
}

// authzResult is what a row's request got.
type authzResult struct {
	rec   *httptest.ResponseRecorder
	body  string
	token string // the session cookie sent
	rep   *strings.Replacer
}

func (res *authzResult) cookie(name string) *http.Cookie {
	for _, c := range res.rec.Result().Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

var authzCSRFField = regexp.MustCompile(`name="csrf" value="([^"]*)"`)

// csrfPair gets the double-submit token as a browser without fetch
// metadata would: from the cookie and the form of a page.
func (e *authzEnv) csrfPair(srv *Server, r *authzReport) string {
	req := httptest.NewRequest(http.MethodGet, authzBase+"/signin", nil)
	req.RemoteAddr = authzRemote
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, req)
	var ck *http.Cookie
	for _, c := range rec.Result().Cookies() {
		if c.Name == csrfCookie {
			ck = c
		}
	}
	if ck == nil || ck.Value == "" {
		r.errorf("GET /signin set no %s cookie", csrfCookie)
		return ""
	}
	if !ck.Secure || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/" || ck.Domain != "" {
		r.errorf("the CSRF cookie is not a strict __Host- cookie: %s", ck)
	}
	if m := authzCSRFField.FindStringSubmatch(rec.Body.String()); m == nil || m[1] != ck.Value {
		r.errorf("the sign-in form's csrf field %v is not the cookie's token", m)
	}
	return ck.Value
}

func (e *authzEnv) run(t *testing.T, tc authzCase) {
	t.Helper()
	r := &authzReport{}
	if res := e.serve(tc, r); res != nil {
		e.verify(tc, res, r)
	}
	finishRow(t, tc.bug, r.problems)
}

func (e *authzEnv) serve(tc authzCase, r *authzReport) *authzResult {
	vars := maps.Clone(e.vars)
	vars["{role}"] = tc.as
	maps.Copy(vars, e.mine[tc.as])
	res := &authzResult{token: tc.cookie}
	if tc.as != asAnonymous {
		u, ok := e.users[tc.as]
		if !ok {
			r.errorf("no fixture user %q", tc.as)
			return nil
		}
		vars["{as}"] = u.ID
		res.token, vars["{session}"] = e.tokens[tc.as], e.sessions[tc.as]
		if tc.fresh {
			in, err := e.svc.SignIn(context.Background(), u.Email, e.password(tc.as), authzIP, "authz-test")
			if err != nil {
				r.errorf("a fresh session of %s: %v", tc.as, err)
				return nil
			}
			res.token, vars["{session}"] = in.Token, in.Session.ID
		}
	}
	rep := placeholders(vars)
	path := rep.Replace(tc.path)
	vars["{next}"] = url.QueryEscape(path)
	res.rep = placeholders(vars)

	srv := e.srv
	if tc.restricted {
		srv = e.restricted
	}
	form := url.Values{}
	for k, vs := range tc.form {
		for _, v := range vs {
			form.Add(k, res.rep.Replace(v))
		}
	}
	var csrfToken string
	switch tc.csrf {
	case csrfDoubleSubmit:
		if csrfToken = e.csrfPair(srv, r); csrfToken == "" {
			return nil
		}
		form.Set("csrf", csrfToken)
	case csrfWrongToken:
		csrfToken = strings.Repeat("A", 32)
		form.Set("csrf", strings.Repeat("B", 32))
	}
	var req *http.Request
	switch {
	case tc.method == http.MethodPost && tc.multipart:
		body, ct, err := multipartBody(form, tc.files)
		if err != nil {
			r.errorf("encode the multipart form: %v", err)
			return nil
		}
		req = httptest.NewRequest(tc.method, authzBase+path, body)
		req.Header.Set("Content-Type", ct)
	case tc.method == http.MethodPost:
		req = httptest.NewRequest(tc.method, authzBase+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	default:
		req = httptest.NewRequest(tc.method, authzBase+path, nil)
	}
	req.RemoteAddr = authzRemote
	if tc.remote != "" {
		req.RemoteAddr = tc.remote
	}
	req.Header.Set("User-Agent", "authz-test")
	switch tc.csrf {
	case csrfSameOrigin:
		req.Header.Set("Sec-Fetch-Site", "same-origin")
	case csrfCrossSite:
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		req.Header.Set("Origin", "https://evil.example")
	case csrfSameSite:
		req.Header.Set("Sec-Fetch-Site", "same-site")
	}
	for k, v := range tc.header {
		req.Header.Set(k, v)
	}
	if res.token != "" {
		req.AddCookie(&http.Cookie{Name: sessionCookie, Value: res.token})
	}
	if csrfToken != "" {
		req.AddCookie(&http.Cookie{Name: csrfCookie, Value: csrfToken})
	}
	res.rec = httptest.NewRecorder()
	if tc.stream {
		// The stream lasts as long as the page: end it after the first
		// event, and give up (rather than hang) if none comes.
		ctx, cancel := context.WithTimeout(req.Context(), 10*time.Second)
		defer cancel()
		srv.Handler().ServeHTTP(&firstEventRecorder{ResponseRecorder: res.rec, cancel: cancel}, req.WithContext(ctx))
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			r.errorf("the stream sent no complete event in 10 seconds")
		}
	} else {
		srv.Handler().ServeHTTP(res.rec, req)
	}
	res.body = res.rec.Body.String()
	return res
}

func placeholders(vars map[string]string) *strings.Replacer {
	var pairs []string
	for k, v := range vars {
		pairs = append(pairs, k, v)
	}
	return strings.NewReplacer(pairs...)
}

var (
	authzInlineScript  = regexp.MustCompile(`<script\b[^>]*>`)
	authzInlineHandler = regexp.MustCompile(`<[^>]*\son(?:click|load|error|submit|change|input|focus|blur|mouseover)\s*=`)
)

func (e *authzEnv) verify(tc authzCase, res *authzResult, r *authzReport) {
	rec, body, rep := res.rec, res.body, res.rep
	short := body
	if len(short) > 600 {
		short = short[:600] + "…"
	}
	if rec.Code != tc.status {
		r.errorf("status = %d, want %d; Location %q; body:\n%s", rec.Code, tc.status, rec.Header().Get("Location"), short)
	}
	if tc.status == http.StatusSeeOther && tc.location == "" {
		r.errorf("table: a redirect row must say where to")
	}
	if tc.location != "" {
		want, got := rep.Replace(tc.location), rec.Header().Get("Location")
		if p, ok := strings.CutSuffix(want, "*"); ok {
			if !strings.HasPrefix(got, p) {
				r.errorf("Location = %q, want %q…", got, p)
			}
		} else if got != want {
			r.errorf("Location = %q, want %q", got, want)
		}
	}
	html := strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html")
	if tc.status == http.StatusOK && body != "" && (len(tc.want) == 0 || len(tc.wantNot) == 0) {
		r.errorf("table: a 200 row must name text that must appear and text that must not")
	}
	for _, w := range tc.want {
		if w = rep.Replace(w); !strings.Contains(body, w) {
			r.errorf("body lacks %q:\n%s", w, short)
		}
	}
	for _, w := range tc.wantNot {
		if w = rep.Replace(w); strings.Contains(body, w) {
			r.errorf("body contains %q", w)
		}
	}

	// What every response must carry, whoever asks. A message's body, in
	// its sandboxed frame, has a policy of its own; every other page may not
	// be framed at all.
	h := rec.Header()
	served := rec.Code == http.StatusOK || rec.Code == http.StatusPartialContent
	if authzFramePath.MatchString(rep.Replace(tc.path)) && served {
		checkFrameHeaders(h, r)
	} else {
		if got := h.Get("Content-Security-Policy"); got != contentSecurityPolicy || strings.Contains(got, "unsafe-inline") ||
			!strings.Contains(got, "script-src 'self'") || !strings.Contains(got, "frame-ancestors 'none'") {
			r.errorf("Content-Security-Policy = %q", got)
		}
		if got := h.Get("X-Frame-Options"); got != "DENY" {
			r.errorf("X-Frame-Options = %q, want DENY", got)
		}
	}
	for k, v := range map[string]string{"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
		"Strict-Transport-Security": "max-age=31536000; includeSubDomains"} {
		if h.Get(k) != v {
			r.errorf("%s = %q, want %q", k, h.Get(k), v)
		}
	}
	cache := "no-store"
	switch {
	case strings.HasPrefix(tc.path, "/static/"):
		cache = "public, max-age=3600"
	case strings.HasPrefix(tc.path, "/branding/") && rec.Code == http.StatusOK:
		cache = "public, max-age=300"
	case authzDownloadPath.MatchString(rep.Replace(tc.path)) && served:
		cache = "private, no-store"
	}
	if h.Get("Cache-Control") != cache {
		r.errorf("Cache-Control = %q, want %q", h.Get("Cache-Control"), cache)
	}
	if h.Get(echo.HeaderXRequestID) == "" {
		r.errorf("no request id")
	}
	if strings.Contains(body, "$argon2id$") {
		r.errorf("the body shows a password hash")
	}
	for _, f := range e.forbidden {
		if strings.Contains(body, f) {
			r.errorf("the body shows %q, which no session user may see (another user's message, or a recalled one's content)", f)
		}
	}
	if res.token != "" && strings.Contains(body, res.token) {
		r.errorf("the body shows the session token")
	}
	if html {
		for _, tag := range authzInlineScript.FindAllString(body, -1) {
			if !strings.Contains(tag, " src=") {
				r.errorf("inline script, which the CSP blocks: %s", tag)
			}
		}
		if m := authzInlineHandler.FindString(body); m != "" {
			r.errorf("inline event handler, which the CSP blocks: %s", m)
		}
	}

	if len(tc.audit)+len(tc.noAudit) > 0 {
		evs := e.events(r)
		for _, w := range tc.audit {
			w = w.resolve(rep)
			if !slices.ContainsFunc(evs, w.matches) {
				r.errorf("no audit event %s", w)
			}
		}
		for _, w := range tc.noAudit {
			w = w.resolve(rep)
			if slices.ContainsFunc(evs, w.matches) {
				r.errorf("unexpected audit event %s", w)
			}
		}
	}
	if tc.check != nil {
		tc.check(e, res, r)
	}
}

// authzOutcome is what one session gets from one route in the matrix.
type authzOutcome struct {
	status   int
	location string
	want     []string
	wantNot  []string
	audit    []auditWant
	noAudit  []auditWant
	remote   string
	check    func(e *authzEnv, res *authzResult, r *authzReport)
}

func seeOther(location string) authzOutcome {
	return authzOutcome{status: http.StatusSeeOther, location: location}
}

func showsPage(want []string, wantNot ...string) authzOutcome {
	return authzOutcome{status: http.StatusOK, want: want, wantNot: wantNot}
}

func failsWith(status int, want ...string) authzOutcome {
	return authzOutcome{status: status, want: want}
}

// notFoundPage is a route or object the caller may not know about.
var notFoundPage = failsWith(http.StatusNotFound, "There is nothing at this address.")

// deadUnsubscribeLink is the one answer to an unknown, used or expired unsubscribe link.
var deadUnsubscribeLink = failsWith(http.StatusNotFound, "This unsubscribe link is not valid any more")

func (o authzOutcome) and(f func(e *authzEnv, res *authzResult, r *authzReport)) authzOutcome {
	o.check = f
	return o
}

func (o authzOutcome) leaves(w ...auditWant) authzOutcome {
	o.audit = append(o.audit, w...)
	return o
}

func (o authzOutcome) leavesNo(w ...auditWant) authzOutcome {
	o.noAudit = append(o.noAudit, w...)
	return o
}

func (o authzOutcome) from(remote string) authzOutcome {
	o.remote = remote
	return o
}

// authzRoute is one route of routes.go with what each session gets from it;
// "*" is every session not named.
type authzRoute struct {
	method, path string
	form         url.Values
	csrf         csrfMode
	fresh        bool // the request ends the session: use a new one
	stream       bool // a server-sent event stream
	by           map[string]authzOutcome
}

// consoleRoute is a route of the admin console: only a fully signed-in
// administrator reaches it; for everyone else it does not exist, or asks to
// sign in (again, or further). effect is the audit event an administrator's
// request leaves, which nobody else's may.
func consoleRoute(method, path string, form url.Values, forAdmin authzOutcome, effect *auditWant) authzRoute {
	denied := notFoundPage
	signIn := seeOther("/signin?next={next}")
	if method == http.MethodPost {
		signIn = failsWith(http.StatusUnauthorized, "Your session has ended. Sign in again.")
	}
	by := map[string]authzOutcome{asAnonymous: signIn, asGuest: denied, asProfessional: denied, asAuditor: denied,
		asEnrolling: seeOther("/signin/enrol"), asSecondFactor: seeOther("/signin/code"), asAdmin: forAdmin}
	if effect != nil {
		for s, o := range by {
			if s == asAdmin {
				by[s] = o.leaves(*effect)
				continue
			}
			no := *effect
			no.actor = "user:{as}"
			by[s] = o.leavesNo(no)
		}
	}
	return authzRoute{method: method, path: path, form: form, by: by}
}

func vals(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v
}

// trailRoute is a route of the audit trail: read-only, for auditors and
// administrators (POST only verifies the chain).
func trailRoute(method string, forReaders authzOutcome) authzRoute {
	rt := consoleRoute(method, "/audit", nil, forReaders, nil)
	rt.by[asAuditor] = forReaders
	if method == http.MethodGet {
		a := forReaders
		a.wantNot = []string{"No events yet"}
		rt.by[asAdmin] = a // the administrator's menu has the console
	}
	return rt
}

// matrixRoutes is every route of routes.go, in its order.
func matrixRoutes() []authzRoute {
	fullOnly := func(full, half authzOutcome) map[string]authzOutcome {
		return map[string]authzOutcome{asGuest: full, asProfessional: full, asAuditor: full, asAdmin: full, asEnrolling: half, asSecondFactor: half, asAnonymous: half}
	}
	signedOut := seeOther("/signin?done=You+have+signed+out+on+this+device.")
	notPromoted := failsWith(http.StatusNotFound, "is not one of the user").
		leavesNo(auditEv("user:{as}", "alias.promote", "user/{as}"), auditEv("user:{as}", "alias.promote", "user/{other}")).
		and(func(e *authzEnv, _ *authzResult, r *authzReport) {
			if u, err := e.svc.User(e.users["other"].ID); err != nil || u.Email != "other@clinic.test" {
				r.errorf("the other user's main address is now %q (%v)", u.Email, err)
			}
		})
	targetForm := vals("action", "save", "group", "professional", "status", "disabled", "blacklist_mode", "secure", "default_secure", "rule")
	userChange := auditEv("user:{admin}", "user.change", "user/{target}", "status", "disabled")
	invite := auditEv("user:{admin}", "user.invite", "user/*", "role", "guest")
	groupCreate := auditEv("user:{admin}", "group.create", "group/*", "name", "Locums-{role}")
	filterSave := auditEv("user:{admin}", "registration_filter.save", "filter/partner-{role}.test")
	policySave := auditEv("user:{admin}", "policy.save", "policy/rules")
	return slices.Concat([]authzRoute{
		{method: "GET", path: "/healthz", by: map[string]authzOutcome{"*": showsPage([]string{`"ok"`}, `"error"`)}},
		{method: "GET", path: "/readyz", by: map[string]authzOutcome{"*": showsPage([]string{`"ready"`}, "unavailable")}},
		{method: "GET", path: "/static/css/sealpost.css", by: map[string]authzOutcome{"*": showsPage([]string{"--brand"}, "<html")}},
		{method: "GET", path: "/setup?token=SETUPTOKEN", by: map[string]authzOutcome{"*": notFoundPage}},
		{method: "GET", path: "/setup/organization?token=SETUPTOKEN", by: map[string]authzOutcome{"*": notFoundPage}},
		{method: "POST", path: "/setup/organization?token=SETUPTOKEN", form: vals("name", "Take-over Inc", "domains", "evil.example"),
			by: map[string]authzOutcome{"*": notFoundPage.and(func(e *authzEnv, _ *authzResult, r *authzReport) {
				if set, err := settings.Read(e.st); err != nil || set.Organization.Name == "Take-over Inc" {
					r.errorf("the finished wizard took an answer: %q %v", set.Organization.Name, err)
				}
			})}},

		{method: "GET", path: "/", by: map[string]authzOutcome{
			asAnonymous:    seeOther("/signin"),
			asGuest:        seeOther("/mail/inbox"),
			asProfessional: seeOther("/mail/inbox"),
			asAuditor:      seeOther("/audit"),      // an auditor only: the trail first
			asAdmin:        seeOther("/mail/inbox"), // an administrator and professional
			asEnrolling:    seeOther("/signin"),
			asSecondFactor: seeOther("/signin"),
		}},
		{method: "GET", path: "/branding/banner.png", by: map[string]authzOutcome{"*": showsPage([]string{"\x89PNG", "banner"}, "<html")}},
		{method: "GET", path: "/signin", by: fullOnly(seeOther("/"),
			showsPage([]string{"Sign in to read and send secure messages.", `name="password"`}, `class="mainnav"`))},
		{method: "POST", path: "/signin", form: vals("email", "nobody-{role}@clinic.test", "password", "not the password", "next", "/account"),
			by: func() map[string]authzOutcome {
				by := map[string]authzOutcome{}
				for i, s := range matrixSessions {
					ip := fmt.Sprintf("10.0.7.%d", i+1)
					by[s] = failsWith(http.StatusForbidden, "The email address or password is not right.").from(ip + ":1234").
						leaves(auditEv("anonymous", "sign_in.fail", "user/unknown", "reason", "unknown_address", "remote_ip", ip))
				}
				return by
			}()},
		{method: "GET", path: "/signin/code", by: map[string]authzOutcome{
			"*":            seeOther("/signin"),
			asSecondFactor: showsPage([]string{"Enter your code", `name="code"`}, `name="password"`, `class="mainnav"`),
		}},
		{method: "POST", path: "/signin/code", form: vals("code", "not-a-code", "next", "/account"), by: map[string]authzOutcome{
			"*": seeOther("/signin"),
			asSecondFactor: failsWith(http.StatusUnprocessableEntity, "That code is not right.").
				leaves(auditEv("user:{second_factor}", "sign_in.second_factor_fail", "session/{session}")),
		}},
		{method: "GET", path: "/signin/enrol", by: map[string]authzOutcome{
			asAnonymous: seeOther("/signin"), asSecondFactor: seeOther("/signin"),
			"*":         showsPage([]string{"Protect your account with an authenticator app", `id="secret"`}, "Your account needs a second factor"),
			asEnrolling: showsPage([]string{"Your account needs a second factor.", `id="secret"`}, "Protect your account"),
		}},
		{method: "POST", path: "/signin/enrol", form: vals("code", "not-a-code"), by: map[string]authzOutcome{
			asAnonymous: seeOther("/signin"), asSecondFactor: seeOther("/signin"),
			"*": failsWith(http.StatusUnprocessableEntity, "Set up a second factor").
				leavesNo(auditEv("user:{as}", "user.totp_enable", "user/{as}")),
		}},
		{method: "POST", path: "/signout", fresh: true, by: map[string]authzOutcome{
			asAnonymous: signedOut,
			"*": signedOut.leaves(auditEv("user:{as}", "session.sign_out", "session/{session}")).
				and(func(e *authzEnv, res *authzResult, r *authzReport) {
					if e.alive(res.token) {
						r.errorf("the session still works after signing out")
					}
					if c := res.cookie(sessionCookie); c == nil || c.MaxAge >= 0 || c.Value != "" {
						r.errorf("the session cookie is not cleared: %v", c)
					}
				}),
		}},
		{method: "GET", path: "/forgot", by: map[string]authzOutcome{
			"*": showsPage([]string{"Enter your email address, and we will send you a link"}, "is on its way"),
		}},
		{method: "POST", path: "/forgot", form: vals("email", "nobody-{role}@clinic.test"), by: map[string]authzOutcome{
			"*": showsPage([]string{"If an account has this address, a link"}, "Enter your email address, and"),
		}},
		{method: "GET", path: "/reset?token={resetPro}", by: map[string]authzOutcome{
			"*": showsPage([]string{"For pro@clinic.test.", `name="confirm"`}, "There is nothing"),
		}},
		{method: "POST", path: "/reset", form: vals("token", "{resetPro}", "password", authzPassword+" one", "confirm", authzPassword+" two"),
			by: map[string]authzOutcome{"*": failsWith(http.StatusUnprocessableEntity, "The two passwords are not the same.").
				leavesNo(auditEv("user:{professional}", "password.reset", "user/{professional}"))}},
		{method: "GET", path: "/register?token={invPending}", by: map[string]authzOutcome{
			"*": showsPage([]string{"Your account is <strong>pending@outside.test</strong>", "Ada Admin invited you"}, "Check your email"),
		}},
		{method: "POST", path: "/register", form: vals("token", "{invPending}", "name", "Penny", "password", authzPassword+" one", "confirm", authzPassword+" two"),
			by: map[string]authzOutcome{"*": failsWith(http.StatusUnprocessableEntity, "The two passwords are not the same.").
				leavesNo(auditEv("user:{pending}", "registration.complete", "user/{pending}"))}},
		{method: "POST", path: "/register/self", form: vals("email", "self-{role}@outside.test"), by: map[string]authzOutcome{
			"*": failsWith(http.StatusForbidden, "Registration is by invitation only.").
				and(noUserWith("self-{role}@outside.test")),
		}},
		// The link from mail only asks: a scanner that follows links in mail
		// must not confirm an address on someone's behalf.
		{method: "GET", path: "/alias/confirm?token=link-{role}", by: map[string]authzOutcome{
			"*": showsPage([]string{"Confirm this address", `value="link-{role}"`}, "is now one of your addresses"),
		}},
		{method: "POST", path: "/alias/confirm", form: vals("token", "bogus-{role}"), by: map[string]authzOutcome{
			"*": failsWith(http.StatusNotFound, "This confirmation link is not valid any more"),
		}},
		{method: "GET", path: "/unsubscribe?token=link-{role}", by: map[string]authzOutcome{
			"*": showsPage([]string{"Stop notifications", `value="link-{role}"`}, "You are unsubscribed"),
		}},
		{method: "POST", path: "/unsubscribe", form: vals("token", "bogus-{role}"), by: map[string]authzOutcome{"*": deadUnsubscribeLink}},
		// Mail programs post this one (RFC 8058) without any CSRF token: the
		// 404 shows the request got past the CSRF check to the link check.
		{method: "POST", path: "/unsubscribe/one-click?token=bogus-{role}", form: vals("List-Unsubscribe", "One-Click"), csrf: csrfNoHeader,
			by: map[string]authzOutcome{"*": deadUnsubscribeLink}},

		{method: "GET", path: "/account", by: map[string]authzOutcome{
			asAnonymous:    seeOther("/signin?next=%2Faccount"),
			asGuest:        showsPage([]string{"guest@outside.test", "Where you are signed in"}, "Add an address", "pro@clinic.test", "Admin console"),
			asProfessional: showsPage([]string{"pro@clinic.test", "Add an address"}, "other@clinic.test", "otto@clinic.test", "Admin console"),
			asAuditor:      showsPage([]string{"auditor@clinic.test", `href="/audit"`}, "Admin console", "pro@clinic.test"),
			asAdmin:        showsPage([]string{"admin@clinic.test", "Admin console"}, "pro@clinic.test"),
			asEnrolling:    seeOther("/signin/enrol"),
			asSecondFactor: seeOther("/signin/code"),
		}},
		// Another user's object: every signed-in user acts on their own
		// account only, so another user's alias is not theirs to promote.
		{method: "POST", path: "/account", form: vals("action", "promote_alias", "address", "otto@clinic.test"), by: map[string]authzOutcome{
			asAnonymous:    failsWith(http.StatusUnauthorized, "Your session has ended. Sign in again."),
			asGuest:        notPromoted,
			asProfessional: notPromoted,
			asAuditor:      notPromoted,
			asAdmin:        notPromoted,
			asEnrolling:    seeOther("/signin/enrol"),
			asSecondFactor: seeOther("/signin/code"),
		}},
	}, mailRoutes(), []authzRoute{
		trailRoute("GET", showsPage([]string{"Verify the chain", `id="events"`}, "No events yet", "Admin console")),
		trailRoute("POST", showsPage([]string{"is intact: none was changed, removed or reordered."}, "The chain is broken")),

		consoleRoute("GET", "/admin", nil, seeOther("/admin/users"), nil),
		consoleRoute("GET", "/admin/users", nil, showsPage([]string{"pro@clinic.test", "guest@outside.test", "Invite someone"}, "No users match"), nil),
		consoleRoute("GET", "/admin/users/{professional}", nil, showsPage([]string{"Pat Pro", "pro@clinic.test", "Send password reset"}, "There is nothing"), nil),
		consoleRoute("POST", "/admin/users/{target}", targetForm, seeOther("/admin/users/{target}?done=Saved.").
			and(func(e *authzEnv, _ *authzResult, r *authzReport) {
				if u, err := e.svc.User(e.users["target"].ID); err != nil || u.Status != account.StatusDisabled {
					r.errorf("the target is %q (%v), want disabled", u.Status, err)
				}
				if e.alive(e.tokens["target"]) {
					r.errorf("the disabled user's session still works")
				}
			}), &userChange),
		consoleRoute("GET", "/admin/invite", nil, showsPage([]string{"Invite someone", `name="passcode"`}, "There is nothing"), nil),
		withInviteChecks(consoleRoute("POST", "/admin/invite", vals("email", "invited-{role}@outside.test", "name", "", "role", "guest", "group", ""),
			seeOther("/admin/users/u*"), &invite)),
		consoleRoute("GET", "/admin/groups", nil, showsPage([]string{"Staff of the organization.", "Invited outside recipients.", "Strict"}, "There is nothing"), nil),
		consoleRoute("GET", "/admin/groups/professional", nil, showsPage([]string{"Staff of the organization.", `id="invite_quota"`}, "<h1>New group</h1>"), nil),
		consoleRoute("POST", "/admin/groups/new", vals("name", "Locums-{role}", "invite_quota", "5", "quota_period_days", "30", "attachment_limit_mb", "100"),
			seeOther("/admin/groups?done=Group+Locums-admin+saved."), &groupCreate),
		consoleRoute("GET", "/admin/registration", nil, showsPage([]string{"Who may register, and how", `value="save_filter"`}, "There is nothing"), nil),
		consoleRoute("POST", "/admin/registration", vals("action", "save_filter", "pattern", "partner-{role}.test", "allow", "allow", "cra", "default"),
			seeOther("/admin/registration?done=Filter+for+partner-admin.test+saved."), &filterSave),
		consoleRoute("GET", "/admin/policy", nil, showsPage([]string{"What makes a message secure", "Payment card numbers", `value="save_rule"`}, "There is nothing"), nil),
		consoleRoute("POST", "/admin/policy", vals("action", "save_rule", "name", "Falcon-{role}", "kind", "keyword", "pattern", "project falcon",
			"scope", "all", "rule_action", "secure", "min_count", "1", "enabled", "on"),
			seeOther("/admin/policy?done=Rule+%E2%80%9CFalcon-admin%E2%80%9D+saved."), &policySave),
		consoleRoute("GET", "/admin/policy/test", nil, showsPage([]string{"Rule tester", `id="sample"`}, "There is nothing"), nil),
		consoleRoute("POST", "/admin/policy/test", vals("sample", "Card 4111 1111 1111 1111 for project falcon"),
			showsPage([]string{"<mark", "Payment card numbers", "Made secure"}, "There is nothing"), nil),
	})
}

// noUserWith checks that no user has an address (a refused request made none).
func noUserWith(addr string) func(*authzEnv, *authzResult, *authzReport) {
	return func(e *authzEnv, res *authzResult, r *authzReport) {
		a := res.rep.Replace(addr)
		if _, err := e.svc.UserByAddress(a); err == nil {
			r.errorf("a user %s exists, but the request was refused", a)
		}
	}
}

// withInviteChecks adds to the invitation's rows that the invited user exists
// exactly when the administrator asked.
func withInviteChecks(rt authzRoute) authzRoute {
	for s, o := range rt.by {
		if s != asAdmin {
			rt.by[s] = o.and(noUserWith("invited-{role}@outside.test"))
			continue
		}
		rt.by[s] = o.and(func(e *authzEnv, res *authzResult, r *authzReport) {
			u, err := e.svc.UserByAddress("invited-admin@outside.test")
			if err != nil || u.Status != account.StatusInvited || !u.IsGuest() {
				r.errorf("the invited user: %+v %v", u, err)
			}
			if loc := res.rec.Header().Get("Location"); err == nil && !strings.HasPrefix(loc, "/admin/users/"+u.ID+"?") {
				r.errorf("Location %q is not the invited user's page", loc)
			}
		})
	}
	return rt
}

// matrixRows crosses every route with every session.
func matrixRows(t *testing.T, routes []authzRoute) []authzCase {
	t.Helper()
	var rows []authzCase
	for _, rt := range routes {
		for _, s := range matrixSessions {
			o, ok := rt.by[s]
			if !ok {
				o, ok = rt.by["*"]
			}
			if !ok {
				t.Fatalf("table: %s %s says nothing of %s", rt.method, rt.path, s)
			}
			rows = append(rows, authzCase{name: fmt.Sprintf("%s %s as %s", rt.method, rt.path, s), as: s, fresh: rt.fresh, stream: rt.stream,
				remote: o.remote, method: rt.method, path: rt.path, form: rt.form, csrf: rt.csrf,
				status: o.status, location: o.location, want: o.want, wantNot: o.wantNot, audit: o.audit, noAudit: o.noAudit, check: o.check})
		}
	}
	return rows
}

const authzCSRFMessage = "This form has expired or did not come from this site."

// specialRows are the scenarios beyond the plain matrix: objects that do
// not exist or are another user's, the admin networks, CSRF, sign-in and
// the state changes of the account page and of links from mail, and the
// webmail's (mailSpecialRows).
func specialRows() []authzCase {
	const get, post = http.MethodGet, http.MethodPost
	targetForm := vals("action", "save", "group", "professional", "status", "disabled", "blacklist_mode", "secure", "default_secure", "rule")
	sameSettings := vals("action", "settings", "access", "open", "invitation_only", "on", "level", "1", "cra_excluded_domains", "")
	notFoundText := []string{"There is nothing at this address."}
	guestCreds := vals("email", "guest@outside.test", "password", authzPassword, "next", "/account")
	adminCreds := vals("email", "admin@clinic.test", "password", authzAdminPassword)
	noSessionCookie := func(e *authzEnv, res *authzResult, r *authzReport) {
		if c := res.cookie(sessionCookie); c != nil {
			r.errorf("a refused request set a session cookie")
		}
	}

	return append([]authzCase{
		// Objects that do not exist, or are not one's own.
		{name: "admin: an unknown user", as: asAdmin, method: get, path: "/admin/users/unobody", status: 404, want: []string{"no such user"}},
		{name: "admin: change an unknown user", as: asAdmin, method: post, path: "/admin/users/unobody", form: targetForm, status: 404,
			want: []string{"no such user"}, noAudit: []auditWant{auditEv("user:{admin}", "user.change", "user/unobody")}},
		{name: "admin: an unknown group", as: asAdmin, method: get, path: "/admin/groups/gnope", status: 404, want: []string{"no such group"}},
		{name: "admin: save an unknown group", as: asAdmin, method: post, path: "/admin/groups/gnope",
			form: vals("name", "Nope", "invite_quota", "1", "quota_period_days", "30", "attachment_limit_mb", "10"), status: 404,
			noAudit: []auditWant{auditEv("user:{admin}", "group.change", "group/gnope"), auditEv("user:{admin}", "group.create", "group/*", "name", "Nope")}},
		{name: "admin: the new-group form", as: asAdmin, method: get, path: "/admin/groups/new", status: 200,
			want: []string{"<h1>New group</h1>"}, wantNot: []string{"Staff of the organization."}},
		{name: "an unknown brand image", as: asAnonymous, method: get, path: "/branding/nope.png", status: 404, want: notFoundText},
		{name: "admin: an unknown console page", as: asAdmin, method: get, path: "/admin/nope", status: 404, want: notFoundText},
		{name: "professional: an unknown console page", as: asProfessional, method: get, path: "/admin/nope", status: 404, want: notFoundText},
		{name: "anonymous: an unknown console page", as: asAnonymous, method: get, path: "/admin/nope", status: 303, location: "/signin?next=%2Fadmin%2Fnope"},
		{name: "admin cannot disable themselves", as: asAdmin, method: post, path: "/admin/users/{admin}", form: targetForm, status: 422,
			want: []string{"You cannot disable your own account."}, noAudit: []auditWant{auditEv("user:{admin}", "user.change", "user/{admin}")},
			check: func(e *authzEnv, _ *authzResult, r *authzReport) {
				if !e.alive(e.tokens[asAdmin]) {
					r.errorf("the administrator's session ended")
				}
			}},
		{name: "admin resends an invitation", as: asAdmin, method: post, path: "/admin/users/{resend}", form: vals("action", "resend_invitation"),
			status: 303, location: withDone("/admin/users/{resend}", "A new invitation is on its way; the old link no longer works."),
			audit: []auditWant{auditEv("user:{admin}", "user.invite_resend", "user/{resend}")}},
		{name: "professional cannot resend an invitation", as: asProfessional, method: post, path: "/admin/users/{resend}",
			form: vals("action", "resend_invitation"), status: 404, want: notFoundText,
			noAudit: []auditWant{auditEv("user:{professional}", "user.invite_resend", "user/{resend}")}},
		{name: "admin: an unknown user action", as: asAdmin, method: post, path: "/admin/users/{professional}", form: vals("action", "nonsense"),
			status: 400, want: []string{"Unknown action."}},
		{name: "admin: a guest has no aliases", as: asAdmin, method: get, path: "/admin/users/{guest}", status: 200,
			want: []string{"guest@outside.test", "Gus Guest"}, wantNot: []string{"Add an alias", "pro@clinic.test"}},
		{name: "admin saves the registration settings", as: asAdmin, method: post, path: "/admin/registration", form: sameSettings,
			status: 303, location: "/admin/registration?done=Saved.",
			audit: []auditWant{auditEv("user:{admin}", "settings.change", "settings/registration.level", "value", "1")}},
		{name: "auditor cannot save the registration settings", as: asAuditor, method: post, path: "/admin/registration", form: sameSettings,
			status: 404, want: notFoundText, noAudit: []auditWant{auditEv("user:{auditor}", "settings.change", "settings/*")}},

		// admin.allowed_networks = 127.0.0.0/8.
		{name: "networks: admin from outside", restricted: true, as: asAdmin, method: get, path: "/admin/users", status: 404, want: notFoundText,
			wantNot: []string{"pro@clinic.test"}},
		{name: "networks: admin from loopback", restricted: true, as: asAdmin, remote: "127.0.0.1:1234", method: get, path: "/admin/users",
			status: 200, want: []string{"pro@clinic.test"}, wantNot: []string{"There is nothing"}},
		{name: "networks: admin from IPv4-mapped loopback", restricted: true, as: asAdmin, remote: "[::ffff:127.0.0.1]:1234", method: get,
			path: "/admin/users", status: 200, want: []string{"pro@clinic.test"}, wantNot: []string{"There is nothing"}},
		{name: "networks: X-Forwarded-For is not trusted", restricted: true, as: asAdmin, method: get, path: "/admin/users",
			header: map[string]string{"X-Forwarded-For": "127.0.0.1", "X-Real-Ip": "127.0.0.1"}, status: 404, want: notFoundText},
		{name: "networks: anonymous from outside", restricted: true, as: asAnonymous, method: get, path: "/admin/users", status: 404, want: notFoundText},
		{name: "networks: admin POST from outside", restricted: true, as: asAdmin, method: post, path: "/admin/registration",
			form: vals("action", "save_filter", "pattern", "outside-net.test", "allow", "allow"), status: 404, want: notFoundText,
			noAudit: []auditWant{auditEv("user:{admin}", "registration_filter.save", "filter/outside-net.test")},
			check: func(e *authzEnv, _ *authzResult, r *authzReport) {
				if !strings.Contains(e.logs.String(), "admin console refused") {
					r.errorf("the refusal is not logged")
				}
			}},
		{name: "networks: auditor from outside", restricted: true, as: asAuditor, method: get, path: "/audit", status: 404, want: notFoundText,
			wantNot: []string{"sign_in"}},
		{name: "networks: auditor from loopback", restricted: true, as: asAuditor, remote: "127.0.0.1:1234", method: get, path: "/audit",
			status: 200, want: []string{"Verify the chain"}, wantNot: []string{"There is nothing"}},
		{name: "networks: the account page stays open", restricted: true, as: asAdmin, method: get, path: "/account", status: 200,
			want: []string{"admin@clinic.test"}, wantNot: []string{"There is nothing"}},

		// CSRF.
		{name: "csrf: cross-site POST", as: asProfessional, method: post, path: "/account", form: vals("action", "nonsense"),
			csrf: csrfCrossSite, status: 403, wantNot: []string{"Unknown action."}},
		{name: "csrf: a cross-site refusal speaks the appliance's words", as: asProfessional, method: post, path: "/account",
			form: vals("action", "nonsense"), csrf: csrfCrossSite, status: 403, want: []string{authzCSRFMessage}},
		{name: "csrf: cross-site sign-out does not sign out", as: asProfessional, fresh: true, method: post, path: "/signout",
			csrf: csrfCrossSite, status: 403, noAudit: []auditWant{auditEv("user:{professional}", "session.sign_out", "session/{session}")},
			check: func(e *authzEnv, res *authzResult, r *authzReport) {
				if !e.alive(res.token) {
					r.errorf("a cross-site POST signed the user out")
				}
				noSessionCookie(e, res, r)
			}},
		{name: "csrf: cross-site sign-in (login CSRF)", as: asAnonymous, method: post, path: "/signin", form: adminCreds,
			csrf: csrfCrossSite, status: 403, check: noSessionCookie},
		{name: "csrf: no fetch metadata, no token", as: asProfessional, method: post, path: "/account", form: vals("action", "nonsense"),
			csrf: csrfNoHeader, status: 403, want: []string{authzCSRFMessage}},
		{name: "csrf: same-site without the token", as: asProfessional, method: post, path: "/account", form: vals("action", "nonsense"),
			csrf: csrfSameSite, status: 403, want: []string{authzCSRFMessage}},
		{name: "csrf: a token that is not the cookie's", as: asProfessional, method: post, path: "/account", form: vals("action", "nonsense"),
			csrf: csrfWrongToken, status: 403, want: []string{authzCSRFMessage}},
		{name: "csrf: double-submit cookie and form token pass", as: asProfessional, method: post, path: "/account",
			form: vals("action", "nonsense"), csrf: csrfDoubleSubmit, status: 400, want: []string{"Unknown action."}},
		{name: "csrf: sign-in without the token", as: asAnonymous, method: post, path: "/signin", form: adminCreds,
			csrf: csrfNoHeader, status: 403, want: []string{authzCSRFMessage}, check: noSessionCookie},
		{name: "csrf: double-submit on an anonymous form", as: asAnonymous, method: post, path: "/forgot", form: vals("email", "nobody@clinic.test"),
			csrf: csrfDoubleSubmit, status: 200, want: []string{"If an account has this address"}, wantNot: []string{authzCSRFMessage}},
		{name: "csrf: a link from another site still opens the page", as: asProfessional, method: get, path: "/account", csrf: csrfCrossSite,
			status: 200, want: []string{"pro@clinic.test"}, wantNot: []string{authzCSRFMessage}},
		{name: "csrf: the unsubscribe form needs the token", as: asAnonymous, method: post, path: "/unsubscribe", form: vals("token", "{unsubPro}"),
			csrf: csrfNoHeader, status: 403, want: []string{authzCSRFMessage}},
		{name: "one-click unsubscribe from a mail program", as: asAnonymous, method: post, path: "/unsubscribe/one-click?token={unsubQuitter}",
			form: vals("List-Unsubscribe", "One-Click"), csrf: csrfCrossSite, status: 200,
			audit: []auditWant{auditEv("user:{quitter}", "user.unsubscribe", "user/{quitter}")},
			check: func(e *authzEnv, res *authzResult, r *authzReport) {
				if res.body != "" {
					r.errorf("one-click unsubscribe answered with a body: %q", res.body)
				}
				if u, err := e.svc.User(e.users["quitter"].ID); err != nil || u.Status != account.StatusDisabled || !u.Unsubscribed {
					r.errorf("after unsubscribing: %q unsubscribed=%v %v", u.Status, u.Unsubscribed, err)
				}
				if e.alive(e.tokens["quitter"]) {
					r.errorf("the unsubscribed guest's session still works")
				}
			}},
		{name: "one-click: staff cannot unsubscribe", as: asAnonymous, method: post, path: "/unsubscribe/one-click?token={unsubPro}",
			form: vals("List-Unsubscribe", "One-Click"), csrf: csrfNoHeader, status: 403, want: []string{"Staff accounts cannot unsubscribe"},
			noAudit: []auditWant{auditEv("user:{professional}", "user.unsubscribe", "user/{professional}")}},

		// Signing in.
		{name: "sign-in: a wrong password", as: asAnonymous, method: post, path: "/signin",
			form: vals("email", "pro@clinic.test", "password", "not the password at all"), status: 403,
			want: []string{"The email address or password is not right."}, wantNot: []string{"Hello"},
			audit: []auditWant{auditEv("user:{professional}", "sign_in.fail", "user/{professional}", "reason", "wrong_password", "remote_ip", authzIP)},
			check: noSessionCookie},
		{name: "sign-in: the right password", as: asAnonymous, method: post, path: "/signin", form: guestCreds, status: 303, location: "/account",
			audit: []auditWant{auditEv("user:{guest}", "sign_in.password", "session/*", "stage", "full")},
			check: func(e *authzEnv, res *authzResult, r *authzReport) {
				c := res.cookie(sessionCookie)
				if c == nil || c.Value == "" || !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Domain != "" {
					r.errorf("the session cookie is not a __Host- cookie: %v", c)
					return
				}
				if !e.alive(c.Value) {
					r.errorf("the new session does not work")
				}
			}},
		{name: "sign-in: signed in already, next page", as: asProfessional, method: get, path: "/signin?next=/account", status: 303, location: "/account"},
		{name: "sign-in: next to another host", as: asProfessional, method: get, path: "/signin?next=//evil.example", status: 303, location: "/"},
		{name: "sign-in: next to another scheme", as: asProfessional, method: get, path: "/signin?next=https://evil.example/", status: 303, location: "/"},
		{name: "sign-in: next with a backslash", as: asProfessional, method: get, path: "/signin?next=/%5Cevil.example", status: 303, location: "/"},
		{name: "sign-in: next with a tab", as: asProfessional, method: get, path: "/signin?next=/%09/evil.example", status: 303, location: "/"},
		{name: "sign-in: posted next with a tab", as: asAnonymous, method: post, path: "/signin",
			form: vals("email", "guest@outside.test", "password", authzPassword, "next", "/\t/evil.example"), status: 303, location: "/"},
		{name: "sign-in: a forged session cookie", cookie: "FORGEDSESSIONTOKEN", as: asAnonymous, method: get, path: "/account",
			status: 303, location: "/signin?next=%2Faccount",
			check: func(_ *authzEnv, res *authzResult, r *authzReport) {
				if c := res.cookie(sessionCookie); c == nil || c.MaxAge >= 0 {
					r.errorf("the forged cookie is not cleared: %v", c)
				}
			}},
		{name: "sign-out is POST only", as: asProfessional, method: get, path: "/signout", status: 405,
			check: func(e *authzEnv, _ *authzResult, r *authzReport) {
				if !e.alive(e.tokens[asProfessional]) {
					r.errorf("GET /signout ended the session")
				}
			}},

		// The account page: other users' objects, and one's own changes.
		{name: "account: end another user's session", as: asProfessional, method: post, path: "/account",
			form: vals("action", "end_session", "session", "{otherSession}"), status: 404, want: []string{"That session has ended already."},
			noAudit: []auditWant{auditEv("user:{professional}", "session.end", "session/{otherSession}")},
			check: func(e *authzEnv, _ *authzResult, r *authzReport) {
				if !e.alive(e.tokens["other"]) {
					r.errorf("a professional ended another user's session")
				}
			}},
		{name: "account: remove another user's alias", as: asProfessional, method: post, path: "/account",
			form: vals("action", "remove_alias", "address", "otto@clinic.test"), status: 404, want: []string{"is not one of the user"},
			noAudit: []auditWant{auditEv("user:{professional}", "alias.remove", "user/{professional}"), auditEv("user:{professional}", "alias.remove", "user/{other}")},
			check: func(e *authzEnv, _ *authzResult, r *authzReport) {
				if u, err := e.svc.UserByAddress("otto@clinic.test"); err != nil || u.ID != e.users["other"].ID {
					r.errorf("otto@clinic.test now belongs to %q (%v)", u.ID, err)
				}
			}},
		{name: "account: claim another user's alias", as: asProfessional, method: post, path: "/account",
			form: vals("action", "add_alias", "alias", "otto@clinic.test"), status: 422, want: []string{"This address belongs to a user already."},
			noAudit: []auditWant{auditEv("user:{professional}", "alias.add", "user/{professional}")}},
		{name: "account: a guest adds an alias", as: asGuest, method: post, path: "/account",
			form: vals("action", "add_alias", "alias", "gus@outside.test"), status: 403, want: []string{"Your group may not add addresses."},
			noAudit: []auditWant{auditEv("user:{guest}", "alias.add", "user/{guest}")}},
		{name: "account: an unknown action", as: asProfessional, method: post, path: "/account", form: vals("action", "nonsense"),
			status: 400, want: []string{"Unknown action."}},
		{name: "account: new passwords that differ", as: asProfessional, method: post, path: "/account",
			form:   vals("action", "change_password", "current", authzPassword, "password", authzPassword+" one", "confirm", authzPassword+" two"),
			status: 422, want: []string{"The two passwords are not the same."},
			noAudit: []auditWant{auditEv("user:{professional}", "password.change", "session/*")}},
		{name: "account: sign out everywhere", as: "leaver", fresh: true, method: post, path: "/account",
			form: vals("action", "sign_out_everywhere"), status: 303, location: withDone("/signin", "You have signed out on every device."),
			audit: []auditWant{auditEv("user:{leaver}", "session.sign_out_everywhere", "user/{leaver}")},
			check: func(e *authzEnv, res *authzResult, r *authzReport) {
				if e.alive(res.token) || e.alive(e.tokens["leaver"]) {
					r.errorf("a session survived signing out everywhere")
				}
			}},
		{name: "account: change the password", as: "changer", fresh: true, method: post, path: "/account",
			form:   vals("action", "change_password", "current", authzPassword, "password", "a different private passphrase", "confirm", "a different private passphrase"),
			status: 303, location: withDone("/account", "Your password is changed. Your other sessions have ended."),
			audit: []auditWant{auditEv("user:{changer}", "password.change", "session/{session}")},
			check: func(e *authzEnv, res *authzResult, r *authzReport) {
				if !e.alive(res.token) {
					r.errorf("the session that changed the password ended")
				}
				if e.alive(e.tokens["changer"]) {
					r.errorf("another session survived the password change")
				}
			}},

		// Links from mail.
		{name: "mail: forgot, for a known address", as: asAnonymous, method: post, path: "/forgot", form: vals("email", "leaver@clinic.test"),
			status: 200, want: []string{"If an account has this address, a link"}, wantNot: []string{"leaver@clinic.test"},
			audit: []auditWant{auditEv("user:{leaver}", "password.reset_request", "user/{leaver}", "remote_ip", authzIP)}},
		{name: "mail: reset without a token", as: asAnonymous, method: get, path: "/reset", status: 404,
			want: []string{"This password reset link is not valid any more"}},
		{name: "mail: reset with a bogus token", as: asAnonymous, method: post, path: "/reset",
			form: vals("token", "bogus", "password", "a different private passphrase", "confirm", "a different private passphrase"), status: 404},
		{name: "mail: complete a reset", as: asAnonymous, method: post, path: "/reset",
			form:   vals("token", "{resetDone}", "password", "a different private passphrase", "confirm", "a different private passphrase"),
			status: 303, location: withDone("/signin", "Your password is changed. Sign in with it now."),
			audit: []auditWant{auditEv("user:{resetter}", "password.reset", "user/{resetter}")},
			check: func(e *authzEnv, _ *authzResult, r *authzReport) {
				if e.alive(e.tokens["resetter"]) {
					r.errorf("a session survived the password reset")
				}
			}},
		{name: "mail: register without an invitation", as: asAnonymous, method: get, path: "/register", status: 200,
			want: []string{"we send you a link to create your account"}, wantNot: []string{"Create your account</h1>"}},
		{name: "mail: register with a bogus invitation", as: asAnonymous, method: get, path: "/register?token=bogus", status: 404,
			want: []string{"This invitation link is not valid any more"}},
		{name: "mail: complete a registration", as: asAnonymous, method: post, path: "/register",
			form:   vals("token", "{invNewcomer}", "name", "Nico Newcomer", "password", authzPassword, "confirm", authzPassword),
			status: 303, location: withDone("/", "Welcome! Your account is ready."),
			audit: []auditWant{auditEv("user:{newcomer}", "registration.complete", "user/{newcomer}", "level", "1")},
			check: func(e *authzEnv, res *authzResult, r *authzReport) {
				if c := res.cookie(sessionCookie); c == nil || !e.alive(c.Value) {
					r.errorf("registering did not sign in: %v", c)
				}
			}},
		{name: "mail: following an alias link confirms nothing", as: asAnonymous, method: get, path: "/alias/confirm?token={aliasScan}",
			status: 200, want: []string{"Confirm this address", `value="{aliasScan}"`}, wantNot: []string{"is now one of your addresses"},
			check: func(e *authzEnv, _ *authzResult, r *authzReport) {
				if _, err := e.svc.UserByAddress("otto.scan@clinic.test"); err == nil {
					r.errorf("following the link confirmed the alias")
				}
			}},
		{name: "mail: confirm an alias", as: asAnonymous, method: post, path: "/alias/confirm", form: vals("token", "{aliasNew}"), status: 200,
			want: []string{"otto.new@clinic.test is now one of your addresses"}, wantNot: []string{"There is nothing"},
			audit: []auditWant{auditEv("user:{other}", "alias.confirm", "user/{other}")},
			check: func(e *authzEnv, _ *authzResult, r *authzReport) {
				if u, err := e.svc.UserByAddress("otto.new@clinic.test"); err != nil || u.ID != e.users["other"].ID {
					r.errorf("otto.new@clinic.test belongs to %q (%v)", u.ID, err)
				}
			}},

		// The CSP forbids inline styles; the pages should not carry any.
		{name: "csp: no inline style on the account page", as: asProfessional, method: get, path: "/account", status: 200,
			want: []string{"pro@clinic.test"}, wantNot: []string{` style="`}},
		{name: "csp: no inline style on a user's page", as: asAdmin, method: get, path: "/admin/users/{professional}", status: 200,
			want: []string{"pro@clinic.test"}, wantNot: []string{` style="`}},
		{name: "csp: no inline style on the code page", as: asSecondFactor, method: get, path: "/signin/code", status: 200,
			want: []string{"Enter your code"}, wantNot: []string{` style="`}},
	}, mailSpecialRows()...)
}

// TestAuthorizationMatrix sends every route of routes.go as every kind of
// session (anonymous, guest, professional, auditor, administrator, and the
// two half sign-ins), then the scenarios around them: other users'
// objects, unknown objects, admin networks, CSRF, sign-in and the audit
// events of state changes. Every response must carry the security headers.
func TestAuthorizationMatrix(t *testing.T) {
	t.Parallel()
	e := newAuthzEnv(t)
	routes := matrixRoutes()
	rows := append(matrixRows(t, routes), specialRows()...)

	// The matrix must name every route the server has.
	covered := map[string]bool{}
	for _, rt := range routes {
		p, _, _ := strings.Cut(placeholders(e.vars).Replace(rt.path), "?")
		c := e.srv.echo.NewContext(nil, nil)
		e.srv.echo.Router().Find(rt.method, p, c)
		covered[rt.method+" "+c.Path()] = true
	}
	served := 0
	for _, r := range e.srv.echo.Routes() {
		if r.Method != http.MethodGet && r.Method != http.MethodPost {
			continue
		}
		served++
		if !covered[r.Method+" "+r.Path] {
			t.Errorf("route %s %s is not in the authorization matrix", r.Method, r.Path)
		}
	}
	t.Logf("%d rows: %d routes × %d sessions, and %d scenarios; the server has %d GET and POST routes",
		len(rows), len(routes), len(matrixSessions), len(rows)-len(routes)*len(matrixSessions), served)

	t.Run("rows", func(t *testing.T) {
		for _, tc := range rows {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				e.run(t, tc)
			})
		}
	})

	t.Run("a promotion to administrator asks for the second factor", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		a := newAuthzAccounts(t, "registration.level", "1") // security.admin_requires_totp stays on
		in := a.register(t, "promoted@clinic.test", "Pam Promoted", account.RoleProfessional, "")
		if in.Session.Stage != account.StageFull {
			t.Fatalf("a professional signed in at stage %q", in.Session.Stage)
		}
		roles := []account.Role{account.RoleAdmin, account.RoleProfessional}
		if _, err := a.svc.ChangeUser(ctx, a.adminUser.ID, in.User.ID, account.UserChange{Roles: roles}); err != nil {
			t.Fatal(err)
		}
		if again, err := a.svc.SignIn(ctx, "promoted@clinic.test", authzPassword, authzIP, "authz-test"); err != nil || again.Session.Stage != account.StageEnrol {
			t.Fatalf("a new sign-in as administrator: %v, stage %q, want %q", err, again.Session.Stage, account.StageEnrol)
		}
		srv := a.server(t, &lockedBuffer{})
		req := httptest.NewRequest(http.MethodGet, authzBase+"/admin/users", nil)
		req.RemoteAddr = authzRemote
		req.AddCookie(&http.Cookie{Name: sessionCookie, Value: in.Token})
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, req)
		r := &authzReport{}
		if loc := rec.Header().Get("Location"); rec.Code != http.StatusSeeOther || !strings.HasPrefix(loc, "/signin") {
			r.errorf("the session from before the promotion: GET /admin/users = %d %q, want 303 to /signin/enrol (or to sign in again)", rec.Code, loc)
		}
		finishRow(t, "", r.problems)
	})

	for _, s := range []*Server{e.srv, e.restricted} {
		if n := testutil.ToFloat64(s.metrics.panics); n != 0 {
			t.Errorf("%v request handlers panicked", n)
		}
	}
	logs := e.logs.String()
	if strings.Contains(logs, "request handler panicked") || strings.Contains(logs, `"status":500`) {
		t.Errorf("the log shows a panic or a 500")
	}
	for _, secret := range e.secrets {
		if strings.Contains(logs, secret) {
			t.Errorf("the log holds a secret beginning %q", secret[:4])
		}
	}
	if strings.Contains(logs, "pro@clinic.test") {
		t.Error("the log holds a user's address")
	}
}
