package e2e

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp/totp"

	"github.com/sealpost/sealpost/mailer/smtptest"
)

// writePNG writes a solid PNG of w×h pixels.
func writePNG(t *testing.T, path string, w, h int, c color.Color) {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, c)
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestBrowserWizard is the whole first-run wizard from a fresh start, as an
// administrator does it: the setup link, every step with a mistake first
// (the error shows next to its field and what was typed stays), back and
// forth without losing input, a branding upload, the test message through
// a real relay, the lines for Postfix and Exchange, the summary; then the
// wizard is gone and the administrator signs in to the console.
func TestBrowserWizard(t *testing.T) {
	t.Parallel()
	relay := smtptest.Start(t, smtptest.Options{})
	dir := t.TempDir()
	ca := filepath.Join(dir, "relay-ca.pem")
	if err := os.WriteFile(ca, relayCertPEM(t, relay), 0o644); err != nil {
		t.Fatal(err)
	}
	wrongBanner, icon := filepath.Join(dir, "wrong.png"), filepath.Join(dir, "icon.png")
	writePNG(t, wrongBanner, 800, 60, color.RGBA{200, 30, 30, 255})
	writePNG(t, icon, 64, 64, color.RGBA{20, 90, 160, 255})

	l := newLayout(t)
	in := start(t, l)
	if in.setupURL == "" {
		t.Fatal("no setup link printed")
	}
	ctx := browser(t)
	start := time.Now()
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	value := func(id string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Value(chromedp.ID(id)))
		if err != nil {
			t.Fatalf("value of %s: %v", id, err)
		}
		return s
	}
	do := func(name string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			screenshot(t, ctx, "wizard-"+name+"-failed")
			t.Fatalf("%s: %v", name, err)
		}
		screenshot(t, ctx, "wizard-"+name)
	}
	errorNear := func(id, want string) {
		t.Helper()
		got := text("#" + id + " ~ .error")
		if !strings.Contains(got, want) {
			t.Errorf("error next to %s: %q, want %q", id, got, want)
		}
	}

	do("01-welcome", chromedp.Navigate(in.setupURL), chromedp.WaitVisible(chromedp.ID("start")))
	do("02-organization-errors", chromedp.Click(chromedp.ID("start")), chromedp.WaitVisible(chromedp.ID("name")),
		chromedp.SendKeys(chromedp.ID("website"), "not a url"),
		chromedp.Click(chromedp.ID("next")), chromedp.WaitVisible(chromedp.CSS(".field.invalid")))
	errorNear("name", "organization's name")
	errorNear("domains", "primary email domain")
	if value("website") != "not a url" {
		t.Errorf("the website field lost what was typed: %q", value("website"))
	}
	do("03-branding", chromedp.SetValue(chromedp.ID("website"), "https://clinic.example.test"),
		chromedp.SendKeys(chromedp.ID("name"), "Example Clinic"),
		chromedp.SendKeys(chromedp.ID("domains"), "clinic.example.test, example.test"),
		chromedp.SendKeys(chromedp.ID("postal_address"), "1 Harbour Street, Springfield"),
		chromedp.Click(chromedp.ID("next")), chromedp.WaitVisible(chromedp.ID("banner-preview")))
	do("04-branding-wrong-size", chromedp.SetUploadFiles(chromedp.ID("banner"), []string{wrongBanner}),
		chromedp.SetUploadFiles(chromedp.ID("icon"), []string{icon}),
		chromedp.Click(chromedp.ID("next")), chromedp.WaitVisible(chromedp.CSS(".field.invalid")))
	errorNear("banner", "700×45 pixels; this image is 800×60")

	// Back to the first step and forward again: nothing typed is lost.
	do("05-back-to-organization", chromedp.Click(chromedp.ID("back")), chromedp.WaitVisible(chromedp.ID("name")))
	if value("name") != "Example Clinic" || value("domains") != "clinic.example.test, example.test" {
		t.Errorf("going back lost input: %q %q", value("name"), value("domains"))
	}
	do("06-admin-errors", chromedp.Click(chromedp.ID("next")), chromedp.WaitVisible(chromedp.ID("banner-preview")),
		chromedp.Click(chromedp.ID("next")), chromedp.WaitVisible(chromedp.ID("admin_name")),
		chromedp.SendKeys(chromedp.ID("admin_email"), "ada@clinic.example.test"),
		chromedp.SendKeys(chromedp.ID("password"), "password123"), chromedp.SendKeys(chromedp.ID("confirm"), "other"),
		chromedp.Click(chromedp.ID("next")), chromedp.WaitVisible(chromedp.CSS(".field.invalid")))
	errorNear("admin_name", "administrator's name")
	errorNear("password", "commonly used")
	errorNear("confirm", "not the same")
	do("07-certificates", chromedp.SendKeys(chromedp.ID("admin_name"), "Ada Admin"),
		chromedp.SendKeys(chromedp.ID("password"), adminPassword), chromedp.SendKeys(chromedp.ID("confirm"), adminPassword),
		chromedp.Click(chromedp.ID("next")), chromedp.WaitVisible(chromedp.ID("hostname")))
	do("08-certificates-acme", chromedp.Click(chromedp.CSS(`input[name=cert_mode][value=acme]`)),
		chromedp.SendKeys(chromedp.ID("hostname"), "secure.clinic.example.test"),
		chromedp.Click(chromedp.ID("next")), chromedp.WaitVisible(chromedp.CSS(".field.invalid")))
	errorNear("acme_email", "contact address")
	do("09-mail", chromedp.Click(chromedp.CSS(`input[name=cert_mode][value=self-signed]`)),
		chromedp.Click(chromedp.ID("next")), chromedp.WaitVisible(chromedp.ID("relay_host")),
		chromedp.SendKeys(chromedp.ID("test_to"), "ada@clinic.example.test"),
		chromedp.Click(chromedp.ID("send-test")), chromedp.WaitVisible(chromedp.CSS(".field.invalid")))
	errorNear("from_address", "no-reply@example.org")
	do("10-mail-test-sent", chromedp.SendKeys(chromedp.ID("relay_host"), relay.Host),
		chromedp.SetValue(chromedp.ID("relay_port"), fmt.Sprint(relay.Port)),
		chromedp.SendKeys(chromedp.ID("relay_ca_file"), ca),
		chromedp.SendKeys(chromedp.ID("from_address"), "no-reply@clinic.example.test"),
		chromedp.SendKeys(chromedp.ID("from_name"), "Example Clinic"),
		chromedp.Click(chromedp.ID("send-test")), chromedp.WaitVisible(chromedp.ID("test-result")))
	if got := text("#test-result"); !strings.Contains(got, "250") {
		t.Errorf("test result: %q", got)
	}
	if got := relay.Wait(1, 10*time.Second); len(got) != 1 || !strings.Contains(string(got[0].Data), "Example Clinic") {
		t.Fatalf("the relay got %d test messages", len(got))
	}
	do("11-inbound", chromedp.Click(chromedp.ID("next")), chromedp.WaitVisible(chromedp.ID("postfix-lines")),
		chromedp.SendKeys(chromedp.ID("relay_networks"), "10.0.0.0/33"),
		chromedp.Click(chromedp.ID("next")), chromedp.WaitVisible(chromedp.CSS(".field.invalid")))
	errorNear("relay_networks", "CIDR")
	if !strings.Contains(text("#postfix-lines"), "relayhost = [") || !strings.Contains(text("#exchange-lines"), "[secure]") {
		t.Error("the Postfix or Exchange lines are missing")
	}
	do("12-summary", chromedp.SetValue(chromedp.ID("relay_networks"), "10.0.0.0/24"),
		chromedp.Click(chromedp.ID("next")), chromedp.WaitVisible(chromedp.ID("summary")))
	summary := text("#summary")
	for _, want := range []string{"Example Clinic", "clinic.example.test", "ada@clinic.example.test", "10.0.0.0/24", relay.Host} {
		if !strings.Contains(summary, want) {
			t.Errorf("the summary lacks %q", want)
		}
	}
	if strings.Contains(summary, adminPassword) {
		t.Error("the summary shows the password")
	}
	do("13-signin-after-setup", chromedp.Click(chromedp.ID("next")), chromedp.WaitVisible(chromedp.CSS(".flash")))
	if got := text(".flash"); !strings.Contains(got, "Setup is complete") {
		t.Errorf("after setup: %q", got)
	}
	if _, err := os.Stat(filepath.Join(l.dataDir, "setup-token")); !os.IsNotExist(err) {
		t.Errorf("the token file is still there: %v", err)
	}
	if resp, _ := get(t, in.setupURL); resp.StatusCode != 404 {
		t.Errorf("the setup link after setup: %d", resp.StatusCode)
	}
	if resp, _ := get(t, "https://"+in.https+"/branding/icon.png"); resp.StatusCode != 200 {
		t.Errorf("the uploaded icon: %d", resp.StatusCode)
	}

	// Into the admin console: the password, then the authenticator.
	do("14-enrol", chromedp.SendKeys(chromedp.ID("email"), "ada@clinic.example.test"),
		chromedp.SendKeys(chromedp.ID("password"), adminPassword),
		chromedp.Click(chromedp.ID("signin")), chromedp.WaitVisible(chromedp.ID("secret")))
	code := totpCode(t, text("#secret"))
	do("15-console", chromedp.SendKeys(chromedp.ID("code"), code), chromedp.Click(chromedp.ID("confirm")),
		chromedp.WaitVisible(chromedp.ID("continue")), chromedp.Navigate("https://"+in.https+"/admin/users"),
		chromedp.WaitVisible(chromedp.ID("users")))
	if !strings.Contains(text("#users"), "Ada Admin") {
		t.Error("the administrator is not in the user list")
	}
	t.Logf("wizard to admin console in %v (browser automation, no reading time)", time.Since(start).Round(time.Millisecond))

	// The same answers through `sealpost setup --answers` on a fresh data
	// directory give the same settings.
	answers := filepath.Join(dir, "answers.toml")
	os.WriteFile(answers, []byte(fmt.Sprintf(`[organization]
name = "Example Clinic"
domains = ["clinic.example.test", "example.test"]
website = "https://clinic.example.test"
postal_address = "1 Harbour Street, Springfield"
[branding]
icon_file = %q
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
relay_networks = ["10.0.0.0/24"]
`, icon, adminPassword, relay.Host, relay.Port, ca)), 0o600)
	cli := newLayout(t)
	if _, errOut, code := runCLI(t, cli.env(), "setup", "--config", "/dev/null", "--answers", answers); code != 0 {
		t.Fatalf("setup --answers: %s", errOut)
	}
	viaWizard, _, _ := runCLI(t, l.env(), "settings", "get", "--config", "/dev/null")
	viaAnswers, _, _ := runCLI(t, cli.env(), "settings", "get", "--config", "/dev/null")
	if viaWizard == "" || viaWizard != viaAnswers {
		t.Errorf("the wizard and the answers file give different settings:\nwizard:\n%s\nanswers:\n%s", viaWizard, viaAnswers)
	}
}

// totpCode is the current code for an authenticator key shown on a page.
func totpCode(t *testing.T, secret string) string {
	t.Helper()
	code, err := totp.GenerateCode(strings.TrimSpace(secret), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return code
}
