package mailer

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/emersion/go-message/mail"
)

// Envelope is who a message is from and to, for the header and for SMTP.
type Envelope struct {
	ID              string // notification id: Message-ID and VERP sender
	FromAddress     string // header From
	FromName        string
	To              string // one recipient
	Hostname        string // right side of the Message-ID
	UnsubscribeLink string // List-Unsubscribe, one-click (RFC 8058)
	Date            time.Time
}

// ReturnPath is the envelope sender: bounces+ID@domain of the From address,
// so a bounce names the notification it concerns (VERP).
func (e Envelope) ReturnPath() string {
	domain := e.FromAddress[strings.LastIndexByte(e.FromAddress, '@')+1:]
	return "bounces+" + e.ID + "@" + domain
}

// headerSafe refuses values that could start a new header line.
func headerSafe(name, value string) error {
	if strings.ContainsAny(value, "\r\n\x00") {
		return fmt.Errorf("header %s: value holds a line break", name)
	}
	return nil
}

// Compose writes the message: multipart/alternative with the text and HTML
// parts, and the headers every notification carries.
func Compose(e Envelope, r Rendered) ([]byte, error) {
	for name, v := range map[string]string{"From": e.FromAddress, "From name": e.FromName, "To": e.To,
		"Subject": r.Subject, "Message-ID": e.ID, "List-Unsubscribe": e.UnsubscribeLink, "Hostname": e.Hostname} {
		if err := headerSafe(name, v); err != nil {
			return nil, err
		}
	}
	if e.ID == "" || e.FromAddress == "" || e.To == "" {
		return nil, fmt.Errorf("compose: id, from and to are required")
	}
	var h mail.Header
	h.SetDate(e.Date)
	h.SetAddressList("From", []*mail.Address{{Name: e.FromName, Address: e.FromAddress}})
	h.SetAddressList("To", []*mail.Address{{Address: e.To}})
	h.SetSubject(r.Subject)
	h.SetMessageID(e.ID + "@" + e.Hostname)
	h.Set("Auto-Submitted", "auto-generated")
	h.Set("X-Auto-Response-Suppress", "All")
	if e.UnsubscribeLink != "" {
		h.Set("List-Unsubscribe", "<"+e.UnsubscribeLink+">")
		h.Set("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
	}

	var buf bytes.Buffer
	alt, err := mail.CreateInlineWriter(&buf, h)
	if err != nil {
		return nil, err
	}
	for _, part := range []struct{ typ, body string }{{"text/plain", r.Text}, {"text/html", r.HTML}} {
		var ph mail.InlineHeader
		ph.Set("Content-Type", part.typ+"; charset=utf-8")
		ph.Set("Content-Transfer-Encoding", "quoted-printable")
		pw, err := alt.CreatePart(ph)
		if err != nil {
			return nil, err
		}
		if _, err := io.WriteString(pw, part.body); err != nil {
			return nil, err
		}
		if err := pw.Close(); err != nil {
			return nil, err
		}
	}
	if err := alt.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
