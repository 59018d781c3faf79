package ui

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/sealpost/sealpost/appliance/account"
	"github.com/sealpost/sealpost/embed"
	"golang.org/x/time/rate"
)

// routes lists every route of the web interface.
func (s *Server) routes() {
	e := s.echo
	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	e.StaticFS("/static", echo.MustSubFS(embed.Static, "static"))

	// The setup token is 128 bits, so guessing is hopeless; the limit keeps
	// scanners from filling the log.
	setupLimit := perClientLimit(1, 60)
	// Forms that send mail or check codes: a client cannot make the
	// appliance mail-bomb an address or guess codes quickly.
	burst, every := s.opts.FormBurst, s.opts.FormEvery
	if burst <= 0 {
		burst, every = 10, 6*time.Second
	}
	mailLimit := perClientLimit(rate.Every(every), burst)
	e.GET("/setup", s.setupPage, setupLimit, s.setupAccess)
	e.GET("/setup/:step", s.wizardStep, setupLimit, s.setupAccess)
	e.POST("/setup/:step", s.wizardSubmit, setupLimit, s.setupAccess)
	if s.opts.Accounts == nil {
		return
	}

	// Signing in, registering, links from mail: anyone.
	e.GET("/", s.home)
	e.GET("/branding/:kind", s.brandImage)
	e.GET("/signin", s.signInForm)
	e.POST("/signin", s.signIn)
	e.GET("/signin/code", s.codeForm)
	e.POST("/signin/code", s.code)
	e.GET("/signin/enrol", s.enrolForm)
	e.POST("/signin/enrol", s.enrol)
	e.POST("/signout", s.signOut)
	e.GET("/forgot", s.forgotForm)
	e.POST("/forgot", s.forgot, mailLimit)
	e.GET("/reset", s.resetForm)
	e.POST("/reset", s.reset, mailLimit)
	e.GET("/register", s.registerForm)
	e.POST("/register", s.register, mailLimit)
	e.POST("/register/self", s.selfRegister, mailLimit)
	e.GET("/alias/confirm", s.confirmAliasForm)
	e.POST("/alias/confirm", s.confirmAlias)
	e.GET("/unsubscribe", s.unsubscribeForm)
	e.POST("/unsubscribe", s.unsubscribe)
	e.POST("/unsubscribe/one-click", s.unsubscribe)

	// The signed-in user's own account.
	e.GET("/account", s.accountView, signedIn)
	e.POST("/account", s.accountAction, signedIn)

	// The webmail: every signed-in user's own messages.
	if s.opts.Messages != nil {
		e.GET("/preferences", s.preferencesForm, signedIn)
		e.POST("/preferences", s.preferences, signedIn)
		// A signed-in user sends and saves at a person's pace; a stolen
		// session or a runaway script gets 429 instead of flooding.
		sendLimit := perUserLimit(rate.Every(2*time.Second), 60)
		saveLimit := perUserLimit(2, 20)
		m := e.Group("/mail", signedIn)
		m.GET("", s.mailHome)
		m.GET("/compose", s.composeForm)
		m.POST("/compose", s.compose, sendLimit)
		m.POST("/autosave", s.autosave, saveLimit)
		m.POST("/bulk", s.bulk)
		m.GET("/events", s.events)
		m.GET("/m/:id", s.readMessage)
		m.POST("/m/:id", s.messageAction)
		m.GET("/m/:id/body", s.messageBody)
		m.GET("/m/:id/print", s.printMessage)
		m.GET("/m/:id/a/:att", s.download)
		m.GET("/:folder", s.folder)
	}

	// The audit trail: auditors and administrators, from the admin networks.
	if s.opts.AuditPage != nil {
		trail := e.Group("/audit", s.adminNetworks, signedIn, role(account.RoleAuditor, account.RoleAdmin))
		trail.GET("", s.auditTrail)
		trail.POST("", s.auditTrail)
	}

	// The admin console: administrators, from the allowed networks only.
	admin := e.Group("/admin", s.adminNetworks, signedIn, role(account.RoleAdmin))
	admin.GET("", func(c echo.Context) error { return c.Redirect(http.StatusSeeOther, "/admin/users") })
	admin.GET("/users", s.users)
	admin.GET("/users/:id", s.user)
	admin.POST("/users/:id", s.userAction)
	admin.GET("/invite", s.inviteForm)
	admin.POST("/invite", s.invite)
	admin.GET("/groups", s.groups)
	admin.GET("/groups/:id", s.group)
	admin.POST("/groups/:id", s.saveGroup)
	admin.GET("/registration", s.registration)
	admin.POST("/registration", s.registrationAction)
	if s.opts.LoadPolicy != nil {
		admin.GET("/policy", s.policyView)
		admin.POST("/policy", s.policyAction)
		admin.GET("/policy/test", s.policyTester)
		admin.POST("/policy/test", s.policyTester)
	}
}

// perUserLimit allows a signed-in user n requests per second after a
// burst, then answers 429.
func perUserLimit(n rate.Limit, burst int) echo.MiddlewareFunc {
	return middleware.RateLimiterWithConfig(middleware.RateLimiterConfig{
		Store: middleware.NewRateLimiterMemoryStoreWithConfig(middleware.RateLimiterMemoryStoreConfig{
			Rate: n, Burst: burst, ExpiresIn: 15 * time.Minute,
		}),
		IdentifierExtractor: func(c echo.Context) (string, error) {
			_, u, _ := current(c)
			return u.ID, nil
		},
		DenyHandler: func(c echo.Context, _ string, _ error) error {
			return echo.NewHTTPError(http.StatusTooManyRequests, "You are sending very fast. Wait a minute, then go back and try again.")
		},
	})
}

// perClientLimit allows a client address n requests per second after a
// burst, then answers 429.
func perClientLimit(n rate.Limit, burst int) echo.MiddlewareFunc {
	return middleware.RateLimiterWithConfig(middleware.RateLimiterConfig{
		Store: middleware.NewRateLimiterMemoryStoreWithConfig(middleware.RateLimiterMemoryStoreConfig{
			Rate: n, Burst: burst, ExpiresIn: 15 * time.Minute,
		}),
		IdentifierExtractor: func(c echo.Context) (string, error) { return c.RealIP(), nil },
		DenyHandler: func(c echo.Context, _ string, _ error) error {
			return echo.NewHTTPError(http.StatusTooManyRequests, "Too many attempts. Wait a minute and try again.")
		},
	})
}
