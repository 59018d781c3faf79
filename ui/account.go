package ui

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/sealpost/sealpost/appliance/account"
)

type accountPage struct {
	page
	Form
	Me       account.User
	Sessions []account.Session
	Current  string // this session's id
	Pending  []account.PendingAlias
	Group    account.Group
	// App passwords for mail programs; a new one is shown once.
	AppPasswords   []account.AppPassword
	NewAppPassword string
	NewAppName     string
}

func (s *Server) accountData(c echo.Context) (accountPage, error) {
	sess, u, _ := current(c)
	p := accountPage{page: s.pageFor(c, "account"), Form: newForm(c, "alias"), Me: u, Current: sess.ID}
	var err error
	if p.Sessions, err = s.opts.Accounts.Sessions(u.ID); err != nil {
		return p, err
	}
	if p.Pending, err = s.opts.Accounts.PendingAliases(u.ID); err != nil {
		return p, err
	}
	p.Group, _ = s.opts.Accounts.Group(u.Group)
	if u.Has(account.RoleProfessional) {
		if p.AppPasswords, err = s.opts.Accounts.AppPasswords(u.ID); err != nil {
			return p, err
		}
	}
	return p, nil
}

// accountView is the user's own page: addresses, second factor, password,
// sessions.
func (s *Server) accountView(c echo.Context) error {
	p, err := s.accountData(c)
	if err != nil {
		return err
	}
	return c.Render(http.StatusOK, "account/account", p)
}

// accountAction runs one of the account page's forms.
func (s *Server) accountAction(c echo.Context) error {
	sess, u, _ := current(c)
	ctx := c.Request().Context()
	var err error
	done := ""
	switch c.FormValue("action") {
	case "add_alias":
		err = s.opts.Accounts.AddAlias(ctx, u.ID, u.ID, c.FormValue("alias"))
		done = "We sent a confirmation link to " + c.FormValue("alias") + ". The address works once you follow it."
	case "promote_alias":
		_, err = s.opts.Accounts.PromoteAlias(ctx, u.ID, u.ID, c.FormValue("address"))
		done = c.FormValue("address") + " is now your main address."
	case "remove_alias":
		_, err = s.opts.Accounts.RemoveAlias(ctx, u.ID, u.ID, c.FormValue("address"))
		done = c.FormValue("address") + " is no longer one of your addresses."
	case "end_session":
		if c.FormValue("session") == sess.ID {
			return s.signOut(c)
		}
		err = s.opts.Accounts.EndSession(ctx, u.ID, c.FormValue("session"))
		done = "That session has ended."
	case "sign_out_everywhere":
		if err := s.opts.Accounts.SignOutEverywhere(ctx, u.ID); err != nil {
			return err
		}
		s.clearSession(c)
		return c.Redirect(http.StatusSeeOther, "/signin?done="+urlEscape("You have signed out on every device."))
	case "change_password":
		err = s.opts.Accounts.ChangePassword(ctx, sessionToken(c), c.FormValue("current"), c.FormValue("password"), c.FormValue("confirm"), c.RealIP())
		done = "Your password is changed. Your other sessions have ended."
	case "create_app_password":
		secret, ap, err := s.opts.Accounts.CreateAppPassword(ctx, u.ID, c.FormValue("app_name"))
		p, perr := s.accountData(c)
		if perr != nil {
			return perr
		}
		if err != nil {
			p.Values["app_name"] = c.FormValue("app_name")
			return c.Render(p.fail(err), "account/account", p)
		}
		p.NewAppPassword, p.NewAppName = secret, ap.Name
		return c.Render(http.StatusOK, "account/account", p)
	case "revoke_app_password":
		err = s.opts.Accounts.RevokeAppPassword(ctx, u.ID, c.FormValue("app_password"))
		done = "The app password was revoked; the program using it can no longer send."
	case "disable_totp":
		err = s.opts.Accounts.DisableTOTP(ctx, u.ID, c.FormValue("current_totp"))
		done = "Your authenticator app is no longer needed to sign in."
	default:
		return echo.NewHTTPError(http.StatusBadRequest, "Unknown action.")
	}
	if err != nil {
		p, perr := s.accountData(c)
		if perr != nil {
			return perr
		}
		status := p.fail(err)
		if c.FormValue("action") == "disable_totp" { // its password field has its own name
			p.Errors["current_totp"], p.Errors["current"] = p.Errors["current"], ""
		}
		return c.Render(status, "account/account", p)
	}
	return c.Redirect(http.StatusSeeOther, "/account?done="+urlEscape(done))
}
