package message

import (
	"context"
	"strings"
	"testing"

	"github.com/sealpost/sealpost/appliance/account"
	"github.com/sealpost/sealpost/appliance/fault"
)

// TestSharedSent: a registration filter with share_sent lets the users of
// its domain read each other's sent messages, read-only and audited; no one
// else, and nothing sent before the filter said so.
func TestSharedSent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	ann := e.pro(t, "ann@clinic.test", "Ann")
	bob := e.pro(t, "bob@clinic.test", "Bob")
	gus := e.guest(t, "gus@outside.test", "Gus")
	eve := e.pro(t, "eve@other.test", "Eve")

	before := e.send(t, ann, Draft{To: gus.Email, Subject: "Before sharing", Body: "<p>one</p>"})
	if err := e.accounts.SaveFilter(ctx, e.admin.ID, account.Filter{Pattern: "clinic.test", Allow: true, CRA: "default", ShareSent: true}); err != nil {
		t.Fatal(err)
	}
	after := e.send(t, ann, Draft{To: gus.Email, Subject: "Shared with the team", Body: "<p>two</p>"})

	if !e.svc.SharesSent(bob.ID) || e.svc.SharesSent(gus.ID) || e.svc.SharesSent(eve.ID) {
		t.Errorf("the Shared folder: bob %v, guest %v, other domain %v", e.svc.SharesSent(bob.ID), e.svc.SharesSent(gus.ID), e.svc.SharesSent(eve.ID))
	}
	p, err := e.svc.List(bob.ID, Shared, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Items) != 1 || p.Items[0].ID != after || p.Items[0].Subject != "Shared with the team" {
		t.Fatalf("Bob's Shared folder: %+v", p.Items)
	}
	v, err := e.svc.Open(ctx, bob.ID, after, "10.0.0.7")
	if err != nil {
		t.Fatal(err)
	}
	if v.Role != RoleShared || v.CanReply || v.CanForward || v.CanRecall || !v.CanDownload {
		t.Errorf("Bob's view of a shared message: role %q reply %v forward %v recall %v download %v", v.Role, v.CanReply, v.CanForward, v.CanRecall, v.CanDownload)
	}
	if _, body, err := e.svc.Body(bob.ID, after); err != nil || body == "" {
		t.Errorf("Bob reads the body: %q %v", body, err)
	}
	if n := e.eventsOn(t, "message.open_shared", "message/"+after); n != 1 {
		t.Errorf("%d message.open_shared events", n)
	}
	if slips, _ := e.svc.SlipOf(ann.ID, after); len(slips) != 1 || slips[0].Opens != 0 {
		t.Errorf("a colleague's reading counts on the slip: %+v", slips)
	}
	for _, c := range []struct {
		name string
		err  error
	}{
		{"Bob trashes it", e.svc.Apply(ctx, bob.ID, MoveTrash, []string{after})},
		{"Bob recalls it", e.svc.Recall(ctx, bob.ID, after, "", false)},
		{"Bob opens what Ann sent before sharing", func() error { _, err := e.svc.Open(ctx, bob.ID, before, ""); return err }()},
		{"another domain opens it", func() error { _, err := e.svc.Open(ctx, eve.ID, after, ""); return err }()},
		{"another domain reads the body", func() error { _, _, err := e.svc.Body(eve.ID, after); return err }()},
		{"Bob replies", func() error {
			_, err := e.svc.Respond(ctx, bob.ID, after, KindReply, "", func(View) string { return "" })
			return err
		}()},
	} {
		if fault.KindOf(c.err) != fault.NotFound && fault.KindOf(c.err) != fault.Permission {
			t.Errorf("%s: %v, want not found or refused", c.name, c.err)
		}
	}
	if p, _ := e.svc.List(eve.ID, Shared, ""); len(p.Items) != 0 {
		t.Errorf("another domain's Shared folder holds %d", len(p.Items))
	}
}

// TestNoForwardKeepsRepliesAmongParticipants: replying to a message its
// sender does not allow to be forwarded, with someone new added, would
// forward the quoted text; it is refused, naming the address, and the
// reply to the participants goes.
func TestNoForwardKeepsRepliesAmongParticipants(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	ann := e.pro(t, "ann@clinic.test", "Ann")
	bob := e.pro(t, "bob@clinic.test", "Bob")
	cat := e.pro(t, "cat@clinic.test", "Cat")
	id := e.send(t, ann, Draft{To: bob.Email, Subject: "Confidential", Body: "<p>only for Bob</p>", Restrict: Restrictions{NoForward: true}})
	draft, err := e.svc.Respond(ctx, bob.ID, id, KindReply, "", func(View) string { return "today" })
	if err != nil {
		t.Fatal(err)
	}
	d, err := e.svc.Draft(bob.ID, draft)
	if err != nil {
		t.Fatal(err)
	}
	d.To += ", " + cat.Email
	_, err = e.svc.Send(ctx, bob.ID, d)
	if msg := fieldError(err)("to"); !strings.Contains(msg, cat.Email) || !strings.Contains(msg, "forwarded") {
		t.Fatalf("a reply that adds Cat: %v (to: %q)", err, msg)
	}
	if p, _ := e.svc.List(cat.ID, Inbox, ""); len(p.Items) != 0 {
		t.Errorf("Cat got %d messages", len(p.Items))
	}
	d.To = ann.Email
	if _, err := e.svc.Send(ctx, bob.ID, d); err != nil {
		t.Errorf("the reply to Ann alone: %v", err)
	}
	// The sender is bound by nothing.
	own, err := e.svc.Respond(ctx, ann.ID, id, KindReply, "", func(View) string { return "today" })
	if err != nil {
		t.Fatal(err)
	}
	d, _ = e.svc.Draft(ann.ID, own)
	d.To = cat.Email
	if _, err := e.svc.Send(ctx, ann.ID, d); err != nil {
		t.Errorf("Ann replying to her own message to Cat: %v", err)
	}
}
