package message

import (
	"context"
	"fmt"
	"io"
	"sync"
	"testing"

	"github.com/sealpost/sealpost/appliance/account"
	"github.com/sealpost/sealpost/appliance/fault"
)

// TestIntake: a message from the SMTP gateway becomes a portal message
// like any other: sealed, its file encrypted, a registered recipient
// notified, an unregistered one invited, the sender's copy in Sent.
func TestIntake(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	ann := e.pro(t, "ann@clinic.test", "Ann")
	gus := e.guest(t, "gus@outside.test", "Gus")
	res, err := e.svc.Intake(ctx, Incoming{SenderID: ann.ID, To: []string{gus.Email}, Cc: []string{"new@outside.test"},
		Subject: "Scan results", Text: "See the attached scan.",
		Attachments: []IncomingFile{{Name: "../scan.pdf", Type: "application/pdf", Body: []byte("%PDF scan")}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Invited) != 1 || res.Invited[0] != "new@outside.test" {
		t.Errorf("invited %v", res.Invited)
	}
	v := e.open(t, gus, res.ID)
	if v.Subject != "Scan results" || len(v.Attachments) != 1 || v.Attachments[0].Name != "scan.pdf" {
		t.Fatalf("the guest sees %q with %+v", v.Subject, v.Attachments)
	}
	if _, body, err := e.svc.Body(gus.ID, res.ID); err != nil || body != "See the attached scan." {
		t.Errorf("the body: %q %v", body, err)
	}
	rd, _, err := e.svc.OpenAttachment(ctx, gus.ID, res.ID, v.Attachments[0].ID, "10.0.0.5")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rd)
	rd.Close()
	if string(got) != "%PDF scan" {
		t.Errorf("the file reads %q", got)
	}
	if p, _ := e.svc.List(ann.ID, Sent, ""); len(p.Items) != 1 {
		t.Errorf("Ann's Sent holds %d", len(p.Items))
	}
	if n := len(e.mail.sent("new_message", "new@outside.test")); n != 1 {
		t.Errorf("%d notices to the new recipient", n)
	}

	// A guest is no gateway sender, and a disabled recipient refuses the
	// whole message: nothing is stored.
	if _, err := e.svc.Intake(ctx, Incoming{SenderID: gus.ID, To: []string{ann.Email}, Subject: "x", Text: "x"}); fault.KindOf(err) != fault.Permission {
		t.Errorf("a guest's intake: %v", err)
	}
	disabled := account.StatusDisabled
	if _, err := e.accounts.ChangeUser(ctx, e.admin.ID, gus.ID, account.UserChange{Status: &disabled}); err != nil {
		t.Fatal(err)
	}
	blobs, _ := e.blobFiles(t)
	_, err = e.svc.Intake(ctx, Incoming{SenderID: ann.ID, To: []string{gus.Email}, Subject: "Again", Text: "x",
		Attachments: []IncomingFile{{Name: "a.txt", Body: []byte("a")}}})
	if fault.KindOf(err) != fault.Invalid {
		t.Errorf("intake to a disabled recipient: %v", err)
	}
	if after, _ := e.blobFiles(t); len(after) != len(blobs) {
		t.Errorf("a refused intake left %d files (before %d)", len(after), len(blobs))
	}
	if p, _ := e.svc.List(ann.ID, Sent, ""); len(p.Items) != 1 {
		t.Errorf("a refused intake reached Sent: %d", len(p.Items))
	}
}

// TestConcurrentIntakeKeepsQuota: sends of one user run side by side, but
// invitations under a quota still take turns, so sixteen messages at once,
// each to a new address, invite exactly as many people as the quota
// allows and refuse the rest; the sender's Sent count and usage add up.
func TestConcurrentIntakeKeepsQuota(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	pat := e.pro(t, "pat@clinic.test", "Pat")
	e.inviteQuota(t, 5)
	const n = 16
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, err := e.svc.Intake(ctx, Incoming{SenderID: pat.ID, To: []string{fmt.Sprintf("guest%d@outside.test", i)}, Subject: "Results", Text: "x"})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	sent := 0
	for err := range errs {
		switch {
		case err == nil:
			sent++
		case fault.KindOf(err) != fault.TooLarge:
			t.Errorf("a send failed otherwise than on the quota: %v", err)
		}
	}
	if sent != 5 {
		t.Errorf("%d messages invited someone, want the quota's 5", sent)
	}
	e.wantCounts(t, pat, map[Folder]Counts{Sent: {5, 0}})
	if u, err := e.accounts.Usage(pat.ID); err != nil || u.Sent != 5 {
		t.Errorf("usage %+v, %v; want 5 sent", u, err)
	}
}

// TestConcurrentSendsCommitSideBySide: an administrator's messages (no
// quota) to new addresses, many at once: all go through and every count
// adds up, though none waits for another's turn.
func TestConcurrentSendsCommitSideBySide(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	const n = 40
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, err := e.svc.Intake(ctx, Incoming{SenderID: e.admin.ID, To: []string{fmt.Sprintf("r%d@outside.test", i)}, Subject: "Results", Text: "x"})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	e.wantCounts(t, e.admin, map[Folder]Counts{Sent: {n, 0}})
	if u, err := e.accounts.Usage(e.admin.ID); err != nil || u.Sent != n {
		t.Errorf("usage %+v, %v; want %d sent", u, err, n)
	}
	if listed := e.accounts.ListUsers(account.Query{Text: e.admin.Email}).Users; len(listed) != 1 || listed[0].MessagesSent != n {
		t.Errorf("the directory shows %+v", listed)
	}
}
