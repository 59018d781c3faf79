package e2e

import (
	"bytes"
	"fmt"
	"io"
	"mime/quotedprintable"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp/totp"

	"github.com/sealpost/sealpost/mailer/smtptest"
)

const adminPassword = "harbour lantern quietly sixteen"

// writeAnswers writes a setup answers file whose outbound mail goes to relay.
func writeAnswers(t *testing.T, relay *smtptest.Server) string {
	t.Helper()
	dir := t.TempDir()
	ca := filepath.Join(dir, "relay-ca.pem")
	if err := os.WriteFile(ca, relayCertPEM(t, relay), 0o644); err != nil {
		t.Fatal(err)
	}
	answers := fmt.Sprintf(`[organization]
name = "Example Clinic"
domains = ["clinic.example.test"]
website = "https://clinic.example.test"
postal_address = "1 Harbour Street, Springfield"

[admin]
name = "Ada Admin"
email = "ada@clinic.example.test"
password = %q

[mail]
relay_host = %q
relay_port = %d
relay_ca_file = %q
from_address = "no-reply@clinic.example.test"
from_name = "Example Clinic"

[inbound]
relay_networks = ["10.0.0.0/8"]
`, adminPassword, relay.Host, relay.Port, ca)
	path := filepath.Join(dir, "answers.toml")
	if err := os.WriteFile(path, []byte(answers), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// setUp is a new layout set up from answers that name relay (the server
// not started), with the settings given as key, value pairs.
func setUp(t *testing.T, relay *smtptest.Server, settings ...string) layout {
	t.Helper()
	l := newLayout(t)
	if _, errOut, code := runCLI(t, l.env(), "setup", "--config", "/dev/null", "--answers", writeAnswers(t, relay)); code != 0 {
		t.Fatalf("setup: %s", errOut)
	}
	setSettings(t, l, settings...)
	return l
}

// setSettings runs `sealpost settings set` for each key, value pair; a
// running server takes them at once.
func setSettings(t *testing.T, l layout, kv ...string) {
	t.Helper()
	for i := 0; i+1 < len(kv); i += 2 {
		if out, errOut, code := runCLI(t, l.env(), "settings", "set", "--config", "/dev/null", kv[i], kv[i+1]); code != 0 {
			t.Fatalf("settings set %s %s: exit %d\n%s%s", kv[i], kv[i+1], code, out, errOut)
		}
	}
}

// TestSetupAnswers runs `sealpost setup --answers` on a fresh data
// directory: a bad file is refused with every problem and nothing saved; a
// good one finishes setup, and the server then starts without a setup link.
func TestSetupAnswers(t *testing.T) {
	t.Parallel()
	relay := smtptest.Start(t, smtptest.Options{})
	l := newLayout(t)
	bad := filepath.Join(t.TempDir(), "bad.toml")
	os.WriteFile(bad, []byte("[organization]\nname = \"\"\n[admin]\nemail = \"not-an-address\"\npassword = \"password1\"\n[mail]\nrelay_port = 99999\n"), 0o600)
	_, errOut, code := runCLI(t, l.env(), "setup", "--config", "/dev/null", "--answers", bad)
	for _, want := range []string{"organization.name", "organization.domains", "admin.email", "admin.password", "admin.name", "mail.relay_port"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("the refusal does not name %s:\n%s", want, errOut)
		}
	}
	if code != 2 {
		t.Errorf("bad answers: exit %d", code)
	}
	out, errOut, code := runCLI(t, l.env(), "setup", "--config", "/dev/null", "--answers", writeAnswers(t, relay))
	if code != 0 || !strings.Contains(out, "Setup is complete") {
		t.Fatalf("setup: exit %d\n%s\n%s", code, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(l.dataDir, "setup-token")); !os.IsNotExist(err) {
		t.Errorf("the token file is still there: %v", err)
	}
	in := start(t, l)
	if in.setupURL != "" {
		t.Errorf("setup link printed after setup: %s", in.setupURL)
	}
	resp, _ := get(t, "https://"+in.https+"/setup")
	if resp.StatusCode != 404 {
		t.Errorf("/setup after setup: %d", resp.StatusCode)
	}
	resp, body := get(t, "https://"+in.https+"/signin")
	if resp.StatusCode != 200 || !strings.Contains(body, `name="password"`) {
		t.Errorf("/signin: %d", resp.StatusCode)
	}
	_, errOut, code = runCLI(t, l.env(), "setup", "--config", "/dev/null", "--answers", writeAnswers(t, relay))
	if code != 1 || !strings.Contains(errOut, "finished already") {
		t.Errorf("second setup: exit %d %s", code, errOut)
	}
	out, _, code = runCLI(t, l.env(), "admin", "reset-password", "--config", "/dev/null", "ada@clinic.example.test")
	if code != 0 || !strings.Contains(out, "/reset?token=") {
		t.Errorf("break-glass reset: exit %d %s", code, out)
	}
}

var linkPattern = regexp.MustCompile(`https://[^\s"<>]+/(register|reset|alias/confirm)\?token=[A-Z2-7]+`)

// mailLink waits for a message to addr and returns the link of kind in it.
func mailLink(t *testing.T, relay *smtptest.Server, addr, kind string, n int) string {
	t.Helper()
	for _, m := range relay.Wait(n, 20*time.Second) {
		if m.To[0] != addr {
			continue
		}
		text := decodeQP(m.Data)
		for _, l := range linkPattern.FindAllString(text, -1) {
			if strings.Contains(l, "/"+kind+"?") {
				return l
			}
		}
	}
	t.Fatalf("no %s link to %s among %d messages", kind, addr, len(relay.Messages()))
	return ""
}

var codePattern = regexp.MustCompile(`code to confirm your email address: (\d{6})`)

func mailCode(t *testing.T, relay *smtptest.Server, addr string, n int) string {
	t.Helper()
	msgs := relay.Wait(n, 20*time.Second)
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].To[0] == addr {
			if m := codePattern.FindStringSubmatch(decodeQP(msgs[i].Data)); m != nil {
				return m[1]
			}
		}
	}
	t.Fatalf("no authorization code to %s", addr)
	return ""
}

func decodeQP(data []byte) string {
	out, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(data)))
	if err != nil {
		return string(data)
	}
	return string(out)
}

// TestBrowserAccounts is the administrator's and a new user's first day in
// a real browser: the administrator signs in and must set up a second
// factor, invites a professional user, who registers at level 2 with the
// code from the mail, and the administrator finds them in the user list.
func TestBrowserAccounts(t *testing.T) {
	t.Parallel()
	relay := smtptest.Start(t, smtptest.Options{})
	l := setUp(t, relay)
	in := start(t, l)
	base := "https://" + in.https
	ctx := browser(t)

	var secret string
	err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.ID("email")),
	)
	if err != nil {
		t.Fatal(err)
	}
	screenshot(t, ctx, "accounts-01-signin")
	err = chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("email"), "ada@clinic.example.test"),
		chromedp.SendKeys(chromedp.ID("password"), "wrong password"),
		chromedp.Click(chromedp.ID("signin")),
		chromedp.WaitVisible(chromedp.CSS(".notice.error")),
	)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(".notice.error")))
	if !strings.Contains(msg, "not right") {
		t.Errorf("wrong password message: %q", msg)
	}
	screenshot(t, ctx, "accounts-02-signin-wrong")
	err = chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("password"), adminPassword),
		chromedp.Click(chromedp.ID("signin")),
		chromedp.WaitVisible(chromedp.ID("qr")),
	)
	if err != nil {
		t.Fatal(err)
	}
	screenshot(t, ctx, "accounts-03-enrol")
	secret, err = chromedp.Run(ctx, chromedp.Text(chromedp.ID("secret")))
	if err != nil {
		t.Fatal(err)
	}
	code, err := totp.GenerateCode(strings.TrimSpace(secret), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	err = chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("code"), code),
		chromedp.Click(chromedp.ID("confirm")),
		chromedp.WaitVisible(chromedp.ID("codes")),
	)
	if err != nil {
		t.Fatal(err)
	}
	screenshot(t, ctx, "accounts-04-recovery-codes")

	// Invite a professional user.
	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.ID("continue")),
		chromedp.WaitVisible(chromedp.CSS("main h1")),
		chromedp.Navigate(base+"/admin/invite"),
		chromedp.WaitVisible(chromedp.ID("email")),
		chromedp.Click(chromedp.ID("send")),
		chromedp.WaitVisible(chromedp.CSS(".field.invalid")),
	)
	if err != nil {
		t.Fatal(err)
	}
	screenshot(t, ctx, "accounts-05-invite-empty")
	err = chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("email"), "pat@clinic.example.test"),
		chromedp.SendKeys(chromedp.ID("name"), "Pat Professional"),
		chromedp.Click(chromedp.ID("send")),
		chromedp.WaitVisible(chromedp.ID("resend")),
	)
	if err != nil {
		t.Fatal(err)
	}
	screenshot(t, ctx, "accounts-06-invited-user")
	link := mailLink(t, relay, "pat@clinic.example.test", "register", 1)

	// Pat registers in a browser of their own (a tab would share the
	// administrator's cookies).
	pat := browser(t)
	err = chromedp.Do(pat,
		chromedp.Navigate(link),
		chromedp.WaitVisible(chromedp.ID("password")),
	)
	if err != nil {
		t.Fatal(err)
	}
	screenshot(t, pat, "accounts-07-register")
	err = chromedp.Do(pat,
		chromedp.SendKeys(chromedp.ID("password"), "password123"),
		chromedp.SendKeys(chromedp.ID("confirm"), "password123"),
		chromedp.Click(chromedp.ID("register")),
		chromedp.WaitVisible(chromedp.CSS(".field.invalid")),
	)
	if err != nil {
		t.Fatal(err)
	}
	screenshot(t, pat, "accounts-08-register-weak-password")
	const patPassword = "ferry window amber climbing"
	err = chromedp.Do(pat,
		chromedp.SetValue(chromedp.ID("password"), patPassword),
		chromedp.SetValue(chromedp.ID("confirm"), patPassword),
		chromedp.Click(chromedp.ID("register")),
		chromedp.WaitVisible(chromedp.ID("code")),
	)
	if err != nil {
		t.Fatal(err)
	}
	screenshot(t, pat, "accounts-09-register-code")
	authCode := mailCode(t, relay, "pat@clinic.example.test", 2)
	err = chromedp.Do(pat,
		chromedp.SendKeys(chromedp.ID("code"), authCode),
		chromedp.Click(chromedp.ID("confirm")),
		chromedp.WaitVisible(chromedp.CSS(".flash")),
	)
	if err != nil {
		t.Fatal(err)
	}
	screenshot(t, pat, "accounts-10-registered-home")
	for _, m := range relay.Messages() {
		if strings.Contains(decodeQP(m.Data), patPassword) {
			t.Error("a password reached a notification")
		}
	}

	// Pat turns on a second factor from the account page, signs out, and
	// signing in again asks for the code. (The links in mail name the
	// appliance's host, so Pat's cookies are for that origin.)
	patBase := link[:strings.Index(link, "/register")]
	err = chromedp.Do(pat,
		chromedp.Navigate(patBase+"/account"),
		chromedp.WaitVisible(chromedp.ID("enrol")),
		chromedp.Click(chromedp.ID("enrol")),
		chromedp.WaitVisible(chromedp.ID("secret")),
	)
	if err != nil {
		t.Fatal(err)
	}
	patSecret, _ := chromedp.Run(pat, chromedp.Text(chromedp.ID("secret")))
	err = chromedp.Do(pat,
		chromedp.SendKeys(chromedp.ID("code"), totpCode(t, patSecret)),
		chromedp.Click(chromedp.ID("confirm")),
		chromedp.WaitVisible(chromedp.ID("codes")),
		chromedp.Click(chromedp.ID("continue")),
		chromedp.WaitVisible(chromedp.ID("sessions")),
	)
	if err != nil {
		t.Fatal(err)
	}
	screenshot(t, pat, "accounts-10a-pat-second-factor-on")
	// The code of the next 30-second step: the one just used is refused
	// (no replay), and one step of clock skew is allowed.
	next, err := totp.GenerateCode(strings.TrimSpace(patSecret), time.Now().Add(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	err = chromedp.Do(pat,
		chromedp.Click(chromedp.CSS(".mainnav button")),
		chromedp.WaitVisible(chromedp.ID("email")),
		chromedp.SendKeys(chromedp.ID("email"), "pat@clinic.example.test"),
		chromedp.SendKeys(chromedp.ID("password"), patPassword),
		chromedp.Click(chromedp.ID("signin")),
		chromedp.WaitVisible(chromedp.ID("code")),
	)
	if err != nil {
		t.Fatal(err)
	}
	screenshot(t, pat, "accounts-10b-pat-code")
	err = chromedp.Do(pat,
		chromedp.SendKeys(chromedp.ID("code"), next),
		chromedp.Click(chromedp.ID("verify")),
		chromedp.WaitVisible(chromedp.CSS(".mainnav")),
	)
	if err != nil {
		t.Fatal(err)
	}
	if nav, _ := chromedp.Run(pat, chromedp.Text(chromedp.CSS(".mainnav"))); !strings.Contains(nav, "Pat Professional") {
		t.Errorf("after the code, the navigation shows %q", nav)
	}
	screenshot(t, pat, "accounts-10c-pat-signed-in-again")

	// The administrator sees Pat enabled in the user list.
	err = chromedp.Do(ctx,
		chromedp.Navigate(base+"/admin/users"),
		chromedp.WaitVisible(chromedp.ID("users")),
	)
	if err != nil {
		t.Fatal(err)
	}
	table, _ := chromedp.Run(ctx, chromedp.Text(chromedp.ID("users")))
	if !strings.Contains(table, "Pat Professional") || !strings.Contains(table, "enabled") {
		t.Errorf("user list: %q", table)
	}
	screenshot(t, ctx, "accounts-11-users")
	err = chromedp.Do(ctx,
		chromedp.Navigate(base+"/admin/users?q=nobody-here"),
		chromedp.WaitVisible(chromedp.CSS(".empty")),
	)
	if err != nil {
		t.Fatal(err)
	}
	screenshot(t, ctx, "accounts-12-users-empty")
	err = chromedp.Do(ctx,
		chromedp.Navigate(base+"/account"),
		chromedp.WaitVisible(chromedp.ID("sessions")),
	)
	if err != nil {
		t.Fatal(err)
	}
	screenshot(t, ctx, "accounts-13-account")

	// The audit trail shows what happened, and its chain verifies.
	err = chromedp.Do(ctx,
		chromedp.Navigate(base+"/audit"),
		chromedp.WaitVisible(chromedp.ID("events")),
		chromedp.Click(chromedp.ID("verify")),
		chromedp.WaitVisible(chromedp.ID("verified")),
	)
	if err != nil {
		t.Fatal(err)
	}
	events, _ := chromedp.Run(ctx, chromedp.Text(chromedp.ID("events")))
	for _, want := range []string{"sign_in.fail", "user.invite", "registration.complete", "pat@clinic.example.test"} {
		if !strings.Contains(events, want) {
			t.Errorf("the audit trail lacks %q", want)
		}
	}
	if strings.Contains(events, patPassword) || strings.Contains(events, adminPassword) {
		t.Error("a password is in the audit trail")
	}
	screenshot(t, ctx, "accounts-14-audit")
}
