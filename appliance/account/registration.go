package account

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sealpost/sealpost/appliance/fault"
	"github.com/sealpost/sealpost/appliance/keyring"
	"github.com/sealpost/sealpost/appliance/settings"
	"github.com/sealpost/sealpost/appliance/store"
)

// Filter is a registration rule for one address or one domain (and its
// subdomains). The most specific filter that matches decides.
type Filter struct {
	Pattern   string `json:"pattern"` // "name@example.org" or "example.org"
	Allow     bool   `json:"allow"`
	Group     string `json:"group,omitempty"` // default group of users it admits; empty: by role
	CRA       string `json:"cra"`             // "default", "on" or "off": the challenge-response passcode
	Archive   bool   `json:"archive"`         // archive delivery on
	ShareSent bool   `json:"share_sent"`      // users of the domain may read each other's sent secure messages
}

func (f Filter) isAddress() bool { return strings.Contains(f.Pattern, "@") }

// matches reports whether the filter covers addr.
func (f Filter) matches(addr string) bool {
	if f.isAddress() {
		return addr == f.Pattern
	}
	d := DomainOf(addr)
	return d == f.Pattern || strings.HasSuffix(d, "."+f.Pattern)
}

// Filters returns the registration filters in their stored order.
func (s *Service) Filters() ([]Filter, error) {
	var fs []Filter
	err := s.st.View(func(tx *store.Tx) error {
		var err error
		fs, err = loadFilters(tx)
		return err
	})
	return fs, err
}

func loadFilters(tx *store.Tx) ([]Filter, error) {
	fs, err := store.GetJSON[[]Filter](tx, []byte(filterKey))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	return fs, err
}

// matchFilter returns the most specific filter for addr: the address, then
// the longest domain.
func matchFilter(fs []Filter, addr string) (Filter, bool) {
	var best Filter
	found := false
	for _, f := range fs {
		if !f.matches(addr) {
			continue
		}
		if !found || f.isAddress() && !best.isAddress() || f.isAddress() == best.isAddress() && len(f.Pattern) > len(best.Pattern) {
			best, found = f, true
		}
	}
	return best, found
}

// SaveFilter adds a filter or replaces the one with the same pattern.
func (s *Service) SaveFilter(ctx context.Context, actorID string, f Filter) error {
	f.Pattern = strings.ToLower(strings.TrimSpace(f.Pattern))
	var errs []FieldError
	if f.isAddress() {
		if _, err := NormalizeAddress(f.Pattern); err != nil {
			errs = append(errs, FieldError{"pattern", "Enter an address such as name@example.org, or a domain such as example.org."})
		}
	} else if !isDomain(f.Pattern) {
		errs = append(errs, FieldError{"pattern", "Enter an address such as name@example.org, or a domain such as example.org."})
	}
	if f.CRA == "" {
		f.CRA = "default"
	}
	if f.CRA != "default" && f.CRA != "on" && f.CRA != "off" {
		errs = append(errs, FieldError{"cra", "Choose default, on or off."})
	}
	return s.st.Update(ctx, func(tx *store.Tx) error {
		if f.Group != "" {
			if _, err := getGroup(tx, f.Group); err != nil {
				errs = append(errs, FieldError{"group", "Choose an existing group."})
			}
		}
		if err := invalid(errs); err != nil {
			return err
		}
		fs, err := loadFilters(tx)
		if err != nil {
			return err
		}
		fs = slices.DeleteFunc(fs, func(o Filter) bool { return o.Pattern == f.Pattern })
		fs = append(fs, f)
		slices.SortFunc(fs, func(a, b Filter) int { return strings.Compare(a.Pattern, b.Pattern) })
		if err := store.PutJSON(tx, []byte(filterKey), fs); err != nil {
			return err
		}
		return s.audit(tx, ActorOf(actorID), "registration_filter.save", "filter/"+f.Pattern, map[string]string{
			"allow": strconv.FormatBool(f.Allow), "group": f.Group, "cra": f.CRA,
			"archive": strconv.FormatBool(f.Archive), "share_sent": strconv.FormatBool(f.ShareSent)})
	})
}

// DeleteFilter removes the filter with a pattern.
func (s *Service) DeleteFilter(ctx context.Context, actorID, pattern string) error {
	return s.st.Update(ctx, func(tx *store.Tx) error {
		fs, err := loadFilters(tx)
		if err != nil {
			return err
		}
		n := len(fs)
		fs = slices.DeleteFunc(fs, func(o Filter) bool { return o.Pattern == pattern })
		if len(fs) == n {
			return fault.E(fault.NotFound, "No filter has that pattern.", nil)
		}
		if err := store.PutJSON(tx, []byte(filterKey), fs); err != nil {
			return err
		}
		return s.audit(tx, ActorOf(actorID), "registration_filter.delete", "filter/"+pattern, nil)
	})
}

func isDomain(d string) bool {
	if d == "" || len(d) > 253 || !strings.Contains(d, ".") {
		return false
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// admission is what the registration settings and filters say of an
// address.
type admission struct {
	allowed bool
	group   string
	level   int
}

func admit(set settings.Settings, fs []Filter, addr string) admission {
	f, found := matchFilter(fs, addr)
	a := admission{allowed: set.Registration.Access == "open", level: set.Registration.Level}
	if found {
		a.allowed = f.Allow
		a.group = f.Group
	}
	if a.level == 3 {
		excluded := slices.ContainsFunc(set.Registration.CRAExcludedDomains, func(d string) bool {
			return strings.EqualFold(d, DomainOf(addr))
		})
		if excluded || found && f.CRA == "off" {
			a.level = 2
		}
	}
	if found && f.CRA == "on" {
		a.level = 3
	}
	return a
}

// Invite is an invitation to make.
type Invite struct {
	Email    string
	Name     string
	Role     Role   // RoleProfessional (administrators only) or RoleGuest
	Group    string // empty: the filter's group, or the role's built-in group
	Passcode string // level 3: the passcode the inviter passes on out of band
	// RequirePasscode asks for level 3 whatever the settings say: a sender
	// of a secure message chose a passcode for new recipients.
	RequirePasscode bool
	// Quiet sends no invitation mail: the caller sends its own notice
	// (a secure message's) carrying InviteResult.Link.
	Quiet bool
	// Next is where the new user lands after registering (a path).
	Next string
}

// InviteResult says what happened.
type InviteResult struct {
	User  User
	Level int
	Link  string // the registration link (only for Quiet invitations)
}

// Invite invites someone: the user is created as invited, the invitation
// counts against the inviter's quota (administrators have none), and the
// invitation mail is queued in the same transaction.
func (s *Service) Invite(ctx context.Context, inviterID string, in Invite) (InviteResult, error) {
	var res InviteResult
	err := s.st.Update(ctx, func(tx *store.Tx) error {
		var err error
		res, err = s.InviteTx(ctx, tx, inviterID, in)
		return err
	})
	return res, err
}

// InviteTx is Invite inside the caller's transaction; the directory learns
// of the new user when tx commits.
func (s *Service) InviteTx(ctx context.Context, tx *store.Tx, inviterID string, in Invite) (InviteResult, error) {
	addr, err := NormalizeAddress(in.Email)
	if err != nil {
		return InviteResult{}, invalid([]FieldError{{"email", fault.Message(err)}})
	}
	inviter, err := getUser(tx, inviterID)
	if err != nil {
		return InviteResult{}, err
	}
	set, err := settings.Load(tx)
	if err != nil {
		return InviteResult{}, err
	}
	isAdmin := inviter.Has(RoleAdmin)
	switch {
	case in.Role == RoleProfessional && !isAdmin:
		return InviteResult{}, fault.E(fault.Permission, "Only administrators invite staff users.", nil)
	case in.Role != RoleProfessional && in.Role != RoleGuest:
		return InviteResult{}, invalid([]FieldError{{"role", "Invite a professional user or a guest."}})
	case in.Role == RoleGuest && !isAdmin:
		g, err := getGroup(tx, inviter.Group)
		if err != nil {
			return InviteResult{}, err
		}
		if !g.Features.InviteGuests || inviter.IsGuest() {
			return InviteResult{}, fault.E(fault.Permission, "Your group may not invite guests.", nil)
		}
		used, err := s.invitesInPeriod(tx, inviter.ID, g.QuotaPeriodDays)
		if err != nil {
			return InviteResult{}, err
		}
		if used >= g.InviteQuota {
			return InviteResult{}, fault.E(fault.TooLarge, fmt.Sprintf("You have used your %d invitations for this %d-day period.", g.InviteQuota, g.QuotaPeriodDays), nil)
		}
		// The count reads keys, and Badger does not notice a key another
		// transaction adds meanwhile; reading and rewriting one record per
		// inviter makes two counted invitations of one inviter conflict,
		// so the later one counts again.
		if _, err := tx.Get(quotaKey(inviter.ID)); err != nil && !errors.Is(err, store.ErrNotFound) {
			return InviteResult{}, err
		}
		if err := tx.Put(quotaKey(inviter.ID), []byte(s.now().UTC().Format(time.RFC3339Nano))); err != nil {
			return InviteResult{}, err
		}
	}
	if existing, err := userByAddress(tx, addr); err == nil {
		if existing.Status == StatusInvited {
			return InviteResult{}, fault.E(fault.Conflict, "This address is invited already; resend the invitation from the user's page.", nil)
		}
		return InviteResult{}, fault.E(fault.Conflict, "A user with this address exists already.", nil)
	}
	fs, err := loadFilters(tx)
	if err != nil {
		return InviteResult{}, err
	}
	adm := admit(set, fs, addr)
	if f, found := matchFilter(fs, addr); found && !f.Allow || !found && set.Registration.Access == "controlled" && in.Role == RoleGuest {
		return InviteResult{}, invalid([]FieldError{{"email", "The registration policy does not admit " + addr + "."}})
	}
	if in.RequirePasscode {
		adm.level = 3
	}
	group := in.Group
	if group == "" {
		group = adm.group
	}
	if !isAdmin {
		group = adm.group // only administrators choose a group
	}
	var passHash string
	if adm.level == 3 {
		if n := len([]rune(in.Passcode)); n < 6 || n > 64 {
			return InviteResult{}, invalid([]FieldError{{"passcode", "Choose a passcode of 6 to 64 characters, and give it to the person by phone or in person."}})
		} else if passHash, err = keyring.HashPassword(ctx, normalizePasscode(in.Passcode)); err != nil {
			return InviteResult{}, err
		}
	}
	u, err := s.createUser(ctx, tx, NewUser{Email: addr, Name: in.Name, Roles: []Role{in.Role}, Group: group}, StatusInvited)
	if err != nil {
		return InviteResult{}, err
	}
	u.InvitedBy = inviter.ID
	if err := putUser(tx, u); err != nil {
		return InviteResult{}, err
	}
	if err := tx.Put(fmt.Appendf(nil, "%s%s/%020d/%s", invitePrefix, inviter.ID, s.now().UnixNano(), u.ID), nil); err != nil {
		return InviteResult{}, err
	}
	link, err := s.sendInvitation(tx, set, u, inviter.DisplayName(), adm.level, passHash, in.Next, in.Quiet)
	if err != nil {
		return InviteResult{}, err
	}
	res := InviteResult{User: u, Level: adm.level}
	if in.Quiet {
		res.Link = link
	}
	tx.OnDone(func(committed bool) {
		if committed {
			s.dir.put(u)
			s.dir.invited(inviter.ID)
		}
	})
	return res, s.audit(tx, ActorOf(inviter.ID), "user.invite", "user/"+u.ID, map[string]string{
		"role": string(in.Role), "group": u.Group, "level": strconv.Itoa(adm.level)})
}

func quotaKey(inviterID string) []byte { return []byte(quotaPrefix + inviterID) }

func normalizePasscode(p string) string { return strings.TrimSpace(p) }

func (s *Service) invitesInPeriod(tx *store.Tx, uid string, days int) (int, error) {
	since := s.now().Add(-time.Duration(days) * 24 * time.Hour).UnixNano()
	n := 0
	prefix := []byte(invitePrefix + uid + "/")
	err := tx.ScanFrom(prefix, fmt.Appendf(nil, "%s%020d", prefix, since), func(_, _ []byte) error {
		n++
		return nil
	})
	return n, err
}

// sendInvitation issues an invitation link and mails it, unless quiet;
// next is where the user lands after registering.
func (s *Service) sendInvitation(tx *store.Tx, set settings.Settings, u User, inviterName string, level int, passHash, next string, quiet bool) (string, error) {
	life := time.Duration(set.Security.InvitationDays) * 24 * time.Hour
	secret, err := issueToken(tx, Token{Purpose: purposeInvite, UserID: u.ID, Created: s.now().UTC(),
		Expires: s.now().Add(life).UTC(), Level: level, PasscodeHash: passHash, InviterName: inviterName})
	if err != nil {
		return "", err
	}
	link := s.registerLink(secret, next)
	if quiet {
		return link, nil
	}
	return link, s.notify(tx, Notice{Kind: "invitation", To: u.Email, ToName: u.Name, SenderName: inviterName,
		Link: link, ValidFor: validFor(life)})
}

func (s *Service) registerLink(secret, next string) string {
	link := s.baseURL() + "/register?token=" + secret
	if next != "" {
		link += "&next=" + url.QueryEscape(next)
	}
	return link
}

func (s *Service) notify(tx *store.Tx, n Notice) error {
	if s.notifier == nil {
		return fault.E(fault.Unavailable, "Outbound mail is not set up yet, so no mail can be sent.", nil)
	}
	return s.notifier.Notify(tx, n)
}

// ResendInvitation sends a new invitation link to a user who has not
// registered yet; the old link stops working, and so do the links of
// notifications sent to them so far. A new level-3 passcode may be
// given; without one the old passcode stays.
func (s *Service) ResendInvitation(ctx context.Context, actorID, userID string) error {
	return s.st.Update(ctx, func(tx *store.Tx) error {
		u, err := getUser(tx, userID)
		if err != nil {
			return err
		}
		if u.Status != StatusInvited {
			return fault.E(fault.Conflict, "This user has registered already.", nil)
		}
		actor, err := getUser(tx, actorID)
		if err != nil {
			return err
		}
		if !actor.Has(RoleAdmin) && u.InvitedBy != actorID {
			return fault.E(fault.NotFound, "no such user", nil)
		}
		if _, err := s.reissueInvitation(tx, u, actor, "", false); err != nil {
			return err
		}
		return s.audit(tx, ActorOf(actorID), "user.invite_resend", "user/"+u.ID, nil)
	})
}

// InvitationLinkTx issues a registration link for a user who has not
// registered yet, without mailing it: a secure message to them carries it,
// and next is the message. The link is another name for the user's
// invitation (see aliasToken), so the links of earlier messages keep
// working, and all of them end with the invitation: at registration,
// expiry, too many wrong passcodes, or a resend.
func (s *Service) InvitationLinkTx(tx *store.Tx, userID, senderID, next string) (string, error) {
	u, err := getUser(tx, userID)
	if err != nil {
		return "", err
	}
	if u.Status != StatusInvited {
		return "", fault.E(fault.Conflict, "This user has registered already.", nil)
	}
	sender, err := getUser(tx, senderID)
	if err != nil {
		return "", err
	}
	if main, h, ok := invitationOf(tx, u.ID); ok && s.now().Before(main.Expires) {
		secret, err := aliasToken(tx, main, h, s.now())
		if err != nil {
			return "", err
		}
		return s.registerLink(secret, next), nil
	}
	return s.reissueInvitation(tx, u, sender, next, true) // the invitation expired: a new one
}

// invitationOf is the user's invitation token and its hash, if any.
func invitationOf(tx *store.Tx, uid string) (Token, string, bool) {
	ref, err := tx.Get(userTokenKey(uid, purposeInvite, ""))
	if err != nil {
		return Token{}, "", false
	}
	t, err := store.GetJSON[Token](tx, tokenKey(purposeInvite, string(ref)))
	return t, string(ref), err == nil
}

// reissueInvitation replaces a user's invitation link, keeping its level
// and passcode.
func (s *Service) reissueInvitation(tx *store.Tx, u, actor User, next string, quiet bool) (string, error) {
	set, err := settings.Load(tx)
	if err != nil {
		return "", err
	}
	level, passHash := 0, ""
	if t, _, ok := invitationOf(tx, u.ID); ok {
		level, passHash = t.Level, t.PasscodeHash
	}
	if level == 0 {
		fs, err := loadFilters(tx)
		if err != nil {
			return "", err
		}
		level = admit(set, fs, u.Email).level
		if level == 3 {
			level = 2 // the passcode is gone with the old invitation
		}
	}
	inviterName := actor.DisplayName()
	if u.InvitedBy != "" && u.InvitedBy != actor.ID {
		if inv, err := getUser(tx, u.InvitedBy); err == nil {
			inviterName = inv.DisplayName()
		}
	}
	return s.sendInvitation(tx, set, u, inviterName, level, passHash, next, quiet)
}

// Invitation is what the registration page shows of a pending invitation.
type Invitation struct {
	Email        string
	Name         string
	InviterName  string
	Level        int
	CodeSent     bool // waiting for the emailed code
	CodeValidFor string
}

// Invitation looks up an invitation link.
func (s *Service) Invitation(secret string) (Invitation, error) {
	var inv Invitation
	err := s.st.View(func(tx *store.Tx) error {
		t, _, u, err := s.liveInvitation(tx, secret)
		if err != nil {
			return err
		}
		inv = Invitation{Email: u.Email, Name: u.Name, InviterName: t.InviterName, Level: t.Level,
			CodeSent: t.CodeHash != "" && s.now().Before(t.CodeExpires)}
		set, err := settings.Load(tx)
		if err == nil {
			inv.CodeValidFor = validFor(time.Duration(set.Security.AuthCodeMinutes) * time.Minute)
		}
		return nil
	})
	return inv, err
}

// liveInvitation returns the invitation of a link and its user, who has
// not registered yet; anything else is the one answer to a dead link.
func (s *Service) liveInvitation(tx *store.Tx, secret string) (Token, string, User, error) {
	t, h, err := lookupToken(tx, purposeInvite, secret, s.now(), "invitation")
	if err != nil {
		return t, h, User{}, err
	}
	if t.Alias != "" { // a message's link: everything happens on the invitation
		mt, err := store.GetJSON[Token](tx, tokenKey(purposeInvite, t.Alias))
		if err != nil || !s.now().Before(mt.Expires) || mt.UserID != t.UserID {
			return t, h, User{}, errLink("invitation")
		}
		t, h = mt, t.Alias
	}
	u, err := getUser(tx, t.UserID)
	if err != nil || u.Status != StatusInvited {
		return t, h, u, errLink("invitation")
	}
	return t, h, u, nil
}

// maxRegistrationAttempts is how many wrong passcodes or codes void an
// invitation; the inviter then resends it.
const maxRegistrationAttempts = 5

// Registration is what a person enters on the registration page.
type Registration struct {
	Name     string
	Password string
	Confirm  string // the password typed again
	Passcode string // level 3
}

// RegisterResult is the outcome: either a session (done) or a code sent.
type RegisterResult struct {
	CodeSent bool
	SignIn   SignInResult
}

// Register completes the first step of registration from an invitation
// link. At level 1 the account is enabled and signed in; at levels 2 and 3
// (after the passcode) an authorization code is emailed and the password is
// kept, hashed, until ConfirmCode.
func (s *Service) Register(ctx context.Context, secret string, r Registration, ip, ua string) (RegisterResult, error) {
	var res RegisterResult
	var done User
	var outcome error
	err := s.st.Update(ctx, func(tx *store.Tx) error {
		outcome = nil
		t, h, u, err := s.liveInvitation(tx, secret)
		if err != nil {
			return err
		}
		var errs []FieldError
		name := strings.TrimSpace(r.Name)
		if name == "" {
			name = u.Name
		}
		if name == "" || len(name) > 200 {
			errs = append(errs, FieldError{"name", "Enter your name as others should see it."})
		}
		errs = append(errs, checkNewPassword(tx, r.Password, r.Confirm, u.Email, name)...)
		if t.Level == 3 {
			ok, _, err := keyring.VerifyPassword(ctx, t.PasscodeHash, normalizePasscode(r.Passcode))
			if err != nil {
				return err
			}
			if !ok {
				t.Attempts++
				outcome = s.registrationAttempt(tx, t, h, "passcode")
				errs = append(errs, FieldError{"passcode", "That passcode is not right. Ask the person who invited you for it."})
				if outcome == nil {
					outcome = invalid(errs)
				}
				return nil // commit the counted attempt (or the voided invitation)
			}
		}
		if err := invalid(errs); err != nil {
			return err
		}
		hash, err := keyring.HashPassword(ctx, r.Password)
		if err != nil {
			return err
		}
		u.Name = name
		if t.Level <= 1 {
			u.PasswordHash, u.PasswordSet = hash, s.now().UTC()
			res.SignIn, done, err = s.activate(tx, t, h, u, ip, ua)
			return err
		}
		t.PasswordHash, t.Attempts = hash, 0
		if err := putUser(tx, u); err != nil {
			return err
		}
		res.CodeSent = true
		if err := s.sendCode(tx, t, h, u); err != nil {
			return err
		}
		return s.audit(tx, ActorOf(u.ID), "registration.code_sent", "user/"+u.ID, map[string]string{"remote_ip": ip})
	})
	if err == nil {
		err = outcome
	}
	if err == nil && done.ID != "" {
		s.dir.put(done)
	}
	return res, err
}

// registrationAttempt records a wrong passcode or code; after too many, the
// invitation is voided.
func (s *Service) registrationAttempt(tx *store.Tx, t Token, h, what string) error {
	if err := s.audit(tx, ActorOf(t.UserID), "registration.wrong_"+what, "user/"+t.UserID, nil); err != nil {
		return err
	}
	if t.Attempts >= maxRegistrationAttempts {
		if err := consumeToken(tx, t, h); err != nil {
			return err
		}
		if err := s.audit(tx, "system", "registration.void", "user/"+t.UserID, map[string]string{"reason": "too many wrong " + what + "s"}); err != nil {
			return err
		}
		return fault.E(fault.Permission, "Too many wrong attempts: this invitation no longer works. Ask the person who invited you to send it again.", nil)
	}
	return store.PutJSON(tx, tokenKey(t.Purpose, h), t)
}

// ConfirmCode completes registration at levels 2 and 3 with the emailed
// authorization code.
func (s *Service) ConfirmCode(ctx context.Context, secret, code, ip, ua string) (SignInResult, error) {
	var res SignInResult
	var done User
	var outcome error
	err := s.st.Update(ctx, func(tx *store.Tx) error {
		outcome = nil
		t, h, u, err := s.liveInvitation(tx, secret)
		if err != nil {
			return err
		}
		if t.CodeHash == "" {
			return fault.E(fault.Conflict, "Choose your password first.", nil)
		}
		if s.now().After(t.CodeExpires) {
			return invalid([]FieldError{{"code", "This code has expired. Send a new code."}})
		}
		code = strings.TrimSpace(strings.ReplaceAll(code, " ", ""))
		if subtle.ConstantTimeCompare([]byte(hashToken(code)), []byte(t.CodeHash)) != 1 {
			t.Attempts++
			if outcome = s.registrationAttempt(tx, t, h, "code"); outcome == nil {
				outcome = invalid([]FieldError{{"code", "That code is not right. Check the latest email, or send a new code."}})
			}
			return nil
		}
		u.PasswordHash, u.PasswordSet = t.PasswordHash, s.now().UTC()
		res, done, err = s.activate(tx, t, h, u, ip, ua)
		return err
	})
	if err == nil {
		err = outcome
	}
	if err == nil {
		s.dir.put(done)
	}
	return res, err
}

// ResendCode sends a new authorization code for a registration waiting for
// one.
func (s *Service) ResendCode(ctx context.Context, secret string) error {
	return s.st.Update(ctx, func(tx *store.Tx) error {
		t, h, u, err := s.liveInvitation(tx, secret)
		if err != nil {
			return err
		}
		if t.PasswordHash == "" {
			return fault.E(fault.Conflict, "Choose your password first.", nil)
		}
		return s.sendCode(tx, t, h, u)
	})
}

// sendCode makes a new authorization code for a registration, keeps its
// hash with the invitation and mails it; an earlier code stops working.
func (s *Service) sendCode(tx *store.Tx, t Token, h string, u User) error {
	set, err := settings.Load(tx)
	if err != nil {
		return err
	}
	code, err := authCode()
	if err != nil {
		return err
	}
	life := time.Duration(set.Security.AuthCodeMinutes) * time.Minute
	t.CodeHash, t.CodeExpires = hashToken(code), s.now().Add(life).UTC()
	if err := store.PutJSON(tx, tokenKey(purposeInvite, h), t); err != nil {
		return err
	}
	return s.notify(tx, Notice{Kind: "auth_code", To: u.Email, ToName: u.Name, Code: code, ValidFor: validFor(life)})
}

// activate enables a registered user, voids the invitation and signs in.
func (s *Service) activate(tx *store.Tx, t Token, h string, u User, ip, ua string) (SignInResult, User, error) {
	if err := consumeToken(tx, t, h); err != nil {
		return SignInResult{}, u, err
	}
	u.Status = StatusEnabled
	need, err := RequiresTOTP(tx, u)
	if err != nil {
		return SignInResult{}, u, err
	}
	stage := StageFull
	if need {
		stage = StageEnrol
	} else {
		u.LastSignIn = s.now().UTC()
	}
	if err := putUser(tx, u); err != nil {
		return SignInResult{}, u, err
	}
	token, sess, err := s.newSession(tx, u, stage, ip, ua)
	if err != nil {
		return SignInResult{}, u, err
	}
	if err := s.audit(tx, ActorOf(u.ID), "registration.complete", "user/"+u.ID, map[string]string{"level": strconv.Itoa(max(t.Level, 1)), "remote_ip": ip}); err != nil {
		return SignInResult{}, u, err
	}
	return SignInResult{Token: token, Session: sess, User: u}, u, nil
}

// authCode is a random six-digit code.
func authCode() (string, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000))
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%06d", n.Int64()), nil
}

// SelfRegister lets someone register without an invitation when the
// settings allow it (not invitation-only; open access, or an allowing
// filter). The answer is the same whether or not the address is known, so
// it reveals no users; an invitation mail goes to new, admitted addresses.
func (s *Service) SelfRegister(ctx context.Context, email, ip string) error {
	addr, err := NormalizeAddress(email)
	if err != nil {
		return invalid([]FieldError{{"email", fault.Message(err)}})
	}
	var u User
	err = s.st.Update(ctx, func(tx *store.Tx) error {
		set, err := settings.Load(tx)
		if err != nil {
			return err
		}
		if set.Registration.InvitationOnly {
			return fault.E(fault.Permission, "Registration is by invitation only. Ask a member of the organization to invite you.", nil)
		}
		if _, err := userByAddress(tx, addr); err == nil {
			return nil // known: same answer, no mail
		}
		fs, err := loadFilters(tx)
		if err != nil {
			return err
		}
		adm := admit(set, fs, addr)
		if !adm.allowed {
			return s.audit(tx, "anonymous", "registration.refused", "address/"+DomainOf(addr), map[string]string{"remote_ip": ip})
		}
		level := adm.level
		if level == 3 {
			level = 2 // nobody chose a passcode
		}
		u, err = s.createUser(ctx, tx, NewUser{Email: addr, Roles: []Role{RoleGuest}, Group: adm.group}, StatusInvited)
		if err != nil {
			return err
		}
		if _, err := s.sendInvitation(tx, set, u, "", level, "", "", false); err != nil {
			return err
		}
		return s.audit(tx, "anonymous", "registration.self", "user/"+u.ID, map[string]string{"remote_ip": ip})
	})
	if err == nil && u.ID != "" {
		s.dir.put(u)
	}
	return err
}
