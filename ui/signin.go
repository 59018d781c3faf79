package ui

import (
	"encoding/base64"
	"errors"
	"html/template"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/sealpost/sealpost/appliance/account"
	"github.com/sealpost/sealpost/appliance/fault"
)

type signInPage struct {
	page
	Form
	Next    string
	Message string // the organization's sign-in message
}

func (s *Server) signInMessage() string {
	set, err := s.opts.ReadSettings()
	if err != nil {
		return ""
	}
	return set.Branding.SignInMessage
}

// home sends each user to their start page.
func (s *Server) home(c echo.Context) error {
	sess, u, ok := current(c)
	if !ok || sess.Stage != account.StageFull {
		return c.Redirect(http.StatusSeeOther, "/signin")
	}
	switch {
	case u.Has(account.RoleAdmin) && !u.Has(account.RoleProfessional):
		return c.Redirect(http.StatusSeeOther, "/admin/users")
	case u.Has(account.RoleAuditor) && !u.Has(account.RoleProfessional):
		return c.Redirect(http.StatusSeeOther, "/audit")
	}
	if s.opts.Messages != nil {
		return c.Redirect(http.StatusSeeOther, withDone("/mail/inbox", c.QueryParam("done")))
	}
	return c.Render(http.StatusOK, "mail/home", struct{ page }{s.pageFor(c, "mail")})
}

func (s *Server) signInForm(c echo.Context) error {
	if sess, _, ok := current(c); ok && sess.Stage == account.StageFull {
		return c.Redirect(http.StatusSeeOther, safeNext(c.QueryParam("next")))
	}
	p := signInPage{page: s.pageFor(c, ""), Form: newForm(c, "email"), Next: safeNext(c.QueryParam("next")), Message: s.signInMessage()}
	return c.Render(http.StatusOK, "signin/signin", p)
}

func (s *Server) signIn(c echo.Context) error {
	p := signInPage{page: s.pageFor(c, ""), Form: newForm(c, "email"), Next: safeNext(c.FormValue("next")), Message: s.signInMessage()}
	res, err := s.opts.Accounts.SignIn(c.Request().Context(), c.FormValue("email"), c.FormValue("password"), c.RealIP(), c.Request().UserAgent())
	if err != nil {
		status := p.fail(err)
		return c.Render(status, "signin/signin", p)
	}
	s.setSession(c, res.Token)
	switch res.Session.Stage {
	case account.StageSecondFactor:
		return c.Redirect(http.StatusSeeOther, "/signin/code?next="+urlEscape(p.Next))
	case account.StageEnrol:
		return c.Redirect(http.StatusSeeOther, "/signin/enrol?next="+urlEscape(p.Next))
	}
	return c.Redirect(http.StatusSeeOther, p.Next)
}

// halfSession is a session waiting at a stage, or a redirect to sign in.
func halfSession(c echo.Context, stage string) (account.Session, account.User, bool) {
	sess, u, ok := current(c)
	if !ok || sess.Stage != stage {
		return sess, u, false
	}
	return sess, u, true
}

type codePage struct {
	page
	Form
	Next string
}

func (s *Server) codeForm(c echo.Context) error {
	if _, _, ok := halfSession(c, account.StageSecondFactor); !ok {
		return c.Redirect(http.StatusSeeOther, "/signin")
	}
	return c.Render(http.StatusOK, "signin/code", codePage{page: s.pageFor(c, ""), Form: newForm(c), Next: safeNext(c.QueryParam("next"))})
}

func (s *Server) code(c echo.Context) error {
	if _, _, ok := halfSession(c, account.StageSecondFactor); !ok {
		return c.Redirect(http.StatusSeeOther, "/signin")
	}
	p := codePage{page: s.pageFor(c, ""), Form: newForm(c), Next: safeNext(c.FormValue("next"))}
	res, err := s.opts.Accounts.SecondFactor(c.Request().Context(), sessionToken(c), c.FormValue("code"), c.RealIP())
	if err != nil {
		if errors.Is(err, account.ErrNoSession) {
			return c.Redirect(http.StatusSeeOther, "/signin")
		}
		p.Errors["code"] = fault.Message(err)
		return c.Render(http.StatusUnprocessableEntity, "signin/code", p)
	}
	s.setSession(c, res.Token)
	return c.Redirect(http.StatusSeeOther, p.Next)
}

type enrolPage struct {
	page
	Form
	Next   string
	Secret string
	QR     template.URL
	Codes  []string // shown once, after enrolment
	Forced bool     // the sign-in waits for this
}

// issuer names the appliance in authenticator apps.
func (s *Server) issuer() string {
	if set, err := s.opts.ReadSettings(); err == nil && set.Organization.Name != "" {
		return set.Organization.Name + " Sealpost"
	}
	return "Sealpost"
}

// enrolForm shows the QR code of a new authenticator secret, for a sign-in
// that must enrol first or for a signed-in user from their account page.
func (s *Server) enrolForm(c echo.Context) error {
	sess, u, ok := current(c)
	if !ok || sess.Stage == account.StageSecondFactor {
		return c.Redirect(http.StatusSeeOther, "/signin")
	}
	e, err := s.opts.Accounts.PendingTOTP(c.Request().Context(), u.ID, s.issuer())
	if err != nil {
		return err
	}
	p := enrolPage{page: s.pageFor(c, "account"), Form: newForm(c), Next: safeNext(c.QueryParam("next")), Secret: e.Secret,
		QR: template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(e.QRPNG)), Forced: sess.Stage == account.StageEnrol}
	return c.Render(http.StatusOK, "signin/enrol", p)
}

func (s *Server) enrol(c echo.Context) error {
	sess, _, ok := current(c)
	if !ok || sess.Stage == account.StageSecondFactor {
		return c.Redirect(http.StatusSeeOther, "/signin")
	}
	codes, res, err := s.opts.Accounts.ConfirmTOTP(c.Request().Context(), sessionToken(c), c.FormValue("code"), c.RealIP())
	if err != nil {
		if errors.Is(err, account.ErrNoSession) {
			return c.Redirect(http.StatusSeeOther, "/signin")
		}
		_, u, _ := current(c)
		e, perr := s.opts.Accounts.PendingTOTP(c.Request().Context(), u.ID, s.issuer())
		if perr != nil {
			return perr
		}
		p := enrolPage{page: s.pageFor(c, "account"), Form: newForm(c), Next: safeNext(c.FormValue("next")), Secret: e.Secret,
			QR: template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(e.QRPNG)), Forced: sess.Stage == account.StageEnrol}
		p.Errors["code"] = fault.Message(err)
		return c.Render(http.StatusUnprocessableEntity, "signin/enrol", p)
	}
	if res.Token != "" {
		s.setSession(c, res.Token)
		c.Set(ctxSession, res.Session)
		c.Set(ctxUser, res.User)
	}
	p := enrolPage{page: s.pageFor(c, "account"), Next: safeNext(c.FormValue("next")), Codes: codes}
	return c.Render(http.StatusOK, "signin/recovery", p)
}

// signOut ends this device's session ("forget me").
func (s *Server) signOut(c echo.Context) error {
	if token := sessionToken(c); token != "" {
		if err := s.opts.Accounts.SignOut(c.Request().Context(), token); err != nil {
			return err
		}
	}
	s.clearSession(c)
	return c.Redirect(http.StatusSeeOther, "/signin?done="+urlEscape("You have signed out on this device."))
}

type forgotPage struct {
	page
	Form
	Sent bool
}

func (s *Server) forgotForm(c echo.Context) error {
	return c.Render(http.StatusOK, "signin/forgot", forgotPage{page: s.pageFor(c, ""), Form: newForm(c, "email")})
}

// forgot sends a reset link; the page says the same for every address.
func (s *Server) forgot(c echo.Context) error {
	p := forgotPage{page: s.pageFor(c, ""), Form: newForm(c, "email")}
	if err := s.opts.Accounts.StartPasswordReset(c.Request().Context(), c.FormValue("email"), c.RealIP()); err != nil {
		return c.Render(p.fail(err), "signin/forgot", p)
	}
	p.Sent = true
	return c.Render(http.StatusOK, "signin/forgot", p)
}

type resetPage struct {
	page
	Form
	Token string
	Email string
}

func (s *Server) resetForm(c echo.Context) error {
	token := c.QueryParam("token")
	u, err := s.opts.Accounts.CheckResetLink(token)
	if err != nil {
		return err
	}
	return c.Render(http.StatusOK, "signin/reset", resetPage{page: s.pageFor(c, ""), Form: newForm(c), Token: token, Email: u.Email})
}

func (s *Server) reset(c echo.Context) error {
	token := c.FormValue("token")
	u, err := s.opts.Accounts.CheckResetLink(token)
	if err != nil {
		return err
	}
	p := resetPage{page: s.pageFor(c, ""), Form: newForm(c), Token: token, Email: u.Email}
	if err := s.opts.Accounts.CompletePasswordReset(c.Request().Context(), token, c.FormValue("password"), c.FormValue("confirm"), c.RealIP()); err != nil {
		return c.Render(p.fail(err), "signin/reset", p)
	}
	s.clearSession(c)
	return c.Redirect(http.StatusSeeOther, "/signin?done="+urlEscape("Your password is changed. Sign in with it now."))
}
