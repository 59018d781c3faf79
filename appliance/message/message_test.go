package message

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sealpost/sealpost/appliance/account"
	"github.com/sealpost/sealpost/appliance/fault"
	"github.com/sealpost/sealpost/appliance/store"
)

// file is an attachment to put on a draft.
type file struct {
	name, contentType string
	data              []byte
}

// randomBytes is n reproducible bytes that are not all alike.
func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// draft saves d as a draft of from's with the files attached and returns
// the draft as Send wants it.
func (e *env) draft(t testing.TB, from account.User, d Draft, files ...file) Draft {
	t.Helper()
	ctx := context.Background()
	id, err := e.svc.SaveDraft(ctx, from.ID, d)
	if err != nil {
		t.Fatalf("save draft: %v", err)
	}
	for _, f := range files {
		if _, err := e.svc.AddAttachment(ctx, from.ID, id, f.name, f.contentType, bytes.NewReader(f.data)); err != nil {
			t.Fatalf("attach %s: %v", f.name, err)
		}
	}
	d.ID = id
	return d
}

// download opens an attachment and reads all of it.
func (e *env) download(uid, id, attID string) ([]byte, Attachment, error) {
	rd, a, err := e.svc.OpenAttachment(context.Background(), uid, id, attID, "192.0.2.1")
	if err != nil {
		return nil, a, err
	}
	defer rd.Close()
	b, err := io.ReadAll(rd)
	return b, a, err
}

// listAll walks every page of a folder.
func (e *env) listAll(t testing.TB, u account.User, f Folder) []Item {
	t.Helper()
	var out []Item
	cursor := ""
	for range 1000 {
		p, err := e.svc.List(u.ID, f, cursor)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p.Items...)
		if p.Older == "" {
			return out
		}
		cursor = p.Older
	}
	t.Fatal("the pages do not end")
	return nil
}

// checkCounts compares the kept counts with what the folders hold.
func (e *env) checkCounts(t testing.TB, u account.User) {
	t.Helper()
	c := e.counts(t, u)
	for _, f := range Folders {
		items := e.listAll(t, u, f)
		unread := 0
		for _, it := range items {
			if !it.Read {
				unread++
			}
		}
		if got, want := c[f], (Counts{Total: len(items), Unread: unread}); got != want {
			t.Errorf("%s %s: counts %+v, the folder holds %+v", u.Email, f, got, want)
		}
	}
}

func ids(items []Item) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.ID
	}
	return out
}

func TestSendOpenRoundTrip(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.set(t, "notifications.disclaimer", "Confidential & privileged.\nDo not forward.")
	alice := e.pro(t, "alice@clinic.test", "Alice Sender")
	bob := e.pro(t, "bob@clinic.test", "Bob To")
	carol := e.pro(t, "carol@clinic.test", "Carol Cc")
	dave := e.pro(t, "dave@clinic.test", "Dave Bcc")
	erin := e.guest(t, "erin@outside.test", "Erin Bcc")

	tests := []struct {
		name, format, body string
		want               []string // in the body as read
		wantNot            []string
		wantSuffix         string
	}{
		{
			name: "html", format: FormatHTML,
			body:       `<p>Hello <b>Bob</b>, see <a href="https://example.org/x">this</a>.</p><script>alert(1)</script><img src=x onerror="alert(2)">`,
			want:       []string{"<b>Bob</b>", "https://example.org/x"},
			wantNot:    []string{"<script", "alert(1)", "onerror", "alert(2)"},
			wantSuffix: `<hr><p><small>Confidential &amp; privileged.<br>Do not forward.</small></p>`,
		},
		{
			name: "text", format: FormatText,
			body:       "Line one\r\n<b>not bold</b> & x < y",
			want:       []string{"Line one\n<b>not bold</b> & x < y"},
			wantSuffix: "\n\n-- \nConfidential & privileged.\nDo not forward.",
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.clock.Add(time.Minute) // the newest is listed first
			subject := "Results " + tt.name
			id := e.send(t, alice, Draft{To: "Bob To <BOB@clinic.test>", Cc: "carol@clinic.test", Bcc: "dave@clinic.test; erin@outside.test",
				Subject: subject, Body: tt.body, Format: tt.format})

			// The sender has it in Sent, read; each recipient unread in the inbox.
			sent, err := e.svc.List(alice.ID, Sent, "")
			if err != nil || len(sent.Items) != i+1 || sent.Items[0].ID != id || !sent.Items[0].Read || sent.Items[0].Subject != subject {
				t.Fatalf("alice's Sent: %+v %v", sent.Items, err)
			}
			for _, u := range []account.User{bob, carol, dave, erin} {
				in, err := e.svc.List(u.ID, Inbox, "")
				if err != nil || len(in.Items) != i+1 || in.Items[0].ID != id || in.Items[0].Read {
					t.Fatalf("%s's inbox: %+v %v", u.Email, in.Items, err)
				}
				if got, want := in.Items[0].From.Address, "alice@clinic.test"; got != want {
					t.Errorf("from %s", got)
				}
			}
			e.wantCounts(t, bob, map[Folder]Counts{Inbox: {i + 1, 1}})

			// Who sees which recipients.
			visible := []struct {
				u              account.User
				role           string
				to, cc, bcc    []string
				listRecipients int
			}{
				{alice, RoleSender, []string{"bob@clinic.test"}, []string{"carol@clinic.test"}, []string{"dave@clinic.test", "erin@outside.test"}, 4},
				{bob, RoleTo, []string{"bob@clinic.test"}, []string{"carol@clinic.test"}, nil, 2},
				{carol, RoleCc, []string{"bob@clinic.test"}, []string{"carol@clinic.test"}, nil, 2},
				{dave, RoleBcc, []string{"bob@clinic.test"}, []string{"carol@clinic.test"}, []string{"dave@clinic.test"}, 3},
				{erin, RoleBcc, []string{"bob@clinic.test"}, []string{"carol@clinic.test"}, []string{"erin@outside.test"}, 3},
			}
			for _, w := range visible {
				v := e.open(t, w.u, id)
				if v.Subject != subject || v.Role != w.role || v.Format != tt.format || v.Gone != "" || v.From.Address != "alice@clinic.test" {
					t.Errorf("%s: subject %q role %q format %q gone %q", w.u.Email, v.Subject, v.Role, v.Format, v.Gone)
				}
				if !slices.Equal(addresses(v.To), w.to) || !slices.Equal(addresses(v.Cc), w.cc) || !slices.Equal(addresses(v.Bcc), w.bcc) {
					t.Errorf("%s sees to %v cc %v bcc %v, want %v %v %v", w.u.Email, addresses(v.To), addresses(v.Cc), addresses(v.Bcc), w.to, w.cc, w.bcc)
				}
				if v.To[0].Name != "Bob To" {
					t.Errorf("the name typed is lost: %+v", v.To[0])
				}
				folder := Inbox
				if w.role == RoleSender {
					folder = Sent
				}
				items, err := e.svc.List(w.u.ID, folder, "")
				if err != nil {
					t.Fatal(err)
				}
				if n := len(items.Items[0].To); n != w.listRecipients {
					t.Errorf("%s's list line shows %d recipients, want %d: %v", w.u.Email, n, w.listRecipients, addresses(items.Items[0].To))
				}
				format, body, err := e.svc.Body(w.u.ID, id)
				if err != nil {
					t.Fatalf("body for %s: %v", w.u.Email, err)
				}
				if format != tt.format {
					t.Errorf("format %q", format)
				}
				for _, s := range tt.want {
					if !strings.Contains(body, s) {
						t.Errorf("%s: the body %q lacks %q", tt.name, body, s)
					}
				}
				for _, s := range tt.wantNot {
					if strings.Contains(body, s) {
						t.Errorf("%s: the body %q keeps %q", tt.name, body, s)
					}
				}
				if !strings.HasSuffix(body, tt.wantSuffix) {
					t.Errorf("%s: the body %q does not end with the disclaimer %q", tt.name, body, tt.wantSuffix)
				}
			}
			// Opening marked it read: the unread count went down.
			e.wantCounts(t, bob, map[Folder]Counts{Inbox: {i + 1, 0}})
			e.wantCounts(t, alice, map[Folder]Counts{Sent: {i + 1, 0}})
		})
	}
	for _, u := range []account.User{alice, bob, carol, dave, erin} {
		e.checkCounts(t, u)
	}
}

func TestCountsFollowFolders(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.pro(t, "alice@clinic.test", "Alice")
	bob := e.pro(t, "bob@clinic.test", "Bob")
	var m [3]string
	for i := range m {
		e.clock.Add(time.Minute)
		m[i] = e.send(t, alice, Draft{To: "bob@clinic.test", Body: "<p>hi</p>"})
	}
	steps := []struct {
		name   string
		do     func(t *testing.T)
		counts map[Folder]Counts
	}{
		{"three new", func(*testing.T) {}, map[Folder]Counts{Inbox: {3, 3}}},
		{"open one", func(t *testing.T) { e.open(t, bob, m[0]) }, map[Folder]Counts{Inbox: {3, 2}}},
		{"open it again", func(t *testing.T) { e.open(t, bob, m[0]) }, map[Folder]Counts{Inbox: {3, 2}}},
		{"mark unread", func(t *testing.T) { e.apply(t, bob, MarkUnread, m[0]) }, map[Folder]Counts{Inbox: {3, 3}}},
		{"mark read, twice", func(t *testing.T) { e.apply(t, bob, MarkRead, m[0], m[0]) }, map[Folder]Counts{Inbox: {3, 2}}},
		{"star", func(t *testing.T) { e.apply(t, bob, Star, m[0]) }, map[Folder]Counts{Inbox: {3, 2}}},
		{"archive the read one", func(t *testing.T) { e.apply(t, bob, MoveArch, m[0]) }, map[Folder]Counts{Inbox: {2, 2}, Archive: {1, 0}}},
		{"trash an unread one", func(t *testing.T) { e.apply(t, bob, MoveTrash, m[1]) }, map[Folder]Counts{Inbox: {1, 1}, Archive: {1, 0}, Trash: {1, 1}}},
		{"trash from the archive", func(t *testing.T) { e.apply(t, bob, MoveTrash, m[0]) }, map[Folder]Counts{Inbox: {1, 1}, Trash: {2, 1}}},
		{"trash again does nothing", func(t *testing.T) { e.apply(t, bob, MoveTrash, m[0]) }, map[Folder]Counts{Inbox: {1, 1}, Trash: {2, 1}}},
		{"restore goes back to the archive", func(t *testing.T) { e.apply(t, bob, Restore, m[0]) }, map[Folder]Counts{Inbox: {1, 1}, Archive: {1, 0}, Trash: {1, 1}}},
		{"open in the trash", func(t *testing.T) { e.open(t, bob, m[1]) }, map[Folder]Counts{Inbox: {1, 1}, Archive: {1, 0}, Trash: {1, 0}}},
		{"purge", func(t *testing.T) { e.apply(t, bob, Purge, m[1]) }, map[Folder]Counts{Inbox: {1, 1}, Archive: {1, 0}}},
		{"back to the inbox", func(t *testing.T) { e.apply(t, bob, MoveInbox, m[0]) }, map[Folder]Counts{Inbox: {2, 1}}},
	}
	for _, s := range steps {
		s.do(t)
		e.wantCounts(t, bob, s.counts)
		if t.Failed() {
			t.Fatalf("after %q", s.name)
		}
	}
	e.checkCounts(t, bob)

	// The purged message is gone for bob only.
	if _, err := e.svc.Open(context.Background(), bob.ID, m[1], ""); fault.KindOf(err) != fault.NotFound {
		t.Errorf("bob opens a purged message: %v", err)
	}
	if v := e.open(t, alice, m[1]); v.Gone != "" || v.Subject == "" {
		t.Errorf("alice's copy after bob purged: %+v", v)
	}
	it := e.listAll(t, bob, Inbox)
	if len(it) != 2 || it[0].ID != m[2] || it[1].ID != m[0] || !it[1].Starred || !it[1].Read {
		t.Errorf("bob's inbox: %+v", it)
	}

	// What may not be done changes nothing.
	refused := []struct {
		name string
		u    account.User
		a    Action
		ids  []string
		kind fault.Kind
	}{
		{"purge outside the trash", bob, Purge, []string{m[0]}, fault.Invalid},
		{"a sent message to the inbox", alice, MoveInbox, []string{m[0]}, fault.Invalid},
		{"no ids", bob, MarkRead, nil, fault.Invalid},
		{"too many ids", bob, MarkRead, slices.Repeat([]string{m[0]}, maxBulk+1), fault.Invalid},
		{"one id not found", bob, MarkRead, []string{m[2], m[1]}, fault.NotFound},
	}
	for _, r := range refused {
		err := e.svc.Apply(context.Background(), r.u.ID, r.a, r.ids)
		wantKind(t, r.name, err, r.kind)
	}
	e.wantCounts(t, bob, map[Folder]Counts{Inbox: {2, 1}})
	e.wantCounts(t, alice, map[Folder]Counts{Sent: {3, 0}})

	// The sender archives and trashes their own copy; restore brings it back to Sent.
	e.apply(t, alice, MoveArch, m[0])
	e.apply(t, alice, MoveTrash, m[1], m[2])
	e.wantCounts(t, alice, map[Folder]Counts{Archive: {1, 0}, Trash: {2, 0}})
	e.apply(t, alice, Restore, m[1], m[2])
	e.wantCounts(t, alice, map[Folder]Counts{Archive: {1, 0}, Sent: {2, 0}})
	if n := len(e.events(t, "message.purge")); n != 1 {
		t.Errorf("%d message.purge events", n)
	}
	e.checkCounts(t, alice)
}

func TestAuthorization(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	alice := e.pro(t, "alice@clinic.test", "Alice")
	bob := e.pro(t, "bob@clinic.test", "Bob")
	mallory := e.pro(t, "mallory@clinic.test", "Mallory")
	d := e.draft(t, alice, Draft{To: "bob@clinic.test", Subject: "Private", Body: "<p>for bob</p>"}, file{"a.txt", "text/plain", []byte("attached")})
	id := e.send(t, alice, d)
	v := e.open(t, alice, id)
	att := v.Attachments[0].ID
	draftID, err := e.svc.SaveDraft(ctx, alice.ID, Draft{To: "bob@clinic.test", Subject: "Not yet"})
	if err != nil {
		t.Fatal(err)
	}
	events := len(e.events(t, ""))
	nop := func(View) string { return "" }

	ops := []struct {
		name       string
		senderOnly bool // a recipient is refused too
		do         func(uid, id string) error
	}{
		{"Open", false, func(uid, id string) error { _, err := e.svc.Open(ctx, uid, id, ""); return err }},
		{"Body", false, func(uid, id string) error { _, _, err := e.svc.Body(uid, id); return err }},
		{"SlipOf", true, func(uid, id string) error { _, err := e.svc.SlipOf(uid, id); return err }},
		{"OpenAttachment", false, func(uid, id string) error { _, _, err := e.download(uid, id, att); return err }},
		{"Respond reply", false, func(uid, id string) error { _, err := e.svc.Respond(ctx, uid, id, KindReply, "", nop); return err }},
		{"Respond forward", false, func(uid, id string) error { _, err := e.svc.Respond(ctx, uid, id, KindForward, "", nop); return err }},
		{"Apply read", false, func(uid, id string) error { return e.svc.Apply(ctx, uid, MarkRead, []string{id}) }},
		{"Apply trash", false, func(uid, id string) error { return e.svc.Apply(ctx, uid, MoveTrash, []string{id}) }},
		{"Apply purge", false, func(uid, id string) error { return e.svc.Apply(ctx, uid, Purge, []string{id}) }},
		{"Recall", true, func(uid, id string) error { return e.svc.Recall(ctx, uid, id, "", true) }},
		{"Draft", true, func(uid, id string) error { _, err := e.svc.Draft(uid, id); return err }},
		{"SaveDraft", true, func(uid, id string) error {
			_, err := e.svc.SaveDraft(ctx, uid, Draft{ID: id, Subject: "taken over"})
			return err
		}},
		{"Send", true, func(uid, id string) error {
			_, err := e.svc.Send(ctx, uid, Draft{ID: id, To: "mallory@clinic.test", Subject: "taken over", Body: "x"})
			return err
		}},
		{"AddAttachment", true, func(uid, id string) error {
			_, err := e.svc.AddAttachment(ctx, uid, id, "x", "text/plain", strings.NewReader("x"))
			return err
		}},
		{"RemoveAttachment", true, func(uid, id string) error { return e.svc.RemoveAttachment(ctx, uid, id, att) }},
	}
	malformed := []string{"m" + strings.Repeat("a", 20), "", "../x", "m" + "ABCDEFGHIJKLMNOPQRST", "m" + strings.Repeat("a", 19) + "1", id + "a", id[:20],
		"x" + id[1:], "m/../../acct/user", id + "/../" + id}
	for _, op := range ops {
		t.Run(op.name, func(t *testing.T) {
			target := id
			if op.name == "Draft" || op.name == "SaveDraft" || op.name == "AddAttachment" || op.name == "RemoveAttachment" || op.name == "Send" {
				target = draftID
			}
			// The same answer as for an id that does not exist: the error
			// reveals nothing about other people's messages.
			notFound := func(what string, err error) {
				t.Helper()
				if !errors.Is(err, errNotFound) {
					t.Errorf("%s: %v, want %v", what, err, errNotFound)
				}
			}
			notFound("another user's message", op.do(mallory.ID, target))
			notFound("an administrator who is not a participant", op.do(e.admin.ID, target))
			if op.senderOnly {
				notFound("a recipient", op.do(bob.ID, target))
			}
			for _, bad := range malformed {
				if bad == "" && (op.name == "SaveDraft" || op.name == "Send") {
					continue // no id: a new draft
				}
				notFound("id "+bad, op.do(alice.ID, bad))
			}
		})
	}
	// A sent message is no draft, not even for its sender.
	if _, err := e.svc.Draft(alice.ID, id); fault.KindOf(err) != fault.NotFound {
		t.Errorf("Draft of a sent message: %v", err)
	}
	if _, err := e.svc.Open(ctx, alice.ID, draftID, ""); fault.KindOf(err) != fault.NotFound {
		t.Errorf("Open of a draft: %v", err)
	}
	if _, err := e.svc.AddAttachment(ctx, alice.ID, id, "x", "text/plain", strings.NewReader("x")); fault.KindOf(err) != fault.NotFound {
		t.Errorf("an attachment added to a sent message: %v", err)
	}
	if _, _, err := e.download(bob.ID, id, "../../../etc/passwd"); fault.KindOf(err) != fault.NotFound {
		t.Errorf("an attachment id that is a path: %v", err)
	}

	// Nothing of all that changed anything, nor was recorded as an opening.
	if n := len(e.events(t, "")); n != events {
		t.Errorf("the refused calls left %d audit events", n-events)
	}
	slip, err := e.svc.SlipOf(alice.ID, id)
	if err != nil || len(slip) != 1 || slip[0].Opens != 0 || len(slip[0].Downloads) != 0 {
		t.Errorf("slip %+v %v", slip, err)
	}
	e.wantCounts(t, bob, map[Folder]Counts{Inbox: {1, 1}})
	e.wantCounts(t, alice, map[Folder]Counts{Sent: {1, 0}, Drafts: {1, 0}})
	e.wantCounts(t, mallory, nil)
	e.wantCounts(t, e.admin, nil)
	if got, err := e.svc.Draft(alice.ID, draftID); err != nil || got.Subject != "Not yet" || len(got.Attachments) != 0 {
		t.Errorf("alice's draft: %+v %v", got, err)
	}
	if b, _, err := e.download(alice.ID, id, att); err != nil || string(b) != "attached" {
		t.Errorf("alice's attachment: %q %v", b, err)
	}
}

func TestGuestRules(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	alice := e.pro(t, "alice@clinic.test", "Alice")
	bob := e.pro(t, "bob@clinic.test", "Bob")
	carol := e.pro(t, "carol@clinic.test", "Carol")
	pat := e.pro(t, "pat@clinic.test", "Pat")
	gina := e.guest(t, "gina@outside.test", "Gina")
	e.guest(t, "gus@outside.test", "Gus")
	when := func(View) string { return "Monday" }

	refused := func(name string, d Draft) {
		t.Helper()
		_, err := e.svc.Send(ctx, gina.ID, d)
		if fieldError(err)("to") == "" {
			t.Errorf("%s: %v, want a field error on to", name, err)
		}
	}
	refused("first to a professional", Draft{To: "alice@clinic.test", Subject: "Hi", Body: "x"})
	refused("to another guest", Draft{To: "gus@outside.test", Subject: "Hi", Body: "x"})
	refused("to an outside address", Draft{To: "new@outside.test", Subject: "Hi", Body: "x", InviteConfirmed: true})
	if _, ok := e.userByAddress(t, "new@outside.test"); ok {
		t.Error("a guest invited someone")
	}
	e.wantCounts(t, gina, nil)

	m1 := e.send(t, alice, Draft{To: "gina@outside.test", Cc: "bob@clinic.test", Bcc: "carol@clinic.test", Subject: "Your appointment", Body: "<p>Tuesday</p>"})

	// A reply goes to the sender.
	rid, err := e.svc.Respond(ctx, gina.ID, m1, KindReply, "Gina", when)
	if err != nil {
		t.Fatal(err)
	}
	rd, err := e.svc.Draft(gina.ID, rid)
	if err != nil {
		t.Fatal(err)
	}
	if rd.To != "alice@clinic.test" || rd.Cc != "" || rd.Subject != "Re: Your appointment" || rd.Parent != m1 || rd.ParentKind != KindReply ||
		!strings.Contains(rd.Body, "Tuesday") || !strings.Contains(rd.Body, "Gina") || !strings.Contains(rd.Body, "Monday") {
		t.Errorf("reply draft %+v", rd)
	}
	// Sent to someone the parent did not show gina, it is refused.
	withCarol := rd
	withCarol.To = "carol@clinic.test"
	refused("a reply to a bcc recipient", withCarol)
	withPat := rd
	withPat.Cc = "pat@clinic.test"
	refused("a reply copied to a stranger", withPat)
	r1 := e.send(t, gina, rd)
	if v := e.open(t, alice, r1); v.Subject != "Re: Your appointment" || v.From.Address != "gina@outside.test" ||
		len(v.Conversation) != 1 || v.Conversation[0].ID != m1 {
		t.Errorf("alice reads the reply: %+v", v)
	}

	// Reply to all: the sender and the cc, never the bcc.
	aid, err := e.svc.Respond(ctx, gina.ID, m1, KindReplyAll, "", when)
	if err != nil {
		t.Fatal(err)
	}
	ad, err := e.svc.Draft(gina.ID, aid)
	if err != nil {
		t.Fatal(err)
	}
	if ad.To != "alice@clinic.test" || ad.Cc != "bob@clinic.test" || strings.Contains(ad.To+ad.Cc+ad.Bcc, "carol") {
		t.Errorf("reply-all draft to %q cc %q bcc %q", ad.To, ad.Cc, ad.Bcc)
	}
	e.send(t, gina, ad)
	e.wantCounts(t, bob, map[Folder]Counts{Inbox: {2, 2}})
	e.wantCounts(t, carol, map[Folder]Counts{Inbox: {1, 1}})

	// After the exchange gina may write to alice first; still not to pat.
	e.send(t, gina, Draft{To: "alice@clinic.test", Subject: "One more thing", Body: "x"})
	refused("to a professional never exchanged with", Draft{To: "pat@clinic.test", Subject: "Hi", Body: "x"})
	e.wantCounts(t, pat, nil)
	e.wantCounts(t, alice, map[Folder]Counts{Sent: {1, 0}, Inbox: {3, 2}})
	// The refused sends left no drafts: those without an id made none, and
	// the reply draft went out.
	e.wantCounts(t, gina, map[Folder]Counts{Inbox: {1, 1}, Sent: {3, 0}})
}

func TestInviteUnregistered(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	alice := e.pro(t, "alice@clinic.test", "Alice")
	e.pro(t, "bob@clinic.test", "Bob")
	events := len(e.events(t, ""))

	d := Draft{To: "bob@clinic.test, New Person <New@Outside.test>", Subject: "Welcome", Body: "<p>Hello</p>"}
	_, err := e.svc.Send(ctx, alice.ID, d)
	var need *InviteNeededError
	if !errors.As(err, &need) || !slices.Equal(need.Addresses, []string{"new@outside.test"}) {
		t.Fatalf("send to an unregistered address: %v", err)
	}
	if _, ok := e.userByAddress(t, "new@outside.test"); ok {
		t.Error("the address became a user before the sender confirmed")
	}
	if n := len(e.events(t, "")); n != events || len(e.mail.sent("", "")) != 0 {
		t.Errorf("an unconfirmed send left %d events and %d notices", n-events, len(e.mail.sent("", "")))
	}
	e.wantCounts(t, alice, nil)

	// A saved draft stays a draft.
	saved := e.draft(t, alice, d)
	if _, err := e.svc.Send(ctx, alice.ID, saved); !errors.As(err, &need) {
		t.Fatalf("send a saved draft: %v", err)
	}
	e.wantCounts(t, alice, map[Folder]Counts{Drafts: {1, 0}})

	saved.InviteConfirmed = true
	res, err := e.svc.Send(ctx, alice.ID, saved)
	if err != nil {
		t.Fatal(err)
	}
	if res.ID != saved.ID || !slices.Equal(res.Invited, []string{"new@outside.test"}) {
		t.Errorf("result %+v", res)
	}
	u, ok := e.userByAddress(t, "new@outside.test")
	if !ok || u.Status != account.StatusInvited || !u.IsGuest() || u.InvitedBy != alice.ID || u.Name != "New Person" {
		t.Fatalf("the invited user: %+v", u)
	}
	e.wantCounts(t, alice, map[Folder]Counts{Sent: {1, 0}})
	e.wantCounts(t, u, map[Folder]Counts{Inbox: {1, 1}})
	notices := e.mail.sent("new_message", "new@outside.test")
	if len(notices) != 1 || !notices[0].Guest || notices[0].UserID != u.ID {
		t.Fatalf("notices %+v", notices)
	}
	link, err := url.Parse(notices[0].Link)
	if err != nil {
		t.Fatal(err)
	}
	if link.Scheme+"://"+link.Host != baseURL || link.Path != "/register" || link.Query().Get("token") == "" ||
		!strings.Contains(link.RawQuery, "&next=%2Fmail%2Fm%2F"+res.ID) || link.Query().Get("next") != "/mail/m/"+res.ID {
		t.Errorf("the notice's link %s", notices[0].Link)
	}
	if len(e.mail.sent("new_message", "bob@clinic.test")) != 1 || e.mail.sent("new_message", "bob@clinic.test")[0].Link != baseURL+"/mail/m/"+res.ID {
		t.Errorf("bob's notice: %+v", e.mail.sent("new_message", "bob@clinic.test"))
	}
	if n := e.eventsOn(t, "user.invite", "user/"+u.ID); n != 1 {
		t.Errorf("%d user.invite events", n)
	}

	// A second message to them, not yet registered: a fresh registration link, no new invitation.
	id2 := e.send(t, alice, Draft{To: "new@outside.test", Subject: "Again", Body: "x"})
	notices = e.mail.sent("new_message", "new@outside.test")
	if len(notices) != 2 || !strings.Contains(notices[1].Link, "/register?token=") || !strings.Contains(notices[1].Link, "next=%2Fmail%2Fm%2F"+id2) {
		t.Errorf("the second notice: %+v", notices)
	}
	// Both notifications' links work until they register.
	tokenOf := func(raw string) string {
		t.Helper()
		l, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		return l.Query().Get("token")
	}
	for i, n := range notices {
		if inv, err := e.accounts.Invitation(tokenOf(n.Link)); err != nil || inv.Email != "new@outside.test" {
			t.Errorf("notice %d's link: %+v, %v", i+1, inv, err)
		}
	}

	// Registering with the link lands them with their messages.
	link, _ = url.Parse(notices[1].Link)
	reg, err := e.accounts.Register(ctx, link.Query().Get("token"), account.Registration{Password: testPassword, Confirm: testPassword}, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if v := e.open(t, reg.SignIn.User, res.ID); v.Subject != "Welcome" {
		t.Errorf("the new guest reads %+v", v)
	}
	if _, err := e.accounts.Invitation(tokenOf(notices[0].Link)); fault.KindOf(err) != fault.NotFound {
		t.Errorf("the first notice's link after registering: %v, want not found", err)
	}

	// The invite quota applies.
	e.inviteQuota(t, 2)
	e.send(t, alice, Draft{To: "second@outside.test", Subject: "Hi", Body: "x", InviteConfirmed: true})
	_, err = e.svc.Send(ctx, alice.ID, Draft{To: "third@outside.test", Subject: "Hi", Body: "x", InviteConfirmed: true})
	wantKind(t, "over the invite quota", err, fault.TooLarge)
	if _, ok := e.userByAddress(t, "third@outside.test"); ok {
		t.Error("over the quota, the address became a user")
	}
	e.wantCounts(t, alice, map[Folder]Counts{Sent: {3, 0}})
}

func TestRestrictions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	alice := e.pro(t, "alice@clinic.test", "Alice")
	bob := e.pro(t, "bob@clinic.test", "Bob")
	nop := func(View) string { return "" }
	attached := file{"scan.pdf", "application/pdf", []byte("%PDF-1.7 scan")}

	tests := []struct {
		name     string
		restrict Restrictions
		// What bob (a recipient) may do; alice (the sender) may do all.
		reply, forward, download bool
	}{
		{"none", Restrictions{}, true, true, true},
		{"no reply", Restrictions{NoReply: true}, false, true, true},
		{"no forward", Restrictions{NoForward: true}, true, false, true},
		{"no print", Restrictions{NoPrint: true}, true, true, false},
		{"all", Restrictions{NoReply: true, NoForward: true, NoPrint: true}, false, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := e.send(t, alice, e.draft(t, alice, Draft{To: "bob@clinic.test", Subject: tt.name, Body: "x", Restrict: tt.restrict}, attached))
			vb, va := e.open(t, bob, id), e.open(t, alice, id)
			if vb.Restrict != tt.restrict || vb.CanReply != tt.reply || vb.CanForward != tt.forward || vb.CanDownload != tt.download || vb.CanPrint != tt.download {
				t.Errorf("bob's view: %+v", vb)
			}
			if !va.CanReply || !va.CanForward || !va.CanDownload || !va.CanPrint || !va.CanRecall || vb.CanRecall {
				t.Errorf("alice's view: %+v; bob may recall: %v", va, vb.CanRecall)
			}
			att := va.Attachments[0].ID
			check := func(who account.User, allowed bool, what string, err error) {
				t.Helper()
				if allowed && err != nil {
					t.Errorf("%s, %s: %v", who.Email, what, err)
				}
				if !allowed && fault.KindOf(err) != fault.Permission {
					t.Errorf("%s, %s: %v, want a permission error", who.Email, what, err)
				}
			}
			for _, u := range []struct {
				who                      account.User
				reply, forward, download bool
			}{{bob, tt.reply, tt.forward, tt.download}, {alice, true, true, true}} {
				_, err := e.svc.Respond(ctx, u.who.ID, id, KindReply, "", nop)
				check(u.who, u.reply, "reply", err)
				_, err = e.svc.Respond(ctx, u.who.ID, id, KindReplyAll, "", nop)
				check(u.who, u.reply, "reply all", err)
				_, err = e.svc.Respond(ctx, u.who.ID, id, KindForward, "", nop)
				check(u.who, u.forward, "forward", err)
				b, _, err := e.download(u.who.ID, id, att)
				check(u.who, u.download, "download", err)
				if err == nil && string(b) != string(attached.data) {
					t.Errorf("%s downloads %q", u.who.Email, b)
				}
			}
		})
	}
	if _, err := e.svc.Respond(ctx, bob.ID, e.send(t, alice, Draft{To: "bob@clinic.test", Body: "x"}), "quote", "", nop); fault.KindOf(err) != fault.Invalid {
		t.Errorf("an unknown kind of response: %v", err)
	}

	// A recipient who may not download the files does not get them by
	// forwarding: the forward, a draft of their own, carries the text only.
	// The sender's forward carries the files.
	id := e.send(t, alice, e.draft(t, alice, Draft{To: "bob@clinic.test", Subject: "no print", Body: "<p>text</p>", Restrict: Restrictions{NoPrint: true}}, attached))
	for _, u := range []struct {
		who   account.User
		files int
	}{{bob, 0}, {alice, 1}} {
		fid, err := e.svc.Respond(ctx, u.who.ID, id, KindForward, "", nop)
		if err != nil {
			t.Fatal(err)
		}
		fwd, err := e.svc.Draft(u.who.ID, fid)
		if err != nil {
			t.Fatal(err)
		}
		if len(fwd.Attachments) != u.files || !strings.Contains(fwd.Body, "text") {
			t.Errorf("%s forwards a no-print message with %d files, want %d", u.who.Email, len(fwd.Attachments), u.files)
		}
		for _, a := range fwd.Attachments {
			if b, _, err := e.download(u.who.ID, fid, a.ID); err == nil && u.who.ID == bob.ID {
				t.Errorf("bob downloads %q from his forward", b)
			}
		}
	}
}

func TestStorageUsage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	alice := e.pro(t, "alice@clinic.test", "Alice")
	bob := e.pro(t, "bob@clinic.test", "Bob")
	carol := e.pro(t, "carol@clinic.test", "Carol")
	usage := func(u account.User) int64 {
		t.Helper()
		got, err := e.accounts.Usage(u.ID)
		if err != nil {
			t.Fatal(err)
		}
		if listed := e.accounts.ListUsers(account.Query{Text: u.Email}).Users; len(listed) != 1 || listed[0].StorageBytes != max(0, got.Bytes) {
			t.Errorf("%s: the directory shows %+v, the store %d bytes", u.Email, listed, got.Bytes)
		}
		return got.Bytes
	}
	body := "<p>kept as it is</p>" // sanitizing changes nothing
	data := randomBytes(3, 50_000)
	id := e.send(t, alice, e.draft(t, alice, Draft{To: "bob@clinic.test", Cc: "carol@clinic.test", Subject: "Usage", Body: body}, file{"f", "", data}))
	size := int64(len(body) + len(data))
	for _, u := range []account.User{alice, bob, carol} {
		if got := usage(u); got != size {
			t.Errorf("%s uses %d bytes, want %d", u.Email, got, size)
		}
	}
	// carol deletes her copy for good: her storage is free.
	e.apply(t, carol, MoveTrash, id)
	e.apply(t, carol, Purge, id)
	if got := usage(carol); got != 0 {
		t.Errorf("after purging, carol uses %d bytes", got)
	}
	// The recall deletes the content: everyone who still had it gets the space back.
	if err := e.svc.Recall(ctx, alice.ID, id, "", false); err != nil {
		t.Fatal(err)
	}
	for _, u := range []account.User{alice, bob, carol} {
		if got := usage(u); got != 0 {
			t.Errorf("after the recall, %s uses %d bytes", u.Email, got)
		}
	}
	// A later message is counted from zero, and its purge after a recall does not count twice.
	e.send(t, alice, Draft{To: "bob@clinic.test", Subject: "Again", Body: body})
	e.apply(t, bob, MoveTrash, id)
	e.apply(t, bob, Purge, id)
	if got := usage(bob); got != int64(len(body)) {
		t.Errorf("bob uses %d bytes, want %d", got, len(body))
	}
}

func TestSendOptionBounds(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	alice := e.pro(t, "alice@clinic.test", "Alice")
	bob := e.pro(t, "bob@clinic.test", "Bob")
	dora := e.pro(t, "dora@clinic.test", "Dora")
	disabled := account.StatusDisabled
	if _, err := e.accounts.ChangeUser(ctx, e.admin.ID, dora.ID, account.UserChange{Status: &disabled}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Send(ctx, dora.ID, Draft{To: "bob@clinic.test", Subject: "Hi", Body: "x"}); fault.KindOf(err) != fault.Permission {
		t.Errorf("a disabled user sends: %v", err)
	}
	e.wantCounts(t, bob, nil)
	now := e.clock.Now()
	day := 24 * time.Hour

	tests := []struct {
		name     string
		settings []string
		d        Draft
		field    string // "" when the send goes through
		expires  time.Time
	}{
		{"restrictions allowed", nil, Draft{Restrict: Restrictions{NoForward: true}}, "", time.Time{}},
		{"restrictions off", []string{"messages.restrictions", "false"}, Draft{Restrict: Restrictions{NoForward: true}}, "restrict", time.Time{}},
		{"restrictions off, none asked", []string{"messages.restrictions", "false"}, Draft{}, "", time.Time{}},
		{"an expiry in the past", nil, Draft{Expires: now.Add(-time.Minute)}, "expires", time.Time{}},
		{"an expiry now", nil, Draft{Expires: now}, "expires", time.Time{}},
		{"an expiry", nil, Draft{Expires: now.Add(10 * day)}, "", now.Add(10 * day)},
		{"beyond the longest", []string{"messages.expiry_max_days", "7", "messages.expiry_default_days", "3"}, Draft{Expires: now.Add(8 * day)}, "expires", time.Time{}},
		{"the longest", []string{"messages.expiry_max_days", "7", "messages.expiry_default_days", "3"}, Draft{Expires: now.Add(7 * day)}, "", now.Add(7 * day)},
		{"the default", []string{"messages.expiry_max_days", "7", "messages.expiry_default_days", "3"}, Draft{}, "", now.Add(3 * day)},
		{"no subject", nil, Draft{Subject: " "}, "subject", time.Time{}},
		{"a subject of two lines", nil, Draft{Subject: "a\nb"}, "subject", time.Time{}},
		{"no recipient", nil, Draft{To: " , "}, "to", time.Time{}},
		{"not an address", nil, Draft{To: "bob@clinic.test, not-an-address"}, "to", time.Time{}},
		{"to oneself", nil, Draft{To: "alice@clinic.test"}, "to", time.Time{}},
		{"a short passcode", nil, Draft{Passcode: "12345"}, "passcode", time.Time{}},
		{"no format", nil, Draft{Format: "rtf"}, "format", time.Time{}},
		{"a body too long", []string{"messages.max_body_kb", "64"}, Draft{Body: strings.Repeat("x", 64<<10+1)}, "body", time.Time{}},
		{"a body of the longest", []string{"messages.max_body_kb", "64"}, Draft{Body: strings.Repeat("x", 64<<10)}, "", time.Time{}},
		{"to a disabled user", nil, Draft{To: "dora@clinic.test"}, "to", time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Each case starts from the defaults.
			e.set(t, "messages.restrictions", "true", "messages.expiry_max_days", "0", "messages.expiry_default_days", "0", "messages.max_body_kb", "2048")
			if tt.settings != nil {
				e.set(t, tt.settings...)
			}
			d := tt.d
			if d.To == "" {
				d.To = "bob@clinic.test"
			}
			if d.Subject == "" {
				d.Subject = "Subject"
			}
			before := e.counts(t, alice)[Sent]
			res, err := e.svc.Send(ctx, alice.ID, d)
			if tt.field != "" {
				if fault.KindOf(err) != fault.Invalid || fieldError(err)(tt.field) == "" {
					t.Fatalf("%v, want a field error on %s", err, tt.field)
				}
				if e.counts(t, alice)[Sent] != before {
					t.Error("a refused send was sent")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if v := e.open(t, alice, res.ID); !v.Expires.Equal(tt.expires) {
				t.Errorf("expires %v, want %v", v.Expires, tt.expires)
			}
		})
	}
}

func TestNoticesCarryNoContent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	alice := e.pro(t, "alice@clinic.test", "Alice")
	bob := e.pro(t, "bob@clinic.test", "Bob")
	const subject, body = "Biopsy result for P. Jones", "<p>The tumour marker is high</p>"

	id := e.send(t, alice, Draft{To: "bob@clinic.test, guest@outside.test", Subject: subject, Body: body, ReadNotify: true, InviteConfirmed: true})
	e.open(t, bob, id)
	if err := e.svc.Recall(ctx, alice.ID, id, "wrong patient", true); err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, n := range e.mail.sent("", "") {
		kinds[n.Kind]++
		for _, s := range []string{n.Subject, n.Link, n.SenderName, n.RecipientName, n.ToName} {
			if strings.Contains(s, "Biopsy result") || strings.Contains(s, "tumour marker") || strings.Contains(s, "wrong patient") {
				t.Errorf("a %s notice carries content: %+v", n.Kind, n)
			}
		}
	}
	// The invited guest is not mailed the recall: they have no account yet.
	if kinds["new_message"] != 2 || kinds["first_open"] != 1 || kinds["recall"] != 1 {
		t.Errorf("notices %v", kinds)
	}

	// With the setting on, the new-message notice names the subject, and no more.
	e.set(t, "notifications.show_subject", "true")
	e.send(t, alice, Draft{To: "bob@clinic.test", Subject: subject, Body: body})
	last := e.mail.sent("new_message", "bob@clinic.test")
	if n := last[len(last)-1]; n.Subject != subject || strings.Contains(n.Link+n.SenderName+n.RecipientName, "tumour marker") {
		t.Errorf("with show_subject: %+v", n)
	}
}

func TestDeliverySlip(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.pro(t, "alice@clinic.test", "Alice")
	bob := e.pro(t, "bob@clinic.test", "Bob Reader")
	e.pro(t, "carol@clinic.test", "Carol")
	e.svc.delivery = func(nid string) (string, time.Time, string) {
		if nid == "" {
			t.Error("asked about an empty notification id")
		}
		return "delivered", start.Add(time.Hour), ""
	}

	d := e.draft(t, alice, Draft{To: "bob@clinic.test", Cc: "carol@clinic.test", Subject: "Slip", Body: "x", ReadNotify: true}, file{"f.bin", "", []byte("123")})
	id := e.send(t, alice, d)
	e.clock.Add(time.Minute)
	first := e.clock.Now()
	v := e.open(t, bob, id)
	e.clock.Add(time.Minute)
	e.open(t, bob, id)
	e.open(t, alice, id) // the sender's own reading is no opening
	if _, _, err := e.download(bob.ID, id, v.Attachments[0].ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.download(alice.ID, id, v.Attachments[0].ID); err != nil {
		t.Fatal(err)
	}

	slip, err := e.svc.SlipOf(alice.ID, id)
	if err != nil || len(slip) != 2 {
		t.Fatalf("slip %+v %v", slip, err)
	}
	b, c := slip[0], slip[1]
	if b.Address != "bob@clinic.test" || b.Kind != RoleTo || b.Opens != 2 || !b.FirstOpened.Equal(first) ||
		len(b.Downloads) != 1 || b.Downloads[0].Attachment != v.Attachments[0].ID || !b.Downloads[0].At.Equal(e.clock.Now()) ||
		b.Notification == "" || !b.Notified.Equal(start) || b.Delivery != "delivered" || !b.DeliveryAt.Equal(start.Add(time.Hour)) {
		t.Errorf("bob's line %+v", b)
	}
	if c.Address != "carol@clinic.test" || c.Kind != RoleCc || c.Opens != 0 || !c.FirstOpened.IsZero() || len(c.Downloads) != 0 {
		t.Errorf("carol's line %+v", c)
	}
	fo := e.mail.sent("first_open", "")
	if len(fo) != 1 || fo[0].To != "alice@clinic.test" || fo[0].RecipientName != "Bob Reader" || fo[0].Subject != "" || fo[0].Link != baseURL+"/mail/m/"+id+"#slip" {
		t.Errorf("first-open notices %+v", fo)
	}
	object := "message/" + id
	if n := e.eventsOn(t, "message.send", object); n != 1 {
		t.Errorf("%d message.send events", n)
	}
	opens := 0
	for _, ev := range e.events(t, "message.open") {
		if ev.Object == object {
			opens++
			if ev.Actor != account.ActorOf(bob.ID) || ev.Detail["remote_ip"] != "192.0.2.1" {
				t.Errorf("open event %+v", ev)
			}
		}
	}
	if opens != 2 {
		t.Errorf("%d message.open events, want 2", opens)
	}
	if n := e.eventsOn(t, "attachment.download", object); n != 1 {
		t.Errorf("%d attachment.download events, want 1 (the sender's is not counted)", n)
	}

	// Without a read notice asked for, none.
	id2 := e.send(t, alice, Draft{To: "bob@clinic.test", Subject: "No notice", Body: "x"})
	e.open(t, bob, id2)
	if n := len(e.mail.sent("first_open", "")); n != 1 {
		t.Errorf("%d first-open notices", n)
	}
	if s, err := e.svc.SlipOf(alice.ID, id2); err != nil || s[0].Opens != 1 || s[0].FirstOpened.IsZero() {
		t.Errorf("slip %+v %v", s, err)
	}
}

func TestRecall(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	alice := e.pro(t, "alice@clinic.test", "Alice")
	bob := e.pro(t, "bob@clinic.test", "Bob")
	carol := e.guest(t, "carol@outside.test", "Carol")

	d := e.draft(t, alice, Draft{To: "bob@clinic.test", Cc: "carol@outside.test", Subject: "Quarterly figures", Body: "<p>Revenue</p>"},
		file{"figures.xlsx", "application/vnd.ms-excel", randomBytes(1, 70_000)})
	id := e.send(t, alice, d)
	att := e.open(t, bob, id).Attachments[0].ID
	if !e.blobExists(t, att) {
		t.Fatal("no blob file")
	}

	wantKind(t, "a recipient recalls", e.svc.Recall(ctx, bob.ID, id, "", true), fault.NotFound)
	wantKind(t, "an administrator recalls", e.svc.Recall(ctx, e.admin.ID, id, "", true), fault.NotFound)
	wantKind(t, "a reason of two lines", e.svc.Recall(ctx, alice.ID, id, "a\nb", true), fault.Invalid)
	// A guest's group may not recall.
	rid, err := e.svc.Respond(ctx, carol.ID, id, KindReply, "", func(View) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	rd, _ := e.svc.Draft(carol.ID, rid)
	reply := e.send(t, carol, rd)
	wantKind(t, "a guest recalls", e.svc.Recall(ctx, carol.ID, reply, "", true), fault.Permission)

	if err := e.svc.Recall(ctx, alice.ID, id, "  Sent to the wrong people ", true); err != nil {
		t.Fatal(err)
	}
	for _, u := range []account.User{bob, carol, alice} {
		v := e.open(t, u, id)
		if v.Gone != "recalled" || v.RecallReason != "Sent to the wrong people" || v.Subject != "Quarterly figures" ||
			len(v.Attachments) != 0 || v.CanReply || v.CanForward || v.CanDownload || v.CanRecall || !v.GoneAt.Equal(e.clock.Now()) {
			t.Errorf("%s opens the recalled message: %+v", u.Email, v)
		}
		if _, _, err := e.svc.Body(u.ID, id); err == nil {
			t.Errorf("%s reads the body of a recalled message", u.Email)
		}
		if _, _, err := e.download(u.ID, id, att); err == nil {
			t.Errorf("%s downloads from a recalled message", u.Email)
		}
		if _, err := e.svc.Respond(ctx, u.ID, id, KindForward, "", func(View) string { return "" }); err == nil {
			t.Errorf("%s forwards a recalled message", u.Email)
		}
	}
	if it := e.listAll(t, bob, Inbox); len(it) != 1 || it[0].Gone != "recalled" || it[0].Subject != "Quarterly figures" || it[0].Preview != "" || it[0].HasAttachments {
		t.Errorf("bob's list: %+v", it)
	}
	if e.blobExists(t, att) {
		t.Error("the attachment file outlives the recall")
	}
	err = e.st.View(func(tx *store.Tx) error {
		for _, k := range [][]byte{dataKeyKey(id), bodyKey(id)} {
			if _, err := tx.Get(k); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("%s after the recall: %v", k, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	rn := e.mail.sent("recall", "")
	if len(rn) != 2 || addressesOf(rn) != "bob@clinic.test,carol@outside.test" || !rn[1].Guest || rn[0].Subject != "" || rn[0].Link != baseURL+"/mail/m/"+id {
		t.Errorf("recall notices %+v", rn)
	}
	ev := e.events(t, "message.recall")
	if len(ev) != 1 || ev[0].Actor != account.ActorOf(alice.ID) || ev[0].Object != "message/"+id || ev[0].Detail["reason_given"] != "yes" {
		t.Errorf("recall events %+v", ev)
	}
	wantKind(t, "a second recall", e.svc.Recall(ctx, alice.ID, id, "", true), fault.Conflict)
	if s, err := e.svc.SlipOf(alice.ID, id); err != nil || s[0].Opens != 1 {
		t.Errorf("openings of a recalled message count: %+v %v", s, err)
	}

	// Quietly: no mail, still audited.
	id2 := e.send(t, alice, Draft{To: "bob@clinic.test", Subject: "Oops", Body: "x"})
	if err := e.svc.Recall(ctx, alice.ID, id2, "", false); err != nil {
		t.Fatal(err)
	}
	if n := len(e.mail.sent("recall", "")); n != 2 {
		t.Errorf("a quiet recall mailed: %d recall notices", n)
	}
	if n := e.eventsOn(t, "message.recall", "message/"+id2); n != 1 {
		t.Errorf("%d recall events for the quiet recall", n)
	}
	if v := e.open(t, bob, id2); v.Gone != "recalled" || v.RecallReason != "" || v.Subject != "Oops" {
		t.Errorf("the quietly recalled message: %+v", v)
	}
}

func addressesOf(ns []Notice) string {
	var out []string
	for _, n := range ns {
		out = append(out, n.To)
	}
	slices.Sort(out)
	return strings.Join(out, ",")
}

func TestExpiry(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	alice := e.pro(t, "alice@clinic.test", "Alice")
	bob := e.pro(t, "bob@clinic.test", "Bob")
	expires := e.clock.Now().Add(2 * time.Hour)
	d := e.draft(t, alice, Draft{To: "bob@clinic.test", Subject: "Short-lived", Body: "x", Expires: expires}, file{"a", "", []byte("abc")})
	id := e.send(t, alice, d)
	e.clock.Add(time.Second)
	keep := e.send(t, alice, Draft{To: "bob@clinic.test", Subject: "Long-lived", Body: "y", Expires: expires.Add(24 * time.Hour)})
	att := e.open(t, bob, id).Attachments[0].ID

	if n, p, err := e.svc.Sweep(ctx); err != nil || n != 0 || p != 0 {
		t.Fatalf("an early sweep: %d %d %v", n, p, err)
	}
	e.clock.Add(2*time.Hour + time.Second)

	// Expired before the sweeper came: no content already.
	check := func(when string) {
		t.Helper()
		v := e.open(t, bob, id)
		if v.Gone != "expired" || v.Subject != "Short-lived" || len(v.Attachments) != 0 || !v.GoneAt.Equal(expires) || v.CanReply || !v.Expires.Equal(expires) {
			t.Errorf("%s: %+v", when, v)
		}
		if _, _, err := e.svc.Body(bob.ID, id); err == nil {
			t.Errorf("%s: the body is read", when)
		}
		if _, _, err := e.download(bob.ID, id, att); err == nil {
			t.Errorf("%s: the attachment is read", when)
		}
		if it := e.listAll(t, bob, Inbox); len(it) != 2 || it[1].ID != id || it[1].Gone != "expired" || it[1].Subject != "Short-lived" {
			t.Errorf("%s: the list %+v", when, it)
		}
	}
	check("before the sweep")
	wantKind(t, "recalling an expired message", e.svc.Recall(ctx, alice.ID, id, "", true), fault.Conflict)

	n, p, err := e.svc.Sweep(ctx)
	if err != nil || n != 1 || p != 0 {
		t.Fatalf("sweep: %d expired, %d purged, %v", n, p, err)
	}
	check("after the sweep")
	if e.blobExists(t, att) {
		t.Error("the attachment file outlives the expiry")
	}
	err = e.st.View(func(tx *store.Tx) error {
		if _, err := tx.Get(dataKeyKey(id)); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("the key after expiry: %v", err)
		}
		if _, err := tx.Get(dataKeyKey(keep)); err != nil {
			t.Errorf("the other message's key: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ev := e.events(t, "message.expire")
	if len(ev) != 1 || ev[0].Object != "message/"+id || ev[0].Actor != "system" {
		t.Errorf("expire events %+v", ev)
	}
	if len(e.mail.sent("recall", "")) != 0 {
		t.Error("an expiry mails recall notices")
	}
	if n, _, err := e.svc.Sweep(ctx); err != nil || n != 0 {
		t.Errorf("a second sweep: %d %v", n, err)
	}
	if v := e.open(t, bob, keep); v.Gone != "" {
		t.Errorf("the long-lived message: %+v", v)
	}
}

func TestTrashSweep(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	alice := e.pro(t, "alice@clinic.test", "Alice")
	bob := e.pro(t, "bob@clinic.test", "Bob")
	day := 24 * time.Hour
	id := e.send(t, alice, Draft{To: "bob@clinic.test", Subject: "To be deleted", Body: "x"})
	other := e.send(t, alice, Draft{To: "bob@clinic.test", Subject: "Kept", Body: "x"})
	d := e.draft(t, alice, Draft{To: "bob@clinic.test", Subject: "An abandoned draft"}, file{"d", "", []byte("draft file")})
	draftBlob := func() string {
		got, err := e.svc.Draft(alice.ID, d.ID)
		if err != nil {
			t.Fatal(err)
		}
		return got.Attachments[0].ID
	}()

	e.apply(t, bob, MoveTrash, id)
	e.clock.Add(10 * day)
	e.apply(t, alice, MoveTrash, id, d.ID)
	e.clock.Add(20*day + time.Minute) // bob's copy is 30 days in the trash, alice's 20

	if _, p, err := e.svc.Sweep(ctx); err != nil || p != 1 {
		t.Fatalf("sweep: %d purged, %v", p, err)
	}
	if _, err := e.svc.Open(ctx, bob.ID, id, ""); fault.KindOf(err) != fault.NotFound {
		t.Errorf("bob's copy after the sweep: %v", err)
	}
	e.wantCounts(t, bob, map[Folder]Counts{Inbox: {1, 1}})
	e.wantCounts(t, alice, map[Folder]Counts{Sent: {1, 0}, Trash: {2, 0}})
	if v := e.open(t, alice, id); v.Subject != "To be deleted" {
		t.Errorf("alice's copy: %+v", v)
	}
	if ev := e.events(t, "message.purge"); len(ev) != 1 || ev[0].Object != "mailbox/"+bob.ID || ev[0].Actor != "system" {
		t.Errorf("purge events %+v", ev)
	}

	e.clock.Add(10 * day)
	if _, p, err := e.svc.Sweep(ctx); err != nil || p != 2 {
		t.Fatalf("the second sweep: %d purged, %v", p, err)
	}
	e.wantCounts(t, alice, map[Folder]Counts{Sent: {1, 0}})
	if _, err := e.svc.Draft(alice.ID, d.ID); fault.KindOf(err) != fault.NotFound {
		t.Errorf("the purged draft: %v", err)
	}
	if e.blobExists(t, draftBlob) {
		t.Error("the purged draft's attachment file is left behind")
	}
	if v := e.open(t, bob, other); v.Gone != "" {
		t.Errorf("the kept message: %+v", v)
	}
	if _, p, err := e.svc.Sweep(ctx); err != nil || p != 0 {
		t.Errorf("a third sweep: %d %v", p, err)
	}
	e.checkCounts(t, alice)
	e.checkCounts(t, bob)
}

func TestPagination(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.pro(t, "alice@clinic.test", "Alice")
	bob := e.pro(t, "bob@clinic.test", "Bob")
	const total = 120
	var sent []string // oldest first
	for i := range total {
		if i%7 != 0 { // some share a date: the id breaks the tie
			e.clock.Add(time.Second)
		}
		sent = append(sent, e.send(t, alice, Draft{To: "bob@clinic.test", Subject: "n" + itoa(i), Body: "x"}))
	}

	walk := func(t *testing.T, want int) {
		t.Helper()
		var pages []Page
		cursor := ""
		for len(pages) < 10 {
			p, err := e.svc.List(bob.ID, Inbox, cursor)
			if err != nil {
				t.Fatal(err)
			}
			pages = append(pages, p)
			if p.Older == "" {
				break
			}
			cursor = p.Older
		}
		if n := (want + PageSize - 1) / PageSize; len(pages) != n {
			t.Fatalf("%d pages, want %d", len(pages), n)
		}
		if pages[0].Newer != "" {
			t.Errorf("the first page has a newer cursor %q", pages[0].Newer)
		}
		var all []Item
		for i, p := range pages {
			wantLen := PageSize
			if i == len(pages)-1 {
				wantLen = want - PageSize*(len(pages)-1)
			}
			if len(p.Items) != wantLen {
				t.Errorf("page %d has %d items, want %d", i, len(p.Items), wantLen)
			}
			if i > 0 && p.Newer == "" {
				t.Errorf("page %d has no newer cursor", i)
			}
			all = append(all, p.Items...)
		}
		got := ids(all)
		if len(got) != want {
			t.Fatalf("%d items, want %d", len(got), want)
		}
		seen := map[string]bool{}
		for i, it := range all {
			if seen[it.ID] {
				t.Errorf("%s twice", it.ID)
			}
			seen[it.ID] = true
			if i > 0 && it.Date.After(all[i-1].Date) {
				t.Errorf("item %d is newer than item %d", i, i-1)
			}
		}
		for _, id := range sent[len(sent)-want:] {
			if !seen[id] {
				t.Errorf("%s is missing", id)
			}
		}
		// Backwards from the last page by the newer cursors: the same pages.
		for i := len(pages) - 1; i > 0; i-- {
			p, err := e.svc.List(bob.ID, Inbox, pages[i].Newer)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ids(p.Items), ids(pages[i-1].Items)) {
				t.Errorf("back from page %d: %v, want %v", i, ids(p.Items), ids(pages[i-1].Items))
			}
			if p.Older != pages[i-1].Older {
				t.Errorf("back from page %d: older %q, want %q", i, p.Older, pages[i-1].Older)
			}
			if (i-1 == 0) != (p.Newer == "") {
				t.Errorf("back to page %d: newer %q", i-1, p.Newer)
			}
		}
	}
	t.Run("120", func(t *testing.T) { walk(t, total) })
	// Down to a multiple of the page size: the last page still has no older cursor.
	e.apply(t, bob, MoveTrash, sent[:20]...)
	e.apply(t, bob, Purge, sent[:20]...)
	t.Run("100", func(t *testing.T) { walk(t, total-20) })

	// A cursor is only ever a place in the viewer's own folder.
	for _, c := range []string{"o", "n", "x", "o../../", "n\xff\xff", "o" + strings.Repeat("9", 40)} {
		p, err := e.svc.List(alice.ID, Inbox, c)
		if err != nil || len(p.Items) != 0 {
			t.Errorf("cursor %q into alice's empty inbox: %d items, %v", c, len(p.Items), err)
		}
	}
	if n := len(e.listAll(t, alice, Sent)); n != total {
		t.Errorf("alice's Sent holds %d", n)
	}
}

func TestDrafts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	alice := e.pro(t, "alice@clinic.test", "Alice")
	bob := e.pro(t, "bob@clinic.test", "Bob")

	id, err := e.svc.SaveDraft(ctx, alice.ID, Draft{To: "bob@", Subject: "First try", Body: "<p>draft<script>x()</script></p>"})
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Add(time.Minute)
	again, err := e.svc.SaveDraft(ctx, alice.ID, Draft{ID: id, To: "bob@clinic.test", Bcc: "carol@clinic.test", Subject: "Second try",
		Body: "plain", Format: FormatText, ReadNotify: true, Passcode: "blue-harbour"})
	if err != nil || again != id {
		t.Fatalf("update: %q %v", again, err)
	}
	got, err := e.svc.Draft(alice.ID, id)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != id || got.To != "bob@clinic.test" || got.Bcc != "carol@clinic.test" || got.Subject != "Second try" || got.Body != "plain" ||
		got.Format != FormatText || !got.ReadNotify || got.Passcode != "blue-harbour" || !got.Saved.Equal(e.clock.Now()) {
		t.Errorf("draft %+v", got)
	}
	e.wantCounts(t, alice, map[Folder]Counts{Drafts: {1, 0}})
	if it := e.listAll(t, alice, Drafts); len(it) != 1 || !it[0].Draft || it[0].Subject != "Second try" || len(it[0].To) != 2 {
		t.Errorf("drafts list %+v", it)
	}
	if _, err := e.svc.SaveDraft(ctx, alice.ID, Draft{ID: id, Subject: strings.Repeat("x", 501)}); fieldError(err)("subject") == "" {
		t.Errorf("a subject too long: %v", err)
	}

	// Files stream into the draft; the name is cleaned.
	big := randomBytes(2, 200_000)
	a, err := e.svc.AddAttachment(ctx, alice.ID, id, `C:\Users\alice\..\report.pdf`, "application/pdf; name=x", bytes.NewReader(big))
	if err != nil {
		t.Fatal(err)
	}
	if a.Name != "report.pdf" || a.Size != int64(len(big)) || a.Type != "application/pdf" {
		t.Errorf("attachment %+v", a)
	}
	small, err := e.svc.AddAttachment(ctx, alice.ID, id, "notes\x00.txt", "text/", strings.NewReader("notes"))
	if err != nil || small.Name != "notes.txt" || small.Type != "application/octet-stream" {
		t.Errorf("small attachment %+v %v", small, err)
	}
	if got, _ := e.svc.Draft(alice.ID, id); len(got.Attachments) != 2 || got.Attachments[0] != a {
		t.Errorf("the draft's attachments %+v", got.Attachments)
	}

	// The group's limit per file.
	g, err := e.accounts.Group(account.GroupProfessional)
	if err != nil {
		t.Fatal(err)
	}
	g.AttachmentLimitMB = 1
	if _, err := e.accounts.SaveGroup(ctx, account.ActorOf(e.admin.ID), g); err != nil {
		t.Fatal(err)
	}
	blobsBefore, _ := e.blobFiles(t)
	_, err = e.svc.AddAttachment(ctx, alice.ID, id, "huge.iso", "", bytes.NewReader(make([]byte, 1<<20+1)))
	wantKind(t, "a file over the limit", err, fault.TooLarge)
	if blobsAfter, parts := e.blobFiles(t); !slices.Equal(blobsAfter, blobsBefore) || len(parts) != 0 {
		t.Errorf("a refused file left blobs %v and parts %v", blobsAfter, parts)
	}
	if _, err := e.svc.AddAttachment(ctx, alice.ID, id, "exact.bin", "", bytes.NewReader(make([]byte, 1<<20))); err != nil {
		t.Errorf("a file of exactly the limit: %v", err)
	}
	if got, _ := e.svc.Draft(alice.ID, id); len(got.Attachments) != 3 {
		t.Errorf("%d attachments", len(got.Attachments))
	}

	// Take one off again: its file goes too.
	if err := e.svc.RemoveAttachment(ctx, alice.ID, id, small.ID); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.RemoveAttachment(ctx, alice.ID, id, small.ID); fault.KindOf(err) != fault.NotFound {
		t.Errorf("removing it twice: %v", err)
	}
	if e.blobExists(t, small.ID) {
		t.Error("the removed attachment's file is left")
	}
	got, _ = e.svc.Draft(alice.ID, id)
	if len(got.Attachments) != 2 || got.Attachments[0].ID != a.ID {
		t.Fatalf("after the removal %+v", got.Attachments)
	}

	// Sent, then forwarded: the files are copied under the new message's key.
	got.Bcc = "" // no such user
	msg := e.send(t, alice, got)
	e.wantCounts(t, alice, map[Folder]Counts{Sent: {1, 0}})
	fid, err := e.svc.Respond(ctx, bob.ID, msg, KindForward, "", func(View) string { return "today" })
	if err != nil {
		t.Fatal(err)
	}
	fwd, err := e.svc.Draft(bob.ID, fid)
	if err != nil {
		t.Fatal(err)
	}
	if fwd.Subject != "Fwd: Second try" || fwd.To != "" || fwd.ParentKind != KindForward || len(fwd.Attachments) != 2 {
		t.Fatalf("forward draft %+v", fwd)
	}
	for i, fa := range fwd.Attachments {
		orig := got.Attachments[i]
		if fa.ID == orig.ID || fa.Name != orig.Name || fa.Size != orig.Size || fa.Type != orig.Type {
			t.Errorf("copied attachment %+v of %+v", fa, orig)
		}
		copied, _, err := e.download(bob.ID, fid, fa.ID)
		if err != nil {
			t.Fatal(err)
		}
		original, _, err := e.download(bob.ID, msg, orig.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(copied, original) || len(copied) != int(orig.Size) {
			t.Errorf("%s: the copy differs", fa.Name)
		}
		// Each is sealed under its own message's key.
		err = e.st.View(func(tx *store.Tx) error {
			dk, err := e.svc.dataKey(tx, msg)
			if err != nil {
				return err
			}
			if _, err := e.blobs.Open(fa.ID, dk); err == nil {
				t.Errorf("the copy opens with the original's key")
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}

	// Purging the forward draft deletes it, its key and its files; the original keeps its own.
	e.apply(t, bob, Purge, fid)
	for _, fa := range fwd.Attachments {
		if e.blobExists(t, fa.ID) {
			t.Errorf("the purged draft's file %s is left", fa.ID)
		}
	}
	for _, oa := range got.Attachments {
		if !e.blobExists(t, oa.ID) {
			t.Errorf("the original's file %s is gone", oa.ID)
		}
	}
	err = e.st.View(func(tx *store.Tx) error {
		for _, k := range [][]byte{recordKey(fid), bodyKey(fid), dataKeyKey(fid), entryKey(bob.ID, fid)} {
			if _, err := tx.Get(k); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("%s after the purge: %v", k, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	e.wantCounts(t, bob, map[Folder]Counts{Inbox: {1, 1}})
}

func TestEvents(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.pro(t, "alice@clinic.test", "Alice")
	bob := e.pro(t, "bob@clinic.test", "Bob")
	events, cancel := e.svc.Subscribe(bob.ID)
	other, cancelOther := e.svc.Subscribe(bob.ID)
	defer cancelOther()

	next := func(ch <-chan Event, what string) Event {
		t.Helper()
		select {
		case ev := <-ch:
			return ev
		case <-time.After(5 * time.Second):
			t.Fatalf("no event after %s", what)
			return Event{}
		}
	}
	id := e.send(t, alice, Draft{To: "bob@clinic.test", Body: "x"})
	if ev := next(events, "a send"); ev.Counts[Inbox] != (Counts{1, 1}) {
		t.Errorf("after a send: %+v", ev.Counts)
	}
	if ev := next(other, "a send"); ev.Counts[Inbox] != (Counts{1, 1}) {
		t.Errorf("the second subscriber after a send: %+v", ev.Counts)
	}
	e.open(t, bob, id)
	if ev := next(events, "an open"); ev.Counts[Inbox] != (Counts{1, 0}) {
		t.Errorf("after an open: %+v", ev.Counts)
	}
	next(other, "an open")
	cancel()
	e.send(t, alice, Draft{To: "bob@clinic.test", Body: "x"})
	select {
	case ev, ok := <-events:
		t.Errorf("an event after cancel: %+v %v", ev, ok)
	default:
	}
	if ev := next(other, "a send"); ev.Counts[Inbox] != (Counts{2, 1}) {
		t.Errorf("after the second send: %+v", ev.Counts)
	}
	// A slow reader misses events; a send does not wait for it.
	for range 10 {
		e.send(t, alice, Draft{To: "bob@clinic.test", Body: "x"})
	}
	if n := len(other); n != cap(other) {
		t.Errorf("%d events buffered", n)
	}
}
