package message

import (
	"context"
	"errors"
	"strings"
	"unicode/utf8"

	"github.com/sealpost/sealpost/appliance/account"
	"github.com/sealpost/sealpost/appliance/fault"
	"github.com/sealpost/sealpost/appliance/store"
)

// Recall takes a sent message back: recipients keep only its subject and
// the notice, with reason; the message's key is destroyed, so its text and
// attachments cannot be opened by anyone, from any copy of the disk. With
// notify, each recipient is told by mail.
func (s *Service) Recall(ctx context.Context, uid, id, reason string, notify bool) error {
	reason = strings.TrimSpace(reason)
	if !utf8.ValidString(reason) || utf8.RuneCountInString(reason) > 500 || strings.ContainsAny(reason, "\r\n") {
		return invalid([]account.FieldError{{Field: "reason", Message: "Give the reason on one line of at most 500 characters."}})
	}
	err := s.st.View(func(tx *store.Tx) error {
		r, err := sentRecord(tx, uid, id)
		if err != nil {
			return err
		}
		u, err := account.UserTx(tx, uid)
		if err != nil {
			return err
		}
		g, err := account.GroupTx(tx, u.Group)
		if err != nil {
			return err
		}
		if !g.Features.Recall && !u.Has(account.RoleAdmin) {
			return fault.E(fault.Permission, "Your group may not recall messages.", nil)
		}
		if s.gone(r) != "" {
			return fault.E(fault.Conflict, "This message was recalled or has expired already.", nil)
		}
		return nil
	})
	if err != nil {
		return err
	}
	actor := account.ActorOf(uid)
	if !notify {
		actor = "!" + actor // shred reads the leading "!" as "no mail"
	}
	return s.shred(ctx, id, "recalled", reason, actor, "")
}

// shred ends a message: recalled by actor, or expired. The subject is kept
// for the notice, the wrapped data key, the body and the attachments are
// deleted in one audited transaction; the attachment files are removed
// after the commit. expiryKey, when given, is the sweeper's index entry.
func (s *Service) shred(ctx context.Context, id, why, reason, actor, expiry string) error {
	quiet := strings.HasPrefix(actor, "!")
	actor = strings.TrimPrefix(actor, "!")
	var blobs, notify []string
	err := s.st.Update(ctx, func(tx *store.Tx) error {
		blobs, notify = nil, nil
		if expiry != "" {
			if err := tx.Delete([]byte(expiry)); err != nil {
				return err
			}
		}
		r, err := getRecord(tx, id)
		if errors.Is(err, errNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if r.Gone != "" {
			return nil
		}
		dk, err := s.dataKey(tx, id)
		if err != nil && !errors.Is(err, errGone) {
			return err
		}
		if dk != nil {
			if r.KeptSubject, err = open(dk, id, "subject", r.Subject); err != nil {
				return err
			}
		}
		size := r.size()
		r.Gone, r.GoneAt, r.RecallReason = why, s.now().UTC(), reason
		if why == "expired" && !r.Expires.IsZero() {
			r.GoneAt = r.Expires // as Open shows it before the sweep
		}
		r.Subject, r.Preview, r.BodySize = nil, nil, 0
		for _, a := range r.Attach {
			blobs = append(blobs, a.ID)
		}
		r.Attach = nil
		if !r.Expires.IsZero() && expiry == "" {
			if err := tx.Delete(expiryKey(r.Expires, id)); err != nil {
				return err
			}
		}
		for _, k := range [][]byte{dataKeyKey(id), bodyKey(id)} {
			if err := tx.Delete(k); err != nil {
				return err
			}
		}
		if err := store.PutJSON(tx, recordKey(id), r); err != nil {
			return err
		}
		// The content is gone: those who still have the message get its
		// storage back (those who purged it got it back then).
		for _, uid := range append([]string{r.SenderID}, participantIDs(r.Recipients)...) {
			if _, err := getEntry(tx, uid, id); errors.Is(err, errNotFound) {
				continue
			} else if err != nil {
				return err
			}
			if err := s.accounts.CountUsage(tx, uid, account.Usage{Bytes: -size}); err != nil {
				return err
			}
		}
		sender, _ := account.UserTx(tx, r.SenderID)
		notify = append(notify, r.SenderID)
		for _, p := range r.Recipients {
			notify = append(notify, p.UserID)
			if why != "recalled" || quiet {
				continue
			}
			u, err := account.UserTx(tx, p.UserID)
			if err != nil || u.Status != account.StatusEnabled {
				continue // an invited or disabled recipient is not mailed
			}
			if _, err := s.notifier.NotifyMessage(tx, Notice{Kind: "recall", To: p.Address, ToName: p.Name, UserID: p.UserID,
				Guest: u.IsGuest(), SenderName: sender.DisplayName(), Link: s.baseURL() + Link(id)}); err != nil {
				return err
			}
		}
		detail := map[string]string{"recipients": itoa(len(r.Recipients))}
		if reason != "" {
			detail["reason_given"] = "yes"
		}
		action := "message.recall"
		if why == "expired" {
			action = "message.expire"
		}
		return s.audit(tx, actor, action, "message/"+id, detail)
	})
	if err != nil {
		return err
	}
	s.removeBlobs(blobs)
	for _, u := range notify {
		s.publish(u)
	}
	return nil
}

func participantIDs(ps []Participant) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.UserID
	}
	return out
}
