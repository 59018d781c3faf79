package message

import (
	"errors"

	"github.com/sealpost/sealpost/appliance/account"
	"github.com/sealpost/sealpost/appliance/store"
)

// Shared is the folder of colleagues' sent messages that a registration
// filter with share_sent lets the users of its domain read (SPEC §4).
const Shared Folder = "shared"

// RoleShared is a reader who is no participant but a colleague the
// sender's registration filter shares sent messages with.
const RoleShared = "shared"

const sharedPrefix = "msg/d/" // + filter pattern + "/" + reversed time + "/" + message

func sharedFolderPrefix(pattern string) []byte { return []byte(sharedPrefix + pattern + "/") }

// shareSent files a sent message under its sender's filter when that
// filter shares sent messages, and names the filter on the record.
func shareSent(tx *store.Tx, sender account.User, r *record) error {
	f, ok, err := account.FilterFor(tx, sender.Email)
	if err != nil || !ok || !f.Allow || !f.ShareSent {
		return err
	}
	r.SharedIn = f.Pattern
	return tx.Put(append(sharedFolderPrefix(f.Pattern), reversed(r.Sent)+"/"+r.ID...), nil)
}

// sharingFor is the filter pattern whose sent messages uid may read, or "".
func sharingFor(tx *store.Tx, uid string) (string, error) {
	u, err := account.UserTx(tx, uid)
	if err != nil {
		return "", err
	}
	if u.Status != account.StatusEnabled || u.IsGuest() {
		return "", nil
	}
	f, ok, err := account.FilterFor(tx, u.Email)
	if err != nil || !ok || !f.Allow || !f.ShareSent {
		return "", err
	}
	return f.Pattern, nil
}

// SharesSent reports whether uid has the Shared folder.
func (s *Service) SharesSent(uid string) bool {
	var p string
	_ = s.st.View(func(tx *store.Tx) error {
		var err error
		p, err = sharingFor(tx, uid)
		return err
	})
	return p != ""
}

// readerEntry is uid's entry for r: their own, or, for a colleague the
// sender's filter shares sent messages with, a read-only one.
func readerEntry(tx *store.Tx, uid string, r record) (entry, error) {
	e, err := getEntry(tx, uid, r.ID)
	if !errors.Is(err, errNotFound) || r.SharedIn == "" || r.Draft || r.SenderID == uid {
		return e, err
	}
	p, err := sharingFor(tx, uid)
	if err != nil {
		return entry{}, err
	}
	if p != r.SharedIn {
		return entry{}, errNotFound
	}
	return entry{ID: r.ID, Folder: Shared, Role: RoleShared, Read: true, Date: r.Sent}, nil
}
