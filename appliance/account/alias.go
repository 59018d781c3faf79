package account

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/sealpost/sealpost/appliance/fault"
	"github.com/sealpost/sealpost/appliance/store"
)

// aliasLinkLife is how long an alias confirmation link works.
const aliasLinkLife = 48 * time.Hour

// PendingAlias is an address waiting for its confirmation.
type PendingAlias struct {
	Address string
	Expires time.Time
}

// AddAlias starts adding an address to a user: a confirmation link goes to
// that address, and the alias works once it is followed. The user adds
// their own (if their group allows aliases); an administrator may start it
// for any professional user. Guests have no aliases.
func (s *Service) AddAlias(ctx context.Context, actorID, userID, address string) error {
	addr, err := NormalizeAddress(address)
	if err != nil {
		return invalid([]FieldError{{"alias", fault.Message(err)}})
	}
	return s.st.Update(ctx, func(tx *store.Tx) error {
		u, err := getUser(tx, userID)
		if err != nil {
			return err
		}
		if actorID != userID {
			actor, err := getUser(tx, actorID)
			if err != nil || !actor.Has(RoleAdmin) {
				return fault.E(fault.NotFound, "no such user", nil)
			}
		} else {
			g, err := getGroup(tx, u.Group)
			if err != nil {
				return err
			}
			if !g.Features.Aliases {
				return fault.E(fault.Permission, "Your group may not add addresses.", nil)
			}
		}
		if u.IsGuest() {
			return fault.E(fault.Permission, "Guest users cannot have further addresses.", nil)
		}
		if _, err := tx.Get(emailKey(addr)); err == nil {
			return invalid([]FieldError{{"alias", "This address belongs to a user already."}})
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		secret, err := issueToken(tx, Token{Purpose: purposeAlias, UserID: u.ID, Address: addr,
			Created: s.now().UTC(), Expires: s.now().Add(aliasLinkLife).UTC()})
		if err != nil {
			return err
		}
		if err := s.notify(tx, Notice{Kind: "alias_confirm", To: addr, ToName: u.Name, SenderName: u.DisplayName(),
			Link: s.baseURL() + "/alias/confirm?token=" + secret, ValidFor: validFor(aliasLinkLife)}); err != nil {
			return err
		}
		return s.audit(tx, ActorOf(actorID), "alias.add", "user/"+u.ID, map[string]string{"alias_domain": DomainOf(addr)})
	})
}

// PendingAliases lists a user's aliases waiting for confirmation.
func (s *Service) PendingAliases(userID string) ([]PendingAlias, error) {
	var out []PendingAlias
	err := s.st.View(func(tx *store.Tx) error {
		prefix := userTokenKey(userID, purposeAlias, "")
		prefix = append(prefix, '/')
		return tx.Scan(prefix, func(key, h []byte) error {
			t, err := store.GetJSON[Token](tx, tokenKey(purposeAlias, string(h)))
			if err != nil || s.now().After(t.Expires) {
				return nil
			}
			out = append(out, PendingAlias{Address: t.Address, Expires: t.Expires})
			return nil
		})
	})
	return out, err
}

// ConfirmAlias follows a confirmation link: the address becomes an alias.
func (s *Service) ConfirmAlias(ctx context.Context, secret string) (User, string, error) {
	var u User
	var addr string
	err := s.st.Update(ctx, func(tx *store.Tx) error {
		t, h, err := lookupToken(tx, purposeAlias, secret, s.now(), "confirmation")
		if err != nil {
			return err
		}
		if u, err = getUser(tx, t.UserID); err != nil {
			return err
		}
		addr = t.Address
		if _, err := tx.Get(emailKey(addr)); err == nil {
			return fault.E(fault.Conflict, "This address belongs to a user already.", nil)
		}
		u.Aliases = append(u.Aliases, addr)
		if err := putUser(tx, u); err != nil {
			return err
		}
		if err := tx.Put(emailKey(addr), []byte(u.ID)); err != nil {
			return err
		}
		if err := consumeToken(tx, t, h); err != nil {
			return err
		}
		return s.audit(tx, ActorOf(u.ID), "alias.confirm", "user/"+u.ID, map[string]string{"alias_domain": DomainOf(addr)})
	})
	if err == nil {
		s.dir.put(u)
	}
	return u, addr, err
}

// PromoteAlias makes an alias the master address; the old master stays as
// an alias, and messages stay where they are.
func (s *Service) PromoteAlias(ctx context.Context, actorID, userID, address string) (User, error) {
	return s.changeAlias(ctx, actorID, userID, address, "alias.promote", "master_domain", func(tx *store.Tx, u *User, i int) error {
		u.Aliases[i], u.Email = u.Email, address
		return nil
	})
}

// RemoveAlias removes an alias; mail to it no longer reaches the user.
func (s *Service) RemoveAlias(ctx context.Context, actorID, userID, address string) (User, error) {
	return s.changeAlias(ctx, actorID, userID, address, "alias.remove", "alias_domain", func(tx *store.Tx, u *User, i int) error {
		u.Aliases = slices.Delete(u.Aliases, i, i+1)
		return tx.Delete(emailKey(address))
	})
}

// changeAlias applies change to one of a user's aliases (index i), saves
// and audits it, and updates the directory.
func (s *Service) changeAlias(ctx context.Context, actorID, userID, address, action, detailKey string, change func(tx *store.Tx, u *User, i int) error) (User, error) {
	var u User
	err := s.st.Update(ctx, func(tx *store.Tx) error {
		var err error
		if u, err = s.aliasOwner(tx, actorID, userID); err != nil {
			return err
		}
		i := slices.Index(u.Aliases, address)
		if i < 0 {
			return fault.E(fault.NotFound, "That address is not one of the user's aliases.", nil)
		}
		if err := change(tx, &u, i); err != nil {
			return err
		}
		if err := putUser(tx, u); err != nil {
			return err
		}
		return s.audit(tx, ActorOf(actorID), action, "user/"+u.ID, map[string]string{detailKey: DomainOf(address)})
	})
	if err == nil {
		s.dir.put(u)
	}
	return u, err
}

func (s *Service) aliasOwner(tx *store.Tx, actorID, userID string) (User, error) {
	u, err := getUser(tx, userID)
	if err != nil {
		return u, err
	}
	if actorID != userID {
		actor, err := getUser(tx, actorID)
		if err != nil || !actor.Has(RoleAdmin) {
			return u, fault.E(fault.NotFound, "no such user", nil)
		}
	}
	return u, nil
}

// UnsubscribeLink makes the link an outside recipient's notifications carry
// (List-Unsubscribe); it stays valid for a year.
func (s *Service) UnsubscribeLink(tx *store.Tx, userID string) (string, error) {
	secret, err := issueToken(tx, Token{Purpose: purposeUnsubscribe, UserID: userID, Created: s.now().UTC(),
		Expires: s.now().Add(365 * 24 * time.Hour).UTC()})
	return s.baseURL() + "/unsubscribe?token=" + secret, err
}

// Unsubscribe stops notifications to an outside recipient and revokes
// their access to what they received: the guest is disabled and marked
// unsubscribed, their sessions end, a confirmation is sent, all audited.
func (s *Service) Unsubscribe(ctx context.Context, secret, ip string) (User, error) {
	var u User
	err := s.st.Update(ctx, func(tx *store.Tx) error {
		t, h, err := lookupToken(tx, purposeUnsubscribe, secret, s.now(), "unsubscribe")
		if err != nil {
			return err
		}
		if u, err = getUser(tx, t.UserID); err != nil {
			return err
		}
		if !u.IsGuest() {
			return fault.E(fault.Permission, "Staff accounts cannot unsubscribe; ask your administrator.", nil)
		}
		u.Status, u.Unsubscribed = StatusDisabled, true
		if err := putUser(tx, u); err != nil {
			return err
		}
		if err := endSessions(tx, u.ID, ""); err != nil {
			return err
		}
		if err := consumeToken(tx, t, h); err != nil {
			return err
		}
		if err := s.notify(tx, Notice{Kind: "unsubscribe_confirm", To: u.Email, ToName: u.Name}); err != nil {
			return err
		}
		return s.audit(tx, ActorOf(u.ID), "user.unsubscribe", "user/"+u.ID, map[string]string{"remote_ip": ip})
	})
	if err == nil {
		s.dir.put(u)
	}
	return u, err
}
