// Package mailer sends Sealpost's notification mail: it renders each kind
// of notification from the embedded templates (plain text and HTML, branded,
// disclaimer and postal address appended, never message content), builds
// the message with a structured writer (no header value can carry CR or LF),
// and delivers it through the organization's relay.
package mailer

import (
	"bytes"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	"strings"
	texttemplate "text/template"

	"github.com/sealpost/sealpost/embed"
)

// Kind is a kind of notification (SPEC §8).
type Kind string

// The kinds of notification.
const (
	KindNewMessage         Kind = "new_message"
	KindInvitation         Kind = "invitation"
	KindAuthCode           Kind = "auth_code"
	KindPasswordReset      Kind = "password_reset"
	KindAliasConfirm       Kind = "alias_confirm"
	KindFirstOpen          Kind = "first_open"
	KindRecall             Kind = "recall"
	KindUnsubscribeConfirm Kind = "unsubscribe_confirm"
	KindTest               Kind = "test"
	KindPolicyBlock        Kind = "policy_block"
	KindNoReply            Kind = "no_reply"
)

// Kinds lists every kind.
var Kinds = []Kind{KindNewMessage, KindInvitation, KindAuthCode, KindPasswordReset, KindAliasConfirm,
	KindFirstOpen, KindRecall, KindUnsubscribeConfirm, KindTest, KindPolicyBlock, KindNoReply}

// Brand is what makes a notification the organization's.
type Brand struct {
	OrgName       string
	Website       string
	AccentColor   string // #rrggbb
	Disclaimer    string
	PostalAddress string
	ShowSubject   bool // show the secure message's subject (admin setting, default off)
}

// Notification is what a template may show. It never holds message content:
// only who, a link and, for authorization codes, the code.
type Notification struct {
	Kind            Kind
	SenderName      string // who sent the secure message or the invitation
	RecipientName   string // for first-open notices
	Subject         string // shown only when Brand.ShowSubject
	Link            string // where to act: read, accept, reset
	Code            string // authorization code
	ValidFor        string // "4 hours"
	UnsubscribeLink string // for outside recipients: one-click unsubscribe
	// Categories are the content-policy categories that stopped a message
	// (policy_block): never the content, never the rule.
	Categories []string
	// Register says the link of a new message first registers the
	// recipient, who has no account yet (valid for ValidFor).
	Register bool
}

// Rendered is a notification ready to be put in a message.
type Rendered struct {
	Subject string
	Text    string
	HTML    string
}

// view is the data the templates see.
type view struct {
	Notification
	Brand       Brand
	ShowSubject bool
}

// Renderer holds the parsed templates.
type Renderer struct {
	text map[Kind]*texttemplate.Template
	html map[Kind]*htmltemplate.Template
}

// NewRenderer parses every kind's templates; a missing or broken template
// is an error at start, not at sending time.
func NewRenderer() (*Renderer, error) {
	r := &Renderer{text: map[Kind]*texttemplate.Template{}, html: map[Kind]*htmltemplate.Template{}}
	mail, err := fs.Sub(embed.Mail, "mail")
	if err != nil {
		return nil, err
	}
	for _, k := range Kinds {
		t, err := texttemplate.New("").Option("missingkey=error").ParseFS(mail, "layout.txt.tmpl", string(k)+".txt.tmpl")
		if err != nil {
			return nil, fmt.Errorf("parse %s text template: %w", k, err)
		}
		h, err := htmltemplate.New("").Option("missingkey=error").ParseFS(mail, "layout.html.tmpl", string(k)+".html.tmpl")
		if err != nil {
			return nil, fmt.Errorf("parse %s HTML template: %w", k, err)
		}
		r.text[k], r.html[k] = t, h
	}
	return r, nil
}

// Render renders n with the brand.
func (r *Renderer) Render(n Notification, b Brand) (Rendered, error) {
	t, ok := r.text[n.Kind]
	if !ok {
		return Rendered{}, fmt.Errorf("render: unknown notification kind %q", n.Kind)
	}
	if b.OrgName == "" {
		b.OrgName = "Sealpost"
	}
	if b.AccentColor == "" {
		b.AccentColor = "#0f7b6c"
	}
	v := view{Notification: n, Brand: b, ShowSubject: b.ShowSubject && n.Subject != ""}
	var subject, text, html bytes.Buffer
	if err := t.ExecuteTemplate(&subject, "subject", v); err != nil {
		return Rendered{}, fmt.Errorf("render %s subject: %w", n.Kind, err)
	}
	if err := t.ExecuteTemplate(&text, "layout", v); err != nil {
		return Rendered{}, fmt.Errorf("render %s text: %w", n.Kind, err)
	}
	if err := r.html[n.Kind].ExecuteTemplate(&html, "layout", v); err != nil {
		return Rendered{}, fmt.Errorf("render %s HTML: %w", n.Kind, err)
	}
	return Rendered{Subject: oneLine(subject.String()), Text: text.String(), HTML: html.String()}, nil
}

// oneLine folds any line breaks and runs of space into single spaces, so
// that nothing a user typed can start a new header.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
