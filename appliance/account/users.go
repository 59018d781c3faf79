package account

import (
	"context"
	"crypto/rand"
	"errors"
	"slices"
	"strings"

	"github.com/sealpost/sealpost/appliance/fault"
	"github.com/sealpost/sealpost/appliance/keyring"
	"github.com/sealpost/sealpost/appliance/passwords"
	"github.com/sealpost/sealpost/appliance/settings"
	"github.com/sealpost/sealpost/appliance/store"
)

// NewUser is what creating a user needs.
type NewUser struct {
	Email    string
	Name     string
	Roles    []Role
	Group    string // empty: Professional or Guest by role
	Password string // empty: the user chooses one when registering
}

func newUserID() string { return "u" + strings.ToLower(rand.Text()[:15]) }

// checkRoles refuses combinations that make no sense: a guest is only a
// guest, and everyone has at least one role.
func checkRoles(roles []Role) error {
	if len(roles) == 0 {
		return invalid([]FieldError{{"roles", "Choose at least one role."}})
	}
	for _, r := range roles {
		switch r {
		case RoleAdmin, RoleProfessional, RoleGuest, RoleAuditor:
		default:
			return invalid([]FieldError{{"roles", "Unknown role " + string(r) + "."}})
		}
	}
	if slices.Contains(roles, RoleGuest) && len(roles) > 1 {
		return invalid([]FieldError{{"roles", "A guest user cannot have other roles."}})
	}
	return nil
}

// CheckPassword applies the password policy from the settings, returning
// every problem as field errors on "password".
func CheckPassword(tx *store.Tx, password string, personal ...string) error {
	set, err := settings.Load(tx)
	if err != nil {
		return err
	}
	var ctx []string
	for _, p := range personal {
		ctx = append(ctx, p)
		if at := strings.IndexByte(p, '@'); at > 0 {
			ctx = append(ctx, p[:at])
		}
		ctx = append(ctx, strings.Fields(p)...)
	}
	var errs []FieldError
	for _, msg := range (passwords.Policy{MinLength: set.Security.PasswordMinLength}).Check(password, ctx...) {
		errs = append(errs, FieldError{"password", msg})
	}
	return invalid(errs)
}

// checkNewPassword is CheckPassword, and the password typed again must be
// the same: every problem at once.
func checkNewPassword(tx *store.Tx, password, confirm string, personal ...string) []FieldError {
	var errs []FieldError
	if err := CheckPassword(tx, password, personal...); err != nil {
		if ve := FieldErrors(err); ve != nil {
			errs = append(errs, ve.Fields...)
		} else {
			errs = append(errs, FieldError{"password", fault.Message(err)})
		}
	}
	if password != confirm {
		errs = append(errs, FieldError{"confirm", "The two passwords are not the same."})
	}
	return errs
}

// createUser adds a user in tx. The caller audits.
func (s *Service) createUser(ctx context.Context, tx *store.Tx, n NewUser, status Status) (User, error) {
	var errs []FieldError
	email, err := NormalizeAddress(n.Email)
	if err != nil {
		errs = append(errs, FieldError{"email", fault.Message(err)})
	}
	if err := checkRoles(n.Roles); err != nil {
		return User{}, err
	}
	if len(n.Name) > 200 {
		errs = append(errs, FieldError{"name", "Keep the name under 200 characters."})
	}
	if n.Password != "" {
		if err := CheckPassword(tx, n.Password, n.Email, n.Name); err != nil {
			errs = append(errs, FieldErrors(err).Fields...)
		}
	}
	if err := invalid(errs); err != nil {
		return User{}, err
	}
	if _, err := tx.Get(emailKey(email)); err == nil {
		return User{}, fault.E(fault.Conflict, "A user with this address exists already.", nil)
	} else if !errors.Is(err, store.ErrNotFound) {
		return User{}, err
	}
	group := n.Group
	if group == "" {
		group = GroupProfessional
		if slices.Contains(n.Roles, RoleGuest) {
			group = GroupGuest
		}
	}
	if _, err := getGroup(tx, group); err != nil {
		return User{}, invalid([]FieldError{{"group", "Choose an existing group."}})
	}
	u := User{ID: newUserID(), Email: email, Name: strings.TrimSpace(n.Name), Roles: n.Roles, Group: group,
		Status: status, BlacklistMode: BlacklistSecureOnly, DefaultSecure: DefaultSecureByRule, Created: s.now().UTC()}
	if n.Password != "" {
		if u.PasswordHash, err = keyring.HashPassword(ctx, n.Password); err != nil {
			return User{}, err
		}
		u.PasswordSet = u.Created
	}
	if err := putUser(tx, u); err != nil {
		return User{}, err
	}
	return u, tx.Put(emailKey(email), []byte(u.ID))
}

// CreateAdmin makes the first administrator (also a professional user)
// with the password they chose; setup calls it.
func (s *Service) CreateAdmin(ctx context.Context, tx *store.Tx, email, name, password string) (User, error) {
	if password == "" {
		return User{}, invalid([]FieldError{{"password", "Choose a password."}})
	}
	u, err := s.createUser(ctx, tx, NewUser{Email: email, Name: name, Password: password,
		Roles: []Role{RoleAdmin, RoleProfessional}}, StatusEnabled)
	if err != nil {
		return u, err
	}
	return u, s.audit(tx, "setup", "user.create", "user/"+u.ID, map[string]string{"roles": "administrator,professional"})
}

// Committed tells the directory about users changed in a transaction that
// committed. Callers outside this package that write users in their own
// transaction (setup) call it after the commit.
func (s *Service) Committed(users ...User) {
	for _, u := range users {
		s.dir.put(u)
	}
}

// UserChange is what an administrator may change of a user.
type UserChange struct {
	Group         *string
	Status        *Status
	BlacklistMode *string
	DefaultSecure *string
	Roles         []Role // nil: unchanged
	Name          *string
}

// ChangeUser applies an administrator's change, audited field by field.
// Disabling a user ends their sessions. An administrator cannot disable
// themselves or take away their own administrator role.
func (s *Service) ChangeUser(ctx context.Context, actorID, userID string, c UserChange) (User, error) {
	var u User
	err := s.st.Update(ctx, func(tx *store.Tx) error {
		var err error
		if u, err = getUser(tx, userID); err != nil {
			return err
		}
		var errs []FieldError
		detail := map[string]string{}
		if c.Group != nil && *c.Group != u.Group {
			if g, err := getGroup(tx, *c.Group); err != nil {
				errs = append(errs, FieldError{"group", "Choose an existing group."})
			} else if u.IsGuest() != (g.ID == GroupGuest) && g.BuiltIn {
				errs = append(errs, FieldError{"group", "Guests belong in the Guest group or a custom group; staff in Professional or a custom group."})
			} else {
				detail["group"] = g.ID
				u.Group = g.ID
			}
		}
		if c.Status != nil && *c.Status != u.Status {
			switch {
			case *c.Status != StatusEnabled && *c.Status != StatusDisabled:
				errs = append(errs, FieldError{"status", "A user is enabled or disabled."})
			case userID == actorID && *c.Status == StatusDisabled:
				errs = append(errs, FieldError{"status", "You cannot disable your own account."})
			case u.Status == StatusInvited && *c.Status == StatusEnabled:
				errs = append(errs, FieldError{"status", "This user has not registered yet; resend the invitation instead."})
			default:
				detail["status"] = string(*c.Status)
				u.Status = *c.Status
			}
		}
		if c.BlacklistMode != nil && *c.BlacklistMode != u.BlacklistMode {
			if *c.BlacklistMode != BlacklistSecureOnly && *c.BlacklistMode != BlacklistAll {
				errs = append(errs, FieldError{"blacklist_mode", "Choose secure messages only, or all messages."})
			} else {
				detail["blacklist_mode"] = *c.BlacklistMode
				u.BlacklistMode = *c.BlacklistMode
			}
		}
		if c.DefaultSecure != nil && *c.DefaultSecure != u.DefaultSecure {
			switch *c.DefaultSecure {
			case DefaultSecureOff, DefaultSecureByRule, DefaultSecureAlways:
				detail["default_secure"] = *c.DefaultSecure
				u.DefaultSecure = *c.DefaultSecure
			default:
				errs = append(errs, FieldError{"default_secure", "Choose off, by rule or always."})
			}
		}
		if c.Roles != nil && !slices.Equal(c.Roles, u.Roles) {
			if err := checkRoles(c.Roles); err != nil {
				errs = append(errs, FieldErrors(err).Fields...)
			} else if u.IsGuest() != slices.Contains(c.Roles, RoleGuest) {
				errs = append(errs, FieldError{"roles", "A guest cannot become staff, nor staff a guest; invite the address again instead."})
			} else if userID == actorID && u.Has(RoleAdmin) && !slices.Contains(c.Roles, RoleAdmin) {
				errs = append(errs, FieldError{"roles", "You cannot remove your own administrator role."})
			} else {
				detail["roles"] = strings.Join(roleStrings(c.Roles), ",")
				u.Roles = c.Roles
			}
		}
		if c.Name != nil && strings.TrimSpace(*c.Name) != u.Name {
			if len(*c.Name) > 200 {
				errs = append(errs, FieldError{"name", "Keep the name under 200 characters."})
			} else {
				detail["name"] = "(changed)"
				u.Name = strings.TrimSpace(*c.Name)
			}
		}
		if err := invalid(errs); err != nil {
			return err
		}
		if len(detail) == 0 {
			return nil
		}
		if u.Status == StatusDisabled {
			if err := endSessions(tx, u.ID, ""); err != nil {
				return err
			}
		}
		if err := putUser(tx, u); err != nil {
			return err
		}
		return s.audit(tx, ActorOf(actorID), "user.change", "user/"+u.ID, detail)
	})
	if err == nil {
		s.dir.put(u)
	}
	return u, err
}

// RequiresTOTP reports whether a user must use a second factor: always for
// administrators and auditors (unless the setting is off), for everyone
// when the setting says so, and for members of a group that requires it.
func RequiresTOTP(tx *store.Tx, u User) (bool, error) {
	set, err := settings.Load(tx)
	if err != nil {
		return false, err
	}
	if set.Security.RequireTOTPForAll || set.Security.AdminRequiresTOTP && (u.Has(RoleAdmin) || u.Has(RoleAuditor)) {
		return true, nil
	}
	g, err := getGroup(tx, u.Group)
	if err != nil {
		return false, nil
	}
	return g.RequireTOTP, nil
}
