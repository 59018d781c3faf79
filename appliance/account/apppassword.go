package account

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sealpost/sealpost/appliance/fault"
	"github.com/sealpost/sealpost/appliance/keyring"
	"github.com/sealpost/sealpost/appliance/settings"
	"github.com/sealpost/sealpost/appliance/store"
)

// AppPassword is a password for one mail program (Outlook, a scanner, a
// script) that submits mail over SMTP: random, shown once, revocable on its
// own. Only its SHA-256 is kept (it has 130 bits of entropy, so a slow
// hash adds nothing).
type AppPassword struct {
	ID       string    `json:"id"`
	Name     string    `json:"name"`
	Hash     string    `json:"hash"`
	Created  time.Time `json:"created"`
	LastUsed time.Time `json:"last_used,omitzero"`
}

const (
	appPasswordPrefix = "acct/apppw/"  // + user + "/" + id → AppPassword
	appPasswordIndex  = "acct/apppwh/" // + hash → user id
	maxAppPasswords   = 20
)

func appPasswordKey(uid, id string) []byte { return []byte(appPasswordPrefix + uid + "/" + id) }

// normalizeAppPassword drops the spaces and dashes people copy along.
func normalizeAppPassword(p string) string {
	return strings.ToLower(strings.NewReplacer(" ", "", "-", "").Replace(strings.TrimSpace(p)))
}

// CreateAppPassword makes a new app password for uid's mail program called
// name and returns it, formatted in groups for reading, once.
func (s *Service) CreateAppPassword(ctx context.Context, uid, name string) (string, AppPassword, error) {
	name = strings.TrimSpace(name)
	if name == "" || utf8.RuneCountInString(name) > 100 || strings.ContainsAny(name, "\r\n") {
		return "", AppPassword{}, invalid([]FieldError{{"app_name", "Name the mail program, such as “Outlook on my laptop”."}})
	}
	raw := strings.ToLower(rand.Text()) // 26 characters of base32: 130 bits
	var out []string
	for i := 0; i < len(raw); i += 4 {
		out = append(out, raw[i:min(i+4, len(raw))])
	}
	secret := strings.Join(out, " ")
	h := hashToken(raw)
	ap := AppPassword{ID: strings.ToLower(rand.Text()[:10]), Name: name, Hash: h, Created: s.now().UTC()}
	err := s.st.Update(ctx, func(tx *store.Tx) error {
		u, err := getUser(tx, uid)
		if err != nil {
			return err
		}
		if !u.Has(RoleProfessional) {
			return fault.E(fault.Permission, "Only staff users send mail through the gateway.", nil)
		}
		n := 0
		if err := tx.Scan([]byte(appPasswordPrefix+uid+"/"), func(_, _ []byte) error { n++; return nil }); err != nil {
			return err
		}
		if n >= maxAppPasswords {
			return invalid([]FieldError{{"app_name", "You have 20 app passwords; revoke one you no longer use first."}})
		}
		if err := store.PutJSON(tx, appPasswordKey(uid, ap.ID), ap); err != nil {
			return err
		}
		if err := tx.Put([]byte(appPasswordIndex+h), []byte(uid+"/"+ap.ID)); err != nil {
			return err
		}
		return s.audit(tx, ActorOf(uid), "app_password.create", "user/"+uid, map[string]string{"app_password": ap.ID})
	})
	if err != nil {
		return "", AppPassword{}, err
	}
	return secret, ap, nil
}

// AppPasswords lists uid's app passwords, newest first (without hashes).
func (s *Service) AppPasswords(uid string) ([]AppPassword, error) {
	var out []AppPassword
	err := s.st.View(func(tx *store.Tx) error {
		return tx.Scan([]byte(appPasswordPrefix+uid+"/"), func(_, v []byte) error {
			var ap AppPassword
			if err := json.Unmarshal(v, &ap); err != nil {
				return err
			}
			ap.Hash = ""
			out = append(out, ap)
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	return out, err
}

// RevokeAppPassword ends one of uid's app passwords.
func (s *Service) RevokeAppPassword(ctx context.Context, uid, id string) error {
	return s.st.Update(ctx, func(tx *store.Tx) error {
		ap, err := store.GetJSON[AppPassword](tx, appPasswordKey(uid, id))
		if errors.Is(err, store.ErrNotFound) {
			return fault.E(fault.NotFound, "There is no such app password.", nil)
		}
		if err != nil {
			return err
		}
		if err := tx.Delete(appPasswordKey(uid, id)); err != nil {
			return err
		}
		if err := tx.Delete([]byte(appPasswordIndex + ap.Hash)); err != nil {
			return err
		}
		return s.audit(tx, ActorOf(uid), "app_password.revoke", "user/"+uid, map[string]string{"app_password": id})
	})
}

// ErrSMTPAuth is the one answer to a failed SMTP AUTH.
var ErrSMTPAuth = fault.E(fault.Permission, "Authentication failed.", nil)

// AuthenticateSMTP checks a mail program's credentials for the submission
// port: an app password of the user, or, for a user without a second
// factor, their password (a second factor cannot be asked for over SMTP,
// so those users must use an app password). Failures count toward the same
// lockout and per-address limits as sign-in, and are audited.
func (s *Service) AuthenticateSMTP(ctx context.Context, username, password, ip string) (User, error) {
	now := s.now()
	if s.limits.blocked(s.limits.ips, ip, now) {
		return User{}, ErrTooManyAttempts
	}
	addr, addrErr := NormalizeAddress(username)
	var u User
	var found, viaApp bool
	var appID string
	var attempts, lockMinutes int
	err := s.st.View(func(tx *store.Tx) error {
		set, err := settings.Load(tx)
		if err != nil {
			return err
		}
		attempts, lockMinutes = set.Security.SignInAttempts, set.Security.LockoutMinutes
		if addrErr != nil {
			return nil
		}
		if u, err = userByAddress(tx, addr); err != nil {
			if fault.KindOf(err) == fault.NotFound {
				return nil
			}
			return err
		}
		found = true
		ref, err := tx.Get([]byte(appPasswordIndex + hashToken(normalizeAppPassword(password))))
		if err == nil {
			owner, id, _ := strings.Cut(string(ref), "/")
			if subtle.ConstantTimeCompare([]byte(owner), []byte(u.ID)) == 1 {
				viaApp, appID = true, id
			}
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		return nil
	})
	if err != nil {
		return User{}, err
	}
	ok := viaApp
	if !viaApp {
		hash := dummyHash()
		if found && u.PasswordHash != "" && u.TOTP == nil {
			hash = u.PasswordHash
		}
		if ok, _, err = keyring.VerifyPassword(ctx, hash, password); err != nil && !errors.Is(err, keyring.ErrPasswordHash) {
			return User{}, err
		}
		ok = ok && found && u.TOTP == nil
	}
	locked := found && s.limits.blocked(s.limits.accounts, u.ID, now)
	if !ok || !found || u.Status != StatusEnabled || !u.Has(RoleProfessional) || locked {
		s.limits.fail(s.limits.ips, ip, now, ipFailures, ipWindow, ipWindow)
		if found && !locked {
			s.limits.fail(s.limits.accounts, u.ID, now, attempts, 15*time.Minute, time.Duration(lockMinutes)*time.Minute)
		}
		actor, object := "anonymous", "user/unknown"
		if found {
			actor, object = ActorOf(u.ID), "user/"+u.ID
		}
		_ = s.st.Update(context.WithoutCancel(ctx), func(tx *store.Tx) error {
			return s.audit(tx, actor, "smtp_auth.fail", object, map[string]string{"remote_ip": ip})
		})
		return User{}, ErrSMTPAuth
	}
	s.limits.succeed(u.ID)
	if viaApp {
		_ = s.st.Update(ctx, func(tx *store.Tx) error {
			ap, err := store.GetJSON[AppPassword](tx, appPasswordKey(u.ID, appID))
			if err != nil {
				return err
			}
			if now.Sub(ap.LastUsed) < time.Hour {
				return nil // one write an hour is enough to show it is in use
			}
			ap.LastUsed = now.UTC()
			return store.PutJSON(tx, appPasswordKey(u.ID, appID), ap)
		})
	}
	return u, nil
}
