package smtpd

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// mimeLines builds a message from lines joined by CRLF.
func mimeLines(lines ...string) string { return strings.Join(lines, "\r\n") }

var goodMultipart = mimeLines(
	"From: =?utf-8?q?J=C3=BCrgen?= <juergen@example.org>",
	"To: bob@outside.example",
	"Subject: =?iso-8859-1?q?Pr=FCfung?= =?utf-8?b?4pyU?=",
	"Message-ID: <abc@example.org>",
	"MIME-Version: 1.0",
	`Content-Type: multipart/mixed; boundary="outer"`,
	"",
	"preamble",
	"--outer",
	`Content-Type: multipart/alternative; boundary=inner`,
	"",
	"--inner",
	"Content-Type: text/plain; charset=iso-8859-1",
	"Content-Transfer-Encoding: quoted-printable",
	"",
	"Gr=FC=DFe",
	"--inner",
	"Content-Type: text/html; charset=utf-8",
	"",
	"<p>Grüße</p>",
	"--inner--",
	"--outer",
	"Content-Type: image/png",
	"Content-ID: <logo@example.org>",
	"Content-Disposition: inline",
	"Content-Transfer-Encoding: base64",
	"",
	"iVBORw0K",
	"GgoA",
	"--outer",
	`Content-Type: application/pdf; name="ignored.pdf"`,
	`Content-Disposition: attachment; filename*=UTF-8''..%2F..%2Fetc%2Fr%C3%A9sum%C3%A9%E2%80%AEfdp.exe`,
	"Content-Transfer-Encoding: base64",
	"",
	"JVBERi0xLjQ=",
	"--outer",
	`Content-Type: text/plain; name="notes.txt"`,
	"Content-Disposition: attachment",
	"",
	"second text",
	"--outer--",
	"epilogue",
	"")

func TestParseMessage(t *testing.T) {
	t.Parallel()
	m, err := ParseMessage([]byte(goodMultipart))
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "Prüfung✔" || m.MessageID != "abc@example.org" || len(m.From) != 1 || m.From[0].Name != "Jürgen" {
		t.Errorf("header: subject %q id %q from %v", m.Subject, m.MessageID, m.From)
	}
	if m.Text != "Grüße" || m.HTML != "<p>Grüße</p>" {
		t.Errorf("text %q html %q", m.Text, m.HTML)
	}
	if m.Size != int64(len(goodMultipart)) || string(m.Raw) != goodMultipart {
		t.Error("Raw or Size is not the message as received")
	}
	want := []Part{
		{ContentType: "image/png", Inline: true, ContentID: "logo@example.org", Body: []byte("\x89PNG\r\n\x1a\n\x00")},
		{ContentType: "application/pdf", Filename: "résuméfdp.exe", Attachment: true, Body: []byte("%PDF-1.4")},
		{ContentType: "text/plain", Filename: "notes.txt", Attachment: true, Body: []byte("second text")},
	}
	if len(m.Parts) != len(want) {
		t.Fatalf("%d parts: %+v", len(m.Parts), m.Parts)
	}
	for i, p := range m.Parts {
		w := want[i]
		if p.ContentType != w.ContentType || p.Filename != w.Filename || p.Attachment != w.Attachment ||
			p.Inline != w.Inline || p.ContentID != w.ContentID || string(p.Body) != string(w.Body) {
			t.Errorf("part %d = %+v, want %+v", i, p, w)
		}
	}
}

func TestParseMessageSinglePart(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, raw  string
		text, html string
		parts      int
	}{
		{"no content type", "Subject: a\r\n\r\nbody\r\n", "body\r\n", "", 0},
		{"html only", "Content-Type: text/html\r\n\r\n<b>x</b>", "", "<b>x</b>", 0},
		{"a bare pdf", "Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQ=\r\n", "", "", 1},
		{"unknown charset kept", "Content-Type: text/plain; charset=x-klingon\r\n\r\nqaStaH\r\n", "qaStaH\r\n", "", 0},
		{"unknown encoding kept", "Content-Type: text/plain\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin\r\n", "begin\r\n", "", 0},
		{"bad content type is text", "Content-Type: ;;;\r\n\r\nhi", "hi", "", 0},
		{"headers only", "Subject: nothing\r\n", "", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseMessage([]byte(tt.raw))
			if err != nil {
				t.Fatal(err)
			}
			if m.Text != tt.text || m.HTML != tt.html || len(m.Parts) != tt.parts {
				t.Errorf("text %q html %q parts %d", m.Text, m.HTML, len(m.Parts))
			}
		})
	}
}

func TestSubjectIsOneLine(t *testing.T) {
	t.Parallel()
	// A CR LF hidden in an encoded word must not reach a header we write.
	m, err := ParseMessage([]byte("Subject: =?utf-8?q?a=0D=0ABcc:_evil@example.org?=\r\n\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(m.Subject, "\r\n") || m.Subject != "a  Bcc: evil@example.org" {
		t.Errorf("Subject = %q", m.Subject)
	}
}

// nested is a multipart nested depth deep, with a text part at the bottom.
func nested(depth int) string {
	var b strings.Builder
	b.WriteString("Subject: deep\r\n")
	for i := range depth {
		fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n", i, i)
	}
	b.WriteString("Content-Type: text/plain\r\n\r\nbottom")
	for i := depth - 1; i >= 0; i-- {
		fmt.Fprintf(&b, "\r\n--b%d--", i)
	}
	b.WriteString("\r\n")
	return b.String()
}

// manyParts is a multipart with n parts.
func manyParts(n int) string {
	var b strings.Builder
	b.WriteString("Content-Type: multipart/mixed; boundary=x\r\n\r\n")
	for i := range n {
		fmt.Fprintf(&b, "--x\r\nContent-Type: text/plain\r\n\r\npart %d\r\n", i)
	}
	b.WriteString("--x--\r\n")
	return b.String()
}

var malformedMIME = []struct {
	name, raw, reason string
}{
	{"unterminated multipart", mimeLines("Content-Type: multipart/mixed; boundary=b", "", "--b", "Content-Type: text/plain", "", "never ends", ""), reasonUnclosed},
	{"no final boundary", mimeLines("Content-Type: multipart/mixed; boundary=b", "", "--b", "", "x", "--b", ""), reasonUnclosed},
	{"no boundary line at all", mimeLines("Content-Type: multipart/mixed; boundary=b", "", "just text", ""), reasonUnclosed},
	{"inner never closed", mimeLines("Content-Type: multipart/mixed; boundary=o", "", "--o", "Content-Type: multipart/alternative; boundary=i", "", "--i", "", "x", "--o--", ""), reasonUnclosed},
	{"no boundary parameter", mimeLines("Content-Type: multipart/mixed", "", "--b", "", "x", "--b--", ""), reasonBoundary},
	{"bad base64", mimeLines("Content-Type: multipart/mixed; boundary=b", "", "--b", "Content-Transfer-Encoding: base64", "", "not*base64!", "--b--", ""), reasonBase64},
	{"truncated base64", mimeLines("Content-Transfer-Encoding: base64", "", "QUJ", ""), reasonBase64},
	{"bad quoted-printable", mimeLines("Content-Transfer-Encoding: quoted-printable", "", "a=\x01b", ""), reasonQP},
	{"header line without colon", mimeLines("Subject: x", "this is not a header", "", "body"), reasonHeader},
	{"header starts with a space", mimeLines(" folded: x", "", "body"), reasonHeader},
	{"bad header in a part", mimeLines("Content-Type: multipart/mixed; boundary=b", "", "--b", "Bad Header Line", "", "x", "--b--", ""), reasonHeader},
	{"nested 21 deep", nested(21), reasonDepth},
	{"1001 parts", manyParts(1001), reasonParts},
}

func TestParseMessageRefusesMalformedMIME(t *testing.T) {
	t.Parallel()
	for _, tt := range malformedMIME {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseMessage([]byte(tt.raw))
			var me *MalformedError
			if !errors.As(err, &me) || me.Reason != tt.reason {
				t.Fatalf("ParseMessage: %v, want reason %q", err, tt.reason)
			}
			if !strings.HasPrefix(err.Error(), "malformed MIME: ") {
				t.Errorf("error text %q", err)
			}
		})
	}
	// The limits themselves are allowed.
	for name, raw := range map[string]string{"20 deep": nested(20), "1000 parts": manyParts(1000)} {
		if _, err := ParseMessage([]byte(raw)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestMalformedMIMEIsRefusedAtDATA(t *testing.T) {
	t.Parallel()
	f := start(t)
	r := dialRaw(t, f.relay)
	r.hello()
	for _, tt := range malformedMIME {
		t.Run(tt.name, func(t *testing.T) {
			r.t = t
			r.cmd("MAIL FROM:<"+aliceAddr+">", 250, "")
			r.cmd("RCPT TO:<bob@example.org>", 250, "")
			r.cmd("DATA", 354, "")
			r.send(dotStuff(tt.raw) + ".\r\n")
			r.expect(554, "5.6.0 malformed MIME: "+tt.reason)
		})
	}
	if n := len(f.messages()); n != 0 {
		t.Errorf("Accept called %d times for malformed MIME", n)
	}
}

// dotStuff prepares a message for DATA: CRLF at the end, leading dots doubled.
func dotStuff(s string) string {
	if !strings.HasSuffix(s, "\r\n") {
		s += "\r\n"
	}
	lines := strings.SplitAfter(s, "\r\n")
	for i, l := range lines {
		if strings.HasPrefix(l, ".") {
			lines[i] = "." + l
		}
	}
	return strings.Join(lines, "")
}

func TestCleanFilename(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"report.pdf":             "report.pdf",
		"../../etc/passwd":       "passwd",
		`C:\Users\x\evil.exe`:    "evil.exe",
		"..":                     "attachment",
		" .hidden. ":             "hidden",
		"a\x00b\r\nc.txt":        "abc.txt",
		"invoice\u202efdp.exe":   "invoicefdp.exe",
		strings.Repeat("é", 200): strings.Repeat("é", 127),
		"":                       "",
	}
	for in, want := range tests {
		if got := cleanFilename(in); got != want {
			t.Errorf("cleanFilename(%q) = %q, want %q", in, got, want)
		}
	}
}
