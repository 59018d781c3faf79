// Package account keeps the people who use Sealpost: users with their roles,
// groups and addresses, sessions, sign-in with a second factor, registration
// by invitation, password resets and aliases. It guarantees that passwords
// are kept only as argon2id hashes and tokens (sessions, links, codes) only as
// SHA-256 hashes; that users are never deleted, only disabled; that sign-in
// answers the same, in the same time, for unknown and known addresses; that
// only the user ever chooses a password; and that every change is audited in
// the transaction that makes it.
package account

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"slices"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/sealpost/sealpost/appliance/audit"
	"github.com/sealpost/sealpost/appliance/fault"
	"github.com/sealpost/sealpost/appliance/store"
)

// Role is what a user may do.
type Role string

// The roles. An administrator may also be a professional user; a guest is
// nothing else.
const (
	RoleAdmin        Role = "administrator"
	RoleProfessional Role = "professional"
	RoleGuest        Role = "guest"
	RoleAuditor      Role = "auditor"
)

// Status is whether a user may sign in.
type Status string

// The statuses. Users are never deleted.
const (
	StatusInvited  Status = "invited" // invited, not yet registered
	StatusEnabled  Status = "enabled"
	StatusDisabled Status = "disabled"
)

// Blacklist modes and default-secure values (SPEC §4).
const (
	BlacklistSecureOnly = "secure"
	BlacklistAll        = "all"

	DefaultSecureOff    = "off"
	DefaultSecureByRule = "rule"
	DefaultSecureAlways = "always"
)

// User is one person.
type User struct {
	ID            string    `json:"id"`
	Email         string    `json:"email"` // the master address, lower case
	Aliases       []string  `json:"aliases,omitempty"`
	Name          string    `json:"name"`
	Roles         []Role    `json:"roles"`
	Group         string    `json:"group"`
	Status        Status    `json:"status"`
	BlacklistMode string    `json:"blacklist_mode"`
	DefaultSecure string    `json:"default_secure"`
	Unsubscribed  bool      `json:"unsubscribed,omitempty"`
	Created       time.Time `json:"created"`
	InvitedBy     string    `json:"invited_by,omitempty"`
	LastSignIn    time.Time `json:"last_sign_in,omitzero"`

	PasswordHash string    `json:"password_hash,omitempty"`
	PasswordSet  time.Time `json:"password_set,omitzero"`
	TOTP         *TOTP     `json:"totp,omitempty"`
	PendingTOTP  string    `json:"pending_totp,omitempty"` // a secret being enrolled
	// A user's usage is a counter of its own (CountUsage), not in the record.
}

// TOTP is a user's second factor.
type TOTP struct {
	Secret        string   `json:"secret"`
	LastStep      int64    `json:"last_step"`
	RecoveryCodes []string `json:"recovery_codes"` // SHA-256 hashes; a used one is removed
	Enabled       time.Time
}

// Has reports whether the user has role r.
func (u User) Has(r Role) bool { return slices.Contains(u.Roles, r) }

// IsGuest reports whether the user is an outside recipient.
func (u User) IsGuest() bool { return u.Has(RoleGuest) }

// DisplayName is the name, or the address when there is none.
func (u User) DisplayName() string {
	if u.Name != "" {
		return u.Name
	}
	return u.Email
}

// MarshalZerologObject logs a user by id and role, never by address.
func (u User) MarshalZerologObject(e *zerolog.Event) {
	e.Str("user_id", u.ID).Strs("roles", roleStrings(u.Roles))
}

func roleStrings(roles []Role) []string {
	out := make([]string, len(roles))
	for i, r := range roles {
		out[i] = string(r)
	}
	return out
}

// Store keys.
const (
	userPrefix    = "acct/user/"
	emailPrefix   = "acct/email/" // + address → user id (master and aliases)
	groupPrefix   = "acct/group/"
	sessionPrefix = "acct/session/"  // + token hash → Session
	userSessions  = "acct/usession/" // + user id + "/" + token hash → ""
	tokenPrefix   = "acct/token/"    // + purpose + "/" + token hash → Token
	invitePrefix  = "acct/invites/"  // + inviter id + "/" + time + "/" + invitee id (quota)
	quotaPrefix   = "acct/quota/"    // + inviter id → time of the last counted invitation
	usagePrefix   = "acct/usage/"    // + user id → Usage (a store.Counter)
	usageDelta    = "acct/usage-d/"  // + user id + "/" + unique → changes to it
	filterKey     = "acct/filters"
)

func userKey(id string) []byte    { return []byte(userPrefix + id) }
func emailKey(addr string) []byte { return []byte(emailPrefix + addr) }
func groupKey(id string) []byte   { return []byte(groupPrefix + id) }
func sessionKey(h string) []byte  { return []byte(sessionPrefix + h) }
func userSessionKey(uid, h string) []byte {
	return []byte(userSessions + uid + "/" + h)
}

// Notice is a notification the account flows send. It never holds message
// content; Code is an authorization code, Link a one-time link.
type Notice struct {
	Kind       string // "invitation", "auth_code", "password_reset", "alias_confirm", "unsubscribe_confirm"
	To         string
	ToName     string
	SenderName string
	Link       string
	Code       string
	ValidFor   string
}

// Notifier queues notifications inside the caller's transaction, so that a
// flow and its mail are durable together. The mailer implements it.
type Notifier interface {
	Notify(tx *store.Tx, n Notice) error
}

// Options are what a Service needs.
type Options struct {
	Store    *store.Store
	Audit    *audit.Trail
	Notifier Notifier
	Logger   zerolog.Logger
	// BaseURL is where users reach the portal, e.g. https://mail.example.org.
	BaseURL func() string
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Service is the account domain.
type Service struct {
	st       *store.Store
	trail    *audit.Trail
	notifier Notifier
	log      zerolog.Logger
	baseURL  func() string
	now      func() time.Time
	dir      *directory
	limits   *signInLimits
	usage    *store.Counter[Usage]
}

// New loads the directory of users and makes sure the built-in groups exist.
func New(ctx context.Context, opts Options) (*Service, error) {
	s := &Service{st: opts.Store, trail: opts.Audit, notifier: opts.Notifier, log: opts.Logger,
		baseURL: opts.BaseURL, now: opts.Now}
	if s.now == nil {
		s.now = time.Now
	}
	if s.baseURL == nil {
		s.baseURL = func() string { return "https://localhost:8443" }
	}
	s.limits = newSignInLimits()
	s.usage = store.NewCounter(usagePrefix, usageDelta, func(sum *Usage, d Usage) {
		sum.Sent, sum.Received, sum.Bytes = sum.Sent+d.Sent, sum.Received+d.Received, sum.Bytes+d.Bytes
	})
	if err := s.ensureBuiltInGroups(ctx); err != nil {
		return nil, err
	}
	dir, err := loadDirectory(s.st, s.usage)
	if err != nil {
		return nil, err
	}
	s.dir = dir
	return s, nil
}

// Now is the service's clock.
func (s *Service) Now() time.Time { return s.now() }

// NormalizeAddress checks an email address and returns it in lower case.
// Display names, quoted local parts and address literals are refused.
func NormalizeAddress(text string) (string, error) {
	text = strings.TrimSpace(text)
	a, err := mail.ParseAddress(text)
	if err != nil || a.Address != text || a.Name != "" || strings.ContainsAny(text, "\"[]!%") || len(text) > 254 {
		return "", fault.E(fault.Invalid, "Enter an email address such as name@example.org.", nil)
	}
	at := strings.LastIndexByte(text, '@')
	if at < 1 || !strings.Contains(text[at+1:], ".") && text[at+1:] != "localhost" {
		return "", fault.E(fault.Invalid, "Enter an email address such as name@example.org.", nil)
	}
	return strings.ToLower(text), nil
}

// DomainOf is the part of an address after the @.
func DomainOf(addr string) string { return addr[strings.LastIndexByte(addr, '@')+1:] }

// audit appends an event in tx.
func (s *Service) audit(tx *store.Tx, actor, action, object string, detail map[string]string) error {
	return s.trail.Append(tx, audit.Event{Actor: actor, Action: action, Object: object, Detail: detail})
}

// ActorOf names a user in the audit trail.
func ActorOf(userID string) string { return "user:" + userID }

// getUser reads one user in tx; a missing one is NotFound.
func getUser(tx *store.Tx, id string) (User, error) {
	u, err := store.GetJSON[User](tx, userKey(id))
	if errors.Is(err, store.ErrNotFound) {
		return u, fault.E(fault.NotFound, "no such user", nil)
	}
	return u, err
}

// userByAddress finds the user an address (master or alias) belongs to.
func userByAddress(tx *store.Tx, addr string) (User, error) {
	id, err := tx.Get(emailKey(addr))
	if errors.Is(err, store.ErrNotFound) {
		return User{}, fault.E(fault.NotFound, "no such user", nil)
	}
	if err != nil {
		return User{}, err
	}
	return getUser(tx, string(id))
}

func putUser(tx *store.Tx, u User) error { return store.PutJSON(tx, userKey(u.ID), u) }

// User returns one user.
func (s *Service) User(id string) (User, error) {
	var u User
	err := s.st.View(func(tx *store.Tx) error {
		var err error
		u, err = getUser(tx, id)
		return err
	})
	return u, err
}

// UserByAddress returns the user that owns an address, master or alias.
func (s *Service) UserByAddress(addr string) (User, error) {
	addr, err := NormalizeAddress(addr)
	if err != nil {
		return User{}, err
	}
	var u User
	err = s.st.View(func(tx *store.Tx) error {
		var err error
		u, err = userByAddress(tx, addr)
		return err
	})
	return u, err
}

// validFor says a lifetime as people do: "10 minutes", "4 hours", "14 days".
func validFor(d time.Duration) string {
	plural := func(n int, unit string) string {
		if n == 1 {
			return "1 " + unit
		}
		return fmt.Sprintf("%d %ss", n, unit)
	}
	switch {
	case d >= 48*time.Hour && d%(24*time.Hour) == 0:
		return plural(int(d/(24*time.Hour)), "day")
	case d >= time.Hour && d%time.Hour == 0:
		return plural(int(d/time.Hour), "hour")
	default:
		return plural(int(d/time.Minute), "minute")
	}
}

// UserTx reads one user inside the caller's transaction (for domains that
// act on users in their own transactions, such as messages).
func UserTx(tx *store.Tx, id string) (User, error) { return getUser(tx, id) }

// UserByAddressTx finds the user an address (master or alias) belongs to,
// inside the caller's transaction.
func UserByAddressTx(tx *store.Tx, addr string) (User, error) { return userByAddress(tx, addr) }

// GroupTx reads one group inside the caller's transaction.
func GroupTx(tx *store.Tx, id string) (Group, error) { return getGroup(tx, id) }

// FilterFor is the registration filter that decides for addr, if any.
func FilterFor(tx *store.Tx, addr string) (Filter, bool, error) {
	fs, err := loadFilters(tx)
	if err != nil {
		return Filter{}, false, err
	}
	f, ok := matchFilter(fs, addr)
	return f, ok, nil
}

// Usage is a change to a user's message counts and storage.
type Usage struct {
	Sent, Received, Bytes int64
}

// CountUsage adds u to a user's usage inside the caller's transaction; the
// directory shows it once tx commits. Usage is a store.Counter, so a
// user's concurrent sends do not conflict over it.
func (s *Service) CountUsage(tx *store.Tx, userID string, u Usage) error {
	if err := s.usage.Add(tx, userID, u); err != nil {
		return err
	}
	tx.OnDone(func(committed bool) {
		if committed {
			s.dir.addUsage(userID, u)
		}
	})
	return nil
}

// Usage is a user's usage as the store has it.
func (s *Service) Usage(id string) (Usage, error) {
	var u Usage
	err := s.st.View(func(tx *store.Tx) error {
		var err error
		u, err = s.usage.Get(tx, id)
		return err
	})
	u.Bytes = max(0, u.Bytes) // as the directory shows it
	return u, err
}

// RunCounters folds the usage counters' changes until ctx ends.
func (s *Service) RunCounters(ctx context.Context) {
	s.usage.Run(ctx, s.st, time.Minute, func(err error) { s.log.Warn().Err(err).Msg("fold usage counts") })
}
