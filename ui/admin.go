package ui

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/sealpost/sealpost/appliance/account"
	"github.com/sealpost/sealpost/appliance/settings"
)

const usersPerPage = 50

type usersPage struct {
	page
	Form
	Query  account.Query
	Result account.Page
	Groups []account.Group
	From   int
	To     int
	Prev   string // links to the neighbouring pages, empty at the ends
	Next   string
	Counts map[string]int // users by status
}

// users is the user list: search, filters and server-side pages.
func (s *Server) users(c echo.Context) error {
	offset, _ := strconv.Atoi(c.QueryParam("offset"))
	q := account.Query{Text: c.QueryParam("q"), Role: account.Role(c.QueryParam("role")), Group: c.QueryParam("group"),
		Status: account.Status(c.QueryParam("status")), Offset: max(offset, 0), Limit: usersPerPage}
	groups, err := s.opts.Accounts.Groups()
	if err != nil {
		return err
	}
	res := s.opts.Accounts.ListUsers(q)
	p := usersPage{page: s.pageFor(c, "admin"), Form: newForm(c, "q", "role", "group", "status"), Query: q, Result: res, Groups: groups,
		From: q.Offset + 1, To: q.Offset + len(res.Users), Counts: map[string]int{}}
	for st, n := range s.opts.Accounts.CountUsers() {
		p.Counts[string(st)] = n
	}
	link := func(off int) string {
		v := c.QueryParams()
		v.Set("offset", strconv.Itoa(off))
		v.Del("done")
		return "/admin/users?" + v.Encode()
	}
	if q.Offset > 0 {
		p.Prev = link(max(q.Offset-usersPerPage, 0))
	}
	if q.Offset+usersPerPage < res.Total {
		p.Next = link(q.Offset + usersPerPage)
	}
	return c.Render(http.StatusOK, "admin/users", p)
}

type userPage struct {
	page
	Form
	Subject  account.User
	Groups   []account.Group
	Pending  []account.PendingAlias
	Sessions int
	Usage    account.Usage
}

func (s *Server) userData(c echo.Context) (userPage, error) {
	u, err := s.opts.Accounts.User(c.Param("id"))
	if err != nil {
		return userPage{}, err
	}
	p := userPage{page: s.pageFor(c, "admin"), Form: newForm(c, "alias"), Subject: u}
	if p.Groups, err = s.opts.Accounts.Groups(); err != nil {
		return p, err
	}
	if p.Pending, err = s.opts.Accounts.PendingAliases(u.ID); err != nil {
		return p, err
	}
	if p.Usage, err = s.opts.Accounts.Usage(u.ID); err != nil {
		return p, err
	}
	sessions, err := s.opts.Accounts.Sessions(u.ID)
	p.Sessions = len(sessions)
	p.Values["group"], p.Values["status"] = u.Group, string(u.Status)
	p.Values["blacklist_mode"], p.Values["default_secure"] = u.BlacklistMode, u.DefaultSecure
	return p, err
}

// user is one user's page: every setting and action of SPEC §4.
func (s *Server) user(c echo.Context) error {
	p, err := s.userData(c)
	if err != nil {
		return err
	}
	return c.Render(http.StatusOK, "admin/user", p)
}

func (s *Server) userAction(c echo.Context) error {
	_, me, _ := current(c)
	id := c.Param("id")
	ctx := c.Request().Context()
	var err error
	done := ""
	switch c.FormValue("action") {
	case "save":
		group, status := c.FormValue("group"), account.Status(c.FormValue("status"))
		bl, ds := c.FormValue("blacklist_mode"), c.FormValue("default_secure")
		ch := account.UserChange{Group: &group, BlacklistMode: &bl, DefaultSecure: &ds}
		if status != "" {
			ch.Status = &status
		}
		if roles := c.Request().Form["roles"]; len(roles) > 0 {
			for _, r := range roles {
				ch.Roles = append(ch.Roles, account.Role(r))
			}
		}
		_, err = s.opts.Accounts.ChangeUser(ctx, me.ID, id, ch)
		done = "Saved."
	case "reset_password":
		err = s.opts.Accounts.AdminPasswordReset(ctx, me.ID, id)
		done = "A password-reset link is on its way to the user."
	case "resend_invitation":
		err = s.opts.Accounts.ResendInvitation(ctx, me.ID, id)
		done = "A new invitation is on its way; the old link no longer works."
	case "add_alias":
		err = s.opts.Accounts.AddAlias(ctx, me.ID, id, c.FormValue("alias"))
		done = "A confirmation link went to " + c.FormValue("alias") + "; the alias works once it is followed."
	case "promote_alias":
		_, err = s.opts.Accounts.PromoteAlias(ctx, me.ID, id, c.FormValue("address"))
		done = c.FormValue("address") + " is now the main address."
	case "remove_alias":
		_, err = s.opts.Accounts.RemoveAlias(ctx, me.ID, id, c.FormValue("address"))
		done = c.FormValue("address") + " was removed."
	default:
		return echo.NewHTTPError(http.StatusBadRequest, "Unknown action.")
	}
	if err != nil {
		p, perr := s.userData(c)
		if perr != nil {
			return perr
		}
		return c.Render(p.fail(err), "admin/user", p)
	}
	return c.Redirect(http.StatusSeeOther, "/admin/users/"+id+"?done="+urlEscape(done))
}

type invitePage struct {
	page
	Form
	Groups []account.Group
	Level  int
}

func (s *Server) inviteData(c echo.Context) (invitePage, error) {
	p := invitePage{page: s.pageFor(c, "admin"), Form: newForm(c, "email", "name", "role", "group")}
	var err error
	if p.Groups, err = s.opts.Accounts.Groups(); err != nil {
		return p, err
	}
	if p.Values["role"] == "" {
		p.Values["role"] = string(account.RoleProfessional)
	}
	if set, err := s.opts.ReadSettings(); err == nil {
		p.Level = set.Registration.Level
	}
	return p, nil
}

func (s *Server) inviteForm(c echo.Context) error {
	p, err := s.inviteData(c)
	if err != nil {
		return err
	}
	return c.Render(http.StatusOK, "admin/invite", p)
}

func (s *Server) invite(c echo.Context) error {
	_, me, _ := current(c)
	p, err := s.inviteData(c)
	if err != nil {
		return err
	}
	res, err := s.opts.Accounts.Invite(c.Request().Context(), me.ID, account.Invite{Email: c.FormValue("email"), Name: c.FormValue("name"),
		Role: account.Role(c.FormValue("role")), Group: c.FormValue("group"), Passcode: c.FormValue("passcode")})
	if err != nil {
		return c.Render(p.fail(err), "admin/invite", p)
	}
	return c.Redirect(http.StatusSeeOther, "/admin/users/"+res.User.ID+"?done="+urlEscape("Invitation sent to "+res.User.Email+"."))
}

type groupsPage struct {
	page
	Groups []account.Group
}

func (s *Server) groups(c echo.Context) error {
	gs, err := s.opts.Accounts.Groups()
	if err != nil {
		return err
	}
	return c.Render(http.StatusOK, "admin/groups", groupsPage{page: s.pageFor(c, "admin"), Groups: gs})
}

type groupPage struct {
	page
	Form
	Group account.Group
	New   bool
}

func (s *Server) group(c echo.Context) error {
	p := groupPage{page: s.pageFor(c, "admin"), Form: newForm(c), New: c.Param("id") == "new"}
	if p.New {
		p.Group = account.Group{QuotaPeriodDays: 30, AttachmentLimitMB: 100, InviteQuota: 10}
	} else {
		g, err := s.opts.Accounts.Group(c.Param("id"))
		if err != nil {
			return err
		}
		p.Group = g
	}
	return c.Render(http.StatusOK, "admin/group", p)
}

func (s *Server) saveGroup(c echo.Context) error {
	_, me, _ := current(c)
	num := func(k string) int { n, _ := strconv.Atoi(strings.TrimSpace(c.FormValue(k))); return n }
	on := func(k string) bool { return c.FormValue(k) == "on" }
	g := account.Group{Name: c.FormValue("name"), Description: c.FormValue("description"),
		InviteQuota: num("invite_quota"), QuotaPeriodDays: num("quota_period_days"), AttachmentLimitMB: num("attachment_limit_mb"),
		RequireTOTP: on("require_totp"), Features: account.Features{ComposeToAnyone: on("compose_to_anyone"), InviteGuests: on("invite_guests"),
			Aliases: on("aliases"), LargeAttachments: on("large_attachments"), Recall: on("recall")}}
	isNew := c.Param("id") == "new"
	if !isNew {
		g.ID = c.Param("id")
	}
	saved, err := s.opts.Accounts.SaveGroup(c.Request().Context(), account.ActorOf(me.ID), g)
	if err != nil {
		p := groupPage{page: s.pageFor(c, "admin"), Form: newForm(c), Group: g, New: isNew}
		return c.Render(p.fail(err), "admin/group", p)
	}
	return c.Redirect(http.StatusSeeOther, "/admin/groups?done="+urlEscape("Group "+saved.Name+" saved."))
}

type registrationPage struct {
	page
	Form
	Settings settings.Registration
	Filters  []account.Filter
	Groups   []account.Group
}

func (s *Server) registrationData(c echo.Context) (registrationPage, error) {
	p := registrationPage{page: s.pageFor(c, "admin"), Form: newForm(c, "pattern", "allow", "group", "cra")}
	set, err := s.opts.ReadSettings()
	if err != nil {
		return p, err
	}
	p.Settings = set.Registration
	if p.Filters, err = s.opts.Accounts.Filters(); err != nil {
		return p, err
	}
	p.Groups, err = s.opts.Accounts.Groups()
	return p, err
}

func (s *Server) registration(c echo.Context) error {
	p, err := s.registrationData(c)
	if err != nil {
		return err
	}
	return c.Render(http.StatusOK, "admin/registration", p)
}

func (s *Server) registrationAction(c echo.Context) error {
	_, me, _ := current(c)
	ctx := c.Request().Context()
	var err error
	done := "Saved."
	switch c.FormValue("action") {
	case "settings":
		invOnly := strconv.FormatBool(c.FormValue("invitation_only") == "on")
		err = s.opts.SaveSettings(ctx, account.ActorOf(me.ID),
			settings.Change{Key: "registration.access", Value: c.FormValue("access")},
			settings.Change{Key: "registration.invitation_only", Value: invOnly},
			settings.Change{Key: "registration.level", Value: c.FormValue("level")},
			settings.Change{Key: "registration.cra_excluded_domains", Value: c.FormValue("cra_excluded_domains")})
	case "save_filter":
		err = s.opts.Accounts.SaveFilter(ctx, me.ID, account.Filter{Pattern: c.FormValue("pattern"), Allow: c.FormValue("allow") != "deny",
			Group: c.FormValue("group"), CRA: c.FormValue("cra"), Archive: c.FormValue("archive") == "on", ShareSent: c.FormValue("share_sent") == "on"})
		done = "Filter for " + c.FormValue("pattern") + " saved."
	case "delete_filter":
		err = s.opts.Accounts.DeleteFilter(ctx, me.ID, c.FormValue("pattern"))
		done = "Filter removed."
	default:
		return echo.NewHTTPError(http.StatusBadRequest, "Unknown action.")
	}
	if err != nil {
		p, perr := s.registrationData(c)
		if perr != nil {
			return perr
		}
		status := p.fail(err)
		if p.Error != "" && c.FormValue("action") == "settings" {
			p.Errors["settings"], p.Error = p.Error, ""
		}
		return c.Render(status, "admin/registration", p)
	}
	return c.Redirect(http.StatusSeeOther, "/admin/registration?done="+urlEscape(done))
}
