package ui

import (
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/sealpost/sealpost/appliance/audit"
)

const eventsPerPage = 50

// eventRow is one audit event as the viewer shows it.
type eventRow struct {
	audit.Event
	Who     string
	Details string
}

type auditPage struct {
	page
	Events   []eventRow
	Total    uint64
	From, To uint64
	Prev     string
	Next     string
	Verified string // the outcome of a chain check
	Broken   string
}

// auditTrail is the read-only audit trail, newest first, for auditors and
// administrators. It never holds message content: events carry none.
func (s *Server) auditTrail(c echo.Context) error {
	skip, _ := strconv.ParseUint(c.QueryParam("skip"), 10, 64)
	events, total, err := s.opts.AuditPage(skip, eventsPerPage)
	if err != nil {
		return err
	}
	p := auditPage{page: s.pageFor(c, "audit"), Total: total, From: skip + 1, To: skip + uint64(len(events))}
	names := map[string]string{}
	for _, e := range events {
		p.Events = append(p.Events, eventRow{Event: e, Who: s.actorName(e.Actor, names), Details: details(e.Detail)})
	}
	if skip > 0 {
		p.Prev = "/audit?skip=" + strconv.FormatUint(skip-min(skip, eventsPerPage), 10)
	}
	if skip+eventsPerPage < total {
		p.Next = "/audit?skip=" + strconv.FormatUint(skip+eventsPerPage, 10)
	}
	if c.Request().Method == http.MethodPost {
		if n, err := s.opts.VerifyAudit(); err != nil {
			p.Broken = err.Error()
		} else {
			p.Verified = "The chain of " + strconv.FormatUint(n, 10) + " events is intact: none was changed, removed or reordered."
		}
	}
	return c.Render(http.StatusOK, "audit/trail", p)
}

// actorName shows "user:ID" as the user's address.
func (s *Server) actorName(actor string, cache map[string]string) string {
	id, ok := strings.CutPrefix(actor, "user:")
	if !ok {
		return actor
	}
	if n, ok := cache[id]; ok {
		return n
	}
	name := actor
	if u, err := s.opts.Accounts.User(id); err == nil {
		name = u.Email
	}
	cache[id] = name
	return name
}

func details(d map[string]string) string {
	keys := make([]string, 0, len(d))
	for k := range d {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + d[k]
	}
	return strings.Join(parts, " ")
}
