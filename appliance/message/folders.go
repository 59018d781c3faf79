package message

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/sealpost/sealpost/appliance/account"
	"github.com/sealpost/sealpost/appliance/fault"
	"github.com/sealpost/sealpost/appliance/settings"
	"github.com/sealpost/sealpost/appliance/store"
)

// Action is a change to messages in a mailbox, alone or in bulk.
type Action string

// The actions.
const (
	MarkRead   Action = "read"
	MarkUnread Action = "unread"
	Star       Action = "star"
	Unstar     Action = "unstar"
	MoveInbox  Action = "inbox"
	MoveArch   Action = "archive"
	MoveTrash  Action = "trash"   // delete: to the trash
	Restore    Action = "restore" // from the trash to where it was
	Purge      Action = "purge"   // delete for good, from the trash (drafts: at once)
)

// ParseAction accepts an action's name.
func ParseAction(s string) (Action, bool) {
	switch a := Action(s); a {
	case MarkRead, MarkUnread, Star, Unstar, MoveInbox, MoveArch, MoveTrash, Restore, Purge:
		return a, true
	}
	return "", false
}

// maxBulk is the most messages one bulk action takes.
const maxBulk = 500

// Apply does one action to messages of uid's mailbox. Ids that are not the
// user's are not found; nothing changes unless every id is found.
func (s *Service) Apply(ctx context.Context, uid string, a Action, ids []string) error {
	if len(ids) == 0 {
		return fault.E(fault.Invalid, "Select at least one message.", nil)
	}
	if len(ids) > maxBulk {
		return fault.E(fault.Invalid, "Select at most 500 messages at once.", nil)
	}
	var blobs []string
	err := s.st.Update(ctx, func(tx *store.Tx) error {
		blobs = nil
		now := s.now().UTC()
		purged := 0
		for _, id := range ids {
			e, err := getEntry(tx, uid, id)
			if err != nil {
				return err
			}
			old := e
			switch a {
			case MarkRead, MarkUnread:
				e.Read = a == MarkRead
			case Star, Unstar:
				e.Starred = a == Star
			case MoveInbox, MoveArch:
				if e.Folder == Drafts || e.Role == RoleSender && a == MoveInbox {
					return fault.E(fault.Invalid, "Drafts and sent messages cannot go to the inbox.", nil)
				}
				e.Folder, e.Back, e.TrashedAt = Folder(a), "", time.Time{}
			case MoveTrash:
				if e.Folder == Trash {
					continue
				}
				e.Back, e.Folder, e.TrashedAt = e.Folder, Trash, now
			case Restore:
				if e.Folder != Trash {
					continue
				}
				e.Folder, e.Back, e.TrashedAt = e.Back, "", time.Time{}
				if e.Folder == "" {
					e.Folder = Inbox
				}
			case Purge:
				if e.Folder != Trash && e.Folder != Drafts {
					return fault.E(fault.Invalid, "Only messages in the trash can be deleted for good.", nil)
				}
				b, err := s.purge(tx, uid, e)
				if err != nil {
					return err
				}
				blobs = append(blobs, b...)
				purged++
				continue
			}
			if !old.TrashedAt.IsZero() && !old.TrashedAt.Equal(e.TrashedAt) {
				if err := tx.Delete(trashKey(old.TrashedAt, uid, id)); err != nil {
					return err
				}
			}
			if !e.TrashedAt.IsZero() && !old.TrashedAt.Equal(e.TrashedAt) {
				if err := tx.Put(trashKey(e.TrashedAt, uid, id), nil); err != nil {
					return err
				}
			}
			if err := s.putEntry(tx, uid, &old, e); err != nil {
				return err
			}
		}
		if purged > 0 {
			return s.audit(tx, account.ActorOf(uid), "message.purge", "mailbox/"+uid, map[string]string{"messages": strconv.Itoa(purged)})
		}
		return nil
	})
	if err == nil {
		s.publish(uid)
		s.removeBlobs(blobs)
	}
	return err
}

// purge removes a message from uid's mailbox for good. A draft goes
// entirely, with its key and attachments; a sent or received message stays
// for the other participants.
func (s *Service) purge(tx *store.Tx, uid string, e entry) (blobs []string, err error) {
	if err := s.dropEntry(tx, uid, e); err != nil {
		return nil, err
	}
	r, err := getRecord(tx, e.ID)
	if err != nil {
		return nil, err
	}
	if r.Draft {
		for _, a := range r.Attach {
			blobs = append(blobs, a.ID)
		}
		for _, k := range [][]byte{recordKey(r.ID), bodyKey(r.ID), dataKeyKey(r.ID)} {
			if err := tx.Delete(k); err != nil {
				return nil, err
			}
		}
		return blobs, nil
	}
	return nil, s.accounts.CountUsage(tx, uid, account.Usage{Bytes: -r.size()})
}

func (s *Service) removeBlobs(ids []string) {
	for _, id := range ids {
		if err := s.blobs.Remove(id); err != nil {
			s.log.Warn().Err(err).Str("blob_id", id).Msg("remove attachment file")
		}
	}
}

// RunCounters folds the mailbox counters' changes until ctx ends (see
// store.Counter): a busy mailbox's at once, every other one each minute.
func (s *Service) RunCounters(ctx context.Context) {
	s.counts.Run(ctx, s.st, time.Minute, func(err error) { s.log.Warn().Err(err).Msg("fold mailbox counts") })
}

// Sweep expires messages whose date has passed (shredding their keys) and
// empties the trash of messages kept there longer than the setting. It
// returns how many it expired and purged; the appliance runs it every
// minute.
func (s *Service) Sweep(ctx context.Context) (expired, purged int, err error) {
	now := s.now()
	var due []string
	err = s.st.View(func(tx *store.Tx) error {
		end := []byte(expiryPrefix + stamp(now))
		return tx.Scan([]byte(expiryPrefix), func(k, _ []byte) error {
			if string(k) >= string(end) || len(due) >= 1000 {
				return store.ErrStop
			}
			due = append(due, string(k))
			return nil
		})
	})
	if err != nil {
		return 0, 0, err
	}
	for _, k := range due {
		id := k[len(k)-21:]
		if err := s.shred(ctx, id, "expired", "", "system", k); err != nil {
			return expired, purged, err
		}
		expired++
	}
	var trashDays int
	var old []string
	err = s.st.View(func(tx *store.Tx) error {
		set, err := settings.Load(tx)
		if err != nil {
			return err
		}
		trashDays = set.Messages.TrashDays
		end := []byte(trashPrefix + stamp(now.Add(-time.Duration(trashDays)*24*time.Hour)))
		return tx.Scan([]byte(trashPrefix), func(k, _ []byte) error {
			if string(k) >= string(end) || len(old) >= 1000 {
				return store.ErrStop
			}
			old = append(old, string(k[len(trashPrefix):]))
			return nil
		})
	})
	if err != nil {
		return expired, purged, err
	}
	for _, rest := range old {
		// rest is time/user/message
		var uid, id string
		if n := len(rest); n > 22 {
			id = rest[n-21:]
			uid = rest[21 : n-22]
		}
		var blobs []string
		err := s.st.Update(ctx, func(tx *store.Tx) error {
			blobs = nil
			e, err := getEntry(tx, uid, id)
			if errors.Is(err, errNotFound) {
				return tx.Delete([]byte(trashPrefix + rest))
			}
			if err != nil {
				return err
			}
			if blobs, err = s.purge(tx, uid, e); err != nil {
				return err
			}
			return s.audit(tx, "system", "message.purge", "mailbox/"+uid, map[string]string{"messages": "1", "reason": "trash_days"})
		})
		if err != nil {
			return expired, purged, err
		}
		purged++
		s.publish(uid)
		s.removeBlobs(blobs) // a purged draft's files
	}
	return expired, purged, nil
}
