package account

import (
	"context"
	"strings"
	"testing"
)

// TestAppPasswords: a mail program authenticates with an app password
// (spaces or not) or, without a second factor, the password; a revoked app
// password, someone else's, a guest and a user with a second factor using
// only their password are refused, and failures are audited.
func TestAppPasswords(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	pro := e.register(t, "pro@clinic.test", RoleProfessional)
	other := e.register(t, "other@clinic.test", RoleProfessional)
	guest := e.register(t, "guest@outside.test", RoleGuest)

	secret, ap, err := e.svc.CreateAppPassword(ctx, pro.ID, "Outlook on my laptop")
	if err != nil {
		t.Fatal(err)
	}
	if len(strings.ReplaceAll(secret, " ", "")) != 26 || ap.Hash == "" {
		t.Fatalf("the app password %q, %+v", secret, ap)
	}
	list, _ := e.svc.AppPasswords(pro.ID)
	if len(list) != 1 || list[0].Name != "Outlook on my laptop" || list[0].Hash != "" {
		t.Fatalf("the list %+v", list)
	}
	for _, c := range []struct {
		name, user, password string
		ok                   bool
	}{
		{"app password as shown", pro.Email, secret, true},
		{"app password without spaces, upper case", pro.Email, strings.ToUpper(strings.ReplaceAll(secret, " ", "")), true},
		{"the password, no second factor", pro.Email, testPassword, true},
		{"another user's app password", other.Email, secret, false},
		{"a wrong password", pro.Email, "not it at all", false},
		{"a guest", guest.Email, testPassword, false},
		{"an unknown address", "nobody@clinic.test", secret, false},
	} {
		_, err := e.svc.AuthenticateSMTP(ctx, c.user, c.password, "10.0.0.8")
		if (err == nil) != c.ok {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	if _, _, err := e.svc.CreateAppPassword(ctx, guest.ID, "phone"); err == nil {
		t.Errorf("a guest made an app password")
	}
	if err := e.svc.RevokeAppPassword(ctx, pro.ID, ap.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.AuthenticateSMTP(ctx, pro.Email, secret, "10.0.0.8"); err == nil {
		t.Errorf("a revoked app password still works")
	}
	if n := e.countEvents(t, "smtp_auth.fail"); n < 5 {
		t.Errorf("%d smtp_auth.fail events", n)
	}
}

const testPassword = "a long and private passphrase"

// register invites addr with role as the administrator and registers them
// at level 1.
func (e *env) register(t *testing.T, addr string, role Role) User {
	t.Helper()
	ctx := context.Background()
	e.set(t, "registration.level", "1", "security.admin_requires_totp", "false")
	if _, err := e.svc.Invite(ctx, e.admin.ID, Invite{Email: addr, Role: role}); err != nil {
		t.Fatal(err)
	}
	reg, err := e.svc.Register(ctx, tokenOf(t, e.mail.last(t, "invitation", addr).Link),
		Registration{Name: "Someone", Password: testPassword, Confirm: testPassword}, "10.0.0.1", "test")
	if err != nil {
		t.Fatal(err)
	}
	return reg.SignIn.User
}

// countEvents counts audit events with action.
func (e *env) countEvents(t *testing.T, action string) int {
	n := 0
	for _, a := range e.actions(t) {
		if a == action {
			n++
		}
	}
	return n
}
