package account

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"sort"
	"strings"
	"time"

	"github.com/sealpost/sealpost/appliance/fault"
	"github.com/sealpost/sealpost/appliance/settings"
	"github.com/sealpost/sealpost/appliance/store"
)

// Session stages: after the password, a user who needs a second factor is
// only half signed in.
const (
	StageSecondFactor = "second_factor" // password accepted, code pending
	StageEnrol        = "enrol"         // password accepted, must set up a second factor first
	StageFull         = "full"
)

// Session is a signed-in browser. Only the hash of its token is stored.
type Session struct {
	ID        string    `json:"id"` // shown in the session list; not the token
	UserID    string    `json:"user_id"`
	Stage     string    `json:"stage"`
	Created   time.Time `json:"created"`
	LastSeen  time.Time `json:"last_seen"`
	IP        string    `json:"ip"`
	UserAgent string    `json:"user_agent"`
}

// ErrNoSession means the token names no live session: never issued,
// signed out, expired or ended.
var ErrNoSession = errors.New("account: no session")

func hashToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

func shortUserAgent(ua string) string {
	if len(ua) > 200 {
		ua = ua[:200]
	}
	return ua
}

// newSession stores a session in tx and returns its token.
func (s *Service) newSession(tx *store.Tx, u User, stage, ip, ua string) (string, Session, error) {
	token := rand.Text() + rand.Text() // 256 bits
	now := s.now().UTC()
	sess := Session{ID: strings.ToLower(rand.Text()[:12]), UserID: u.ID, Stage: stage, Created: now, LastSeen: now,
		IP: ip, UserAgent: shortUserAgent(ua)}
	h := hashToken(token)
	if err := store.PutJSON(tx, sessionKey(h), sess); err != nil {
		return "", sess, err
	}
	return token, sess, tx.Put(userSessionKey(u.ID, h), nil)
}

// Authenticate returns the session and user a token belongs to, after the
// checks of every request: the session exists, is neither idle nor older
// than its lifetime, comes from the sign-in's IP address when sessions are
// bound to it, and its user is enabled. A request more than a minute after
// the last one records the time (so idle expiry is accurate to a minute
// without a write per request).
func (s *Service) Authenticate(ctx context.Context, token, ip string) (Session, User, error) {
	if token == "" || len(token) > 128 {
		return Session{}, User{}, ErrNoSession
	}
	h := hashToken(token)
	var sess Session
	var u User
	var expired string
	demoted := false
	err := s.st.View(func(tx *store.Tx) error {
		var err error
		sess, err = store.GetJSON[Session](tx, sessionKey(h))
		if errors.Is(err, store.ErrNotFound) {
			return ErrNoSession
		}
		if err != nil {
			return err
		}
		set, err := settings.Load(tx)
		if err != nil {
			return err
		}
		now := s.now()
		switch {
		case now.Sub(sess.LastSeen) > time.Duration(set.Security.SessionIdleMinutes)*time.Minute:
			expired = "idle"
		case now.Sub(sess.Created) > time.Duration(set.Security.SessionLifetimeHours)*time.Hour:
			expired = "lifetime"
		case set.Security.SessionBindIP && sess.IP != ip:
			expired = "ip_changed"
		}
		if expired != "" {
			return ErrNoSession
		}
		u, err = getUser(tx, sess.UserID)
		if err != nil {
			return err
		}
		if u.Status != StatusEnabled {
			expired = "user_disabled"
			return ErrNoSession
		}
		// A second factor that became required after sign-in (a new role,
		// a group or setting change) is asked for before anything else.
		if sess.Stage == StageFull && u.TOTP == nil {
			need, err := RequiresTOTP(tx, u)
			if err != nil {
				return err
			}
			if need {
				sess.Stage, demoted = StageEnrol, true
			}
		}
		return nil
	})
	if expired != "" {
		_ = s.st.Update(context.WithoutCancel(ctx), func(tx *store.Tx) error {
			if err := endSession(tx, sess.UserID, h); err != nil {
				return err
			}
			return s.audit(tx, ActorOf(sess.UserID), "session.expire", "session/"+sess.ID, map[string]string{"reason": expired})
		})
		return Session{}, User{}, ErrNoSession
	}
	if err != nil {
		if errors.Is(err, ErrNoSession) || fault.KindOf(err) == fault.NotFound {
			return Session{}, User{}, ErrNoSession
		}
		return Session{}, User{}, err
	}
	if demoted || s.now().Sub(sess.LastSeen) > time.Minute {
		sess.LastSeen = s.now().UTC()
		err := s.st.Update(ctx, func(tx *store.Tx) error {
			if _, err := tx.Get(sessionKey(h)); err != nil {
				return err // ended meanwhile
			}
			return store.PutJSON(tx, sessionKey(h), sess)
		})
		if err != nil {
			return Session{}, User{}, ErrNoSession
		}
	}
	return sess, u, nil
}

func endSession(tx *store.Tx, uid, h string) error {
	if err := tx.Delete(sessionKey(h)); err != nil {
		return err
	}
	return tx.Delete(userSessionKey(uid, h))
}

// endSessions ends every session of a user but the one with hash keep.
func endSessions(tx *store.Tx, uid, keep string) error {
	var hashes []string
	err := tx.Scan([]byte(userSessions+uid+"/"), func(key, _ []byte) error {
		hashes = append(hashes, string(key[len(userSessions)+len(uid)+1:]))
		return nil
	})
	if err != nil {
		return err
	}
	for _, h := range hashes {
		if h == keep {
			continue
		}
		if err := endSession(tx, uid, h); err != nil {
			return err
		}
	}
	return nil
}

// SignOut ends the session of token ("forget me" on this device).
func (s *Service) SignOut(ctx context.Context, token string) error {
	h := hashToken(token)
	return s.st.Update(ctx, func(tx *store.Tx) error {
		sess, err := store.GetJSON[Session](tx, sessionKey(h))
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := endSession(tx, sess.UserID, h); err != nil {
			return err
		}
		return s.audit(tx, ActorOf(sess.UserID), "session.sign_out", "session/"+sess.ID, nil)
	})
}

// SignOutEverywhere ends every session of the user, this one included.
func (s *Service) SignOutEverywhere(ctx context.Context, userID string) error {
	return s.st.Update(ctx, func(tx *store.Tx) error {
		if err := endSessions(tx, userID, ""); err != nil {
			return err
		}
		return s.audit(tx, ActorOf(userID), "session.sign_out_everywhere", "user/"+userID, nil)
	})
}

// Sessions lists a user's sessions, the most recent first.
func (s *Service) Sessions(userID string) ([]Session, error) {
	var out []Session
	err := s.st.View(func(tx *store.Tx) error {
		return tx.Scan([]byte(userSessions+userID+"/"), func(key, _ []byte) error {
			h := string(key[len(userSessions)+len(userID)+1:])
			data, err := tx.Get(sessionKey(h))
			if errors.Is(err, store.ErrNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			var sess Session
			if err := json.Unmarshal(data, &sess); err != nil {
				return err
			}
			out = append(out, sess)
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].LastSeen.After(out[j].LastSeen) })
	return out, err
}

// EndSession ends one of the user's own sessions, by its listed id.
func (s *Service) EndSession(ctx context.Context, userID, sessionID string) error {
	return s.st.Update(ctx, func(tx *store.Tx) error {
		var found string
		err := tx.Scan([]byte(userSessions+userID+"/"), func(key, _ []byte) error {
			h := string(key[len(userSessions)+len(userID)+1:])
			sess, err := store.GetJSON[Session](tx, sessionKey(h))
			if err == nil && sess.ID == sessionID {
				found = h
				return store.ErrStop
			}
			return nil
		})
		if err != nil {
			return err
		}
		if found == "" {
			return fault.E(fault.NotFound, "That session has ended already.", nil)
		}
		if err := endSession(tx, userID, found); err != nil {
			return err
		}
		return s.audit(tx, ActorOf(userID), "session.end", "session/"+sessionID, nil)
	})
}
