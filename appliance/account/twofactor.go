package account

import (
	"context"

	"github.com/sealpost/sealpost/appliance/fault"
	"github.com/sealpost/sealpost/appliance/store"
	"github.com/sealpost/sealpost/appliance/totp"
)

// recoveryCodeCount is how many recovery codes a user gets.
const recoveryCodeCount = 10

// StartTOTP begins enrolment of an authenticator app: a new secret, kept
// pending until a code from the app confirms it.
func (s *Service) StartTOTP(ctx context.Context, userID, issuer string) (totp.Enrolment, error) {
	var e totp.Enrolment
	err := s.st.Update(ctx, func(tx *store.Tx) error {
		u, err := getUser(tx, userID)
		if err != nil {
			return err
		}
		if u.TOTP != nil {
			return errTOTPOn
		}
		if e, err = totp.Enrol(issuer, u.Email); err != nil {
			return err
		}
		u.PendingTOTP = e.Secret
		return putUser(tx, u)
	})
	return e, err
}

// PendingTOTP returns the enrolment in progress again (for a page reload),
// or starts one.
func (s *Service) PendingTOTP(ctx context.Context, userID, issuer string) (totp.Enrolment, error) {
	u, err := s.User(userID)
	if err != nil {
		return totp.Enrolment{}, err
	}
	if u.PendingTOTP == "" {
		return s.StartTOTP(ctx, userID, issuer)
	}
	return totp.FromSecret(issuer, u.Email, u.PendingTOTP)
}

// ConfirmTOTP checks a code from the app against the pending secret and
// turns the second factor on. It returns the recovery codes, shown once. A
// session at StageEnrol becomes a full one, with a new token.
func (s *Service) ConfirmTOTP(ctx context.Context, token, code, ip string) (codes []string, res SignInResult, err error) {
	sess, u, err := s.Authenticate(ctx, token, ip)
	if err != nil {
		return nil, res, err
	}
	if u.TOTP != nil {
		return nil, res, errTOTPOn
	}
	if u.PendingTOTP == "" {
		return nil, res, fault.E(fault.Conflict, "Start again: the setup of your authenticator app was not found.", nil)
	}
	now := s.now()
	step, ok := totp.Verify(u.PendingTOTP, code, now, 0)
	if !ok {
		return nil, res, fault.E(fault.Invalid, "That code is not right. Check the time on your phone and enter the code the app shows now.", nil)
	}
	codes, hashes, err := totp.RecoveryCodes(recoveryCodeCount)
	if err != nil {
		return nil, res, err
	}
	err = s.st.Update(ctx, func(tx *store.Tx) error {
		cur, err := getUser(tx, u.ID)
		if err != nil {
			return err
		}
		cur.TOTP = &TOTP{Secret: cur.PendingTOTP, LastStep: step, RecoveryCodes: hashes, Enabled: now.UTC()}
		cur.PendingTOTP = ""
		if sess.Stage == StageEnrol {
			cur.LastSignIn = now.UTC()
		}
		if err := putUser(tx, cur); err != nil {
			return err
		}
		res.User = cur
		if sess.Stage == StageEnrol {
			if err := endSession(tx, cur.ID, hashToken(token)); err != nil {
				return err
			}
			if res.Token, res.Session, err = s.newSession(tx, cur, StageFull, ip, sess.UserAgent); err != nil {
				return err
			}
		}
		return s.audit(tx, ActorOf(cur.ID), "user.totp_enable", "user/"+cur.ID, nil)
	})
	if err != nil {
		return nil, res, err
	}
	s.dir.put(res.User)
	return codes, res, nil
}

// errTOTPOn refuses to replace a second factor without turning it off
// first (which asks for the password).
var errTOTPOn = fault.E(fault.Conflict, "Your authenticator app is set up already. To use another, turn it off first.", nil)

// DisableTOTP turns the second factor off after checking the user's
// password (a session alone is not enough), unless the user must have one.
func (s *Service) DisableTOTP(ctx context.Context, userID, password string) error {
	if err := s.checkCurrentPassword(ctx, userID, password); err != nil {
		return err
	}
	return s.st.Update(ctx, func(tx *store.Tx) error {
		u, err := getUser(tx, userID)
		if err != nil {
			return err
		}
		need, err := RequiresTOTP(tx, u)
		if err != nil {
			return err
		}
		if need {
			return fault.E(fault.Permission, "Your account must keep a second factor.", nil)
		}
		u.TOTP, u.PendingTOTP = nil, ""
		if err := putUser(tx, u); err != nil {
			return err
		}
		return s.audit(tx, ActorOf(u.ID), "user.totp_disable", "user/"+u.ID, nil)
	})
}

// NewRecoveryCodes replaces a user's recovery codes.
func (s *Service) NewRecoveryCodes(ctx context.Context, userID string) ([]string, error) {
	codes, hashes, err := totp.RecoveryCodes(recoveryCodeCount)
	if err != nil {
		return nil, err
	}
	err = s.st.Update(ctx, func(tx *store.Tx) error {
		u, err := getUser(tx, userID)
		if err != nil {
			return err
		}
		if u.TOTP == nil {
			return fault.E(fault.Conflict, "Set up an authenticator app first.", nil)
		}
		u.TOTP.RecoveryCodes = hashes
		if err := putUser(tx, u); err != nil {
			return err
		}
		return s.audit(tx, ActorOf(u.ID), "user.recovery_codes_renew", "user/"+u.ID, nil)
	})
	return codes, err
}
