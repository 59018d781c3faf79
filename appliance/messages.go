package appliance

import (
	"context"
	"errors"
	"path/filepath"
	"time"

	"github.com/sealpost/sealpost/appliance/attachment"
	"github.com/sealpost/sealpost/appliance/fault"
	"github.com/sealpost/sealpost/appliance/message"
	"github.com/sealpost/sealpost/appliance/settings"
	"github.com/sealpost/sealpost/appliance/store"
	"github.com/sealpost/sealpost/mailer"
)

var _ message.Notifier = notifier{}

// NotifyMessage queues a message's notification (new message, first
// opening, recall) in the message's transaction and returns its id for the
// delivery slip. Outside recipients get a one-click unsubscribe link.
func (n notifier) NotifyMessage(tx *store.Tx, no message.Notice) (string, error) {
	unsubscribe := ""
	if no.Guest && no.UserID != "" {
		link, err := n.a.accounts.UnsubscribeLink(tx, no.UserID)
		if err != nil {
			return "", err
		}
		unsubscribe = link
	}
	return n.queueNotice(tx, mailer.Notification{Kind: mailer.Kind(no.Kind), SenderName: no.SenderName,
		RecipientName: no.RecipientName, Subject: no.Subject, Link: no.Link, UnsubscribeLink: unsubscribe,
		Register: no.Register, ValidFor: no.ValidFor}, no.To)
}

// queueNotice renders, signs and queues one notification in tx.
func (n notifier) queueNotice(tx *store.Tx, note mailer.Notification, to string) (string, error) {
	a := n.a
	s, err := settings.Load(tx)
	if err != nil {
		return "", err
	}
	if err := s.Mail.Ready(); err != nil {
		return "", fault.E(fault.Unavailable, "Outbound mail is not set up yet, so this mail cannot be sent. An administrator sets it up under mail settings.", err)
	}
	r, err := a.renderer.Render(note, brand(s))
	if err != nil {
		return "", err
	}
	env := mailer.Envelope{ID: newNotificationID(), FromAddress: s.Mail.FromAddress, FromName: s.Mail.FromName,
		To: to, Hostname: a.messageIDHost(s), Date: time.Now(), UnsubscribeLink: note.UnsubscribeLink}
	msg, err := composeSigned(s, env, r, func() (mailer.DKIMKeys, error) { return storedDKIMKeys(tx) })
	if err != nil {
		return "", err
	}
	if err := a.queue.Add(tx, note.Kind, env, msg); err != nil {
		return "", err
	}
	tx.OnDone(func(committed bool) {
		if committed {
			a.queue.Committed(1)
		}
	})
	return env.ID, nil
}

// openMessages opens the attachment files and the message domain.
func (a *App) openMessages() error {
	blobs, err := attachment.OpenBlobs(filepath.Join(a.cfg.DataDir, "blobs"))
	if err != nil {
		return err
	}
	a.messages = message.New(message.Options{Store: a.store, Keys: a.keys, Blobs: blobs, Accounts: a.accounts,
		Audit: a.audit, Notifier: notifier{a}, Delivery: a.delivery, BaseURL: a.baseURL, Now: a.now,
		Logger: a.log.With().Str("component", "message").Logger()})
	return nil
}

// delivery tells the delivery slip what became of a notification.
func (a *App) delivery(id string) (state string, at time.Time, detail string) {
	it, err := a.queue.Get(id)
	if errors.Is(err, store.ErrNotFound) || err != nil {
		return "queued", time.Time{}, ""
	}
	switch it.State {
	case mailer.StateSent:
		return "delivered", it.Done, ""
	case mailer.StateFailed:
		return "bounced", it.Done, it.LastError
	}
	return "queued", time.Time{}, ""
}

// sweepMessages expires messages and empties trashes every minute.
func (a *App) sweepMessages(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		expired, purged, err := a.messages.Sweep(ctx)
		if err != nil && ctx.Err() == nil {
			a.log.Warn().Err(err).Msg("sweep messages")
		}
		if expired+purged > 0 {
			a.log.Info().Int("expired", expired).Int("purged", purged).Msg("messages swept")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// welcome is the administrator's welcome text, for a user's first visit.
func (a *App) welcome() string {
	s, err := settings.Read(a.store)
	if err != nil {
		return ""
	}
	return s.Branding.WelcomeMessage
}
