package account

import (
	"context"
	"errors"
	"time"

	"github.com/sealpost/sealpost/appliance/fault"
	"github.com/sealpost/sealpost/appliance/keyring"
	"github.com/sealpost/sealpost/appliance/settings"
	"github.com/sealpost/sealpost/appliance/store"
)

// StartPasswordReset emails a one-time reset link to the user with this
// address ("Forgot?"). It answers the same for unknown, invited and
// disabled addresses, which get no mail, so it reveals no users.
func (s *Service) StartPasswordReset(ctx context.Context, email, ip string) error {
	addr, err := NormalizeAddress(email)
	if err != nil {
		return invalid([]FieldError{{"email", fault.Message(err)}})
	}
	return s.st.Update(ctx, func(tx *store.Tx) error {
		u, err := userByAddress(tx, addr)
		if err != nil || u.Status != StatusEnabled {
			return nil
		}
		if _, err := s.resetLink(tx, u, true); err != nil {
			return err
		}
		return s.audit(tx, ActorOf(u.ID), "password.reset_request", "user/"+u.ID, map[string]string{"remote_ip": ip})
	})
}

// AdminPasswordReset sends the user the reset email on an administrator's
// request. Administrators never see or set the password.
func (s *Service) AdminPasswordReset(ctx context.Context, actorID, userID string) error {
	return s.st.Update(ctx, func(tx *store.Tx) error {
		u, err := getUser(tx, userID)
		if err != nil {
			return err
		}
		if u.Status != StatusEnabled {
			return fault.E(fault.Conflict, "Only an enabled, registered user can reset a password.", nil)
		}
		if _, err := s.resetLink(tx, u, true); err != nil {
			return err
		}
		return s.audit(tx, ActorOf(actorID), "password.reset_by_admin", "user/"+u.ID, nil)
	})
}

// BreakGlassResetLink makes a one-time reset link for the command line
// (`sealpost admin reset-password`), without mail, audited: for the
// administrator who is locked out.
func (s *Service) BreakGlassResetLink(ctx context.Context, email string) (string, error) {
	addr, err := NormalizeAddress(email)
	if err != nil {
		return "", err
	}
	var link string
	err = s.st.Update(ctx, func(tx *store.Tx) error {
		u, err := userByAddress(tx, addr)
		if err != nil {
			return fault.E(fault.NotFound, "No user has the address "+addr+".", nil)
		}
		if u.Status == StatusInvited {
			return fault.E(fault.Conflict, addr+" has not registered yet: resend the invitation instead.", nil)
		}
		if link, err = s.resetLink(tx, u, false); err != nil {
			return err
		}
		return s.audit(tx, "cli", "password.reset_break_glass", "user/"+u.ID, nil)
	})
	return link, err
}

func (s *Service) resetLink(tx *store.Tx, u User, mail bool) (string, error) {
	set, err := settings.Load(tx)
	if err != nil {
		return "", err
	}
	life := time.Duration(set.Security.ResetLinkHours) * time.Hour
	secret, err := issueToken(tx, Token{Purpose: purposeReset, UserID: u.ID, Created: s.now().UTC(), Expires: s.now().Add(life).UTC()})
	if err != nil {
		return "", err
	}
	link := s.baseURL() + "/reset?token=" + secret
	if mail {
		err = s.notify(tx, Notice{Kind: "password_reset", To: u.Email, ToName: u.Name, Link: link, ValidFor: validFor(life)})
	}
	return link, err
}

// CheckResetLink reports whether a reset link still works, and for whom.
func (s *Service) CheckResetLink(secret string) (User, error) {
	var u User
	err := s.st.View(func(tx *store.Tx) error {
		t, _, err := lookupToken(tx, purposeReset, secret, s.now(), "password reset")
		if err != nil {
			return err
		}
		u, err = getUser(tx, t.UserID)
		return err
	})
	return u, err
}

// CompletePasswordReset sets the password the user chose through a reset
// link, ends all their sessions and voids the link. A disabled user stays
// disabled (the password is set, sign-in still refused); an unsubscribed
// guest does not come back through a reset.
func (s *Service) CompletePasswordReset(ctx context.Context, secret, password, confirm, ip string) error {
	var u User
	err := s.st.Update(ctx, func(tx *store.Tx) error {
		t, h, err := lookupToken(tx, purposeReset, secret, s.now(), "password reset")
		if err != nil {
			return err
		}
		if u, err = getUser(tx, t.UserID); err != nil {
			return err
		}
		if err := invalid(checkNewPassword(tx, password, confirm, u.Email, u.Name)); err != nil {
			return err
		}
		if u.PasswordHash, err = keyring.HashPassword(ctx, password); err != nil {
			return err
		}
		u.PasswordSet = s.now().UTC()
		if err := putUser(tx, u); err != nil {
			return err
		}
		if err := consumeToken(tx, t, h); err != nil {
			return err
		}
		if err := endSessions(tx, u.ID, ""); err != nil {
			return err
		}
		return s.audit(tx, ActorOf(u.ID), "password.reset", "user/"+u.ID, map[string]string{"remote_ip": ip})
	})
	if err == nil {
		s.limits.succeed(u.ID)
	}
	return err
}

// checkCurrentPassword guards changes a stolen session must not make alone.
// Wrong answers count against the account like failed sign-ins (so they
// lock it) and are audited.
func (s *Service) checkCurrentPassword(ctx context.Context, userID, password string) error {
	wrong := invalid([]FieldError{{"current", "Your current password is not right."}})
	now := s.now()
	if s.limits.blocked(s.limits.accounts, userID, now) {
		return wrong
	}
	u, err := s.User(userID)
	if err != nil {
		return err
	}
	ok, _, err := keyring.VerifyPassword(ctx, u.PasswordHash, password)
	if err != nil && !errors.Is(err, keyring.ErrPasswordHash) {
		return err
	}
	if ok {
		return nil
	}
	var attempts, lockMinutes int
	err = s.st.Update(context.WithoutCancel(ctx), func(tx *store.Tx) error {
		set, err := settings.Load(tx)
		if err != nil {
			return err
		}
		attempts, lockMinutes = set.Security.SignInAttempts, set.Security.LockoutMinutes
		return s.audit(tx, ActorOf(userID), "password.check_fail", "user/"+userID, nil)
	})
	if err != nil {
		return err
	}
	s.limits.fail(s.limits.accounts, userID, now, attempts, 15*time.Minute, time.Duration(lockMinutes)*time.Minute)
	return wrong
}

// ChangePassword changes the signed-in user's password after checking the
// current one; their other sessions end.
func (s *Service) ChangePassword(ctx context.Context, token, current, password, confirm, ip string) error {
	sess, u, err := s.Authenticate(ctx, token, ip)
	if err != nil {
		return err
	}
	if err := s.checkCurrentPassword(ctx, u.ID, current); err != nil {
		return err
	}
	return s.st.Update(ctx, func(tx *store.Tx) error {
		cur, err := getUser(tx, u.ID)
		if err != nil {
			return err
		}
		if err := invalid(checkNewPassword(tx, password, confirm, cur.Email, cur.Name)); err != nil {
			return err
		}
		if cur.PasswordHash, err = keyring.HashPassword(ctx, password); err != nil {
			return err
		}
		cur.PasswordSet = s.now().UTC()
		if err := putUser(tx, cur); err != nil {
			return err
		}
		if err := endSessions(tx, cur.ID, hashToken(token)); err != nil {
			return err
		}
		return s.audit(tx, ActorOf(cur.ID), "password.change", "session/"+sess.ID, map[string]string{"remote_ip": ip})
	})
}
