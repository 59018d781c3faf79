package message

import (
	"context"
	"fmt"
	"html"
	"io"
	"strings"

	"github.com/sealpost/sealpost/appliance/account"
	"github.com/sealpost/sealpost/appliance/fault"
	"github.com/sealpost/sealpost/appliance/keyring"
	"github.com/sealpost/sealpost/appliance/message/htmlbody"
	"github.com/sealpost/sealpost/appliance/store"
)

// Reply kinds.
const (
	KindReply    = "reply"
	KindReplyAll = "reply_all"
	KindForward  = "forward"
)

// Respond starts a reply, reply-all or forward of message id as a new
// draft of uid's and returns its id. The message's restrictions apply;
// a forward carries the attachments, re-encrypted under the new message's
// key. signature is appended above the quoted text. when formats the
// original's date for the quote header.
func (s *Service) Respond(ctx context.Context, uid, id, kind, signature string, when func(v View) string) (string, error) {
	if kind != KindReply && kind != KindReplyAll && kind != KindForward {
		return "", fault.E(fault.Invalid, "Reply, reply to all or forward.", nil)
	}
	var v View
	var body string
	var parentKey *keyring.DataKey
	var refs []attachmentRef
	err := s.st.View(func(tx *store.Tx) error {
		r, err := getRecord(tx, id)
		if err != nil {
			return err
		}
		e, err := getEntry(tx, uid, id)
		if err != nil {
			return err
		}
		if r.Draft {
			return errNotFound
		}
		if v, err = s.view(tx, r, e, uid); err != nil {
			return err
		}
		if v.Gone != "" {
			return errGone
		}
		switch {
		case kind == KindForward && !v.CanForward:
			return fault.E(fault.Permission, "The sender does not allow this message to be forwarded.", nil)
		case kind != KindForward && !v.CanReply:
			return fault.E(fault.Permission, "The sender does not allow replies to this message.", nil)
		}
		if parentKey, err = s.dataKey(tx, id); err != nil {
			return err
		}
		sealed, err := tx.Get(bodyKey(id))
		if err != nil {
			return err
		}
		if body, err = open(parentKey, id, "body", sealed); err != nil {
			return err
		}
		refs = r.Attach
		return nil
	})
	if err != nil {
		return "", err
	}
	d := Draft{Format: FormatHTML, Subject: prefixed(v.Subject, kind), ReadNotify: true}
	if kind != KindForward {
		d.To, d.Cc = replyRecipients(v, uid, kind == KindReplyAll)
	}
	d.Body = quote(v, body, kind, signature, when(v))
	// The attachments are copied before the transaction, under the new
	// message's key: a retried transaction must not copy them twice.
	dk, wrapped, err := s.keys.NewDataKey()
	if err != nil {
		return "", err
	}
	newID := newID()
	var copied []attachmentRef
	if kind == KindForward && v.CanDownload { // no files for those who may not download them
		for _, a := range refs {
			c, err := s.copyBlob(parentKey, dk, a, newID, v.ID)
			if err != nil {
				s.removeBlobs(blobIDs(copied))
				return "", err
			}
			copied = append(copied, c)
		}
	}
	err = s.st.Update(ctx, func(tx *store.Tx) error {
		sender, err := account.UserTx(tx, uid)
		if err != nil {
			return err
		}
		r := s.blankRecord(sender, newID)
		if err := tx.Put(dataKeyKey(r.ID), wrapped); err != nil {
			return err
		}
		r.Thread, r.Parent, r.ParentKind, r.Attach = v.Thread, v.ID, kind, copied
		return s.writeDraft(tx, r, dk, nil, d)
	})
	if err != nil {
		s.removeBlobs(blobIDs(copied))
		return "", err
	}
	s.publish(uid)
	return newID, nil
}

func blobIDs(refs []attachmentRef) []string {
	out := make([]string, len(refs))
	for i, a := range refs {
		out[i] = a.ID
	}
	return out
}

// copyBlob re-encrypts one attachment under another message's key.
func (s *Service) copyBlob(from, to *keyring.DataKey, a attachmentRef, newMsg, oldMsg string) (attachmentRef, error) {
	name, err := open(from, oldMsg, "att/"+a.ID, a.Name)
	if err != nil {
		return attachmentRef{}, err
	}
	rd, err := s.blobs.Open(a.ID, from)
	if err != nil {
		return attachmentRef{}, err
	}
	defer rd.Close()
	up, err := s.blobs.Create(to, 0)
	if err != nil {
		return attachmentRef{}, err
	}
	if _, err := io.Copy(up, rd); err != nil {
		up.Abort()
		return attachmentRef{}, err
	}
	if err := up.Commit(); err != nil {
		return attachmentRef{}, err
	}
	return attachmentRef{ID: up.ID(), Size: a.Size, Type: a.Type, Name: to.Seal([]byte(name), aad(newMsg, "att/"+up.ID()))}, nil
}

func prefixed(subject, kind string) string {
	p := "Re: "
	if kind == KindForward {
		p = "Fwd: "
	}
	if strings.HasPrefix(strings.ToLower(subject), strings.ToLower(p)) {
		return subject
	}
	return p + subject
}

// replyRecipients are the sender (or, replying to one's own message, its
// recipients), and with all the other to and cc recipients; never bcc.
func replyRecipients(v View, uid string, all bool) (to, cc string) {
	var tos, ccs []string
	add := func(list *[]string, p Participant) {
		if p.UserID != uid {
			*list = append(*list, p.Address)
		}
	}
	if v.From.UserID == uid {
		for _, p := range v.To {
			add(&tos, p)
		}
	} else {
		add(&tos, v.From)
	}
	if all {
		if v.From.UserID != uid {
			for _, p := range v.To {
				add(&tos, p)
			}
		}
		for _, p := range v.Cc {
			add(&ccs, p)
		}
	}
	return strings.Join(tos, ", "), strings.Join(ccs, ", ")
}

// quote is the new draft's text: room to write, the signature, then the
// original below a header line.
func quote(v View, body, kind, signature, when string) string {
	var b strings.Builder
	b.WriteString("<p><br></p>")
	if signature = strings.TrimSpace(signature); signature != "" {
		b.WriteString("<p>-- <br>" + strings.ReplaceAll(html.EscapeString(signature), "\n", "<br>") + "</p>")
	}
	original := body
	if v.Format == FormatText {
		original = htmlbody.FromText(body)
	}
	if kind == KindForward {
		fmt.Fprintf(&b, "<p>---------- Forwarded message ----------<br>From: %s<br>Date: %s<br>Subject: %s</p>%s",
			html.EscapeString(participantLine(v.From)), html.EscapeString(when), html.EscapeString(v.Subject), original)
		return b.String()
	}
	fmt.Fprintf(&b, "<p>On %s, %s wrote:</p><blockquote>%s</blockquote>", html.EscapeString(when),
		html.EscapeString(v.From.Label()), original)
	return b.String()
}

func participantLine(p Participant) string {
	if p.Name == "" {
		return p.Address
	}
	return p.Name + " <" + p.Address + ">"
}
