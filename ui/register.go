package ui

import (
	"net/http"
	"net/url"

	"github.com/labstack/echo/v4"

	"github.com/sealpost/sealpost/appliance/account"
)

func urlEscape(s string) string { return url.QueryEscape(s) }

type registerPage struct {
	page
	Form
	Token      string
	Invitation account.Invitation
	CodeStep   bool
	CodeResent bool
	Next       string // where to land after registering
}

// registerForm is where an invitation link lands: choose a password (and,
// at level 3, enter the inviter's passcode); at levels 2 and 3 the emailed
// code follows.
func (s *Server) registerForm(c echo.Context) error {
	token := c.QueryParam("token")
	if token == "" {
		return c.Render(http.StatusOK, "register/self", selfRegisterPage{page: s.pageFor(c, ""), Form: newForm(c, "email")})
	}
	inv, err := s.opts.Accounts.Invitation(token)
	if err != nil {
		return err
	}
	p := registerPage{page: s.pageFor(c, ""), Form: newForm(c), Token: token, Invitation: inv, CodeStep: inv.CodeSent,
		Next: safeNext(c.QueryParam("next"))}
	p.Values["name"] = inv.Name
	return c.Render(http.StatusOK, "register/register", p)
}

func (s *Server) register(c echo.Context) error {
	token := c.FormValue("token")
	inv, err := s.opts.Accounts.Invitation(token)
	if err != nil {
		return err
	}
	p := registerPage{page: s.pageFor(c, ""), Form: newForm(c, "name"), Token: token, Invitation: inv, Next: safeNext(c.FormValue("next"))}
	ctx := c.Request().Context()
	switch c.FormValue("step") {
	case "code":
		p.CodeStep = true
		res, err := s.opts.Accounts.ConfirmCode(ctx, token, c.FormValue("code"), c.RealIP(), c.Request().UserAgent())
		if err != nil {
			return c.Render(p.fail(err), "register/register", p)
		}
		return s.registered(c, res, p.Next)
	case "resend":
		p.CodeStep = true
		if err := s.opts.Accounts.ResendCode(ctx, token); err != nil {
			return c.Render(p.fail(err), "register/register", p)
		}
		p.CodeResent = true
		return c.Render(http.StatusOK, "register/register", p)
	}
	res, err := s.opts.Accounts.Register(ctx, token, account.Registration{Name: c.FormValue("name"),
		Password: c.FormValue("password"), Confirm: c.FormValue("confirm"), Passcode: c.FormValue("passcode")}, c.RealIP(), c.Request().UserAgent())
	if err != nil {
		return c.Render(p.fail(err), "register/register", p)
	}
	if res.CodeSent {
		p.CodeStep = true
		return c.Render(http.StatusOK, "register/register", p)
	}
	return s.registered(c, res.SignIn, p.Next)
}

// registered signs the new user in and takes them where the invitation
// pointed (a secure message), or home.
func (s *Server) registered(c echo.Context, res account.SignInResult, next string) error {
	s.setSession(c, res.Token)
	if res.Session.Stage == account.StageEnrol {
		return c.Redirect(http.StatusSeeOther, "/signin/enrol?next="+urlEscape(next))
	}
	return c.Redirect(http.StatusSeeOther, withDone(next, "Welcome! Your account is ready."))
}

type selfRegisterPage struct {
	page
	Form
	Sent bool
}

func (s *Server) selfRegister(c echo.Context) error {
	p := selfRegisterPage{page: s.pageFor(c, ""), Form: newForm(c, "email")}
	if err := s.opts.Accounts.SelfRegister(c.Request().Context(), c.FormValue("email"), c.RealIP()); err != nil {
		return c.Render(p.fail(err), "register/self", p)
	}
	p.Sent = true
	return c.Render(http.StatusOK, "register/self", p)
}

type messagePage struct {
	page
	Title   string
	Message string
	Action  string // a link
	Label   string
	Token   string // for a confirmation form
	Confirm string // the form's button
	Post    string // the form's action
	Primary bool   // the form's button is the expected choice (not a warning)
}

// confirmAliasForm asks before confirming: a program that follows links in
// mail (a security scanner at that address) must not confirm an address on
// someone's behalf.
func (s *Server) confirmAliasForm(c echo.Context) error {
	return c.Render(http.StatusOK, "message", messagePage{page: s.pageFor(c, ""), Title: "Confirm this address",
		Message: "Someone asked for this address to receive their secure messages. Confirm only if you did, or if it is your own mailbox.",
		Token:   c.QueryParam("token"), Confirm: "Confirm the address", Post: "/alias/confirm", Primary: true})
}

// confirmAlias confirms an alias from the confirmation page.
func (s *Server) confirmAlias(c echo.Context) error {
	_, addr, err := s.opts.Accounts.ConfirmAlias(c.Request().Context(), c.FormValue("token"))
	if err != nil {
		return err
	}
	return c.Render(http.StatusOK, "message", messagePage{page: s.pageFor(c, ""), Title: "Address confirmed",
		Message: addr + " is now one of your addresses. Secure messages to it reach your account.", Action: "/account", Label: "Go to your account"})
}

// unsubscribeForm asks before unsubscribing: a link scanner that follows
// links in mail must not unsubscribe anyone.
func (s *Server) unsubscribeForm(c echo.Context) error {
	return c.Render(http.StatusOK, "message", messagePage{page: s.pageFor(c, ""), Title: "Stop notifications",
		Message: "You will no longer get notifications of secure messages, and you will no longer be able to read the messages you received. This cannot be undone by you; the sender can invite you again.",
		Token:   c.QueryParam("token"), Confirm: "Unsubscribe", Post: "/unsubscribe"})
}

func (s *Server) unsubscribe(c echo.Context) error {
	token := c.FormValue("token")
	if token == "" {
		token = c.QueryParam("token")
	}
	if _, err := s.opts.Accounts.Unsubscribe(c.Request().Context(), token, c.RealIP()); err != nil {
		return err
	}
	s.clearSession(c)
	if c.Path() == "/unsubscribe/one-click" {
		return c.NoContent(http.StatusOK)
	}
	return c.Render(http.StatusOK, "message", messagePage{page: s.pageFor(c, ""), Title: "You are unsubscribed",
		Message: "You will get no more notifications, and your access to the messages you received has ended."})
}
