package account

import (
	"context"
	"crypto/fips140"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
	"github.com/rs/zerolog"

	"github.com/sealpost/sealpost/appliance/audit"
	"github.com/sealpost/sealpost/appliance/fault"
	"github.com/sealpost/sealpost/appliance/settings"
	"github.com/sealpost/sealpost/appliance/store"
	"github.com/sealpost/sealpost/appliance/store/storetest"
	"github.com/sealpost/sealpost/internal/clocktest"
)

// outbox keeps the notices the flows send, so a test can follow the links
// and codes in them as a person would.
type outbox struct {
	mu      sync.Mutex
	notices []Notice
}

func (o *outbox) Notify(_ *store.Tx, n Notice) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.notices = append(o.notices, n)
	return nil
}

// last returns the last notice of a kind to an address.
func (o *outbox) last(t *testing.T, kind, to string) Notice {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	for i := len(o.notices) - 1; i >= 0; i-- {
		if n := o.notices[i]; n.Kind == kind && n.To == to {
			return n
		}
	}
	t.Fatalf("no %s notice to %s", kind, to)
	return Notice{}
}

func tokenOf(t *testing.T, link string) string {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query().Get("token")
}

type env struct {
	svc   *Service
	st    *store.Store
	trail *audit.Trail
	clock *clocktest.Clock
	mail  *outbox
	admin User
}

const adminPassword = "correct horse battery staple"

func newEnv(t *testing.T) *env {
	t.Helper()
	st, keys := storetest.Open(t, t.TempDir())
	var err error
	c := clocktest.New(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
	e := &env{st: st, trail: audit.New(keys, c.Now), clock: c, mail: &outbox{}}
	e.svc, err = New(context.Background(), Options{Store: st, Audit: e.trail, Notifier: e.mail, Logger: zerolog.Nop(),
		Now: c.Now, BaseURL: func() string { return "https://portal.test" }})
	if err != nil {
		t.Fatal(err)
	}
	err = st.Update(context.Background(), func(tx *store.Tx) error {
		e.admin, err = e.svc.CreateAdmin(context.Background(), tx, "Admin@Clinic.Test", "Ada Admin", adminPassword)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	e.svc.Committed(e.admin)
	return e
}

func (e *env) set(t *testing.T, kv ...string) {
	t.Helper()
	var ch []settings.Change
	for i := 0; i < len(kv); i += 2 {
		ch = append(ch, settings.Change{Key: kv[i], Value: kv[i+1]})
	}
	if err := settings.Set(context.Background(), e.st, e.trail, "test", ch...); err != nil {
		t.Fatal(err)
	}
}

// actions lists the audit trail's actions in order.
func (e *env) actions(t *testing.T) []string {
	t.Helper()
	var out []string
	err := e.st.View(func(tx *store.Tx) error {
		evs, err := audit.List(tx, 0, 100000)
		for _, ev := range evs {
			out = append(out, ev.Action)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (e *env) hasAction(t *testing.T, action string) bool {
	for _, a := range e.actions(t) {
		if a == action {
			return true
		}
	}
	return false
}

func code(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	var c string
	var err error
	fips140.WithoutEnforcement(func() { c, err = totp.GenerateCode(secret, at) }) // HMAC-SHA-1, as the apps do
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestAdminSignInWithSecondFactor(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	if e.admin.Email != "admin@clinic.test" || !e.admin.Has(RoleAdmin) || !e.admin.Has(RoleProfessional) {
		t.Fatalf("admin %+v", e.admin)
	}

	// An administrator without a second factor must enrol one first.
	res, err := e.svc.SignIn(ctx, "admin@clinic.test", adminPassword, "10.0.0.1", "test")
	if err != nil {
		t.Fatal(err)
	}
	if res.Session.Stage != StageEnrol {
		t.Fatalf("stage %q, want enrol", res.Session.Stage)
	}
	enr, err := e.svc.StartTOTP(ctx, e.admin.ID, "Clinic")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.svc.ConfirmTOTP(ctx, res.Token, "000000", "10.0.0.1"); fault.KindOf(err) != fault.Invalid {
		t.Errorf("a wrong code: %v", err)
	}
	codes, full, err := e.svc.ConfirmTOTP(ctx, res.Token, code(t, enr.Secret, e.clock.Now()), "10.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if len(codes) != recoveryCodeCount || full.Session.Stage != StageFull || full.Token == res.Token {
		t.Fatalf("enrolment gave %d codes, stage %q", len(codes), full.Session.Stage)
	}
	if _, _, err := e.svc.Authenticate(ctx, res.Token, "10.0.0.1"); !errors.Is(err, ErrNoSession) {
		t.Errorf("the half session lives on after enrolment: %v", err)
	}
	if err := e.svc.SignOut(ctx, full.Token); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.svc.Authenticate(ctx, full.Token, "10.0.0.1"); !errors.Is(err, ErrNoSession) {
		t.Errorf("signed out, the session still works: %v", err)
	}

	// The next sign-in asks for a code; the one just used is refused (replay).
	e.clock.Add(10 * time.Second)
	half, err := e.svc.SignIn(ctx, "ADMIN@clinic.test", adminPassword, "10.0.0.1", "test")
	if err != nil || half.Session.Stage != StageSecondFactor {
		t.Fatalf("sign-in: %v, stage %q", err, half.Session.Stage)
	}
	if _, err := e.svc.SecondFactor(ctx, half.Token, code(t, enr.Secret, e.clock.Now()), "10.0.0.1"); !errors.Is(err, ErrCode) {
		t.Errorf("a replayed code: %v", err)
	}
	e.clock.Add(30 * time.Second)
	done, err := e.svc.SecondFactor(ctx, half.Token, code(t, enr.Secret, e.clock.Now()), "10.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if _, u, err := e.svc.Authenticate(ctx, done.Token, "10.0.0.1"); err != nil || u.ID != e.admin.ID {
		t.Fatalf("full session: %v", err)
	}

	// A recovery code works once.
	e.svc.SignOut(ctx, done.Token)
	half, _ = e.svc.SignIn(ctx, "admin@clinic.test", adminPassword, "10.0.0.1", "test")
	if _, err := e.svc.SecondFactor(ctx, half.Token, strings.ToLower(codes[3]), "10.0.0.1"); err != nil {
		t.Fatalf("recovery code: %v", err)
	}
	half, _ = e.svc.SignIn(ctx, "admin@clinic.test", adminPassword, "10.0.0.1", "test")
	if _, err := e.svc.SecondFactor(ctx, half.Token, codes[3], "10.0.0.1"); !errors.Is(err, ErrCode) {
		t.Errorf("a used recovery code: %v", err)
	}
	for _, want := range []string{"user.create", "sign_in.password", "user.totp_enable", "session.sign_out", "sign_in.second_factor", "sign_in.second_factor_fail"} {
		if !e.hasAction(t, want) {
			t.Errorf("no %s in the audit trail", want)
		}
	}
}

// signedIn gives the admin a full session without a second factor (the
// setting off), for tests of other flows.
func (e *env) signedIn(t *testing.T, email, password string) SignInResult {
	t.Helper()
	res, err := e.svc.SignIn(context.Background(), email, password, "10.0.0.9", "test")
	if err != nil {
		t.Fatalf("sign in %s: %v", email, err)
	}
	if res.Session.Stage != StageFull {
		t.Fatalf("sign in %s: stage %s", email, res.Session.Stage)
	}
	return res
}

func TestNoEnumeration(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	measure := func(email string) (time.Duration, error) {
		start := time.Now()
		_, err := e.svc.SignIn(ctx, email, "wrong password here", fmt.Sprint("10.1.0.", len(email)), "test")
		return time.Since(start), err
	}
	var known, unknown []time.Duration
	for range 4 {
		d, err := measure("admin@clinic.test")
		if err != ErrSignIn {
			t.Fatalf("wrong password: %v", err)
		}
		known = append(known, d)
		d, err = measure("nobody@clinic.test")
		if err != ErrSignIn {
			t.Fatalf("unknown address: %v", err)
		}
		unknown = append(unknown, d)
	}
	// Both hash a password; a missing hash would make the unknown address
	// answer in microseconds instead of tens of milliseconds.
	if mk, mu := median(known), median(unknown); mu < mk/3 || mu > mk*3 {
		t.Errorf("unknown address answers in %v, a known one in %v", mu, mk)
	}
	if _, err := measure("not an address"); err != ErrSignIn {
		t.Errorf("malformed address: %v", err)
	}
	for _, addr := range []string{"admin@clinic.test", "nobody@clinic.test"} {
		if err := e.svc.StartPasswordReset(ctx, addr, "10.0.0.1"); err != nil {
			t.Errorf("reset for %s: %v", addr, err)
		}
	}
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s[len(s)/2]
}

func TestLockout(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.set(t, "security.admin_requires_totp", "false")
	ctx := context.Background()
	for i := range 5 {
		if _, err := e.svc.SignIn(ctx, "admin@clinic.test", "wrong", "10.0.0.1", "test"); err != ErrSignIn {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	if _, err := e.svc.SignIn(ctx, "admin@clinic.test", adminPassword, "10.0.0.2", "test"); err != ErrSignIn {
		t.Fatalf("locked account let the right password in: %v", err)
	}
	if !e.hasAction(t, "user.lock") {
		t.Error("no user.lock in the audit trail")
	}
	e.clock.Add(16 * time.Minute)
	e.signedIn(t, "admin@clinic.test", adminPassword)

	// One client address failing against many accounts is stopped too.
	for i := range ipFailures {
		e.svc.SignIn(ctx, fmt.Sprintf("user%d@clinic.test", i), "wrong", "192.0.2.7", "test")
	}
	if _, err := e.svc.SignIn(ctx, "admin@clinic.test", adminPassword, "192.0.2.7", "test"); err != ErrTooManyAttempts {
		t.Errorf("flooding address: %v", err)
	}
}

func TestSessionExpiry(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.set(t, "security.admin_requires_totp", "false", "security.session_idle_minutes", "30", "security.session_lifetime_hours", "2")
	ctx := context.Background()

	idle := e.signedIn(t, "admin@clinic.test", adminPassword)
	e.clock.Add(29 * time.Minute)
	if _, _, err := e.svc.Authenticate(ctx, idle.Token, "10.0.0.9"); err != nil {
		t.Fatalf("after 29 idle minutes: %v", err)
	}
	e.clock.Add(31 * time.Minute)
	if _, _, err := e.svc.Authenticate(ctx, idle.Token, "10.0.0.9"); !errors.Is(err, ErrNoSession) {
		t.Errorf("after 31 idle minutes: %v", err)
	}

	busy := e.signedIn(t, "admin@clinic.test", adminPassword)
	for range 7 { // active every 20 minutes for 2 h 20 min
		e.clock.Add(20 * time.Minute)
		_, _, err := e.svc.Authenticate(ctx, busy.Token, "10.0.0.9")
		if e.clock.Now().Sub(busy.Session.Created) <= 2*time.Hour && err != nil {
			t.Fatalf("active session ended early at %v: %v", e.clock.Now().Sub(busy.Session.Created), err)
		}
		if e.clock.Now().Sub(busy.Session.Created) > 2*time.Hour && !errors.Is(err, ErrNoSession) {
			t.Fatalf("session outlived its lifetime: %v", err)
		}
	}

	e.set(t, "security.session_bind_ip", "true")
	bound := e.signedIn(t, "admin@clinic.test", adminPassword)
	if _, _, err := e.svc.Authenticate(ctx, bound.Token, "10.9.9.9"); !errors.Is(err, ErrNoSession) {
		t.Errorf("a bound session from another address: %v", err)
	}
	if !e.hasAction(t, "session.expire") {
		t.Error("no session.expire in the audit trail")
	}

	// Sign out everywhere, and a session list.
	a := e.signedIn(t, "admin@clinic.test", adminPassword)
	b := e.signedIn(t, "admin@clinic.test", adminPassword)
	list, err := e.svc.Sessions(e.admin.ID)
	if err != nil || len(list) < 2 {
		t.Fatalf("sessions: %d, %v", len(list), err)
	}
	if err := e.svc.EndSession(ctx, e.admin.ID, b.Session.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.svc.Authenticate(ctx, b.Token, "10.0.0.9"); !errors.Is(err, ErrNoSession) {
		t.Errorf("ended session: %v", err)
	}
	if err := e.svc.SignOutEverywhere(ctx, e.admin.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.svc.Authenticate(ctx, a.Token, "10.0.0.9"); !errors.Is(err, ErrNoSession) {
		t.Errorf("after sign out everywhere: %v", err)
	}
}

func TestInvitationLevels(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.set(t, "security.admin_requires_totp", "false")
	ctx := context.Background()
	const pw = "a long and private passphrase"

	// Level 1: follow the link, choose a password, signed in.
	e.set(t, "registration.level", "1")
	r1, err := e.svc.Invite(ctx, e.admin.ID, Invite{Email: "pat@clinic.test", Name: "Pat Pro", Role: RoleProfessional})
	if err != nil || r1.Level != 1 {
		t.Fatalf("invite: %v level %d", err, r1.Level)
	}
	link := tokenOf(t, e.mail.last(t, "invitation", "pat@clinic.test").Link)
	if _, err := e.svc.SignIn(ctx, "pat@clinic.test", pw, "10.0.0.1", "test"); err != ErrSignIn {
		t.Errorf("an invited user signs in before registering: %v", err)
	}
	if _, err := e.svc.Register(ctx, link, Registration{Password: "short", Confirm: "short"}, "10.0.0.1", "test"); FieldErrors(err).For("password") == "" {
		t.Errorf("short password: %v", err)
	}
	reg, err := e.svc.Register(ctx, link, Registration{Password: pw, Confirm: pw}, "10.0.0.1", "test")
	if err != nil || reg.CodeSent || reg.SignIn.Token == "" {
		t.Fatalf("level 1: %+v %v", reg, err)
	}
	if _, err := e.svc.Register(ctx, link, Registration{Password: pw, Confirm: pw}, "10.0.0.1", "test"); fault.KindOf(err) != fault.NotFound {
		t.Errorf("the link works twice: %v", err)
	}

	// Level 2: the password, then the code from the email.
	e.set(t, "registration.level", "2")
	if _, err := e.svc.Invite(ctx, e.admin.ID, Invite{Email: "sam@outside.test", Role: RoleGuest}); err != nil {
		t.Fatal(err)
	}
	link = tokenOf(t, e.mail.last(t, "invitation", "sam@outside.test").Link)
	reg, err = e.svc.Register(ctx, link, Registration{Name: "Sam Guest", Password: pw, Confirm: pw}, "10.0.0.1", "test")
	if err != nil || !reg.CodeSent {
		t.Fatalf("level 2: %+v %v", reg, err)
	}
	c := e.mail.last(t, "auth_code", "sam@outside.test").Code
	if _, err := e.svc.ConfirmCode(ctx, link, "000000", "10.0.0.1", "test"); FieldErrors(err).For("code") == "" && c != "000000" {
		t.Errorf("wrong code: %v", err)
	}
	e.clock.Add(11 * time.Minute)
	if _, err := e.svc.ConfirmCode(ctx, link, c, "10.0.0.1", "test"); FieldErrors(err).For("code") == "" {
		t.Errorf("expired code: %v", err)
	}
	if err := e.svc.ResendCode(ctx, link); err != nil {
		t.Fatal(err)
	}
	c = e.mail.last(t, "auth_code", "sam@outside.test").Code
	res, err := e.svc.ConfirmCode(ctx, link, c, "10.0.0.1", "test")
	if err != nil || res.User.Status != StatusEnabled || res.User.Name != "Sam Guest" || !res.User.IsGuest() {
		t.Fatalf("confirm: %+v %v", res.User, err)
	}
	e.signedIn(t, "sam@outside.test", pw)

	// Level 3: the inviter's passcode too; five wrong ones void the link.
	e.set(t, "registration.level", "3", "registration.cra_excluded_domains", "partner.test")
	if _, err := e.svc.Invite(ctx, e.admin.ID, Invite{Email: "kim@outside.test", Role: RoleGuest}); FieldErrors(err).For("passcode") == "" {
		t.Errorf("level 3 without a passcode: %v", err)
	}
	if r, err := e.svc.Invite(ctx, e.admin.ID, Invite{Email: "lee@partner.test", Role: RoleGuest}); err != nil || r.Level != 2 {
		t.Errorf("an excluded domain: level %d, %v", r.Level, err)
	}
	if _, err := e.svc.Invite(ctx, e.admin.ID, Invite{Email: "kim@outside.test", Role: RoleGuest, Passcode: "blue-harbour-42"}); err != nil {
		t.Fatal(err)
	}
	link = tokenOf(t, e.mail.last(t, "invitation", "kim@outside.test").Link)
	if _, err := e.svc.Register(ctx, link, Registration{Name: "Kim", Password: pw, Confirm: pw, Passcode: "wrong-one"}, "10.0.0.1", "test"); FieldErrors(err).For("passcode") == "" {
		t.Errorf("wrong passcode: %v", err)
	}
	reg, err = e.svc.Register(ctx, link, Registration{Name: "Kim", Password: pw, Confirm: pw, Passcode: " blue-harbour-42 "}, "10.0.0.1", "test")
	if err != nil || !reg.CodeSent {
		t.Fatalf("level 3: %+v %v", reg, err)
	}
	if _, err := e.svc.ConfirmCode(ctx, link, e.mail.last(t, "auth_code", "kim@outside.test").Code, "10.0.0.1", "test"); err != nil {
		t.Fatal(err)
	}

	if _, err := e.svc.Invite(ctx, e.admin.ID, Invite{Email: "max@outside.test", Role: RoleGuest, Passcode: "right-passcode"}); err != nil {
		t.Fatal(err)
	}
	link = tokenOf(t, e.mail.last(t, "invitation", "max@outside.test").Link)
	// Messages to Max carry links of their own; the guesses are counted
	// for the invitation, whichever link they come through, and voiding
	// it ends every link.
	links := []string{link}
	maxUser, _ := e.svc.UserByAddress("max@outside.test")
	for _, m := range []string{"/mail/m/one", "/mail/m/two"} {
		err := e.st.Update(ctx, func(tx *store.Tx) error {
			l, err := e.svc.InvitationLinkTx(tx, maxUser.ID, e.admin.ID, m)
			links = append(links, tokenOf(t, l))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	var last error
	for i := range maxRegistrationAttempts {
		_, last = e.svc.Register(ctx, links[i%len(links)], Registration{Name: "Max", Password: pw, Confirm: pw, Passcode: "guess-guess"}, "10.0.0.1", "test")
	}
	if fault.KindOf(last) != fault.Permission {
		t.Errorf("after %d wrong passcodes over %d links: %v", maxRegistrationAttempts, len(links), last)
	}
	for _, l := range links {
		if _, err := e.svc.Register(ctx, l, Registration{Name: "Max", Password: pw, Confirm: pw, Passcode: "right-passcode"}, "10.0.0.1", "test"); fault.KindOf(err) != fault.NotFound {
			t.Errorf("a voided invitation still works through a link: %v", err)
		}
	}
	if !e.hasAction(t, "registration.void") {
		t.Error("no registration.void in the audit trail")
	}
}

func TestInviteRulesAndQuota(t *testing.T) {
	t.Parallel()
	e, pro := registeredPro(t)
	ctx := context.Background()

	if _, err := e.svc.Invite(ctx, pro.ID, Invite{Email: "other@clinic.test", Role: RoleProfessional}); fault.KindOf(err) != fault.Permission {
		t.Errorf("a professional invites staff: %v", err)
	}
	if _, err := e.svc.Invite(ctx, pro.ID, Invite{Email: "pro@clinic.test", Role: RoleGuest}); fault.KindOf(err) != fault.Conflict {
		t.Errorf("inviting an existing user: %v", err)
	}
	g, _ := e.svc.Group(GroupProfessional)
	g.InviteQuota, g.QuotaPeriodDays = 2, 7
	if _, err := e.svc.SaveGroup(ctx, ActorOf(e.admin.ID), g); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if _, err := e.svc.Invite(ctx, pro.ID, Invite{Email: fmt.Sprintf("g%d@outside.test", i), Role: RoleGuest}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.svc.Invite(ctx, pro.ID, Invite{Email: "g9@outside.test", Role: RoleGuest}); fault.KindOf(err) != fault.TooLarge {
		t.Errorf("over the quota: %v", err)
	}
	e.clock.Add(8 * 24 * time.Hour)
	if _, err := e.svc.Invite(ctx, pro.ID, Invite{Email: "g9@outside.test", Role: RoleGuest}); err != nil {
		t.Errorf("a new period: %v", err)
	}
	if p := e.svc.ListUsers(Query{Text: "pro@"}); p.Total != 1 || p.Users[0].InvitesUsed != 3 {
		t.Errorf("directory: %+v", p)
	}

	// A deny filter, then resend: the old link stops working.
	if err := e.svc.SaveFilter(ctx, e.admin.ID, Filter{Pattern: "blocked.test", Allow: false}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Invite(ctx, e.admin.ID, Invite{Email: "x@sub.blocked.test", Role: RoleGuest}); FieldErrors(err).For("email") == "" {
		t.Errorf("a denied domain: %v", err)
	}
	g0, _ := e.svc.UserByAddress("g0@outside.test")
	old := tokenOf(t, e.mail.last(t, "invitation", "g0@outside.test").Link)
	// Two messages' links (as secure messages to g0 carry): both live, and
	// the invitation's too.
	var messageLinks []string
	for _, m := range []string{"/mail/m/one", "/mail/m/two"} {
		err := e.st.Update(ctx, func(tx *store.Tx) error {
			link, err := e.svc.InvitationLinkTx(tx, g0.ID, pro.ID, m)
			messageLinks = append(messageLinks, link)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range append(messageLinks, "?token="+old) {
		if _, err := e.svc.Invitation(tokenOf(t, l)); err != nil {
			t.Errorf("link %s before the resend: %v", l, err)
		}
	}
	if err := e.svc.ResendInvitation(ctx, pro.ID, g0.ID); err != nil {
		t.Fatal(err)
	}
	for _, l := range append(messageLinks, "?token="+old) {
		if _, err := e.svc.Invitation(tokenOf(t, l)); fault.KindOf(err) != fault.NotFound {
			t.Errorf("link %s after a resend: %v", l, err)
		}
	}
	if _, err := e.svc.Invitation(tokenOf(t, e.mail.last(t, "invitation", "g0@outside.test").Link)); err != nil {
		t.Errorf("the new link: %v", err)
	}
}

func TestPasswordReset(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.set(t, "security.admin_requires_totp", "false")
	ctx := context.Background()
	sess := e.signedIn(t, "admin@clinic.test", adminPassword)
	if err := e.svc.StartPasswordReset(ctx, "admin@clinic.test", "10.0.0.1"); err != nil {
		t.Fatal(err)
	}
	n := e.mail.last(t, "password_reset", "admin@clinic.test")
	if n.ValidFor != "4 hours" {
		t.Errorf("valid for %q", n.ValidFor)
	}
	link := tokenOf(t, n.Link)
	if err := e.svc.CompletePasswordReset(ctx, link, "password123", "password123", ""); FieldErrors(err).For("password") == "" {
		t.Errorf("a common password: %v", err)
	}
	if err := e.svc.CompletePasswordReset(ctx, link, "password123", "other", ""); FieldErrors(err).For("password") == "" || FieldErrors(err).For("confirm") == "" {
		t.Errorf("a common password typed differently twice: both problems at once, got %v", err)
	}
	const newPW = "another long private phrase"
	if err := e.svc.CompletePasswordReset(ctx, link, newPW, newPW, ""); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.CompletePasswordReset(ctx, link, newPW+"!", newPW+"!", ""); fault.KindOf(err) != fault.NotFound {
		t.Errorf("the link works twice: %v", err)
	}
	if _, _, err := e.svc.Authenticate(ctx, sess.Token, "10.0.0.9"); !errors.Is(err, ErrNoSession) {
		t.Error("a reset leaves old sessions alive")
	}
	e.signedIn(t, "admin@clinic.test", newPW)

	// Expired after its lifetime; break-glass link without mail.
	e.svc.StartPasswordReset(ctx, "admin@clinic.test", "")
	link = tokenOf(t, e.mail.last(t, "password_reset", "admin@clinic.test").Link)
	e.clock.Add(4*time.Hour + time.Minute)
	if _, err := e.svc.CheckResetLink(link); fault.KindOf(err) != fault.NotFound {
		t.Errorf("an expired link: %v", err)
	}
	bg, err := e.svc.BreakGlassResetLink(ctx, "admin@clinic.test")
	if err != nil || !strings.HasPrefix(bg, "https://portal.test/reset?token=") {
		t.Fatalf("break glass: %q %v", bg, err)
	}
	if !e.hasAction(t, "password.reset_break_glass") {
		t.Error("break glass is not audited")
	}
}

func TestAliases(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.set(t, "security.admin_requires_totp", "false")
	ctx := context.Background()
	if err := e.svc.AddAlias(ctx, e.admin.ID, e.admin.ID, "ada@clinic.test"); err != nil {
		t.Fatal(err)
	}
	if p, _ := e.svc.PendingAliases(e.admin.ID); len(p) != 1 || p[0].Address != "ada@clinic.test" {
		t.Errorf("pending: %+v", p)
	}
	if _, err := e.svc.SignIn(ctx, "ada@clinic.test", adminPassword, "", ""); err != ErrSignIn {
		t.Errorf("an unconfirmed alias signs in: %v", err)
	}
	link := tokenOf(t, e.mail.last(t, "alias_confirm", "ada@clinic.test").Link)
	if _, _, err := e.svc.ConfirmAlias(ctx, link); err != nil {
		t.Fatal(err)
	}
	e.signedIn(t, "ada@clinic.test", adminPassword)
	u, err := e.svc.PromoteAlias(ctx, e.admin.ID, e.admin.ID, "ada@clinic.test")
	if err != nil || u.Email != "ada@clinic.test" || u.Aliases[0] != "admin@clinic.test" {
		t.Fatalf("promote: %+v %v", u, err)
	}
	if p := e.svc.ListUsers(Query{Text: "ada@"}); p.Total != 1 || p.Users[0].Email != "ada@clinic.test" {
		t.Errorf("directory after promote: %+v", p)
	}
	if err := e.svc.AddAlias(ctx, e.admin.ID, e.admin.ID, "admin@clinic.test"); FieldErrors(err).For("alias") == "" {
		t.Errorf("an address in use: %v", err)
	}
}

func TestDisableEndsSessionsAndUnsubscribe(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.set(t, "security.admin_requires_totp", "false", "registration.level", "1")
	ctx := context.Background()
	const pw = "a long and private passphrase"
	e.svc.Invite(ctx, e.admin.ID, Invite{Email: "g@outside.test", Role: RoleGuest})
	reg, err := e.svc.Register(ctx, tokenOf(t, e.mail.last(t, "invitation", "g@outside.test").Link), Registration{Name: "G", Password: pw, Confirm: pw}, "", "")
	if err != nil {
		t.Fatal(err)
	}
	guest := reg.SignIn.User
	disabled := StatusDisabled
	if _, err := e.svc.ChangeUser(ctx, e.admin.ID, e.admin.ID, UserChange{Status: &disabled}); FieldErrors(err).For("status") == "" {
		t.Errorf("an admin disables themselves: %v", err)
	}
	if _, err := e.svc.ChangeUser(ctx, e.admin.ID, guest.ID, UserChange{Status: &disabled}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.svc.Authenticate(ctx, reg.SignIn.Token, ""); !errors.Is(err, ErrNoSession) {
		t.Errorf("a disabled user's session: %v", err)
	}
	if _, err := e.svc.SignIn(ctx, "g@outside.test", pw, "", ""); err != ErrSignIn {
		t.Errorf("a disabled user signs in: %v", err)
	}
	enabled := StatusEnabled
	e.svc.ChangeUser(ctx, e.admin.ID, guest.ID, UserChange{Status: &enabled})

	var link string
	err = e.st.Update(ctx, func(tx *store.Tx) error {
		var err error
		link, err = e.svc.UnsubscribeLink(tx, guest.ID)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if u, err := e.svc.Unsubscribe(ctx, tokenOf(t, link), "10.0.0.1"); err != nil || !u.Unsubscribed || u.Status != StatusDisabled {
		t.Fatalf("unsubscribe: %+v %v", u, err)
	}
	e.mail.last(t, "unsubscribe_confirm", "g@outside.test")
	if !e.hasAction(t, "user.unsubscribe") {
		t.Error("unsubscribe is not audited")
	}
}

func TestDirectoryPaging(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	err := e.st.Update(ctx, func(tx *store.Tx) error {
		for i := range 120 {
			role := RoleGuest
			if i%3 == 0 {
				role = RoleProfessional
			}
			u, err := e.svc.createUser(ctx, tx, NewUser{Email: fmt.Sprintf("p%03d@example.test", i), Name: fmt.Sprintf("Person %d", i), Roles: []Role{role}}, StatusEnabled)
			if err != nil {
				return err
			}
			defer e.svc.Committed(u)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	p := e.svc.ListUsers(Query{Limit: 50, Offset: 100})
	if p.Total != 121 || len(p.Users) != 21 {
		t.Errorf("page 3: total %d, %d users", p.Total, len(p.Users))
	}
	// Professionals (i%3 == 0) named Person 1…: 12, 15, 18, 102, …, 117.
	if p := e.svc.ListUsers(Query{Role: RoleProfessional, Text: "person 1"}); p.Total != 9 {
		t.Errorf("professionals named person 1…: %d", p.Total)
	}
	if p := e.svc.ListUsers(Query{Text: "P007@"}); p.Total != 1 || p.Users[0].Name != "Person 7" {
		t.Errorf("search: %+v", p)
	}
	if got := e.svc.CountUsers()[StatusEnabled]; got != 121 {
		t.Errorf("enabled: %d", got)
	}
	disabled := StatusDisabled
	if _, err := e.svc.ChangeUser(ctx, e.admin.ID, e.svc.ListUsers(Query{Text: "p001@"}).Users[0].ID, UserChange{Status: &disabled}); err != nil {
		t.Fatal(err)
	}
	// The counts kept with each change are those a fresh load finds.
	fresh, err := loadDirectory(e.st, e.svc.usage)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := e.svc.CountUsers(), fresh.counts(); got[StatusEnabled] != 120 || got[StatusDisabled] != 1 || !maps.Equal(got, want) {
		t.Errorf("counts %v, a fresh load %v", got, want)
	}
}

// TestSecondFactorRequiredLater: a user made administrator after signing
// in with a password only must enrol before the session goes on; turning
// the factor off needs the password, and a wrong one counts and is audited.
func TestSecondFactorRequiredLater(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.set(t, "security.admin_requires_totp", "false")
	ctx := context.Background()
	res := e.signedIn(t, "admin@clinic.test", adminPassword)
	e.set(t, "security.admin_requires_totp", "true")
	sess, _, err := e.svc.Authenticate(ctx, res.Token, "10.0.0.9")
	if err != nil || sess.Stage != StageEnrol {
		t.Fatalf("after the factor became required: stage %q, %v", sess.Stage, err)
	}
	enr, err := e.svc.StartTOTP(ctx, e.admin.ID, "Clinic")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.svc.ConfirmTOTP(ctx, res.Token, code(t, enr.Secret, e.clock.Now()), "10.0.0.9"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.StartTOTP(ctx, e.admin.ID, "Clinic"); err != errTOTPOn {
		t.Errorf("replacing an authenticator without turning it off: %v", err)
	}
	e.set(t, "security.admin_requires_totp", "false")
	if err := e.svc.DisableTOTP(ctx, e.admin.ID, "wrong password"); FieldErrors(err).For("current") == "" {
		t.Errorf("turning the factor off with a wrong password: %v", err)
	}
	if !e.hasAction(t, "password.check_fail") {
		t.Error("a wrong current password is not audited")
	}
	if err := e.svc.DisableTOTP(ctx, e.admin.ID, adminPassword); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		e.svc.DisableTOTP(ctx, e.admin.ID, "wrong password")
	}
	if _, err := e.svc.SignIn(ctx, "admin@clinic.test", adminPassword, "10.0.0.1", "test"); err != ErrSignIn {
		t.Errorf("wrong current passwords do not lock the account: %v", err)
	}
}

// TestConcurrentInvitesKeepQuota: many invitations by one professional at
// once (the web form and the gateway's implied invitations both come here)
// never go past the group's quota.
func TestConcurrentInvitesKeepQuota(t *testing.T) {
	t.Parallel()
	e, pro := registeredPro(t)
	ctx := context.Background()
	g, _ := e.svc.Group(GroupProfessional)
	g.InviteQuota = 3
	if _, err := e.svc.SaveGroup(ctx, ActorOf(e.admin.ID), g); err != nil {
		t.Fatal(err)
	}
	const n = 12
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, err := e.svc.Invite(ctx, pro.ID, Invite{Email: fmt.Sprintf("c%d@outside.test", i), Role: RoleGuest})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	ok := 0
	for err := range errs {
		switch {
		case err == nil:
			ok++
		case fault.KindOf(err) != fault.TooLarge:
			t.Errorf("an invitation failed otherwise than on the quota: %v", err)
		}
	}
	if ok != 3 {
		t.Errorf("%d of %d concurrent invitations went through; the quota is 3", ok, n)
	}
}

// registeredPro is an appliance at registration level 1 with a registered
// professional user, pro@clinic.test.
func registeredPro(t *testing.T) (*env, User) {
	t.Helper()
	e := newEnv(t)
	e.set(t, "security.admin_requires_totp", "false", "registration.level", "1")
	ctx := context.Background()
	const pw = "a long and private passphrase"
	if _, err := e.svc.Invite(ctx, e.admin.ID, Invite{Email: "pro@clinic.test", Role: RoleProfessional}); err != nil {
		t.Fatal(err)
	}
	reg, err := e.svc.Register(ctx, tokenOf(t, e.mail.last(t, "invitation", "pro@clinic.test").Link), Registration{Name: "Pro", Password: pw, Confirm: pw}, "", "")
	if err != nil {
		t.Fatal(err)
	}
	return e, reg.SignIn.User
}
