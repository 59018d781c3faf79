package ui

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sealpost/sealpost/appliance/attachment"
	"github.com/sealpost/sealpost/appliance/keyring"
	"github.com/sealpost/sealpost/appliance/message"
	"github.com/sealpost/sealpost/appliance/prefs"
	"github.com/sealpost/sealpost/appliance/store"
)

// The webmail part of the authorization matrix: the message domain wired as
// appliance/app.go wires it, the messages the rows act on, the rows of the
// /preferences and /mail routes, and the scenarios around other users'
// messages, recalled messages, the body frame, streams and CSRF.

// authzWelcome is the administrator's welcome text.
const authzWelcome = "Welcome to the secure mail of the clinic."

// authzMsgNotFound is the message domain's one answer for a message the
// user may not see, the same for another user's message as for none.
const authzMsgNotFound = "There is no such message."

// authzMsgGone is the answer for the content of a recalled or expired
// message.
const authzMsgGone = "This message was recalled or has expired; its content is gone."

// NotifyMessage keeps the message notices too (new message, first opening,
// recall), as the appliance's mailer would queue them.
func (b *noticeBox) NotifyMessage(_ *store.Tx, n message.Notice) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.messageNotices = append(b.messageNotices, n)
	return fmt.Sprintf("n%d", len(b.messageNotices)), nil
}

var _ message.Notifier = (*noticeBox)(nil)

// newAuthzMessages is the message domain over the accounts' store, as
// appliance.openMessages makes it.
func newAuthzMessages(t *testing.T, a *authzAccounts, keys *keyring.Keyring, now func() time.Time) *message.Service {
	t.Helper()
	blobs, err := attachment.OpenBlobs(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return message.New(message.Options{Store: a.st, Keys: keys, Blobs: blobs, Accounts: a.svc, Audit: a.trail,
		Notifier: a.mail, Now: now, Logger: zerolog.Nop(), BaseURL: func() string { return authzBase }})
}

// loadPrefs and savePrefs are ui.Options.Prefs and SavePrefs, as
// appliance/app.go has them.
func (a *authzAccounts) loadPrefs(uid string) (p prefs.Prefs, err error) {
	err = a.st.View(func(tx *store.Tx) error { p, err = prefs.Load(tx, uid); return err })
	return p, err
}

func (a *authzAccounts) savePrefs(ctx context.Context, uid string, change func(*prefs.Prefs)) error {
	return a.st.Update(ctx, func(tx *store.Tx) error {
		p, err := prefs.Load(tx, uid)
		if err != nil {
			return err
		}
		change(&p)
		return prefs.Put(tx, uid, p)
	})
}

// authzFile is a file a fixture or a multipart row sends.
type authzFile struct {
	field, name, contentType, content string
}

// authzLetter is a fixture message.
type authzLetter struct {
	from              string // fixture user
	to                string // addresses
	subject, body     string
	file              *authzFile
	restrict          message.Restrictions
	readNotify        bool
	draftOnly, recall bool
}

// letter sends (or only saves) a fixture message as its sender would: a
// draft, its file, then Send.
func (e *authzEnv) letter(t *testing.T, l authzLetter) (id, att string) {
	t.Helper()
	ctx := context.Background()
	uid := e.users[l.from].ID
	d := message.Draft{To: l.to, Subject: l.subject, Body: l.body, Format: message.FormatHTML, Restrict: l.restrict, ReadNotify: l.readNotify}
	id, err := e.msgs.SaveDraft(ctx, uid, d)
	if err != nil {
		t.Fatalf("draft %q: %v", l.subject, err)
	}
	if l.file != nil {
		a, err := e.msgs.AddAttachment(ctx, uid, id, l.file.name, l.file.contentType, strings.NewReader(l.file.content))
		if err != nil {
			t.Fatalf("attach to %q: %v", l.subject, err)
		}
		att = a.ID
	}
	if l.draftOnly {
		return id, att
	}
	d.ID = id
	res, err := e.msgs.Send(ctx, uid, d)
	if err != nil || res.ID != id {
		t.Fatalf("send %q: %+v %v", l.subject, res, err)
	}
	if l.recall {
		if err := e.msgs.Recall(ctx, uid, id, "Sent to the wrong person", true); err != nil {
			t.Fatalf("recall %q: %v", l.subject, err)
		}
	}
	return id, att
}

// The fixture messages' content. The other user's message, their draft and
// the recalled message's text must never reach any response of the
// matrix: no session user is a participant of the first two, and the
// third's content is destroyed.
var (
	labResults = authzLetter{from: asProfessional, to: "guest@outside.test", subject: "Lab results for Gus", readNotify: true,
		body: "<p>Your lab results are attached, Gus.</p>",
		file: &authzFile{name: "results-gus.pdf", contentType: "application/pdf", content: "%PDF-1.4 the results of Gus"}}
	teamNotes = authzLetter{from: asProfessional, to: "auditor@clinic.test, admin@clinic.test", subject: "Team notes",
		body: "<p>Notes for the team meeting.</p>",
		file: &authzFile{name: "team-notes.txt", contentType: "text/plain", content: "agenda: the budget"}}
	wrongResults = authzLetter{from: asProfessional, to: "guest@outside.test", subject: "Wrong results", recall: true,
		body: "<p>Results of another patient entirely.</p>",
		file: &authzFile{name: "wrong-results.pdf", contentType: "application/pdf", content: "%PDF-1.4 another patient"}}
	restricted = authzLetter{from: asProfessional, to: "guest@outside.test", subject: "Restricted results",
		restrict: message.Restrictions{NoReply: true, NoForward: true, NoPrint: true},
		body:     "<p>Read this here only.</p>",
		file:     &authzFile{name: "restricted.pdf", contentType: "application/pdf", content: "%PDF-1.4 restricted"}}
	recallMe = authzLetter{from: asProfessional, to: "guest@outside.test", subject: "Please recall me",
		body: "<p>This one goes back.</p>"}
	ottoNote = authzLetter{from: "other", to: "other2@clinic.test", subject: "Private note from Otto",
		body: "<p>The otter code is 4711-OTTER.</p>",
		file: &authzFile{name: "otto-secret.txt", contentType: "text/plain", content: "otter secret bytes"}}
	ottoPlan = authzLetter{from: "other", to: "other2@clinic.test", subject: "Unsent plan of Otto", draftOnly: true,
		body: "<p>Otto plans quietly.</p>",
		file: &authzFile{name: "otto-plan.txt", contentType: "text/plain", content: "the plan of otto"}}
	patDraft = authzLetter{from: asProfessional, to: "guest@outside.test", subject: "Unsent draft of Pat", draftOnly: true,
		body: "<p>Pat is still writing.</p>"}
)

// mailFixtures makes the messages and drafts the rows act on, and each
// session's own message ({mine} and the like in the table).
func (e *authzEnv) mailFixtures(t *testing.T) {
	t.Helper()
	msgA, attA := e.letter(t, labResults)
	msgB, attB := e.letter(t, teamNotes)
	recalled, recalledAtt := e.letter(t, wrongResults)
	recallID, _ := e.letter(t, recallMe)
	restrictedID, restrictedAtt := e.letter(t, restricted)
	other, otherAtt := e.letter(t, ottoNote)
	otherDraft, otherDraftAtt := e.letter(t, ottoPlan)
	proDraft, _ := e.letter(t, patDraft)
	for k, v := range map[string]string{"{msgA}": msgA, "{attA}": attA, "{msgB}": msgB, "{attB}": attB,
		"{recalled}": recalled, "{recalledAtt}": recalledAtt, "{recallMe}": recallID,
		"{restricted}": restrictedID, "{restrictedAtt}": restrictedAtt,
		"{otherMsg}": other, "{otherAtt}": otherAtt, "{otherDraft}": otherDraft, "{otherDraftAtt}": otherDraftAtt,
		"{proDraft}": proDraft} {
		e.vars[k] = v
	}
	mine := func(id, att, folder string, l authzLetter) map[string]string {
		return map[string]string{"{mine}": id, "{mineAtt}": att, "{mineFolder}": folder, "{mineSubject}": l.subject,
			"{mineBody}":    strings.TrimSuffix(strings.TrimPrefix(l.body, "<p>"), "</p>"),
			"{mineAttName}": l.file.name, "{mineAttBytes}": l.file.content}
	}
	e.mine = map[string]map[string]string{
		asGuest:        mine(msgA, attA, "inbox", labResults),
		asProfessional: mine(msgA, attA, "sent", labResults),
		asAuditor:      mine(msgB, attB, "inbox", teamNotes),
		asAdmin:        mine(msgB, attB, "inbox", teamNotes),
	}
	for _, s := range []string{asAnonymous, asEnrolling, asSecondFactor} {
		e.mine[s] = e.mine[asGuest] // they never get as far
	}
	for _, l := range []authzLetter{ottoNote, ottoPlan, wrongResults} {
		e.forbidden = append(e.forbidden, l.subject, l.file.name, l.file.content,
			strings.TrimSuffix(strings.TrimPrefix(l.body, "<p>"), "</p>"))
	}
	e.forbidden = slices.DeleteFunc(e.forbidden, func(s string) bool { return s == wrongResults.subject }) // the notice keeps it
}

// firstEventRecorder records a server-sent event stream until its first
// event, then ends the request, as a browser closing the page would.
type firstEventRecorder struct {
	*httptest.ResponseRecorder
	cancel context.CancelFunc
}

func (w *firstEventRecorder) Write(p []byte) (int, error) {
	n, err := w.ResponseRecorder.Write(p)
	if strings.Contains(w.Body.String(), "\n\n") {
		w.cancel()
	}
	return n, err
}

// multipartBody encodes a row's fields, then its files, as the compose
// form's browser does.
func multipartBody(form url.Values, files []authzFile) (io.Reader, string, error) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	if v := form.Get("csrf"); v != "" {
		if err := mw.WriteField("csrf", v); err != nil {
			return nil, "", err
		}
	}
	for k, vs := range form {
		if k == "csrf" {
			continue
		}
		for _, v := range vs {
			if err := mw.WriteField(k, v); err != nil {
				return nil, "", err
			}
		}
	}
	for _, f := range files {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", fmt.Sprintf(`form-data; name=%q; filename=%q`, f.field, f.name))
		h.Set("Content-Type", f.contentType)
		pw, err := mw.CreatePart(h)
		if err != nil {
			return nil, "", err
		}
		if _, err := io.WriteString(pw, f.content); err != nil {
			return nil, "", err
		}
	}
	if err := mw.Close(); err != nil {
		return nil, "", err
	}
	return &buf, mw.FormDataContentType(), nil
}

var (
	authzFramePath    = regexp.MustCompile(`^/mail/m/[^/]+/body(\?|$)`)
	authzDownloadPath = regexp.MustCompile(`^/mail/m/[^/]+/a/[^/?]+(\?|$)`)
)

// checkFrameHeaders is the reading frame's own policy: a sandbox without
// scripts or the appliance's origin, framed only by the appliance's pages.
func checkFrameHeaders(h http.Header, r *authzReport) {
	csp := h.Get("Content-Security-Policy")
	if !strings.Contains(csp, "sandbox") || strings.Contains(csp, "allow-scripts") || strings.Contains(csp, "allow-same-origin") ||
		strings.Contains(csp, "script-src") || !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'self'") {
		r.errorf("the body frame's Content-Security-Policy = %q", csp)
	}
	if got := h.Get("X-Frame-Options"); got != "SAMEORIGIN" {
		r.errorf("the body frame's X-Frame-Options = %q, want SAMEORIGIN", got)
	}
}

// inFolder reports whether a message is in one of a user's folders.
func (e *authzEnv) inFolder(uid string, f message.Folder, id string) bool {
	p, err := e.msgs.List(uid, f, "")
	if err != nil {
		return false
	}
	return slices.ContainsFunc(p.Items, func(it message.Item) bool { return it.ID == id })
}

// draftsTitled lists the subjects of a user's drafts that begin with prefix.
func (e *authzEnv) draftsTitled(uid, prefix string) []string {
	p, _ := e.msgs.List(uid, message.Drafts, "")
	var out []string
	for _, it := range p.Items {
		if strings.HasPrefix(it.Subject, prefix) {
			out = append(out, it.Subject)
		}
	}
	return out
}

// othersIntact checks that the other user's message and draft are as the
// fixture made them: in both mailboxes, readable, not recalled, the draft
// unchanged with its file.
func othersIntact(e *authzEnv, _ *authzResult, r *authzReport) {
	other, other2 := e.users["other"].ID, e.users["other2"].ID
	id := e.vars["{otherMsg}"]
	if !e.inFolder(other, message.Sent, id) || !e.inFolder(other2, message.Inbox, id) {
		r.errorf("the other users' message left their mailboxes")
	}
	if _, body, err := e.msgs.Body(other2, id); err != nil || !strings.Contains(body, "4711-OTTER") {
		r.errorf("the other users' message cannot be read any more: %v", err)
	}
	d, err := e.msgs.Draft(other, e.vars["{otherDraft}"])
	if err != nil || d.Subject != ottoPlan.subject || len(d.Attachments) != 1 || d.Attachments[0].ID != e.vars["{otherDraftAtt}"] {
		r.errorf("the other user's draft changed: %q, %d files, %v", d.Subject, len(d.Attachments), err)
	}
}

// mineNotTrashed checks that the session's own message is not in its trash.
func mineNotTrashed(e *authzEnv, res *authzResult, r *authzReport) {
	uid, id := res.rep.Replace("{as}"), res.rep.Replace("{mine}")
	if e.inFolder(uid, message.Trash, id) {
		r.errorf("a refused request moved the user's own message to the trash")
	}
}

// mailRoutes are the rows of the webmail routes of routes.go, in its order:
// every fully signed-in user reaches their own mailbox; the others are
// sent to sign in, or further, as signedIn does.
func mailRoutes() []authzRoute {
	const get, post = http.MethodGet, http.MethodPost
	full := []string{asGuest, asProfessional, asAuditor, asAdmin}
	recipient := func(s string) bool { return s != asProfessional } // of their {mine}; the professional sent it
	route := func(method, path string, form url.Values, forFull func(s string) authzOutcome) authzRoute {
		by := map[string]authzOutcome{
			asAnonymous:    seeOther("/signin?next={next}"),
			asEnrolling:    seeOther("/signin/enrol"),
			asSecondFactor: seeOther("/signin/code"),
		}
		if method == post {
			by[asAnonymous] = failsWith(http.StatusUnauthorized, "Your session has ended. Sign in again.")
		}
		for _, s := range full {
			by[s] = forFull(s)
		}
		return authzRoute{method: method, path: path, form: form, by: by}
	}
	same := func(o authzOutcome) func(string) authzOutcome { return func(string) authzOutcome { return o } }
	opened := auditEv("user:{as}", "message.open", "message/{mine}", "remote_ip", authzIP)
	downloaded := auditEv("user:{as}", "attachment.download", "message/{mine}", "attachment", "{mineAtt}", "remote_ip", authzIP)

	prefsForm := vals("date_format", "iso", "clock", "24", "week_start", "monday", "time_zone", "UTC", "language", "en",
		"signature", "Kind regards, {role}")
	events := route(get, "/mail/events", nil, same(showsPage([]string{"event: hello\ndata: {}\n\n"}, "{mineSubject}", "{mineBody}").
		and(func(_ *authzEnv, res *authzResult, r *authzReport) {
			if ct := res.rec.Header().Get("Content-Type"); ct != "text/event-stream" {
				r.errorf("the event stream's Content-Type = %q", ct)
			}
			if !strings.HasPrefix(res.body, "event: hello\n") {
				r.errorf("the stream does not begin with the hello event: %q", res.body)
			}
		})))
	events.stream = true

	return []authzRoute{
		route(get, "/preferences", nil, same(showsPage([]string{"How dates and times are shown to you", `name="time_zone"`, "<option selected>UTC</option>"},
			"There is nothing", authzCSRFMessage))),
		route(post, "/preferences", prefsForm, same(seeOther("/preferences?done=Preferences+saved.").
			and(func(e *authzEnv, res *authzResult, r *authzReport) {
				p, err := e.loadPrefs(res.rep.Replace("{as}"))
				if want := res.rep.Replace("Kind regards, {role}"); err != nil || p.Signature != want || p.TimeZone != "UTC" {
					r.errorf("the saved preferences: %+v %v", p, err)
				}
			}))),
		route(get, "/mail", nil, same(seeOther("/mail/inbox"))),
		route(get, "/mail/compose", nil, same(showsPage([]string{`id="composeform"`, `name="draft" id="draft" value=""`},
			authzMsgNotFound, authzCSRFMessage))),
		route(post, "/mail/compose", vals("do", "save", "subject", "Notes of {role}", "to", "", "body", "<p>notes</p>"),
			same(showsPage([]string{"Draft saved.", `value="Notes of {role}"`}, authzMsgNotFound, authzCSRFMessage).
				and(func(e *authzEnv, res *authzResult, r *authzReport) {
					if got := e.draftsTitled(res.rep.Replace("{as}"), res.rep.Replace("Notes of {role}")); len(got) != 1 {
						r.errorf("the user has %d drafts of that subject, want 1", len(got))
					}
				}))),
		route(post, "/mail/autosave", vals("subject", "Autosaved by {role}", "body", "typing"),
			same(showsPage([]string{`"id":"m`, `"saved":`}, `"error"`).
				and(func(e *authzEnv, res *authzResult, r *authzReport) {
					var got struct{ ID string }
					if err := json.Unmarshal([]byte(res.body), &got); err != nil {
						r.errorf("autosave answered %q: %v", res.body, err)
						return
					}
					if d, err := e.msgs.Draft(res.rep.Replace("{as}"), got.ID); err != nil || d.Subject != res.rep.Replace("Autosaved by {role}") {
						r.errorf("the autosaved draft %s: %q %v", got.ID, d.Subject, err)
					}
				}))),
		route(post, "/mail/bulk", vals("action", "read", "id", "{mine}", "back", "/mail/{mineFolder}"),
			same(seeOther("/mail/{mineFolder}?done=Marked+as+read."))),
		events,
		route(get, "/mail/m/{mine}", nil, func(s string) authzOutcome {
			if recipient(s) {
				return showsPage([]string{"{mineSubject}", "{mineAttName}", `src="/mail/m/{mine}/body"`}, "{mineBody}", `id="slip"`, `id="recall"`).
					leaves(opened)
			}
			return showsPage([]string{"{mineSubject}", "{mineAttName}", `id="slip"`, "Gus Guest", `id="recall"`}, "{mineBody}").
				leavesNo(auditEv("user:{as}", "message.open", "message/{mine}"))
		}),
		route(post, "/mail/m/{mine}", vals("action", "star"), same(seeOther("/mail/m/{mine}?done=Starred."))),
		route(get, "/mail/m/{mine}/body", nil, same(showsPage([]string{"{mineBody}"}, "<script", "{mineSubject}", "<form"))),
		route(get, "/mail/m/{mine}/print", nil, same(showsPage([]string{`id="printview"`, "{mineSubject}", "{mineAttName}"}, "{mineBody}"))),
		route(get, "/mail/m/{mine}/a/{mineAtt}", nil, func(s string) authzOutcome {
			o := showsPage([]string{"{mineAttBytes}"}, "<html").and(func(_ *authzEnv, res *authzResult, r *authzReport) {
				h := res.rec.Header()
				if cd, want := h.Get("Content-Disposition"), res.rep.Replace(`attachment; filename="{mineAttName}"`); !strings.HasPrefix(cd, want) {
					r.errorf("Content-Disposition = %q, want %s…", cd, want)
				}
				if res.body != res.rep.Replace("{mineAttBytes}") {
					r.errorf("the download is %q, not the file", res.body)
				}
				if ct := h.Get("Content-Type"); ct != "application/pdf" && ct != "text/plain; charset=utf-8" {
					r.errorf("the download's Content-Type = %q", ct)
				}
			})
			if recipient(s) {
				return o.leaves(downloaded)
			}
			return o.leavesNo(auditEv("user:{as}", "attachment.download", "message/{mine}"))
		}),
		route(get, "/mail/{mineFolder}", nil, same(showsPage([]string{"{mineSubject}", `href="/mail/m/{mine}"`, `id="bulk"`},
			"There is nothing", authzCSRFMessage))),
	}
}

// mailSpecialRows are the webmail scenarios: other users' messages and
// drafts, the administrator who is no participant, a recalled message, the
// body frame, CSRF, sending as a guest, unknown folders and messages.
func mailSpecialRows() []authzCase {
	const get, post = http.MethodGet, http.MethodPost
	var rows []authzCase

	// Another user's objects: the other user's message (to a fourth user)
	// and draft. Every fully signed-in session gets the one not-found
	// answer, the same as for a message that does not exist, and nothing of
	// the content; nothing changes and nothing is audited as theirs.
	otherNo := []auditWant{
		auditEv("user:{as}", "message.open", "message/{otherMsg}"),
		auditEv("user:{as}", "attachment.download", "message/{otherMsg}"),
		auditEv("user:{as}", "message.recall", "message/{otherMsg}"),
		auditEv("user:{as}", "message.purge", "mailbox/{as}"),
	}
	others := []struct {
		what, method, path string
		form               url.Values
		check              func(*authzEnv, *authzResult, *authzReport)
	}{
		{"read", get, "/mail/m/{otherMsg}", nil, nil},
		{"read with images", get, "/mail/m/{otherMsg}?images=1", nil, nil},
		{"the body frame", get, "/mail/m/{otherMsg}/body", nil, nil},
		{"print", get, "/mail/m/{otherMsg}/print", nil, nil},
		{"download", get, "/mail/m/{otherMsg}/a/{otherAtt}", nil, nil},
		{"reply", post, "/mail/m/{otherMsg}", vals("action", "reply"), nil},
		{"forward", post, "/mail/m/{otherMsg}", vals("action", "forward"), nil},
		{"recall", post, "/mail/m/{otherMsg}", vals("action", "recall", "reason", "mine now", "notify", "on"), nil},
		{"trash", post, "/mail/m/{otherMsg}", vals("action", "trash"), nil},
		{"star", post, "/mail/m/{otherMsg}", vals("action", "star"), nil},
		{"open the draft", get, "/mail/compose?draft={otherDraft}", nil, nil},
		{"save over the draft", post, "/mail/compose", vals("draft", "{otherDraft}", "do", "save", "subject", "Hijacked by {role}"), nil},
		{"send the draft", post, "/mail/compose", vals("draft", "{otherDraft}", "do", "send", "to", "pro@clinic.test", "subject", "Hijacked by {role}"), nil},
		{"remove the draft's file", post, "/mail/compose", vals("draft", "{otherDraft}", "do", "remove:{otherDraftAtt}"), nil},
		{"autosave over the draft", post, "/mail/autosave", vals("draft", "{otherDraft}", "subject", "Hijacked by {role}"), nil},
		{"bulk, with one's own", post, "/mail/bulk", vals("action", "trash", "id", "{mine}", "id", "{otherMsg}", "back", "/mail/inbox"), mineNotTrashed},
		{"bulk purge", post, "/mail/bulk", vals("action", "purge", "id", "{otherDraft}", "back", "/mail/drafts"), nil},
	}
	for _, s := range []string{asGuest, asProfessional, asAuditor, asAdmin} {
		for _, o := range others {
			check := othersIntact
			if o.check != nil {
				check = func(e *authzEnv, res *authzResult, r *authzReport) { othersIntact(e, res, r); o.check(e, res, r) }
			}
			rows = append(rows, authzCase{name: fmt.Sprintf("mail: another user's message, %s, as %s", o.what, s), as: s,
				method: o.method, path: o.path, form: o.form, status: http.StatusNotFound, want: []string{authzMsgNotFound},
				noAudit: otherNo, check: check})
		}
	}
	rows = append(rows,
		authzCase{name: "mail: a message that does not exist", as: asProfessional, method: get, path: "/mail/m/mnosuchmessage2345672",
			status: 404, want: []string{authzMsgNotFound}},
		authzCase{name: "mail: a malformed message id", as: asProfessional, method: get, path: "/mail/m/..%2f..%2fetc/body",
			status: 404, want: []string{"There is no"}},
	)

	// The administrator and the auditor are no participants of the guest's
	// message: no content for them either.
	guestNo := []string{labResults.subject, "lab results are attached", labResults.file.name, labResults.file.content}
	for _, s := range []string{asAdmin, asAuditor} {
		for _, p := range []string{"/mail/m/{msgA}", "/mail/m/{msgA}/body", "/mail/m/{msgA}/print", "/mail/m/{msgA}/a/{attA}"} {
			rows = append(rows, authzCase{name: fmt.Sprintf("mail: the guest's message, GET %s, as %s", p, s), as: s, method: get, path: p,
				status: 404, want: []string{authzMsgNotFound}, wantNot: guestNo,
				noAudit: []auditWant{auditEv("user:{as}", "message.open", "message/{msgA}"), auditEv("user:{as}", "attachment.download", "message/{msgA}")}})
		}
	}

	// The recipient reads and downloads.
	rows = append(rows,
		authzCase{name: "mail: the guest opens their message", as: asGuest, method: get, path: "/mail/m/{msgA}", status: 200,
			want: []string{labResults.subject, "Pat Pro", labResults.file.name, `href="/mail/m/{msgA}/a/{attA}"`}, wantNot: []string{"4711", `id="slip"`},
			audit: []auditWant{auditEv("user:{guest}", "message.open", "message/{msgA}", "remote_ip", authzIP)},
			check: func(e *authzEnv, _ *authzResult, r *authzReport) {
				// The sender asked to be told of the first opening: the
				// notice links to the slip and carries no content.
				e.mail.mu.Lock()
				defer e.mail.mu.Unlock()
				found := false
				for _, n := range e.mail.messageNotices {
					if n.Kind == "first_open" && n.To == "pro@clinic.test" && strings.HasSuffix(n.Link, message.Link(e.vars["{msgA}"])+"#slip") {
						found = true
						if n.Subject != "" {
							r.errorf("the first-opening notice carries the subject %q", n.Subject)
						}
					}
				}
				if !found {
					r.errorf("the sender was not told of the first opening")
				}
			}},
		authzCase{name: "mail: the guest downloads the file", as: asGuest, method: get, path: "/mail/m/{msgA}/a/{attA}", status: 200,
			want: []string{labResults.file.content}, wantNot: []string{"<html"},
			audit: []auditWant{auditEv("user:{guest}", "attachment.download", "message/{msgA}", "attachment", "{attA}", "remote_ip", authzIP)},
			check: func(_ *authzEnv, res *authzResult, r *authzReport) {
				h := res.rec.Header()
				if cd := h.Get("Content-Disposition"); !strings.HasPrefix(cd, `attachment; filename="results-gus.pdf"`) {
					r.errorf("Content-Disposition = %q", cd)
				}
				if ct := h.Get("Content-Type"); ct != "application/pdf" {
					r.errorf("Content-Type = %q", ct)
				}
			}},
		authzCase{name: "mail: a part of the file (Range)", as: asGuest, method: get, path: "/mail/m/{msgA}/a/{attA}",
			header: map[string]string{"Range": "bytes=0-7"}, status: http.StatusPartialContent, want: []string{"%PDF-1.4"},
			wantNot: []string{"the results of Gus"}},
		authzCase{name: "mail: an attachment that is not the message's", as: asGuest, method: get, path: "/mail/m/{msgA}/a/{attB}",
			status: 404, wantNot: []string{teamNotes.file.content}},
		authzCase{name: "mail: the sender's own draft", as: asProfessional, method: get, path: "/mail/compose?draft={proDraft}", status: 200,
			want: []string{`value="Unsent draft of Pat"`, "Pat is still writing."}, wantNot: []string{authzMsgNotFound}},
		authzCase{name: "mail: a draft does not open as a message", as: asProfessional, method: get, path: "/mail/m/{proDraft}",
			status: 404, want: []string{authzMsgNotFound}, wantNot: []string{"Pat is still writing"}},
	)
	for _, s := range []string{asGuest, asAdmin} {
		rows = append(rows, authzCase{name: "mail: the professional's draft, as " + s, as: s, method: get, path: "/mail/compose?draft={proDraft}",
			status: 404, want: []string{authzMsgNotFound}, wantNot: []string{"Unsent draft of Pat", "Pat is still writing"}})
	}
	rows = append(rows,
		authzCase{name: "mail: the guest cannot recall the sender's message", as: asGuest, method: post, path: "/mail/m/{msgA}",
			form: vals("action", "recall"), status: 404, want: []string{authzMsgNotFound},
			noAudit: []auditWant{auditEv("user:{guest}", "message.recall", "message/{msgA}")},
			check: func(e *authzEnv, _ *authzResult, r *authzReport) {
				if _, _, err := e.msgs.Body(e.users[asGuest].ID, e.vars["{msgA}"]); err != nil {
					r.errorf("the message cannot be read after the guest's refused recall: %v", err)
				}
			}},
		authzCase{name: "mail: the guest replies", as: asGuest, method: post, path: "/mail/m/{msgA}", form: vals("action", "reply"),
			status: 303, location: "/mail/compose?draft=m*"},
		authzCase{name: "mail: the sender recalls a message", as: asProfessional, method: post, path: "/mail/m/{recallMe}",
			form: vals("action", "recall", "reason", "Not for you", "notify", "on"), status: 303,
			location: withDone("/mail/m/{recallMe}", "The message was recalled. Its recipients can no longer read it."),
			audit:    []auditWant{auditEv("user:{professional}", "message.recall", "message/{recallMe}", "recipients", "1", "reason_given", "yes")},
			check: func(e *authzEnv, _ *authzResult, r *authzReport) {
				if _, _, err := e.msgs.Body(e.users[asGuest].ID, e.vars["{recallMe}"]); err == nil {
					r.errorf("the recipient still reads the recalled message")
				}
			}},
	)

	// The sender's restrictions: the recipient reads here only; the sender
	// keeps everything.
	rows = append(rows,
		authzCase{name: "mail: a restricted message", as: asGuest, method: get, path: "/mail/m/{restricted}", status: 200,
			want:    []string{restricted.subject, "no print or download", restricted.file.name, "The sender does not allow downloads of these files."},
			wantNot: []string{`href="/mail/m/{restricted}/a/`, `id="reply"`, `id="forward"`, `id="print"`}},
		authzCase{name: "mail: a restricted message's file", as: asGuest, method: get, path: "/mail/m/{restricted}/a/{restrictedAtt}",
			status: 403, want: []string{"The sender does not allow downloads of this message&#39;s files."}, wantNot: []string{restricted.file.content},
			noAudit: []auditWant{auditEv("user:{guest}", "attachment.download", "message/{restricted}")}},
		authzCase{name: "mail: a restricted message's print view", as: asGuest, method: get, path: "/mail/m/{restricted}/print",
			status: 403, want: []string{"The sender does not allow this message to be printed."}},
		authzCase{name: "mail: reply to a restricted message", as: asGuest, method: post, path: "/mail/m/{restricted}",
			form: vals("action", "reply"), status: 403, want: []string{"The sender does not allow replies to this message."}},
		authzCase{name: "mail: forward a restricted message", as: asGuest, method: post, path: "/mail/m/{restricted}",
			form: vals("action", "forward"), status: 403, want: []string{"The sender does not allow this message to be forwarded."}},
		authzCase{name: "mail: the sender downloads their restricted file", as: asProfessional, method: get, path: "/mail/m/{restricted}/a/{restrictedAtt}",
			status: 200, want: []string{restricted.file.content}, wantNot: []string{"<html"}},
	)

	// A recalled message: the notice and the kept subject, no content, for
	// the recipient and the sender alike.
	for _, s := range []string{asGuest, asProfessional} {
		opened := []auditWant{auditEv("user:{guest}", "message.open", "message/{recalled}", "gone", "recalled")}
		if s == asProfessional {
			opened = nil
		}
		rows = append(rows,
			authzCase{name: "mail: a recalled message, as " + s, as: s, method: get, path: "/mail/m/{recalled}", status: 200,
				want:    []string{"Recalled by the sender", "Reason: Sent to the wrong person", wrongResults.subject, `id="gone"`},
				wantNot: []string{`src="/mail/m/{recalled}/body"`, `/a/{recalledAtt}`, `id="reply"`, `id="print"`}, audit: opened},
			authzCase{name: "mail: a recalled message's body, as " + s, as: s, method: get, path: "/mail/m/{recalled}/body",
				status: 404, want: []string{authzMsgGone}},
			authzCase{name: "mail: a recalled message's file, as " + s, as: s, method: get, path: "/mail/m/{recalled}/a/{recalledAtt}",
				status: 404, want: []string{authzMsgGone},
				noAudit: []auditWant{auditEv("user:{as}", "attachment.download", "message/{recalled}")}},
			authzCase{name: "mail: a recalled message's print view, as " + s, as: s, method: get, path: "/mail/m/{recalled}/print",
				status: 404, want: []string{authzMsgGone}, wantNot: []string{"does not allow"}},
		)
	}
	rows = append(rows,
		authzCase{name: "mail: recall a recalled message", as: asProfessional, method: post, path: "/mail/m/{recalled}",
			form: vals("action", "recall"), status: 409, want: []string{"This message was recalled or has expired already."}},
		authzCase{name: "mail: reply to a recalled message", as: asGuest, method: post, path: "/mail/m/{recalled}",
			form: vals("action", "reply"), status: 404, want: []string{authzMsgGone}},
	)

	// The body frame: its own policy, remote images only when asked.
	rows = append(rows,
		authzCase{name: "mail: the body frame with remote images", as: asGuest, method: get, path: "/mail/m/{msgA}/body?images=1", status: 200,
			want: []string{"Your lab results are attached, Gus."}, wantNot: []string{"<script"},
			check: func(_ *authzEnv, res *authzResult, r *authzReport) {
				if csp := res.rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "img-src data: https:") {
					r.errorf("with images=1 the frame's policy is %q", csp)
				}
			}},
		authzCase{name: "mail: the reading page is not framable", as: asGuest, method: get, path: "/mail/m/{msgA}", status: 200,
			want: []string{`sandbox="allow-popups allow-popups-to-escape-sandbox"`}, wantNot: []string{"allow-scripts", "allow-same-origin"},
			check: func(_ *authzEnv, res *authzResult, r *authzReport) {
				if csp := res.rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") {
					r.errorf("the reading page's policy is %q", csp)
				}
			}},
	)

	// CSRF: every webmail form refuses a request without the token or from
	// another site, in the appliance's words, and changes nothing.
	forged := []struct {
		path  string
		form  url.Values
		check func(*authzEnv, *authzResult, *authzReport)
	}{
		{"/mail/compose", vals("do", "save", "subject", "Forged draft"), func(e *authzEnv, _ *authzResult, r *authzReport) {
			if got := e.draftsTitled(e.users[asProfessional].ID, "Forged"); len(got) > 0 {
				r.errorf("a forged form saved drafts %q", got)
			}
		}},
		{"/mail/autosave", vals("subject", "Forged autosave"), func(e *authzEnv, _ *authzResult, r *authzReport) {
			if got := e.draftsTitled(e.users[asProfessional].ID, "Forged"); len(got) > 0 {
				r.errorf("a forged form saved drafts %q", got)
			}
		}},
		{"/mail/bulk", vals("action", "trash", "id", "{msgA}", "back", "/mail/sent"), mineNotTrashed},
		{"/mail/m/{msgA}", vals("action", "trash"), mineNotTrashed},
		{"/preferences", vals("date_format", "iso", "clock", "24", "week_start", "monday", "time_zone", "UTC", "language", "en", "signature", "Forged"),
			func(e *authzEnv, _ *authzResult, r *authzReport) {
				if p, _ := e.loadPrefs(e.users[asProfessional].ID); strings.HasPrefix(p.Signature, "Forged") {
					r.errorf("a forged form saved the signature")
				}
			}},
	}
	for _, f := range forged {
		for _, m := range []struct {
			name string
			mode csrfMode
		}{{"cross-site", csrfCrossSite}, {"no token", csrfNoHeader}, {"same-site without the token", csrfSameSite}, {"a wrong token", csrfWrongToken}} {
			rows = append(rows, authzCase{name: fmt.Sprintf("csrf: POST %s, %s", f.path, m.name), as: asProfessional, method: post,
				path: f.path, form: f.form, csrf: m.mode, status: 403, want: []string{authzCSRFMessage}, check: f.check})
		}
	}
	rows = append(rows,
		authzCase{name: "csrf: double-submit on the bulk form", as: asProfessional, method: post, path: "/mail/bulk",
			form: vals("action", "star", "id", "{msgA}", "back", "/mail/sent"), csrf: csrfDoubleSubmit, status: 303, location: "/mail/sent?done=Starred."},
		authzCase{name: "csrf: cross-site multipart compose", as: asProfessional, method: post, path: "/mail/compose", multipart: true,
			form: vals("do", "save", "subject", "Forged upload"), files: []authzFile{{field: "files", name: "forged.txt", contentType: "text/plain", content: "forged"}},
			csrf: csrfCrossSite, status: 403, want: []string{authzCSRFMessage}, check: func(e *authzEnv, _ *authzResult, r *authzReport) {
				if got := e.draftsTitled(e.users[asProfessional].ID, "Forged"); len(got) > 0 {
					r.errorf("a forged upload saved drafts %q", got)
				}
			}},
		authzCase{name: "mail: compose with a file", as: asProfessional, method: post, path: "/mail/compose", multipart: true,
			form:   vals("do", "save", "subject", "Draft with a file", "to", "guest@outside.test", "body", "<p>see the file</p>"),
			files:  []authzFile{{field: "files", name: "plan.txt", contentType: "text/plain", content: "the plan"}},
			status: 200, want: []string{"Draft saved.", "plan.txt", `value="Draft with a file"`}, wantNot: []string{authzMsgNotFound},
			check: func(e *authzEnv, res *authzResult, r *authzReport) {
				m := regexp.MustCompile(`name="draft" id="draft" value="(m[a-z2-7]{20})"`).FindStringSubmatch(res.body)
				if m == nil {
					r.errorf("the form does not name the new draft")
					return
				}
				if d, err := e.msgs.Draft(e.users[asProfessional].ID, m[1]); err != nil || len(d.Attachments) != 1 || d.Attachments[0].Name != "plan.txt" {
					r.errorf("the draft with a file: %+v %v", d.Attachments, err)
				}
			}},
		authzCase{name: "csrf: double-submit multipart compose", as: asProfessional, method: post, path: "/mail/compose", multipart: true,
			form:  vals("do", "save", "subject", "Legacy upload"),
			files: []authzFile{{field: "files", name: "legacy.txt", contentType: "text/plain", content: "from a browser without fetch metadata"}},
			csrf:  csrfDoubleSubmit, status: 200, want: []string{"Draft saved.", "legacy.txt"}, wantNot: []string{authzCSRFMessage}},
		authzCase{name: "csrf: multipart compose with a wrong token in the body", as: asProfessional, method: post, path: "/mail/compose", multipart: true,
			form:  vals("do", "save", "subject", "Forged upload"),
			files: []authzFile{{field: "files", name: "forged.txt", contentType: "text/plain", content: "forged"}},
			csrf:  csrfWrongToken, status: 403, want: []string{authzCSRFMessage}, wantNot: []string{"forged.txt"}},
		authzCase{name: "csrf: multipart to another route without the header", as: asProfessional, method: post, path: "/preferences", multipart: true,
			form: vals("signature", "forged"), csrf: csrfDoubleSubmit, status: 403, want: []string{authzCSRFMessage}},
	)

	// Sending: a guest writes only to staff they exchanged messages with.
	rows = append(rows,
		authzCase{name: "mail: a guest writes to someone they never exchanged with", as: asGuest, method: post, path: "/mail/compose",
			form:   vals("do", "send", "to", "other@clinic.test", "subject", "Hello Otto", "body", "<p>Hi</p>"),
			status: 422, want: []string{"You can write only to staff you have exchanged messages with, or reply to a message: other@clinic.test.",
				`value="other@clinic.test"`, `class="field invalid"`},
			check: func(e *authzEnv, _ *authzResult, r *authzReport) {
				p, _ := e.msgs.List(e.users["other"].ID, message.Inbox, "")
				for _, it := range p.Items {
					if it.From.UserID == e.users[asGuest].ID {
						r.errorf("the guest's message reached other@: %q", it.Subject)
					}
				}
			}},
		authzCase{name: "mail: a guest writes to the professional they exchanged with", as: asGuest, method: post, path: "/mail/compose",
			form:   vals("do", "send", "to", "pro@clinic.test", "subject", "Question from Gus", "body", "<p>A question.</p>"),
			status: 303, location: "/mail/m/m*",
			audit: []auditWant{auditEv("user:{guest}", "message.send", "message/m*", "recipients", "1")}},
	)

	// Folders, the welcome text, preferences.
	rows = append(rows,
		authzCase{name: "networks: the webmail stays open", restricted: true, as: asAdmin, method: get, path: "/mail/inbox", status: 200,
			want: []string{teamNotes.subject}, wantNot: []string{"There is nothing"}},
		authzCase{name: "mail: an unknown folder", as: asProfessional, method: get, path: "/mail/nosuch", status: 404,
			want: []string{"There is nothing at this address."}},
		authzCase{name: "mail: an unknown folder, anonymous", as: asAnonymous, method: get, path: "/mail/nosuch", status: 303,
			location: "/signin?next=%2Fmail%2Fnosuch"},
		authzCase{name: "mail: the welcome text until it is seen", as: asGuest, method: get, path: "/mail/inbox", status: 200,
			want: []string{authzWelcome, `value="welcome_seen"`}, wantNot: []string{"There is nothing"}},
		authzCase{name: "mail: the welcome text is seen", as: asAuditor, method: post, path: "/mail/bulk",
			form: vals("action", "welcome_seen", "back", "/mail/archive"), status: 303, location: "/mail/archive",
			check: func(e *authzEnv, _ *authzResult, r *authzReport) {
				if p, err := e.loadPrefs(e.users[asAuditor].ID); err != nil || !p.WelcomeSeen {
					r.errorf("the welcome text is not marked seen: %v", err)
				}
			}},
		authzCase{name: "mail: bulk back to another site", as: asProfessional, method: post, path: "/mail/bulk",
			form: vals("action", "star", "id", "{msgA}", "back", "//evil.example/"), status: 303, location: "/?done=Starred."},
		authzCase{name: "mail: bulk without an action", as: asProfessional, method: post, path: "/mail/bulk",
			form: vals("action", "nonsense", "id", "{msgA}"), status: 400, want: []string{"Choose what to do with the selected messages."}},
		authzCase{name: "prefs: an unknown time zone", as: asProfessional, method: post, path: "/preferences",
			form:   vals("date_format", "iso", "clock", "24", "week_start", "monday", "time_zone", "../../etc/passwd", "language", "en"),
			status: 422, want: []string{"Choose a time zone from the list."}},
	)
	return rows
}
