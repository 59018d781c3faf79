package message

import (
	"context"
	"io"
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
