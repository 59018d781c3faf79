package ui

import (
	"errors"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/sealpost/sealpost/appliance/fault"
)

// errorPage is what the error template shows.
type errorPage struct {
	page
	Title     string
	Message   string
	Reference string
}

// statusOf maps a fault kind to an HTTP status.
var statusOf = map[fault.Kind]int{
	fault.Internal:    http.StatusInternalServerError,
	fault.Invalid:     http.StatusBadRequest,
	fault.Permission:  http.StatusForbidden,
	fault.NotFound:    http.StatusNotFound,
	fault.Conflict:    http.StatusConflict,
	fault.TooLarge:    http.StatusRequestEntityTooLarge,
	fault.Unavailable: http.StatusServiceUnavailable,
}

// handleError is the one place that turns an error into a response: a safe
// message and a reference id for the user, the cause for the log.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	status, message := http.StatusInternalServerError, fault.Message(err)
	var he *echo.HTTPError
	switch {
	case errors.As(err, &he):
		status = he.Code
		message = http.StatusText(status)
		if m, ok := he.Message.(string); ok && status < 500 {
			message = m
		}
	default:
		status = statusOf[fault.KindOf(err)]
	}
	ref := requestID(c)
	if status >= 500 {
		s.log.Error().Err(err).Str("request_id", ref).Int("status", status).Msg("request failed")
	}

	title := http.StatusText(status)
	switch {
	case status == http.StatusNotFound && fault.KindOf(err) != fault.NotFound:
		// A route or object the caller may not know about; a domain's own
		// not-found (a used link) says why.
		message = "There is nothing at this address."
	case status == http.StatusInternalServerError:
		message = "Something went wrong on the appliance. The problem has been logged."
	}
	if strings.Contains(c.Request().Header.Get(echo.HeaderAccept), echo.MIMEApplicationJSON) {
		err = c.JSON(status, map[string]string{"error": message, "reference": ref})
	} else {
		err = c.Render(status, "error", errorPage{page: s.page(), Title: title, Message: message, Reference: ref})
	}
	if err != nil {
		s.log.Error().Err(err).Str("request_id", ref).Msg("write error response")
	}
}
