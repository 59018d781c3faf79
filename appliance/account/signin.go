package account

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/sealpost/sealpost/appliance/fault"
	"github.com/sealpost/sealpost/appliance/keyring"
	"github.com/sealpost/sealpost/appliance/settings"
	"github.com/sealpost/sealpost/appliance/store"
	"github.com/sealpost/sealpost/appliance/totp"
)

// ErrSignIn is the one answer to a failed sign-in, whatever failed: an
// unknown address, a wrong password, a disabled or locked account. The
// same words, status and (because a password is hashed either way) time.
var ErrSignIn = fault.E(fault.Permission,
	"The email address or password is not right. After several failed attempts, sign-in pauses for a while.", nil)

// ErrTooManyAttempts is the answer when one client address has failed too
// often: it speaks of the client, not of any account.
var ErrTooManyAttempts = fault.E(fault.Permission, "Too many failed sign-ins from your network. Wait 15 minutes and try again.", nil)

// Per client address: failures in the window before every sign-in from it
// is refused for the window.
const (
	ipFailures = 30
	ipWindow   = 15 * time.Minute
)

// signInLimits counts failed sign-ins per account and per client address.
// They are kept in memory: a restart forgets them, which only ever lets a
// locked user in sooner.
type signInLimits struct {
	mu       sync.Mutex
	accounts map[string]*failures
	ips      map[string]*failures
}

type failures struct {
	count       int
	first       time.Time
	lockedUntil time.Time
}

func newSignInLimits() *signInLimits {
	return &signInLimits{accounts: map[string]*failures{}, ips: map[string]*failures{}}
}

// blocked reports whether key is locked at now.
func (l *signInLimits) blocked(m map[string]*failures, key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := m[key]
	return f != nil && now.Before(f.lockedUntil)
}

// fail counts a failure and reports whether it locked key just now.
func (l *signInLimits) fail(m map[string]*failures, key string, now time.Time, limit int, window, lock time.Duration) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(m) > 100_000 { // a flood of distinct keys: forget the expired ones
		for k, f := range m {
			if now.Sub(f.first) > window && now.After(f.lockedUntil) {
				delete(m, k)
			}
		}
	}
	f := m[key]
	if f == nil || now.Sub(f.first) > window && now.After(f.lockedUntil) {
		f = &failures{first: now}
		m[key] = f
	}
	f.count++
	if f.count >= limit && now.After(f.lockedUntil) {
		f.lockedUntil = now.Add(lock)
		f.count, f.first = 0, now
		return true
	}
	return false
}

func (l *signInLimits) succeed(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.accounts, key)
}

// dummyHash is checked against when no user has the address, so that an
// unknown address takes as long as a wrong password.
var dummyHash = sync.OnceValue(func() string {
	h, err := keyring.HashPassword(context.Background(), "sealpost-no-such-user-"+strconv.Itoa(time.Now().Nanosecond()))
	if err != nil {
		panic(err)
	}
	return h
})

// SignInResult is a started session.
type SignInResult struct {
	Token   string
	Session Session
	User    User
}

// SignIn checks an address and password and starts a session. A user who
// needs a second factor gets a session at StageSecondFactor (or StageEnrol
// when they have none yet), good for nothing but that step.
func (s *Service) SignIn(ctx context.Context, email, password, ip, userAgent string) (SignInResult, error) {
	now := s.now()
	if s.limits.blocked(s.limits.ips, ip, now) {
		return SignInResult{}, ErrTooManyAttempts
	}
	addr, addrErr := NormalizeAddress(email)
	var u User
	var set struct{ attempts, lockMinutes int }
	found := false
	err := s.st.View(func(tx *store.Tx) error {
		st, err := settings.Load(tx)
		if err != nil {
			return err
		}
		set.attempts, set.lockMinutes = st.Security.SignInAttempts, st.Security.LockoutMinutes
		if addrErr != nil {
			return nil
		}
		u, err = userByAddress(tx, addr)
		if err == nil {
			found = true
			return nil
		}
		if fault.KindOf(err) == fault.NotFound {
			return nil
		}
		return err
	})
	if err != nil {
		return SignInResult{}, err
	}
	hash := dummyHash()
	if found && u.PasswordHash != "" {
		hash = u.PasswordHash
	}
	ok, rehash, err := keyring.VerifyPassword(ctx, hash, password)
	if err != nil && !errors.Is(err, keyring.ErrPasswordHash) {
		return SignInResult{}, err
	}
	locked := found && s.limits.blocked(s.limits.accounts, u.ID, now)
	if !ok || !found || u.Status != StatusEnabled || locked {
		reason := "wrong_password"
		switch {
		case !found:
			reason = "unknown_address"
		case locked:
			reason = "locked"
		case u.Status != StatusEnabled:
			reason = "status_" + string(u.Status)
		}
		s.limits.fail(s.limits.ips, ip, now, ipFailures, ipWindow, ipWindow)
		justLocked := found && !locked &&
			s.limits.fail(s.limits.accounts, u.ID, now, set.attempts, 15*time.Minute, time.Duration(set.lockMinutes)*time.Minute)
		actor, object := "anonymous", "user/unknown"
		if found {
			actor, object = ActorOf(u.ID), "user/"+u.ID
		}
		_ = s.st.Update(context.WithoutCancel(ctx), func(tx *store.Tx) error {
			if err := s.audit(tx, actor, "sign_in.fail", object, map[string]string{"reason": reason, "remote_ip": ip}); err != nil {
				return err
			}
			if justLocked {
				return s.audit(tx, "system", "user.lock", object, map[string]string{"minutes": strconv.Itoa(set.lockMinutes), "remote_ip": ip})
			}
			return nil
		})
		return SignInResult{}, ErrSignIn
	}
	s.limits.succeed(u.ID)

	var res SignInResult
	err = s.st.Update(ctx, func(tx *store.Tx) error {
		cur, err := getUser(tx, u.ID)
		if err != nil {
			return err
		}
		need, err := RequiresTOTP(tx, cur)
		if err != nil {
			return err
		}
		stage := StageFull
		switch {
		case cur.TOTP != nil:
			stage = StageSecondFactor
		case need:
			stage = StageEnrol
		}
		if rehash {
			if h, err := keyring.HashPassword(ctx, password); err == nil {
				cur.PasswordHash = h
			}
		}
		if stage == StageFull {
			cur.LastSignIn = s.now().UTC()
		}
		if err := putUser(tx, cur); err != nil {
			return err
		}
		token, sess, err := s.newSession(tx, cur, stage, ip, userAgent)
		if err != nil {
			return err
		}
		res = SignInResult{Token: token, Session: sess, User: cur}
		return s.audit(tx, ActorOf(cur.ID), "sign_in.password", "session/"+sess.ID, map[string]string{"remote_ip": ip, "stage": stage})
	})
	if err == nil {
		s.dir.put(res.User)
	}
	return res, err
}

// ErrCode is the answer to a wrong second-factor code.
var ErrCode = fault.E(fault.Invalid, "That code is not right. Enter the current code from your authenticator app, or a recovery code.", nil)

// SecondFactor completes a sign-in at StageSecondFactor with a code from
// the authenticator or a recovery code (used once). It replaces the half
// session with a new one: a new token at every change of privilege.
func (s *Service) SecondFactor(ctx context.Context, token, code, ip string) (SignInResult, error) {
	sess, u, err := s.Authenticate(ctx, token, ip)
	if err != nil {
		return SignInResult{}, err
	}
	if sess.Stage != StageSecondFactor || u.TOTP == nil {
		return SignInResult{}, fault.E(fault.Conflict, "This sign-in does not wait for a code.", nil)
	}
	now := s.now()
	if s.limits.blocked(s.limits.accounts, u.ID, now) {
		return SignInResult{}, ErrCode
	}
	var res SignInResult
	failed := false
	err = s.st.Update(ctx, func(tx *store.Tx) error {
		cur, err := getUser(tx, u.ID)
		if err != nil || cur.TOTP == nil {
			return ErrCode
		}
		method := "totp"
		if step, ok := totp.Verify(cur.TOTP.Secret, code, now, cur.TOTP.LastStep); ok {
			cur.TOTP.LastStep = step
		} else if i := totp.UseRecoveryCode(cur.TOTP.RecoveryCodes, code); i >= 0 {
			cur.TOTP.RecoveryCodes = append(cur.TOTP.RecoveryCodes[:i:i], cur.TOTP.RecoveryCodes[i+1:]...)
			method = "recovery_code"
		} else {
			failed = true
			return s.audit(tx, ActorOf(cur.ID), "sign_in.second_factor_fail", "session/"+sess.ID, map[string]string{"remote_ip": ip})
		}
		cur.LastSignIn = now.UTC()
		if err := putUser(tx, cur); err != nil {
			return err
		}
		if err := endSession(tx, cur.ID, hashToken(token)); err != nil {
			return err
		}
		newToken, newSess, err := s.newSession(tx, cur, StageFull, ip, sess.UserAgent)
		if err != nil {
			return err
		}
		res = SignInResult{Token: newToken, Session: newSess, User: cur}
		return s.audit(tx, ActorOf(cur.ID), "sign_in.second_factor", "session/"+newSess.ID,
			map[string]string{"remote_ip": ip, "method": method, "recovery_codes_left": strconv.Itoa(len(cur.TOTP.RecoveryCodes))})
	})
	if err != nil {
		return SignInResult{}, err
	}
	if failed {
		s.limits.fail(s.limits.accounts, u.ID, now, 5, 15*time.Minute, 15*time.Minute)
		return SignInResult{}, ErrCode
	}
	s.dir.put(res.User)
	return res, nil
}
