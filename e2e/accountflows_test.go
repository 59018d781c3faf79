package e2e

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp/totp"

	"github.com/sealpost/sealpost/mailer/smtptest"
)

// flow names the screenshots of one browser flow flows-NN-what, numbered
// from its own base so that the flows sort apart in bin/screenshots.
type flow struct {
	t *testing.T
	n int
}

func newFlow(t *testing.T, base int) *flow { return &flow{t: t, n: base} }

func (f *flow) shot(ctx context.Context, what string) {
	f.t.Helper()
	f.n++
	screenshot(f.t, ctx, fmt.Sprintf("flows-%02d-%s", f.n, what))
}

// do runs steps in ctx and stops the test, naming the step, if they fail.
func (f *flow) do(ctx context.Context, step string, actions ...chromedp.Action[chromedp.Void]) {
	f.t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		f.shot(ctx, "failed-"+strings.ReplaceAll(step, " ", "-"))
		f.t.Fatalf("%s: %v", step, err)
	}
}

// pageText is the visible text of the first element that matches a CSS
// selector, or "" without waiting when there is none.
func pageText(t *testing.T, ctx context.Context, css string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`(document.querySelector(%q) || {innerText: ""}).innerText`, css)))
	if err != nil {
		t.Fatalf("read %s: %v", css, err)
	}
	return strings.TrimSpace(s)
}

// fieldError is the error shown next to the field with id, or "" when that
// field is not marked invalid.
func fieldError(t *testing.T, ctx context.Context, id string) string {
	t.Helper()
	return pageText(t, ctx, ".field.invalid #"+id+" ~ .error")
}

// invalidFields lists the ids of the inputs in fields marked invalid.
func invalidFields(t *testing.T, ctx context.Context) []string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](
		`Array.from(document.querySelectorAll(".field.invalid")).map(f => (f.querySelector("input, select, textarea") || {id: "?"}).id).join(",")`))
	if err != nil {
		t.Fatal(err)
	}
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// appliance is a set-up appliance with its relay and a base URL.
type appliance struct {
	l     layout
	relay *smtptest.Server
	base  string
	in    *instance
}

func newAppliance(t *testing.T) appliance {
	t.Helper()
	return newApplianceWith(t, binary)
}

// newApplianceWith is newAppliance on another build of sealpost, with
// extra environment.
func newApplianceWith(t *testing.T, bin string, env ...string) appliance {
	t.Helper()
	relay := smtptest.Start(t, smtptest.Options{})
	l := setUp(t, relay)
	in := startBinary(t, bin, l, env...)
	return appliance{l: l, relay: relay, base: "https://" + in.https, in: in}
}

// setLevel changes the registration level on the running server.
func (a appliance) setLevel(t *testing.T, level string) {
	t.Helper()
	setSettings(t, a.l, "registration.level", level)
}

// signInAdmin signs the administrator in, who must set up a second factor
// on the first sign-in, and leaves them on their start page.
func (a appliance) signInAdmin(t *testing.T, f *flow, ctx context.Context) {
	t.Helper()
	f.do(ctx, "admin opens sign-in",
		chromedp.Navigate(a.base+"/signin"),
		chromedp.WaitVisible(chromedp.ID("email")),
	)
	f.shot(ctx, "admin-signin")
	f.do(ctx, "admin signs in",
		chromedp.SendKeys(chromedp.ID("email"), "ada@clinic.example.test"),
		chromedp.SendKeys(chromedp.ID("password"), adminPassword),
		chromedp.Click(chromedp.ID("signin")),
		chromedp.WaitVisible(chromedp.ID("qr")),
	)
	f.shot(ctx, "admin-enrol")
	secret, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("secret")))
	if err != nil {
		t.Fatal(err)
	}
	code, err := totp.GenerateCode(strings.TrimSpace(secret), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	f.do(ctx, "admin enrols",
		chromedp.SendKeys(chromedp.ID("code"), code),
		chromedp.Click(chromedp.ID("confirm")),
		chromedp.WaitVisible(chromedp.ID("codes")),
	)
	f.shot(ctx, "admin-recovery-codes")
	f.do(ctx, "admin continues",
		chromedp.Click(chromedp.ID("continue")),
		chromedp.WaitVisible(chromedp.CSS(".mainnav")),
		chromedp.WaitNotPresent(chromedp.ID("codes")),
	)
}

// invite fills in the admin console's invitation form and sends it.
func (a appliance) invite(t *testing.T, f *flow, ctx context.Context, shot, email, name, role, passcode string) {
	t.Helper()
	steps := []chromedp.Action[chromedp.Void]{
		chromedp.Navigate(a.base + "/admin/invite"),
		chromedp.WaitVisible(chromedp.ID("email")),
		chromedp.SendKeys(chromedp.ID("email"), email),
		chromedp.Click(chromedp.CSS(`input[name="role"][value="` + role + `"]`)),
	}
	if name != "" {
		steps = append(steps, chromedp.SendKeys(chromedp.ID("name"), name))
	}
	if passcode != "" {
		steps = append(steps, chromedp.SendKeys(chromedp.ID("passcode"), passcode))
	}
	f.do(ctx, "admin fills in the invitation", steps...)
	f.shot(ctx, shot+"-form")
	f.do(ctx, "admin sends the invitation",
		chromedp.Click(chromedp.ID("send")),
		chromedp.WaitVisible(chromedp.ID("resend")),
	)
	if flash := pageText(t, ctx, ".flash"); !strings.Contains(flash, "Invitation sent to "+email) {
		t.Errorf("after the invitation the flash says %q", flash)
	}
	f.shot(ctx, shot+"-sent")
}

const (
	patEmail    = "pat@clinic.example.test"
	patPassword = "ferry window amber climbing"
)

// professional sets up an appliance at registration level 1, where the
// administrator invites Pat, a professional user, who registers in a
// browser of their own and is left signed in on the start page.
func professional(t *testing.T, f *flow) (appliance, context.Context, string) {
	t.Helper()
	return professionalIn(t, f, newAppliance(t))
}

// professionalIn is professional on a given appliance.
func professionalIn(t *testing.T, f *flow, a appliance) (appliance, context.Context, string) {
	t.Helper()
	a.setLevel(t, "1")
	admin := browser(t)
	a.signInAdmin(t, f, admin)
	a.invite(t, f, admin, "invite-pat", patEmail, "Pat Professional", "professional", "")
	link := mailLink(t, a.relay, patEmail, "register", 1)

	pat := browser(t)
	f.do(pat, "Pat opens the invitation",
		chromedp.Navigate(link),
		chromedp.WaitVisible(chromedp.ID("register")),
	)
	f.shot(pat, "pat-register")
	f.do(pat, "Pat registers",
		chromedp.SetValue(chromedp.ID("password"), patPassword),
		chromedp.SetValue(chromedp.ID("confirm"), patPassword),
		chromedp.Click(chromedp.ID("register")),
		chromedp.WaitVisible(chromedp.CSS(".mainnav")),
	)
	if nav := pageText(t, pat, ".mainnav"); !strings.Contains(nav, "Pat Professional") {
		t.Fatalf("after registration the navigation says %q", nav)
	}
	f.shot(pat, "pat-registered-home")
	return a, pat, origin(t, link)
}

// origin is the scheme and host of a link: the address the appliance
// puts in its mail, which need not be the loopback address it listens on.
// A browser keeps its cookies by host, so a person who came through a link
// stays on its origin.
func origin(t *testing.T, link string) string {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	return u.Scheme + "://" + u.Host
}

// path is the path and query of the page ctx shows.
func path(t *testing.T, ctx context.Context) string {
	t.Helper()
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatal(err)
	}
	return u.RequestURI()
}

// signOut signs out through the navigation's button.
func signOut(t *testing.T, f *flow, ctx context.Context) {
	t.Helper()
	f.do(ctx, "sign out",
		chromedp.Click(chromedp.CSS(".mainnav form button")),
		chromedp.WaitVisible(chromedp.ID("signin")),
	)
	if flash := pageText(t, ctx, ".flash"); !strings.Contains(flash, "signed out") {
		t.Errorf("after signing out the flash says %q", flash)
	}
}

// signIn fills in the sign-in form on the current page and submits it.
func signIn(f *flow, ctx context.Context, step, email, password string, then chromedp.Action[chromedp.Void]) {
	f.t.Helper()
	f.do(ctx, step,
		chromedp.WaitVisible(chromedp.ID("signin")),
		chromedp.SetValue(chromedp.ID("email"), email),
		chromedp.SetValue(chromedp.ID("password"), password),
		chromedp.Click(chromedp.ID("signin")),
		then,
	)
}

// TestBrowserGuestLevel3 is a guest's registration at level 3: the
// administrator invites them with a passcode; a wrong passcode is refused
// next to its field, the right one leads to the emailed code, and the guest
// ends up signed in without the admin console.
func TestBrowserGuestLevel3(t *testing.T) {
	t.Parallel()
	f := newFlow(t, 0)
	a := newAppliance(t)
	a.setLevel(t, "3")
	admin := browser(t)
	a.signInAdmin(t, f, admin)
	const guest, passcode = "gail@outside.example.test", "blue-harbour-42"
	f.do(admin, "admin opens the invitation form",
		chromedp.Navigate(a.base+"/admin/invite"),
		chromedp.WaitVisible(chromedp.ID("passcode")),
	)
	if label := pageText(t, admin, `label[for="passcode"]`); !strings.Contains(label, "needed") {
		t.Errorf("at level 3 the passcode label says %q", label)
	}
	a.invite(t, f, admin, "invite-guest", guest, "", "guest", passcode)
	link := mailLink(t, a.relay, guest, "register", 1)

	g := browser(t)
	f.do(g, "guest opens the invitation",
		chromedp.Navigate(link),
		chromedp.WaitVisible(chromedp.ID("passcode")),
	)
	if lead := pageText(t, g, ".lead"); !strings.Contains(lead, "Ada Admin invited you") || !strings.Contains(lead, guest) {
		t.Errorf("the invitation page says %q", lead)
	}
	f.shot(g, "guest-register")

	const guestPassword = "lighthouse pebble orchard nine"
	f.do(g, "guest enters a wrong passcode",
		chromedp.SendKeys(chromedp.ID("name"), "Gail Guest"),
		chromedp.SendKeys(chromedp.ID("passcode"), "red-harbour-24"),
		chromedp.SendKeys(chromedp.ID("password"), guestPassword),
		chromedp.SendKeys(chromedp.ID("confirm"), guestPassword),
		chromedp.Click(chromedp.ID("register")),
		chromedp.WaitVisible(chromedp.CSS(".field.invalid")),
	)
	if got := invalidFields(t, g); len(got) != 1 || got[0] != "passcode" {
		t.Errorf("fields marked invalid after a wrong passcode: %v", got)
	}
	if msg := fieldError(t, g, "passcode"); !strings.Contains(msg, "passcode is not right") {
		t.Errorf("the error next to the passcode says %q", msg)
	}
	if name, _ := chromedp.Run(g, chromedp.Value(chromedp.ID("name"))); name != "Gail Guest" {
		t.Errorf("the name was not kept: %q", name)
	}
	f.shot(g, "guest-wrong-passcode")

	f.do(g, "guest enters the right passcode",
		chromedp.SetValue(chromedp.ID("passcode"), passcode),
		chromedp.SetValue(chromedp.ID("password"), guestPassword),
		chromedp.SetValue(chromedp.ID("confirm"), guestPassword),
		chromedp.Click(chromedp.ID("register")),
		chromedp.WaitVisible(chromedp.ID("code")),
	)
	if lead := pageText(t, g, ".lead"); !strings.Contains(lead, guest) {
		t.Errorf("the code step says %q", lead)
	}
	f.shot(g, "guest-code-step")

	code := mailCode(t, a.relay, guest, 2)
	f.do(g, "guest enters the code",
		chromedp.SendKeys(chromedp.ID("code"), code),
		chromedp.Click(chromedp.ID("confirm")),
		chromedp.WaitVisible(chromedp.CSS(".mainnav")),
	)
	if p := path(t, g); !strings.HasPrefix(p, "/mail/inbox?") {
		t.Errorf("after registration the guest is at %s, not the inbox", p)
	}
	if h1 := pageText(t, g, "main h1"); h1 != "Inbox" {
		t.Errorf("the start page says %q", h1)
	}
	if flash := pageText(t, g, ".flash"); !strings.Contains(flash, "Welcome") {
		t.Errorf("the flash says %q", flash)
	}
	nav := pageText(t, g, ".mainnav")
	if !strings.Contains(nav, "Gail Guest") || strings.Contains(nav, "Admin console") {
		t.Errorf("the guest's navigation says %q", nav)
	}
	if strings.Contains(pageText(t, g, "main"), "admin console") {
		t.Error("the guest's home page mentions the admin console")
	}
	f.shot(g, "guest-home")

	for _, m := range a.relay.Messages() {
		if text := decodeQP(m.Data); strings.Contains(text, passcode) || strings.Contains(text, guestPassword) {
			t.Errorf("a passcode or password reached a mail to %v", m.To)
		}
	}
}

// TestBrowserPasswordReset is "Forgot your password?" for a professional
// user: the page answers alike for a known and an unknown address, the
// mailed link leads to a new password (a mismatched confirmation is refused
// next to its field), and afterwards only the new password signs in.
func TestBrowserPasswordReset(t *testing.T) {
	t.Parallel()
	f := newFlow(t, 30)
	a, pat, base := professional(t, f)
	signOut(t, f, pat)
	f.shot(pat, "reset-signed-out")

	forgot := func(email string) string {
		t.Helper()
		f.do(pat, "ask for a reset link for "+email,
			chromedp.WaitVisible(chromedp.ID("send")),
			chromedp.SendKeys(chromedp.ID("email"), email),
			chromedp.Click(chromedp.ID("send")),
			chromedp.WaitVisible(chromedp.ID("sent")),
		)
		return pageText(t, pat, "main")
	}
	f.do(pat, "follow Forgot your password",
		chromedp.Click(chromedp.Search(`//a[normalize-space()="Forgot your password?"]`)),
		chromedp.WaitVisible(chromedp.ID("send")),
	)
	f.shot(pat, "reset-forgot")
	known := forgot(patEmail)
	f.shot(pat, "reset-forgot-sent")
	f.do(pat, "open the forgot page again", chromedp.Navigate(base+"/forgot"))
	unknown := forgot("nobody@clinic.example.test")
	f.shot(pat, "reset-forgot-sent-unknown")
	if !strings.Contains(known, "a link to choose a new password is on its way") {
		t.Errorf("the confirmation says %q", known)
	}
	if known != unknown {
		t.Errorf("the confirmation differs for a known address:\n%q\nand an unknown one:\n%q", known, unknown)
	}

	link := mailLink(t, a.relay, patEmail, "reset", 2)
	if n := len(a.relay.Messages()); n != 2 {
		t.Errorf("%d messages after the two requests; want the invitation and one reset link", n)
	}
	f.do(pat, "open the reset link",
		chromedp.Navigate(link),
		chromedp.WaitVisible(chromedp.ID("save")),
	)
	if lead := pageText(t, pat, ".lead"); !strings.Contains(lead, patEmail) {
		t.Errorf("the reset page says %q", lead)
	}
	f.shot(pat, "reset-form")

	const newPassword = "copper meadow sailing tower"
	f.do(pat, "enter a mismatched confirmation",
		chromedp.SendKeys(chromedp.ID("password"), newPassword),
		chromedp.SendKeys(chromedp.ID("confirm"), "copper meadow sailing towel"),
		chromedp.Click(chromedp.ID("save")),
		chromedp.WaitVisible(chromedp.CSS(".field.invalid")),
	)
	if got := invalidFields(t, pat); len(got) != 1 || got[0] != "confirm" {
		t.Errorf("fields marked invalid after a mismatch: %v", got)
	}
	if msg := fieldError(t, pat, "confirm"); !strings.Contains(msg, "not the same") {
		t.Errorf("the error next to the confirmation says %q", msg)
	}
	f.shot(pat, "reset-mismatch")

	f.do(pat, "save the new password",
		chromedp.SetValue(chromedp.ID("password"), newPassword),
		chromedp.SetValue(chromedp.ID("confirm"), newPassword),
		chromedp.Click(chromedp.ID("save")),
		chromedp.WaitVisible(chromedp.ID("signin")),
	)
	if p := path(t, pat); !strings.HasPrefix(p, "/signin?") {
		t.Errorf("after the reset the browser is at %s", p)
	}
	if flash := pageText(t, pat, ".flash"); !strings.Contains(flash, "Your password is changed") {
		t.Errorf("after the reset the flash says %q", flash)
	}
	f.shot(pat, "reset-done-signin")

	signIn(f, pat, "sign in with the new password", patEmail, newPassword, chromedp.WaitVisible(chromedp.CSS(".mainnav")))
	if nav := pageText(t, pat, ".mainnav"); !strings.Contains(nav, "Pat Professional") {
		t.Errorf("after signing in the navigation says %q", nav)
	}
	f.shot(pat, "reset-new-password-home")

	signOut(t, f, pat)
	signIn(f, pat, "sign in with the old password", patEmail, patPassword, chromedp.WaitVisible(chromedp.CSS(".notice.error")))
	if msg := pageText(t, pat, ".notice.error"); !strings.Contains(msg, "not right") {
		t.Errorf("the old password's refusal says %q", msg)
	}
	if pageText(t, pat, ".mainnav") != "" {
		t.Error("the old password signed in")
	}
	f.shot(pat, "reset-old-password-refused")

	// A used link is refused, and the page says why (the message of
	// account.errLink), not only that the address is unknown.
	f.do(pat, "open the used reset link", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS("main h1")))
	if pageText(t, pat, "#save") != "" || strings.Contains(pageText(t, pat, "main"), "Choose a new password") {
		t.Error("the reset link works a second time")
	}
	if lead := pageText(t, pat, ".lead"); !strings.Contains(lead, "link is not valid any more") {
		t.Errorf("the used reset link's page says %q; want it to say that the link was used or expired", lead)
	}
	f.shot(pat, "reset-link-used")
}

// TestBrowserAlias is a professional user adding an address: it waits for
// confirmation, the mailed link confirms it, the user makes it their main
// address, and it signs in.
func TestBrowserAlias(t *testing.T) {
	t.Parallel()
	f := newFlow(t, 60)
	a, pat, base := professional(t, f)
	const alias = "patricia@clinic.example.test"

	f.do(pat, "open the account page",
		chromedp.Navigate(base+"/account"),
		chromedp.WaitVisible(chromedp.ID("alias")),
	)
	f.shot(pat, "alias-account")
	f.do(pat, "add an address",
		chromedp.SendKeys(chromedp.ID("alias"), alias),
		chromedp.Click(chromedp.ID("add-alias")),
		chromedp.WaitVisible(chromedp.CSS(".flash")),
	)
	if flash := pageText(t, pat, ".flash"); !strings.Contains(flash, alias) {
		t.Errorf("after adding the flash says %q", flash)
	}
	if pending := pageText(t, pat, ".panel .sub"); !strings.Contains(pending, "Waiting for confirmation: "+alias) {
		t.Errorf("the address is not shown as pending: %q", pending)
	}
	if master := pageText(t, pat, "#master"); master != patEmail {
		t.Errorf("before confirmation the main address is %q", master)
	}
	f.shot(pat, "alias-pending")

	link := mailLink(t, a.relay, alias, "alias/confirm", 2)
	// Following the link only asks; a link scanner confirms nothing.
	f.do(pat, "follow the confirmation link",
		chromedp.Navigate(link),
		chromedp.WaitVisible(chromedp.ID("confirm")),
	)
	if h1 := pageText(t, pat, "main h1"); h1 != "Confirm this address" {
		t.Errorf("the confirmation link's page says %q", h1)
	}
	f.shot(pat, "alias-confirm-ask")
	f.do(pat, "confirm the address",
		chromedp.Click(chromedp.ID("confirm")),
		chromedp.WaitVisible(chromedp.CSS("main h1")),
	)
	if h1 := pageText(t, pat, "main h1"); h1 != "Address confirmed" {
		t.Errorf("the confirmation page says %q", h1)
	}
	if lead := pageText(t, pat, ".lead"); !strings.Contains(lead, alias) {
		t.Errorf("the confirmation page says %q", lead)
	}
	f.shot(pat, "alias-confirmed")

	f.do(pat, "go back to the account",
		chromedp.Click(chromedp.Search(`//a[normalize-space()="Go to your account"]`)),
		chromedp.WaitVisible(chromedp.ID("alias")),
	)
	if addrs := pageText(t, pat, ".panel table.list"); !strings.Contains(addrs, alias) {
		t.Errorf("the account lists the addresses %q", addrs)
	}
	if strings.Contains(pageText(t, pat, "main"), "Waiting for confirmation") {
		t.Error("the confirmed address is still pending")
	}
	f.shot(pat, "alias-listed")

	f.do(pat, "make the alias the main address",
		chromedp.Click(chromedp.Search(`//tr[td[1]="`+alias+`"]//button[normalize-space()="Make main"]`)),
		chromedp.WaitVisible(chromedp.CSS(".flash")),
	)
	if master := pageText(t, pat, "#master"); master != alias {
		t.Errorf("after Make main the main address is %q", master)
	}
	if addrs := pageText(t, pat, ".panel table.list"); !strings.Contains(addrs, patEmail) {
		t.Errorf("the old main address is no longer listed: %q", addrs)
	}
	f.shot(pat, "alias-main")

	signOut(t, f, pat)
	signIn(f, pat, "sign in with the alias", alias, patPassword, chromedp.WaitVisible(chromedp.CSS(".mainnav")))
	if nav := pageText(t, pat, ".mainnav"); !strings.Contains(nav, "Pat Professional") {
		t.Errorf("after signing in with the alias the navigation says %q", nav)
	}
	f.shot(pat, "alias-signed-in")
}
