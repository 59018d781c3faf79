package mailer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/sealpost/sealpost/appliance/store"
)

// ErrInFlight means a bounce names a notification that a worker is
// delivering at this moment; the bounce can be offered again shortly (an
// SMTP intake answers 451).
var ErrInFlight = errors.New("the notification is being delivered")

// maxBounceSummary bounds Item.LastError when a bounce writes it.
const maxBounceSummary = 500

// RecordBounce records what a bounce says about a notification.
// envelopeRecipient is the address the bounce was sent to: the VERP return
// path (bounces+ID@domain) that names the notification.
//
// Only blocks for the notification's recipient count (by Final- or
// Original-Recipient); when none names it, as after forwarding, all do. A
// failed block marks the notification failed, even once sent (the relay
// took it, a later hop gave up): a queued one leaves the queue and its
// message is dropped. A delayed block only notes the delay in LastError.
// Other actions change nothing. The summary holds the peer's status and
// diagnostic, never message content.
func (q *Queue) RecordBounce(ctx context.Context, d *DSN, envelopeRecipient string) (id string, err error) {
	id, ok := NotificationIDFromAddress(envelopeRecipient)
	if !ok {
		return "", errors.New("record bounce: the address is not a notification's return path (bounces+ID@domain)")
	}
	if d == nil || len(d.Recipients) == 0 {
		return id, errors.New("record bounce: the report has no recipients")
	}

	// Keep the workers off the item meanwhile: an attempt in flight would
	// write its outcome over this one. A worker that holds it already is
	// harmless once the item is no longer queued: an attempt writes once,
	// and only what it found queued.
	q.mu.Lock()
	claimed := !q.inflight[id]
	if claimed {
		q.inflight[id] = true
	}
	q.mu.Unlock()
	if claimed {
		defer func() {
			q.mu.Lock()
			delete(q.inflight, id)
			q.mu.Unlock()
		}()
	}

	addr := strings.Trim(strings.TrimSpace(envelopeRecipient), "<>")
	var (
		it        Item
		rcpt      DSNRecipient
		changed   bool
		wasQueued bool
	)
	err = q.st.Update(ctx, func(tx *store.Tx) error {
		var err error
		it, err = store.GetJSON[Item](tx, itemKey(id))
		if err != nil {
			return fmt.Errorf("notification %s: %w", id, err)
		}
		if it.ReturnPath != "" && !strings.EqualFold(it.ReturnPath, addr) {
			return fmt.Errorf("notification %s was sent with another return path", id)
		}
		if it.State == StateQueued && !claimed {
			return fmt.Errorf("notification %s: %w", id, ErrInFlight)
		}
		var found bool
		rcpt, found = bounceFor(d, it.To)
		if !found {
			return nil
		}
		summary := bounceSummary(d, rcpt)
		switch rcpt.Action {
		case ActionFailed:
			if it.State == StateFailed && it.LastError == summary {
				return nil // the same bounce again
			}
			if it.State == StateQueued {
				wasQueued = true
				if err := tx.Delete(dueKey(it.NextAttempt, id)); err != nil {
					return err
				}
			}
			if it.State != StateFailed || it.Done.IsZero() {
				it.Done = q.Now().UTC()
			}
			it.State, it.LastError, it.Message = StateFailed, summary, nil
		case ActionDelayed:
			if it.State == StateFailed || it.LastError == summary {
				return nil // a failure says more than a delay
			}
			it.LastError = summary
		}
		changed = true
		return store.PutJSON(tx, itemKey(id), it)
	})
	if err != nil {
		return id, fmt.Errorf("record bounce: %w", err)
	}
	if wasQueued {
		q.metrics.queued.Dec()
	}
	if changed {
		q.log.Info().Str("notification_id", id).Str("kind", string(it.Kind)).Str("to_domain", it.Domain()).
			Str("action", rcpt.Action).Str("status", rcpt.Status).Str("state", it.State).Msg("notification bounce")
	}
	return id, nil
}

// bounceFor picks the block that decides: among the blocks for to (all of
// them if none is), the first failed one, else the first delayed one.
func bounceFor(d *DSN, to string) (DSNRecipient, bool) {
	var mine []DSNRecipient
	for _, r := range d.Recipients {
		if strings.EqualFold(r.FinalRecipient, to) || strings.EqualFold(r.OriginalRecipient, to) {
			mine = append(mine, r)
		}
	}
	if len(mine) == 0 {
		mine = d.Recipients
	}
	for _, action := range []string{ActionFailed, ActionDelayed} {
		for _, r := range mine {
			if r.Action == action {
				return r, true
			}
		}
	}
	return DSNRecipient{}, false
}

// bounceSummary is one line for Item.LastError: "bounced by
// mx.example.test: 5.1.1 (smtp; 550 ...)" or "delayed at ...", at most
// maxBounceSummary bytes. A failure names the remote MTA that refused, a
// delay the reporting MTA that holds the message.
func bounceSummary(d *DSN, r DSNRecipient) string {
	s := "bounced"
	if host := cmp.Or(r.RemoteMTA, d.ReportingMTA); host != "" {
		s += " by " + host
	}
	if r.Action == ActionDelayed {
		s = "delayed"
		if host := cmp.Or(d.ReportingMTA, r.RemoteMTA); host != "" {
			s += " at " + host
		}
	}
	s += ": " + r.Status
	if r.DiagnosticCode != "" {
		s += " (" + r.DiagnosticCode + ")"
	}
	return summaryLine(s, maxBounceSummary)
}

// summaryLine turns control characters and runs of spaces into one space,
// repairs invalid UTF-8 and cuts to limit bytes on a character boundary.
func summaryLine(s string, limit int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }), " ")
	if len(s) <= limit {
		return s
	}
	n := limit - len("…")
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
