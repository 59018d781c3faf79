package message

import (
	"bytes"
	"context"
	"strings"

	"github.com/sealpost/sealpost/appliance/account"
	"github.com/sealpost/sealpost/appliance/fault"
	"github.com/sealpost/sealpost/appliance/store"
)

// Incoming is a message from the SMTP gateway that policy made secure.
type Incoming struct {
	SenderID    string   // the professional user it is from (aliases resolved)
	To, Cc      []string // envelope recipients split by the header's To and Cc
	Bcc         []string // envelope recipients in neither header
	Subject     string   // with the secure tag already removed
	HTML        string   // the HTML body, if any (sanitized here)
	Text        string   // the plain-text body, used when there is no HTML
	Attachments []IncomingFile
}

// IncomingFile is an attachment of an incoming message.
type IncomingFile struct {
	Name, Type string
	Body       []byte
}

// Intake stores a secure message that arrived by SMTP and notifies its
// recipients, exactly as if it had been sent in the portal: one data key,
// files encrypted under it, unregistered recipients invited as guests
// (there is nobody to ask, so the invitation is implied; the quota
// applies). It returns once everything is durable. Recipients who cannot
// receive secure messages refuse the whole message, so that nothing is
// half-delivered.
func (s *Service) Intake(ctx context.Context, in Incoming) (SendResult, error) {
	d := Draft{To: strings.Join(in.To, ", "), Cc: strings.Join(in.Cc, ", "), Bcc: strings.Join(in.Bcc, ", "),
		Subject: in.Subject, InviteConfirmed: true, Format: FormatHTML, Body: in.HTML}
	if strings.TrimSpace(in.HTML) == "" {
		d.Format, d.Body = FormatText, in.Text
	}
	if strings.TrimSpace(d.Subject) == "" {
		d.Subject = "(no subject)"
	}
	dk, wrapped, err := s.keys.NewDataKey()
	if err != nil {
		return SendResult{}, err
	}
	id := newID()
	var refs []attachmentRef
	var limit int64
	err = s.st.View(func(tx *store.Tx) error {
		u, err := account.UserTx(tx, in.SenderID)
		if err != nil {
			return err
		}
		g, err := account.GroupTx(tx, u.Group)
		if err != nil {
			return err
		}
		limit = int64(g.AttachmentLimitMB) << 20
		return nil
	})
	if err != nil {
		return SendResult{}, err
	}
	if len(in.Attachments) > maxAttachments {
		return SendResult{}, fault.E(fault.TooLarge, "The message has more files than a secure message may carry.", nil)
	}
	for _, a := range in.Attachments {
		up, err := s.blobs.Create(dk, limit)
		if err != nil {
			s.removeBlobs(blobIDs(refs))
			return SendResult{}, err
		}
		if _, err := up.ReadFrom(bytes.NewReader(a.Body)); err != nil {
			up.Abort()
			s.removeBlobs(blobIDs(refs))
			if fault.KindOf(err) == fault.TooLarge {
				return SendResult{}, fault.E(fault.TooLarge, "A file is larger than the sender's limit per file.", err)
			}
			return SendResult{}, err
		}
		if err := up.Commit(); err != nil {
			s.removeBlobs(blobIDs(refs))
			return SendResult{}, err
		}
		name := cleanName(a.Name)
		refs = append(refs, attachmentRef{ID: up.ID(), Size: up.Size(), Type: cleanType(a.Type),
			Name: dk.Seal([]byte(name), aad(id, "att/"+up.ID()))})
	}
	var res SendResult
	var notify []string
	err = s.sending(ctx, in.SenderID, func(tx *store.Tx) error {
		res, notify = SendResult{}, nil
		o, err := s.outgoing(tx, in.SenderID, &d)
		if err != nil {
			return err
		}
		set, sender, group, list, errs := o.set, o.sender, o.group, o.list, o.errs
		if !sender.Has(account.RoleProfessional) {
			return fault.E(fault.Permission, "The sender may not send secure messages.", nil)
		}
		rcpts, rerrs, _, err := s.resolve(tx, sender, group, list, nil)
		if err != nil {
			return err
		}
		if err := invalid(append(errs, rerrs...)); err != nil {
			return err
		}
		r := s.blankRecord(sender, id)
		if err := tx.Put(dataKeyKey(id), wrapped); err != nil {
			return err
		}
		r.Attach = refs
		return s.deliver(ctx, tx, set, sender, r, dk, nil, d, rcpts, &res, &notify)
	})
	if err != nil {
		s.removeBlobs(blobIDs(refs))
		return res, err
	}
	for _, u := range notify {
		s.publish(u)
	}
	return res, nil
}
