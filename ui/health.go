package ui

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// healthz answers while the process is alive.
func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// readyz answers 200 once the store is open and the listeners are up, and
// 503 with the reason otherwise.
func (s *Server) readyz(c echo.Context) error {
	if s.opts.Ready != nil {
		if err := s.opts.Ready(); err != nil {
			return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "reason": err.Error()})
		}
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
}
