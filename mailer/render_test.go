package mailer

import (
	"bytes"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message/mail"
)

var update = flag.Bool("update", false, "rewrite golden files")

var testBrand = Brand{
	OrgName: "Example Clinic", Website: "https://clinic.example.org", AccentColor: "#173a5e",
	Disclaimer: "This notice is confidential.", PostalAddress: "1 Harbour Street\nSpringfield",
}

// secret is a word that stands for message content: it must never appear
// in a notification, whatever the kind.
const secret = "Biopsy-results-7731"

func sample(k Kind) Notification {
	return Notification{Kind: k, SenderName: "Dr. Ada Lovelace", RecipientName: "Bob Patient", Subject: secret,
		Link: "https://mail.clinic.example.org/m/abc123", Code: "493 817", ValidFor: "4 hours",
		UnsubscribeLink: "https://mail.clinic.example.org/unsubscribe/tok", Categories: []string{"payment card data"}}
}

// TestRenderGolden renders every kind and compares with testdata/golden.
func TestRenderGolden(t *testing.T) {
	r, err := NewRenderer()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range Kinds {
		got, err := r.Render(sample(k), testBrand)
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		for _, part := range []struct{ ext, body string }{{"txt", "Subject: " + got.Subject + "\n\n" + got.Text}, {"html", got.HTML}} {
			path := filepath.Join("testdata", "golden", string(k)+"."+part.ext)
			if *update {
				os.WriteFile(path, []byte(part.body), 0o644)
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if string(want) != part.body {
				t.Errorf("%s differs from %s; run go test ./mailer -run TestRenderGolden -update and review the diff", k, path)
			}
		}
		all := got.Subject + got.Text + got.HTML
		if strings.Contains(all, secret) {
			t.Errorf("%s shows the message's subject while show_subject is off", k)
		}
		for _, must := range []string{"Example Clinic", "This notice is confidential.", "Springfield"} {
			if !strings.Contains(got.Text, must) || !strings.Contains(got.HTML, must) {
				t.Errorf("%s lacks %q in one of its parts", k, must)
			}
		}
	}
}

// TestNewMessageToNewRecipient: the notice of a message to someone without
// an account says the link registers them first, and for how long.
func TestNewMessageToNewRecipient(t *testing.T) {
	t.Parallel()
	r, _ := NewRenderer()
	n := sample(KindNewMessage)
	n.Register, n.ValidFor = true, "14 days"
	got, err := r.Render(n, testBrand)
	if err != nil {
		t.Fatal(err)
	}
	for _, part := range []string{got.Text, got.HTML} {
		for _, want := range []string{"you choose a password", "works for 14 days", "Register and read the message"} {
			if !strings.Contains(part, want) {
				t.Errorf("a new recipient's notice lacks %q:\n%s", want, part)
			}
		}
	}
	plain, _ := r.Render(sample(KindNewMessage), testBrand)
	if strings.Contains(plain.Text, "choose a password") {
		t.Errorf("a registered recipient's notice asks them to register")
	}
}

func TestSubjectShownOnlyWhenAllowed(t *testing.T) {
	t.Parallel()
	r, _ := NewRenderer()
	b := testBrand
	b.ShowSubject = true
	got, _ := r.Render(sample(KindNewMessage), b)
	if got.Subject != "Secure message: "+secret {
		t.Errorf("with show_subject the subject is %q", got.Subject)
	}
	n := sample(KindNewMessage)
	n.Subject = "line one\r\nBcc: victim@example.com"
	got, _ = r.Render(n, b)
	if strings.ContainsAny(got.Subject, "\r\n") {
		t.Errorf("a subject with a line break stayed multi-line: %q", got.Subject)
	}
}

func TestHTMLEscapesNames(t *testing.T) {
	t.Parallel()
	r, _ := NewRenderer()
	n := sample(KindInvitation)
	n.SenderName = `<script>alert(1)</script>`
	got, err := r.Render(n, testBrand)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(got.HTML, "<script>") {
		t.Error("a sender name reached the HTML unescaped")
	}
}

func TestCompose(t *testing.T) {
	t.Parallel()
	r, _ := NewRenderer()
	rendered, _ := r.Render(sample(KindNewMessage), testBrand)
	e := Envelope{ID: "n-0001", FromAddress: "no-reply@clinic.example.org", FromName: "Example Clinic",
		To: "bob@outside.example", Hostname: "mail.clinic.example.org",
		UnsubscribeLink: "https://mail.clinic.example.org/unsubscribe/tok", Date: time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)}
	msg, err := Compose(e, rendered)
	if err != nil {
		t.Fatal(err)
	}
	if e.ReturnPath() != "bounces+n-0001@clinic.example.org" {
		t.Errorf("return path %q", e.ReturnPath())
	}
	mr, err := mail.CreateReader(bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	h := mr.Header
	checks := map[string]string{
		"Auto-Submitted": "auto-generated", "List-Unsubscribe": "<https://mail.clinic.example.org/unsubscribe/tok>",
		"List-Unsubscribe-Post": "List-Unsubscribe=One-Click", "Message-Id": "<n-0001@mail.clinic.example.org>",
	}
	for k, want := range checks {
		if got := h.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if mt, _, _ := h.ContentType(); mt != "multipart/alternative" {
		t.Errorf("Content-Type %q, want multipart/alternative (no attachment, so no multipart/mixed)", mt)
	}
	if subject, _ := h.Subject(); subject != "You have a new secure message" {
		t.Errorf("Subject %q", subject)
	}
	var types []string
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		ct := p.Header.Get("Content-Type")
		types = append(types, ct[:strings.Index(ct, ";")])
		body, _ := io.ReadAll(p.Body)
		if !strings.Contains(string(body), "Dr. Ada Lovelace") {
			t.Errorf("part %s lost its text", ct)
		}
	}
	if strings.Join(types, ",") != "text/plain,text/html" {
		t.Errorf("parts %v, want text/plain then text/html", types)
	}

	for _, bad := range []Envelope{
		{ID: "x", FromAddress: "a@b.c", To: "v@x.y\r\nBcc: evil@x.y", Hostname: "h"},
		{ID: "x\n", FromAddress: "a@b.c", To: "v@x.y", Hostname: "h"},
		{ID: "x", FromAddress: "a@b.c", FromName: "A\rB", To: "v@x.y", Hostname: "h"},
	} {
		if _, err := Compose(bad, rendered); err == nil {
			t.Errorf("Compose accepted a header with a line break: %+v", bad)
		}
	}
}
