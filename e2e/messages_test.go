package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sealpost/sealpost/mailer/smtptest"
)

const (
	guestEmail    = "gina@outside.example.test"
	guestPassword = "lantern orchard pebble drift"
	secretSubject = "Lab results for March"
	secretText    = "Your potassium level is 4.1 mmol/L"
	fileText      = "attachment marker: the scan report, page one\n"
)

var messageLinkPattern = regexp.MustCompile(`https://[^\s"<>]+/(?:mail/m/m[a-z2-7]{20}|register\?token=[A-Z2-7]+&next=%2Fmail%2Fm%2Fm[a-z2-7]{20})`)

// noticeTo waits for the n-th message overall and returns the newest
// message to addr whose text contains want.
func noticeTo(t *testing.T, relay *smtptest.Server, addr, want string, n int) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		msgs := relay.Wait(n, time.Until(deadline))
		for i := len(msgs) - 1; i >= 0; i-- {
			if msgs[i].To[0] == addr {
				if text := decodeQP(msgs[i].Data); strings.Contains(text, want) {
					return text
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no mail to %s saying %q among %d messages", addr, want, len(msgs))
		}
		n = len(msgs) + 1
	}
}

// frameText is the text of the message body the reading page frames: the
// frame is sandboxed (another origin to the page), so the test opens its
// address in the same browser.
func frameText(t *testing.T, f *flow, ctx context.Context) string {
	t.Helper()
	src, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("body").src`))
	if err != nil {
		t.Fatal(err)
	}
	text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`fetch(`+quoteJS(src)+`).then(r => r.text())`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	return text
}

// writeMessage opens the compose form and writes to, subject and text.
func writeMessage(base, to, subject, text string) []chromedp.Action[chromedp.Void] {
	return []chromedp.Action[chromedp.Void]{
		chromedp.Navigate(base + "/mail/compose"),
		chromedp.WaitVisible(chromedp.ID("editarea")),
		chromedp.SendKeys(chromedp.ID("to"), to),
		chromedp.SendKeys(chromedp.ID("subject"), subject),
		chromedp.Click(chromedp.ID("editarea")),
		chromedp.SendKeys(chromedp.ID("editarea"), text),
	}
}

// sendInviting sends the message on the compose form, confirms inviting
// its new recipients, and waits for the sent message's page.
func sendInviting() []chromedp.Action[chromedp.Void] {
	return []chromedp.Action[chromedp.Void]{
		chromedp.Click(chromedp.ID("send")),
		chromedp.WaitVisible(chromedp.ID("confirmsend")),
		chromedp.Click(chromedp.ID("confirmsend")),
		chromedp.WaitVisible(chromedp.ID("slip")),
	}
}

// messagePath is the path of the message ctx shows, without its query.
func messagePath(t *testing.T, ctx context.Context) string {
	t.Helper()
	p := path(t, ctx)
	return p[:strings.IndexByte(p+"?", '?')]
}

func quoteJS(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// fetchStatus is the status of a GET from the page's origin.
func fetchStatus(t *testing.T, ctx context.Context, url string) int {
	t.Helper()
	n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`fetch(`+quoteJS(url)+`).then(r => r.status)`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestBrowserMessages is the heart of the product in a real browser on the
// real binary: Pat writes to an outside address with a file; the guest's
// notification carries no content; the guest registers from it, lands on
// the message, reads it, downloads the file and replies; Pat sees the
// reply arrive without a reload and the delivery slip tell the truth; a
// guest cannot write to a stranger; Pat recalls the message and the guest
// keeps only the subject and the reason.
func TestBrowserMessages(t *testing.T) {
	t.Parallel()
	f := newFlow(t, 100)
	a, pat, base := professional(t, f)
	sent := len(a.relay.Messages())

	file := filepath.Join(t.TempDir(), "scan-report.txt")
	if err := os.WriteFile(file, []byte(fileText), 0o600); err != nil {
		t.Fatal(err)
	}
	f.do(pat, "Pat opens the inbox",
		chromedp.Navigate(base+"/mail/inbox"),
		chromedp.WaitVisible(chromedp.CSS(".empty")),
	)
	f.shot(pat, "pat-empty-inbox")
	f.do(pat, "Pat writes a message", writeMessage(base, guestEmail, secretSubject, secretText)...)
	f.do(pat, "Pat attaches a file",
		chromedp.SetUploadFiles(chromedp.ID("files"), []string{file}),
		chromedp.WaitVisible(chromedp.ID("filelist")),
	)
	if files := pageText(t, pat, "#filelist"); !strings.Contains(files, "scan-report.txt") {
		t.Fatalf("after attaching, the file list says %q", files)
	}
	f.shot(pat, "pat-compose")
	f.do(pat, "Pat sends",
		chromedp.Click(chromedp.ID("send")),
		chromedp.WaitVisible(chromedp.ID("inviteconfirm")),
	)
	if txt := pageText(t, pat, "#inviteconfirm"); !strings.Contains(txt, guestEmail) || !strings.Contains(txt, "not registered") {
		t.Errorf("the invitation question says %q", txt)
	}
	f.shot(pat, "pat-confirm-invite")
	f.do(pat, "Pat confirms the invitation",
		chromedp.Click(chromedp.ID("confirmsend")),
		chromedp.WaitVisible(chromedp.ID("slip")),
	)
	if flash := pageText(t, pat, ".flash"); !strings.Contains(flash, "was sent") {
		t.Errorf("after sending the flash says %q", flash)
	}
	msgPath := messagePath(t, pat)
	f.shot(pat, "pat-sent-slip")

	// The notification: a link, no subject, no text, no file.
	notice := noticeTo(t, a.relay, guestEmail, "secure message", sent+1)
	for _, secret := range []string{secretSubject, secretText, "scan-report", "attachment marker"} {
		if strings.Contains(notice, secret) {
			t.Errorf("the notification contains %q:\n%s", secret, notice)
		}
	}
	link := messageLinkPattern.FindString(notice)
	if !strings.Contains(link, "/register?token=") {
		t.Fatalf("the notification to a new recipient has no registration link:\n%s", notice)
	}

	guest := browser(t)
	f.do(guest, "the guest opens the notification's link",
		chromedp.Navigate(link),
		chromedp.WaitVisible(chromedp.ID("register")),
	)
	f.shot(guest, "guest-register")
	f.do(guest, "the guest registers",
		chromedp.SetValue(chromedp.ID("name"), "Gina Guest"),
		chromedp.SetValue(chromedp.ID("password"), guestPassword),
		chromedp.SetValue(chromedp.ID("confirm"), guestPassword),
		chromedp.Click(chromedp.ID("register")),
		chromedp.WaitVisible(chromedp.ID("message")),
	)
	if got := path(t, guest); !strings.HasPrefix(got, msgPath) {
		t.Errorf("after registering the guest is on %s, not the message %s", got, msgPath)
	}
	if subj := pageText(t, guest, "#subject"); subj != secretSubject {
		t.Errorf("the guest sees the subject %q", subj)
	}
	if body := frameText(t, f, guest); !strings.Contains(body, secretText) {
		t.Errorf("the message body is %q", body)
	}
	f.shot(guest, "guest-reads")
	dl, err := chromedp.Run(guest, chromedp.Evaluate[string](`fetch(document.querySelector("#attachments a").href).then(r => r.text())`, chromedp.EvalAwaitPromise))
	if err != nil || dl != fileText {
		t.Errorf("the guest downloads %q, %v", dl, err)
	}

	// A guest writes only to staff they exchanged messages with.
	f.do(guest, "the guest tries to write to a stranger",
		chromedp.Navigate(base+"/mail/compose"),
		chromedp.WaitVisible(chromedp.ID("editarea")),
		chromedp.SendKeys(chromedp.ID("to"), "stranger@elsewhere.example.test"),
		chromedp.SendKeys(chromedp.ID("subject"), "Hello"),
		chromedp.Click(chromedp.ID("send")),
		chromedp.WaitVisible(chromedp.CSS(".field.invalid #to")),
	)
	if msg := fieldError(t, guest, "to"); !strings.Contains(msg, "exchanged messages") {
		t.Errorf("the guest's refusal says %q", msg)
	}
	f.shot(guest, "guest-refused-stranger")
	f.do(guest, "the guest discards the draft",
		chromedp.Click(chromedp.ID("discard")),
		chromedp.WaitVisible(chromedp.CSS(".mailnav")),
	)

	// Pat waits on the inbox; the reply appears without a reload.
	f.do(pat, "Pat goes to the inbox",
		chromedp.Navigate(base+"/mail/inbox"),
		chromedp.WaitVisible(chromedp.CSS(".empty")),
	)
	f.do(guest, "the guest replies",
		chromedp.Navigate(base+msgPath),
		chromedp.WaitVisible(chromedp.ID("reply")),
		chromedp.Click(chromedp.ID("reply")),
		chromedp.WaitVisible(chromedp.ID("editarea")),
	)
	if to, _ := chromedp.Run(guest, chromedp.Value(chromedp.ID("to"))); to != patEmail {
		t.Errorf("the reply goes to %q", to)
	}
	f.do(guest, "the guest writes the reply",
		chromedp.Click(chromedp.ID("editarea")),
		chromedp.SendKeys(chromedp.ID("editarea"), "Thank you, received."),
	)
	f.shot(guest, "guest-reply")
	f.do(guest, "the guest sends the reply",
		chromedp.Click(chromedp.ID("send")),
		chromedp.WaitVisible(chromedp.CSS(".flash")),
	)
	f.do(pat, "the reply shows up in Pat's inbox without a reload",
		chromedp.WaitVisible(chromedp.ID("newmail")),
		chromedp.WaitVisible(chromedp.CSS(`[data-count="inbox"]`)),
	)
	if n := pageText(t, pat, `[data-count="inbox"]`); n != "1" {
		t.Errorf("the inbox count says %q", n)
	}
	f.shot(pat, "pat-new-mail-live")
	f.do(pat, "Pat opens the inbox",
		chromedp.Click(chromedp.CSS("#newmail a")),
		chromedp.WaitVisible(chromedp.ID("messages")),
	)
	if row := pageText(t, pat, "#messages li"); !strings.Contains(row, "Re: "+secretSubject) || !strings.Contains(row, "Gina Guest") {
		t.Errorf("the inbox row says %q", row)
	}
	f.shot(pat, "pat-inbox")

	// The delivery slip: notified, delivered, opened, downloaded.
	f.do(pat, "Pat looks at the delivery slip",
		chromedp.Navigate(base+msgPath),
		chromedp.WaitVisible(chromedp.ID("slip")),
	)
	slip := pageText(t, pat, "#slip tbody tr")
	for _, want := range []string{guestEmail, "Notification delivered"} {
		if !strings.Contains(slip, want) {
			t.Errorf("the slip says %q, without %q", slip, want)
		}
	}
	if opens := pageText(t, pat, "#slip .opens"); opens == "0" || opens == "" {
		t.Errorf("the slip counts %q opens", opens)
	}
	if first := pageText(t, pat, "#slip .firstopen"); strings.Contains(first, "Not yet") {
		t.Errorf("the slip says first opened %q", first)
	}
	if d := pageText(t, pat, "#slip .downloads"); !strings.HasPrefix(d, "1 ·") {
		t.Errorf("the slip says downloads %q", d)
	}
	f.shot(pat, "pat-slip-opened")

	f.do(pat, "Pat opens the print view",
		chromedp.Click(chromedp.ID("print")),
		chromedp.WaitVisible(chromedp.ID("printview")),
	)
	if h := pageText(t, pat, "#printview h1"); h != secretSubject {
		t.Errorf("the print view's heading is %q", h)
	}
	f.shot(pat, "pat-print")
	f.do(pat, "Pat goes back to the message",
		chromedp.Navigate(base+msgPath),
		chromedp.WaitVisible(chromedp.ID("slip")),
	)

	// Recall: the guest keeps the subject and the reason, nothing else.
	f.do(pat, "Pat recalls the message",
		chromedp.Click(chromedp.CSS("#recall summary")),
		chromedp.WaitVisible(chromedp.ID("reason")),
		chromedp.SendKeys(chromedp.ID("reason"), "Sent to the wrong patient"),
	)
	f.shot(pat, "pat-recall")
	f.do(pat, "Pat confirms the recall",
		chromedp.Click(chromedp.ID("dorecall")),
		chromedp.WaitVisible(chromedp.ID("gone")),
	)
	f.do(guest, "the guest opens the recalled message",
		chromedp.Navigate(base+msgPath),
		chromedp.WaitVisible(chromedp.ID("gone")),
	)
	gone := pageText(t, guest, "#gone")
	if !strings.Contains(gone, "Recalled by the sender") || !strings.Contains(gone, "Sent to the wrong patient") {
		t.Errorf("the recalled message says %q", gone)
	}
	if subj := pageText(t, guest, "#subject"); subj != secretSubject {
		t.Errorf("the recalled message shows the subject %q", subj)
	}
	if s := fetchStatus(t, guest, base+msgPath+"/body"); s != 404 {
		t.Errorf("the recalled body answers %d", s)
	}
	f.shot(guest, "guest-recalled")
	recallNotice := noticeTo(t, a.relay, guestEmail, "recalled", 1)
	if strings.Contains(recallNotice, secretSubject) || strings.Contains(recallNotice, "wrong patient") {
		t.Errorf("the recall notice carries content:\n%s", recallNotice)
	}

	// The operator drops the recalled key's old versions from the files.
	out, errOut, code := runCLI(t, a.l.env(), "store", "compact", "--config", "/dev/null")
	if code != 0 || !strings.Contains(out, "Store compacted") {
		t.Errorf("sealpost store compact: exit %d\n%s%s", code, out, errOut)
	}
}

// taggedBinary is sealpost built with a build tag that adds a test hook
// (sealpost_testclock, sealpost_pprof), once per test run; release builds
// have no such hooks.
func taggedBinary(t *testing.T, tag string) string {
	t.Helper()
	v, _ := taggedBuilds.LoadOrStore(tag, sync.OnceValues(func() (string, error) {
		bin := filepath.Join(filepath.Dir(binary), "sealpost-"+strings.TrimPrefix(tag, "sealpost_"))
		build := exec.Command("go", "build", "-tags", tag, "-ldflags", "-X main.version=e2e-test", "-o", bin, "..")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			return "", fmt.Errorf("build sealpost with -tags %s: %v\n%s", tag, err, out)
		}
		return bin, nil
	}))
	bin, err := v.(func() (string, error))()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

var taggedBuilds sync.Map // tag → func() (string, error)

// testClockBinary is sealpost with a clock that runs ahead by the
// duration in the file SEALPOSTTEST_CLOCK_FILE names.
func testClockBinary(t *testing.T) string { return taggedBinary(t, "sealpost_testclock") }

// TestBrowserMessageExpiry moves the appliance's clock (a test build)
// past a message's expiry date: the recipient, signing in again, finds
// only the subject and the expiry notice, and no text or file.
func TestBrowserMessageExpiry(t *testing.T) {
	t.Parallel()
	f := newFlow(t, 140)
	clockFile := filepath.Join(t.TempDir(), "clock")
	if err := os.WriteFile(clockFile, []byte("0s"), 0o600); err != nil {
		t.Fatal(err)
	}
	a, pat, base := professionalIn(t, f, newApplianceWith(t, testClockBinary(t), "SEALPOSTTEST_CLOCK_FILE="+clockFile))
	sent := len(a.relay.Messages())
	tomorrow := time.Now().UTC().AddDate(0, 0, 1).Format("2006-01-02")
	steps := append(writeMessage(base, guestEmail, secretSubject, secretText),
		chromedp.Click(chromedp.CSS("details.options summary")),
		chromedp.SetValue(chromedp.ID("expires"), tomorrow))
	f.do(pat, "Pat writes a message that expires tomorrow", append(steps, sendInviting()...)...)
	msgPath := messagePath(t, pat)
	link := messageLinkPattern.FindString(noticeTo(t, a.relay, guestEmail, "secure message", sent+1))
	guest := browser(t)
	f.do(guest, "the guest registers and reads",
		chromedp.Navigate(link),
		chromedp.WaitVisible(chromedp.ID("register")),
		chromedp.SetValue(chromedp.ID("name"), "Gina Guest"),
		chromedp.SetValue(chromedp.ID("password"), guestPassword),
		chromedp.SetValue(chromedp.ID("confirm"), guestPassword),
		chromedp.Click(chromedp.ID("register")),
		chromedp.WaitVisible(chromedp.ID("body")),
	)
	if body := frameText(t, f, guest); !strings.Contains(body, secretText) {
		t.Fatalf("before the expiry the body is %q", body)
	}
	f.shot(guest, "expiry-before")

	// Three days later (the sessions have ended too).
	if err := os.WriteFile(clockFile, []byte("72h"), 0o600); err != nil {
		t.Fatal(err)
	}
	f.do(guest, "the guest comes back after the expiry",
		chromedp.Navigate(base+msgPath),
		chromedp.WaitVisible(chromedp.ID("signin")),
	)
	signIn(f, guest, "the guest signs in again", guestEmail, guestPassword, chromedp.WaitVisible(chromedp.ID("gone")))
	gone := pageText(t, guest, "#gone")
	if !strings.Contains(gone, "expired") {
		t.Errorf("after the expiry the message says %q", gone)
	}
	if subj := pageText(t, guest, "#subject"); subj != secretSubject {
		t.Errorf("the expired message shows the subject %q", subj)
	}
	if s := fetchStatus(t, guest, base+msgPath+"/body"); s != 404 {
		t.Errorf("the expired body answers %d", s)
	}
	if n, _ := chromedp.Run(guest, chromedp.Evaluate[int](`document.querySelectorAll("#body, #attachments, #reply").length`)); n != 0 {
		t.Errorf("the expired message still offers %d of body, attachments or reply", n)
	}
	f.shot(guest, "expiry-after")
}

// TestBrowserPortalPreferences sets Pat's preferences (a 12-hour clock,
// day-month dates, New York time, a signature), sees them used, drives
// the portal with the keyboard, and looks at it on a phone-sized screen.
func TestBrowserPortalPreferences(t *testing.T) {
	t.Parallel()
	f := newFlow(t, 180)
	_, pat, base := professional(t, f)
	f.do(pat, "Pat saves a signature longer than 20 lines",
		chromedp.Navigate(base+"/preferences"),
		chromedp.WaitVisible(chromedp.ID("prefs")),
		chromedp.SetValue(chromedp.ID("signature"), strings.Repeat("line\n", 25)),
		chromedp.Click(chromedp.ID("saveprefs")),
		chromedp.WaitVisible(chromedp.CSS(".field.invalid #signature")),
	)
	if msg := fieldError(t, pat, "signature"); msg == "" {
		t.Errorf("a 25-line signature is not refused next to its field")
	}
	f.shot(pat, "prefs-refused")
	f.do(pat, "Pat chooses a 12-hour clock and New York time",
		chromedp.Navigate(base+"/preferences"),
		chromedp.WaitVisible(chromedp.ID("prefs")),
		chromedp.SetValue(chromedp.ID("date_format"), "dmy"),
		chromedp.Click(chromedp.CSS(`input[name="clock"][value="12"]`)),
		chromedp.SetValue(chromedp.ID("time_zone"), "America/New_York"),
		chromedp.SetValue(chromedp.ID("signature"), "Pat Professional\nExample Clinic"),
	)
	f.shot(pat, "prefs-form")
	f.do(pat, "Pat saves the preferences",
		chromedp.Click(chromedp.ID("saveprefs")),
		chromedp.WaitVisible(chromedp.CSS(".flash")),
	)
	if zone, _ := chromedp.Run(pat, chromedp.Value(chromedp.ID("time_zone"))); zone != "America/New_York" {
		t.Errorf("after saving the zone is %q", zone)
	}
	f.do(pat, "Pat presses c on the inbox",
		chromedp.Navigate(base+"/mail/inbox"),
		chromedp.WaitVisible(chromedp.ID("compose")),
		chromedp.KeyEvent("c"),
		chromedp.WaitVisible(chromedp.ID("editarea")),
	)
	if sig := pageText(t, pat, "#editarea"); !strings.Contains(sig, "Example Clinic") {
		t.Errorf("a new message starts with %q, not the signature", sig)
	}
	f.do(pat, "Pat types a subject and the draft saves itself",
		chromedp.SendKeys(chromedp.ID("subject"), "Appointment"),
		chromedp.Poll[chromedp.Void](`document.getElementById("saved").innerText.startsWith("Draft saved")`),
		chromedp.Poll[chromedp.Void](`document.querySelector('[data-count="drafts"]').innerText === "1"`),
	)
	f.do(pat, "Pat sends a message to an outside address",
		append([]chromedp.Action[chromedp.Void]{chromedp.SendKeys(chromedp.ID("to"), guestEmail)}, sendInviting()...)...)
	date := pageText(t, pat, ".readhead .facts dd:last-of-type")
	ny := time.Now().In(mustZone(t, "America/New_York"))
	if !strings.Contains(date, ny.Format("02/01/2006")) || !strings.Contains(date, "M") {
		t.Errorf("the date shows as %q, not in New York day-month 12-hour form (%s)", date, ny.Format("02/01/2006 3:04 PM"))
	}
	f.do(pat, "Pat opens the shortcut list with ?",
		chromedp.Navigate(base+"/mail/sent"),
		chromedp.WaitVisible(chromedp.ID("messages")),
		chromedp.KeyEvent("?"),
		chromedp.WaitVisible(chromedp.ID("keys")),
	)
	f.shot(pat, "keys-help")
	f.do(pat, "Pat moves with j and opens with o",
		chromedp.KeyEvent("\x1b"),
		chromedp.WaitNotVisible(chromedp.ID("keys")),
		chromedp.KeyEvent("j"),
		chromedp.WaitVisible(chromedp.CSS("#messages li.cursor")),
		chromedp.KeyEvent("o"),
		chromedp.WaitVisible(chromedp.ID("slip")),
	)
	f.do(pat, "Pat selects every sent message and deletes them",
		chromedp.Navigate(base+"/mail/sent"),
		chromedp.WaitVisible(chromedp.ID("selectall")),
		chromedp.Click(chromedp.ID("selectall")),
		chromedp.Click(chromedp.CSS(`#bulk button[value="trash"]`)),
		chromedp.WaitVisible(chromedp.CSS(".flash")),
	)
	if flash := pageText(t, pat, ".flash"); !strings.Contains(flash, "trash") {
		t.Errorf("after deleting, the flash says %q", flash)
	}
	f.do(pat, "Pat restores them from the trash",
		chromedp.Navigate(base+"/mail/trash"),
		chromedp.WaitVisible(chromedp.ID("selectall")),
		chromedp.Click(chromedp.ID("selectall")),
		chromedp.Click(chromedp.CSS(`#bulk button[value="restore"]`)),
		chromedp.WaitVisible(chromedp.CSS(".flash")),
	)
	if n, _ := chromedp.Run(pat, chromedp.Evaluate[int](`document.querySelectorAll("#messages li").length`)); n != 0 {
		t.Errorf("the trash still holds %d after restoring", n)
	}
	f.do(pat, "Pat's portal on a phone",
		chromedp.EmulateViewport(390, 844),
		chromedp.Navigate(base+"/mail/sent"),
		chromedp.WaitVisible(chromedp.ID("messages")),
	)
	f.shot(pat, "phone-list")
	width, err := chromedp.Run(pat, chromedp.Evaluate[int](`document.documentElement.scrollWidth`))
	if err != nil || width > 390 {
		t.Errorf("on a phone the list is %d px wide (%v): it scrolls sideways", width, err)
	}
	f.do(pat, "a message on a phone",
		chromedp.Click(chromedp.CSS("#messages a.open")),
		chromedp.WaitVisible(chromedp.ID("slip")),
	)
	f.shot(pat, "phone-message")
	if width, _ := chromedp.Run(pat, chromedp.Evaluate[int](`document.documentElement.scrollWidth`)); width > 390 {
		t.Errorf("on a phone the message is %d px wide: it scrolls sideways", width)
	}
}

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// TestBrowserSharedSent: the administrator lets the clinic's users read
// each other's sent messages (a registration filter); Quinn then finds
// Pat's message in Shared sent, read-only.
func TestBrowserSharedSent(t *testing.T) {
	t.Parallel()
	f := newFlow(t, 220)
	a := newAppliance(t)
	a.setLevel(t, "1")
	admin := browser(t)
	a.signInAdmin(t, f, admin)
	f.do(admin, "the administrator shares sent messages within the clinic",
		chromedp.Navigate(a.base+"/admin/registration"),
		chromedp.WaitVisible(chromedp.ID("pattern")),
		chromedp.SendKeys(chromedp.ID("pattern"), "clinic.example.test"),
		chromedp.Click(chromedp.CSS(`input[name="share_sent"]`)),
		chromedp.Click(chromedp.CSS(`form input[value="save_filter"] ~ .actions button`)),
		chromedp.WaitVisible(chromedp.CSS(".flash")),
	)
	f.shot(admin, "shared-filter")
	register := func(email, name, password string, n int) context.Context {
		a.invite(t, f, admin, "invite-"+strings.Split(email, "@")[0], email, name, "professional", "")
		ctx := browser(t)
		f.do(ctx, name+" registers",
			chromedp.Navigate(mailLink(t, a.relay, email, "register", n)),
			chromedp.WaitVisible(chromedp.ID("register")),
			chromedp.SetValue(chromedp.ID("password"), password),
			chromedp.SetValue(chromedp.ID("confirm"), password),
			chromedp.Click(chromedp.ID("register")),
			chromedp.WaitVisible(chromedp.CSS(".mailnav")),
		)
		return ctx
	}
	pat := register(patEmail, "Pat Professional", patPassword, 1)
	quinn := register("quinn@clinic.example.test", "Quinn Colleague", "meadow copper signal harbour", 2)
	base := origin(t, mailLink(t, a.relay, patEmail, "register", 1))
	f.do(pat, "Pat sends a message", append(writeMessage(base, guestEmail, secretSubject, secretText), sendInviting()...)...)
	f.do(quinn, "Quinn opens Shared sent",
		chromedp.Navigate(base+"/mail/inbox"),
		chromedp.WaitVisible(chromedp.CSS(`[data-folder="shared"]`)),
		chromedp.Click(chromedp.CSS(`[data-folder="shared"]`)),
		chromedp.WaitVisible(chromedp.ID("messages")),
	)
	if row := pageText(t, quinn, "#messages li"); !strings.Contains(row, "Pat Professional") || !strings.Contains(row, secretSubject) {
		t.Errorf("Quinn's Shared sent row says %q", row)
	}
	f.shot(quinn, "shared-list")
	f.do(quinn, "Quinn reads Pat's message",
		chromedp.Click(chromedp.CSS("#messages a.open")),
		chromedp.WaitVisible(chromedp.ID("body")),
	)
	if body := frameText(t, f, quinn); !strings.Contains(body, secretText) {
		t.Errorf("Quinn reads %q", body)
	}
	if n, _ := chromedp.Run(quinn, chromedp.Evaluate[int](`document.querySelectorAll("#reply, #forward, #delete, #recall, #slip").length`)); n != 0 {
		t.Errorf("a colleague's shared view offers %d of reply, forward, delete, recall or the slip", n)
	}
	f.shot(quinn, "shared-read")
}
