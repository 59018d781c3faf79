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
	"strings"
	"sync"
	"testing"
	"time"

	ptotp "github.com/pquerna/otp/totp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/sealpost/sealpost/appliance/account"
	"github.com/sealpost/sealpost/appliance/audit"
	"github.com/sealpost/sealpost/appliance/settings"
	"github.com/sealpost/sealpost/appliance/store"
	"github.com/sealpost/sealpost/appliance/store/storetest"
)

// The sessions of the authorization matrix: nobody, the four roles, and the
// two half sign-ins (password accepted, second factor still to enrol or to
// enter).
const (
	anonymous    = "anonymous"
	guest        = "guest"
	professional = "professional"
	auditor      = "auditor"
	admin        = "admin"
	enrolling    = "enrolling"     // an administrator whose group needs a second factor not yet set up
	secondFactor = "second_factor" // a professional whose sign-in waits for the code
)

var matrixSessions = []string{anonymous, guest, professional, auditor, admin, enrolling, secondFactor}

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
// can follow the links in them as a person would.
type noticeBox struct {
	mu      sync.Mutex
	notices []account.Notice
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

// accounts is an account service over a real, encrypted store.
type accounts struct {
	st    *store.Store
	trail *audit.Trail
	svc   *account.Service
	mail  *noticeBox
	admin account.User
}

func newAccounts(t *testing.T, kv ...string) *accounts {
	t.Helper()
	ctx := context.Background()
	st, keys := storetest.Open(t, t.TempDir())
	now := func() time.Time { return authzNow }
	a := &accounts{st: st, trail: audit.New(keys, now), mail: &noticeBox{}}
	var err error
	a.svc, err = account.New(ctx, account.Options{Store: st, Audit: a.trail, Notifier: a.mail, Logger: zerolog.Nop(),
		Now: now, BaseURL: func() string { return authzBase }})
	if err != nil {
		t.Fatal(err)
	}
	var changes []settings.Change
	for i := 0; i+1 < len(kv); i += 2 {
		changes = append(changes, settings.Change{Key: kv[i], Value: kv[i+1]})
	}
	if err := settings.Set(ctx, st, a.trail, "test", changes...); err != nil {
		t.Fatal(err)
	}
	err = st.Update(ctx, func(tx *store.Tx) error {
		a.admin, err = a.svc.CreateAdmin(ctx, tx, "admin@clinic.test", "Ada Admin", authzAdminPassword)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	a.svc.Committed(a.admin)
	return a
}

// register invites someone as the administrator would and registers them
// (level 1) as they would from the link.
func (a *accounts) register(t *testing.T, email, name string, role account.Role, group string) account.SignInResult {
	t.Helper()
	ctx := context.Background()
	if _, err := a.svc.Invite(ctx, a.admin.ID, account.Invite{Email: email, Name: name, Role: role, Group: group}); err != nil {
		t.Fatalf("invite %s: %v", email, err)
	}
	reg, err := a.svc.Register(ctx, a.mail.token(t, "invitation", email), account.Registration{Name: name, Password: authzPassword}, authzIP, "authz-test")
	if err != nil || reg.CodeSent || reg.SignIn.Token == "" {
		t.Fatalf("register %s: %+v %v", email, reg, err)
	}
	return reg.SignIn
}

func (a *accounts) server(t *testing.T, logs *lockedBuffer, networks ...netip.Prefix) *Server {
	t.Helper()
	s, err := New(Options{
		Logger:   zerolog.New(logs),
		Version:  "test",
		Setup:    &tokenGate{token: "SETUPTOKEN", pending: false},
		Ready:    func() error { return nil },
		HSTS:     func() bool { return true },
		Registry: prometheus.NewRegistry(),
		Accounts: a.svc,
		ReadSettings: func() (settings.Settings, error) {
			return settings.Read(a.st)
		},
		SaveSettings: func(ctx context.Context, actor string, changes ...settings.Change) error {
			return settings.Set(ctx, a.st, a.trail, actor, changes...)
		},
		AdminNetworks: networks,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (a *accounts) events(r *report) []audit.Event {
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
	*accounts
	srv        *Server
	restricted *Server
	logs       *lockedBuffer
	users      map[string]account.User // by fixture name
	tokens     map[string]string       // each user's session token
	sessions   map[string]string       // each user's session id
	vars       map[string]string       // placeholders of the table
	secrets    []string                // must never reach the log
}

func newAuthzEnv(t *testing.T) *authzEnv {
	t.Helper()
	ctx := context.Background()
	a := newAccounts(t, "security.admin_requires_totp", "false", "registration.level", "1")
	e := &authzEnv{accounts: a, logs: &lockedBuffer{}, users: map[string]account.User{admin: a.admin},
		tokens: map[string]string{}, sessions: map[string]string{}, vars: map[string]string{}}
	keep := func(name string, res account.SignInResult) {
		e.users[name], e.tokens[name], e.sessions[name] = res.User, res.Token, res.Session.ID
	}
	adminRes, err := a.svc.SignIn(ctx, "admin@clinic.test", authzAdminPassword, authzIP, "authz-test")
	if err != nil || adminRes.Session.Stage != account.StageFull {
		t.Fatalf("admin sign-in: %v, stage %q", err, adminRes.Session.Stage)
	}
	keep(admin, adminRes)

	strict, err := a.svc.SaveGroup(ctx, account.ActorOf(a.admin.ID), account.Group{Name: "Strict", QuotaPeriodDays: 30,
		AttachmentLimitMB: 100, RequireTOTP: true})
	if err != nil {
		t.Fatal(err)
	}
	people := []struct {
		name, email, display string
		role                 account.Role
		group                string
	}{
		{guest, "guest@outside.test", "Gus Guest", account.RoleGuest, ""},
		{professional, "pro@clinic.test", "Pat Pro", account.RoleProfessional, ""},
		{auditor, "auditor@clinic.test", "Audrey Auditor", account.RoleProfessional, ""},
		{enrolling, "half@clinic.test", "Hal Half", account.RoleProfessional, strict.ID},
		{secondFactor, "tf@clinic.test", "Tess Factor", account.RoleProfessional, ""},
		{"other", "other@clinic.test", "Otto Other", account.RoleProfessional, ""},
		{"target", "target@clinic.test", "Tara Target", account.RoleProfessional, ""},
		{"leaver", "leaver@clinic.test", "Lee Leaver", account.RoleProfessional, ""},
		{"changer", "changer@clinic.test", "Cole Changer", account.RoleProfessional, ""},
		{"resetter", "resetter@clinic.test", "Rhea Resetter", account.RoleProfessional, ""},
		{"quitter", "quitter@outside.test", "Quinn Quitter", account.RoleGuest, ""},
	}
	for _, p := range people {
		keep(p.name, a.register(t, p.email, p.display, p.role, p.group))
	}
	if got := e.sessionStage(t, enrolling); got != account.StageEnrol {
		t.Fatalf("the Strict group's member signed in at stage %q, want %q", got, account.StageEnrol)
	}

	// Roles the invitation cannot give: an auditor, and an administrator
	// (in the Strict group) who has not set up a second factor yet.
	change := func(name string, roles ...account.Role) {
		u, err := a.svc.ChangeUser(ctx, a.admin.ID, e.users[name].ID, account.UserChange{Roles: roles})
		if err != nil {
			t.Fatalf("roles of %s: %v", name, err)
		}
		e.users[name] = u
	}
	change(auditor, account.RoleAuditor)
	change(enrolling, account.RoleAdmin, account.RoleProfessional)

	// A second factor for tf@, whose next sign-in waits for a code.
	enr, err := a.svc.StartTOTP(ctx, e.users[secondFactor].ID, "Sealpost")
	if err != nil {
		t.Fatal(err)
	}
	var code string
	fips140.WithoutEnforcement(func() { code, err = ptotp.GenerateCode(enr.Secret, authzNow) }) // HMAC-SHA-1, as the apps do
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.svc.ConfirmTOTP(ctx, e.tokens[secondFactor], code, authzIP); err != nil {
		t.Fatal(err)
	}
	half, err := a.svc.SignIn(ctx, "tf@clinic.test", authzPassword, authzIP, "authz-test")
	if err != nil || half.Session.Stage != account.StageSecondFactor {
		t.Fatalf("tf@ sign-in: %v, stage %q", err, half.Session.Stage)
	}
	keep(secondFactor, half)

	// Another user's objects: a confirmed alias, a pending one, a session.
	other := e.users["other"].ID
	if err := a.svc.AddAlias(ctx, other, other, "otto@clinic.test"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.svc.ConfirmAlias(ctx, a.mail.token(t, "alias_confirm", "otto@clinic.test")); err != nil {
		t.Fatal(err)
	}
	if err := a.svc.AddAlias(ctx, other, other, "otto.new@clinic.test"); err != nil {
		t.Fatal(err)
	}

	// Links from mail: resets, invitations, unsubscribes.
	for _, email := range []string{"pro@clinic.test", "resetter@clinic.test"} {
		if err := a.svc.StartPasswordReset(ctx, email, authzIP); err != nil {
			t.Fatal(err)
		}
	}
	for _, email := range []string{"pending@outside.test", "newcomer@outside.test", "resend@outside.test"} {
		res, err := a.svc.Invite(ctx, a.admin.ID, account.Invite{Email: email, Role: account.RoleGuest})
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
		unsubPro, err = a.svc.UnsubscribeLink(tx, e.users[professional].ID)
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
	if name == admin {
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
	sameOrigin   csrfMode = iota // a browser on the appliance's own page: Sec-Fetch-Site: same-origin
	crossSite                    // a browser on another site's page
	sameSite                     // a browser on a sibling site, without the form token
	noHeader                     // a client without fetch metadata and without the token
	doubleSubmit                 // no fetch metadata; the cookie and form token a page handed out
	wrongToken                   // no fetch metadata; a cookie and a different form token
)

// auditWant is an audit event a row must (or must not) leave. Object "x*"
// matches any object that begins with x; detail must be a subset.
type auditWant struct {
	actor, action, object string
	detail                map[string]string
}

func ev(actor, action, object string, kv ...string) auditWant {
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

// report collects a row's problems, so that a row marked as a known bug
// can be reported as such.
type report struct{ problems []string }

func (r *report) errorf(format string, args ...any) {
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
}

// finish fails the test with the problems, or, for a row marked as a known
// bug, skips it saying why (and fails once the bug is gone, so that the mark
// is removed).
func finish(t *testing.T, bug string, problems []string) {
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
	check      func(e *authzEnv, res *result, r *report)
	bug        string // a known bug this row shows; see finish
}

// result is what a row's request got.
type result struct {
	rec   *httptest.ResponseRecorder
	body  string
	token string // the session cookie sent
	rep   *strings.Replacer
}

func (res *result) cookie(name string) *http.Cookie {
	for _, c := range res.rec.Result().Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]*)"`)

// csrfPair gets the double-submit token as a browser without fetch
// metadata would: from the cookie and the form of a page.
func (e *authzEnv) csrfPair(srv *Server, r *report) string {
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
	if m := csrfField.FindStringSubmatch(rec.Body.String()); m == nil || m[1] != ck.Value {
		r.errorf("the sign-in form's csrf field %v is not the cookie's token", m)
	}
	return ck.Value
}

func (e *authzEnv) run(t *testing.T, tc authzCase) {
	t.Helper()
	r := &report{}
	if res := e.serve(tc, r); res != nil {
		e.verify(tc, res, r)
	}
	finish(t, tc.bug, r.problems)
}

func (e *authzEnv) serve(tc authzCase, r *report) *result {
	vars := maps.Clone(e.vars)
	vars["{role}"] = tc.as
	res := &result{token: tc.cookie}
	if tc.as != anonymous {
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
	rep := replacer(vars)
	path := rep.Replace(tc.path)
	vars["{next}"] = url.QueryEscape(path)
	res.rep = replacer(vars)

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
	case doubleSubmit:
		if csrfToken = e.csrfPair(srv, r); csrfToken == "" {
			return nil
		}
		form.Set("csrf", csrfToken)
	case wrongToken:
		csrfToken = strings.Repeat("A", 32)
		form.Set("csrf", strings.Repeat("B", 32))
	}
	var req *http.Request
	if tc.method == http.MethodPost {
		req = httptest.NewRequest(tc.method, authzBase+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		req = httptest.NewRequest(tc.method, authzBase+path, nil)
	}
	req.RemoteAddr = authzRemote
	if tc.remote != "" {
		req.RemoteAddr = tc.remote
	}
	req.Header.Set("User-Agent", "authz-test")
	switch tc.csrf {
	case sameOrigin:
		req.Header.Set("Sec-Fetch-Site", "same-origin")
	case crossSite:
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		req.Header.Set("Origin", "https://evil.example")
	case sameSite:
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
	srv.Handler().ServeHTTP(res.rec, req)
	res.body = res.rec.Body.String()
	return res
}

func replacer(vars map[string]string) *strings.Replacer {
	var pairs []string
	for k, v := range vars {
		pairs = append(pairs, k, v)
	}
	return strings.NewReplacer(pairs...)
}

var (
	inlineScript  = regexp.MustCompile(`<script\b[^>]*>`)
	inlineHandler = regexp.MustCompile(`<[^>]*\son(?:click|load|error|submit|change|input|focus|blur|mouseover)\s*=`)
)

func (e *authzEnv) verify(tc authzCase, res *result, r *report) {
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
	if tc.status == http.StatusOK && (len(tc.want) == 0 || len(tc.wantNot) == 0) {
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

	// What every response must carry, whoever asks.
	h := rec.Header()
	if got := h.Get("Content-Security-Policy"); got != contentSecurityPolicy || strings.Contains(got, "unsafe-inline") || !strings.Contains(got, "script-src 'self'") {
		r.errorf("Content-Security-Policy = %q", got)
	}
	for k, v := range map[string]string{"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY",
		"Strict-Transport-Security": "max-age=31536000; includeSubDomains"} {
		if h.Get(k) != v {
			r.errorf("%s = %q, want %q", k, h.Get(k), v)
		}
	}
	cache := "no-store"
	if strings.HasPrefix(tc.path, "/static/") {
		cache = "public, max-age=3600"
	}
	if h.Get("Cache-Control") != cache {
		r.errorf("Cache-Control = %q, want %q", h.Get("Cache-Control"), cache)
	}
	if h.Get(echoRequestID) == "" {
		r.errorf("no request id")
	}
	if strings.Contains(body, "$argon2id$") {
		r.errorf("the body shows a password hash")
	}
	if res.token != "" && strings.Contains(body, res.token) {
		r.errorf("the body shows the session token")
	}
	if html {
		for _, tag := range inlineScript.FindAllString(body, -1) {
			if !strings.Contains(tag, " src=") {
				r.errorf("inline script, which the CSP blocks: %s", tag)
			}
		}
		if m := inlineHandler.FindString(body); m != "" {
			r.errorf("inline event handler, which the CSP blocks: %s", m)
		}
	}

	if len(tc.audit)+len(tc.noAudit) > 0 {
		evs := e.events(r)
		for _, w := range tc.audit {
			w = w.resolve(rep)
			if !containsFunc(evs, w.matches) {
				r.errorf("no audit event %s", w)
			}
		}
		for _, w := range tc.noAudit {
			w = w.resolve(rep)
			if containsFunc(evs, w.matches) {
				r.errorf("unexpected audit event %s", w)
			}
		}
	}
	if tc.check != nil {
		tc.check(e, res, r)
	}
}

const echoRequestID = "X-Request-Id"

func containsFunc[T any](s []T, f func(T) bool) bool {
	for _, v := range s {
		if f(v) {
			return true
		}
	}
	return false
}

// outcome is what one session gets from one route in the matrix.
type outcome struct {
	status   int
	location string
	want     []string
	wantNot  []string
	audit    []auditWant
	noAudit  []auditWant
	remote   string
	check    func(e *authzEnv, res *result, r *report)
}

func see(location string) outcome { return outcome{status: http.StatusSeeOther, location: location} }

func page(want []string, wantNot ...string) outcome {
	return outcome{status: http.StatusOK, want: want, wantNot: wantNot}
}

func fails(status int, want ...string) outcome { return outcome{status: status, want: want} }

var notFound = fails(http.StatusNotFound, "There is nothing at this address.")

func (o outcome) and(f func(e *authzEnv, res *result, r *report)) outcome {
	o.check = f
	return o
}

func (o outcome) leaves(w ...auditWant) outcome {
	o.audit = append(o.audit, w...)
	return o
}

func (o outcome) leavesNo(w ...auditWant) outcome {
	o.noAudit = append(o.noAudit, w...)
	return o
}

func (o outcome) from(remote string) outcome {
	o.remote = remote
	return o
}

// route is one route of routes.go with what each session gets from it;
// "*" is every session not named.
type route struct {
	method, path string
	form         url.Values
	csrf         csrfMode
	fresh        bool // the request ends the session: use a new one
	by           map[string]outcome
}

// console is a route of the admin console: only a fully signed-in
// administrator reaches it; for everyone else it does not exist, or asks to
// sign in (again, or further). effect is the audit event an administrator's
// request leaves, which nobody else's may.
func console(method, path string, form url.Values, forAdmin outcome, effect *auditWant) route {
	denied := notFound
	signIn := see("/signin?next={next}")
	if method == http.MethodPost {
		signIn = fails(http.StatusUnauthorized, "Your session has ended. Sign in again.")
	}
	by := map[string]outcome{anonymous: signIn, guest: denied, professional: denied, auditor: denied,
		enrolling: see("/signin/enrol"), secondFactor: see("/signin/code"), admin: forAdmin}
	if effect != nil {
		for s, o := range by {
			if s == admin {
				by[s] = o.leaves(*effect)
				continue
			}
			no := *effect
			no.actor = "user:{as}"
			by[s] = o.leavesNo(no)
		}
	}
	return route{method: method, path: path, form: form, by: by}
}

func form(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v
}

// matrixRoutes is every route of routes.go, in its order.
func matrixRoutes() []route {
	fullOnly := func(full, half outcome) map[string]outcome {
		return map[string]outcome{guest: full, professional: full, auditor: full, admin: full, enrolling: half, secondFactor: half, anonymous: half}
	}
	signedOut := see("/signin?done=You+have+signed+out+on+this+device.")
	notPromoted := fails(http.StatusNotFound, "is not one of the user").
		leavesNo(ev("user:{as}", "alias.promote", "user/{as}"), ev("user:{as}", "alias.promote", "user/{other}")).
		and(func(e *authzEnv, _ *result, r *report) {
			if u, err := e.svc.User(e.users["other"].ID); err != nil || u.Email != "other@clinic.test" {
				r.errorf("the other user's main address is now %q (%v)", u.Email, err)
			}
		})
	targetForm := form("action", "save", "group", "professional", "status", "disabled", "blacklist_mode", "secure", "default_secure", "rule")
	userChange := ev("user:{admin}", "user.change", "user/{target}", "status", "disabled")
	invite := ev("user:{admin}", "user.invite", "user/*", "role", "guest")
	groupCreate := ev("user:{admin}", "group.create", "group/*", "name", "Locums-{role}")
	filterSave := ev("user:{admin}", "registration_filter.save", "filter/partner-{role}.test")
	invited := func(e *authzEnv, _ *result, r *report) {}

	return []route{
		{method: "GET", path: "/healthz", by: map[string]outcome{"*": page([]string{`"ok"`}, `"error"`)}},
		{method: "GET", path: "/readyz", by: map[string]outcome{"*": page([]string{`"ready"`}, "unavailable")}},
		{method: "GET", path: "/static/css/sealpost.css", by: map[string]outcome{"*": page([]string{"--brand"}, "<html")}},
		{method: "GET", path: "/setup?token=SETUPTOKEN", by: map[string]outcome{"*": notFound}},

		{method: "GET", path: "/", by: map[string]outcome{
			anonymous:    see("/signin"),
			guest:        page([]string{"Hello, Gus Guest"}, `href="/admin/users"`),
			professional: page([]string{"Hello, Pat Pro"}, `href="/admin/users"`),
			auditor:      page([]string{"Hello, Audrey Auditor"}, `href="/admin/users"`),
			admin:        page([]string{"Hello, Ada Admin", `href="/admin/users"`}, "Sign in to read"),
			enrolling:    see("/signin"),
			secondFactor: see("/signin"),
		}},
		{method: "GET", path: "/signin", by: fullOnly(see("/"),
			page([]string{"Sign in to read and send secure messages.", `name="password"`}, "Sign out"))},
		{method: "POST", path: "/signin", form: form("email", "nobody-{role}@clinic.test", "password", "not the password", "next", "/account"),
			by: func() map[string]outcome {
				by := map[string]outcome{}
				for i, s := range matrixSessions {
					ip := fmt.Sprintf("10.0.7.%d", i+1)
					by[s] = fails(http.StatusForbidden, "The email address or password is not right.").from(ip+":1234").
						leaves(ev("anonymous", "sign_in.fail", "user/unknown", "reason", "unknown_address", "remote_ip", ip))
				}
				return by
			}()},
		{method: "GET", path: "/signin/code", by: map[string]outcome{
			"*":          see("/signin"),
			secondFactor: page([]string{"Enter your code"}, `name="password"`, "Sign out</button></form>\n</nav>"),
		}},
		{method: "POST", path: "/signin/code", form: form("code", "not-a-code", "next", "/account"), by: map[string]outcome{
			"*": see("/signin"),
			secondFactor: fails(http.StatusUnprocessableEntity, "That code is not right.").
				leaves(ev("user:{second_factor}", "sign_in.second_factor_fail", "session/{session}")),
		}},
		{method: "GET", path: "/signin/enrol", by: map[string]outcome{
			anonymous: see("/signin"), secondFactor: see("/signin"),
			"*":       page([]string{"Protect your account with an authenticator app", `id="secret"`}, "Your account needs a second factor"),
			enrolling: page([]string{"Your account needs a second factor.", `id="secret"`}, "Protect your account"),
		}},
		{method: "POST", path: "/signin/enrol", form: form("code", "not-a-code"), by: map[string]outcome{
			anonymous: see("/signin"), secondFactor: see("/signin"),
			"*": fails(http.StatusUnprocessableEntity, "Set up a second factor").
				leavesNo(ev("user:{as}", "user.totp_enable", "user/{as}")),
		}},
		{method: "POST", path: "/signout", fresh: true, by: map[string]outcome{
			anonymous: signedOut,
			"*": signedOut.leaves(ev("user:{as}", "session.sign_out", "session/{session}")).
				and(func(e *authzEnv, res *result, r *report) {
					if e.alive(res.token) {
						r.errorf("the session still works after signing out")
					}
					if c := res.cookie(sessionCookie); c == nil || c.MaxAge >= 0 || c.Value != "" {
						r.errorf("the session cookie is not cleared: %v", c)
					}
				}),
		}},
		{method: "GET", path: "/forgot", by: map[string]outcome{
			"*": page([]string{"Enter your email address, and we will send you a link"}, "is on its way"),
		}},
		{method: "POST", path: "/forgot", form: form("email", "nobody-{role}@clinic.test"), by: map[string]outcome{
			"*": page([]string{"If an account has this address, a link"}, "Enter your email address, and"),
		}},
		{method: "GET", path: "/reset?token={resetPro}", by: map[string]outcome{
			"*": page([]string{"For pro@clinic.test.", `name="confirm"`}, "There is nothing"),
		}},
		{method: "POST", path: "/reset", form: form("token", "{resetPro}", "password", authzPassword+" one", "confirm", authzPassword+" two"),
			by: map[string]outcome{"*": fails(http.StatusUnprocessableEntity, "The two passwords are not the same.").
				leavesNo(ev("user:{professional}", "password.reset", "user/{professional}"))}},
		{method: "GET", path: "/register?token={invPending}", by: map[string]outcome{
			"*": page([]string{"Your account is <strong>pending@outside.test</strong>", "Ada Admin invited you"}, "Check your email"),
		}},
		{method: "POST", path: "/register", form: form("token", "{invPending}", "name", "Penny", "password", authzPassword+" one", "confirm", authzPassword+" two"),
			by: map[string]outcome{"*": fails(http.StatusUnprocessableEntity, "The two passwords are not the same.").
				leavesNo(ev("user:{pending}", "registration.complete", "user/{pending}"))}},
		{method: "POST", path: "/register/self", form: form("email", "self-{role}@outside.test"), by: map[string]outcome{
			"*": fails(http.StatusForbidden, "Registration is by invitation only.").
				and(func(e *authzEnv, res *result, r *report) {
					if _, err := e.svc.UserByAddress(res.rep.Replace("self-{role}@outside.test")); err == nil {
						r.errorf("self-registration made a user although it is by invitation only")
					}
				}),
		}},
		{method: "GET", path: "/alias/confirm?token=bogus-{role}", by: map[string]outcome{"*": notFound}},
		{method: "GET", path: "/unsubscribe?token=link-{role}", by: map[string]outcome{
			"*": page([]string{"Stop notifications", `value="link-{role}"`}, "You are unsubscribed"),
		}},
		{method: "POST", path: "/unsubscribe", form: form("token", "bogus-{role}"), by: map[string]outcome{"*": notFound}},
		// Mail programs post this one (RFC 8058) without any CSRF token: the
		// 404 shows the request got past the CSRF check to the link check.
		{method: "POST", path: "/unsubscribe/one-click?token=bogus-{role}", form: form("List-Unsubscribe", "One-Click"), csrf: noHeader,
			by: map[string]outcome{"*": notFound}},

		{method: "GET", path: "/account", by: map[string]outcome{
			anonymous:    see("/signin?next=%2Faccount"),
			guest:        page([]string{"guest@outside.test", "Where you are signed in"}, "Add an address", "pro@clinic.test", "Admin console"),
			professional: page([]string{"pro@clinic.test", "Add an address"}, "other@clinic.test", "otto@clinic.test", "Admin console"),
			auditor:      page([]string{"auditor@clinic.test", "Where you are signed in"}, "Admin console", "pro@clinic.test"),
			admin:        page([]string{"admin@clinic.test", "Admin console"}, "pro@clinic.test"),
			enrolling:    see("/signin/enrol"),
			secondFactor: see("/signin/code"),
		}},
		// Another user's object: every signed-in user acts on their own
		// account only, so another user's alias is not theirs to promote.
		{method: "POST", path: "/account", form: form("action", "promote_alias", "address", "otto@clinic.test"), by: map[string]outcome{
			anonymous:    fails(http.StatusUnauthorized, "Your session has ended. Sign in again."),
			guest:        notPromoted,
			professional: notPromoted,
			auditor:      notPromoted,
			admin:        notPromoted,
			enrolling:    see("/signin/enrol"),
			secondFactor: see("/signin/code"),
		}},

		console("GET", "/admin", nil, see("/admin/users"), nil),
		console("GET", "/admin/users", nil, page([]string{"pro@clinic.test", "guest@outside.test", "Invite someone"}, "No users match"), nil),
		console("GET", "/admin/users/{professional}", nil, page([]string{"Pat Pro", "pro@clinic.test", "Send password reset"}, "There is nothing"), nil),
		console("POST", "/admin/users/{target}", targetForm, see("/admin/users/{target}?done=Saved.").
			and(func(e *authzEnv, _ *result, r *report) {
				if u, err := e.svc.User(e.users["target"].ID); err != nil || u.Status != account.StatusDisabled {
					r.errorf("the target is %q (%v), want disabled", u.Status, err)
				}
				if e.alive(e.tokens["target"]) {
					r.errorf("the disabled user's session still works")
				}
			}), &userChange),
		console("GET", "/admin/invite", nil, page([]string{"Invite someone", `name="passcode"`}, "There is nothing"), nil),
		console("POST", "/admin/invite", form("email", "invited-{role}@outside.test", "name", "", "role", "guest", "group", ""),
			see("/admin/users/u*"), &invite),
		console("GET", "/admin/groups", nil, page([]string{"Staff of the organization.", "Invited outside recipients.", "Strict"}, "There is nothing"), nil),
		console("GET", "/admin/groups/professional", nil, page([]string{"Staff of the organization.", `id="invite_quota"`}, "<h1>New group</h1>"), nil),
		console("POST", "/admin/groups/new", form("name", "Locums-{role}", "invite_quota", "5", "quota_period_days", "30", "attachment_limit_mb", "100"),
			see("/admin/groups?done=Group+Locums-admin+saved."), &groupCreate),
		console("GET", "/admin/registration", nil, page([]string{"Who may register, and how", `value="save_filter"`}, "There is nothing"), nil),
		console("POST", "/admin/registration", form("action", "save_filter", "pattern", "partner-{role}.test", "allow", "allow", "cra", "default"),
			see("/admin/registration?done=Filter+for+partner-admin.test+saved."), &filterSave),
	}
	_ = invited
}
