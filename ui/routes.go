package ui

import (
	"net/http"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
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
	setupLimit := middleware.RateLimiterWithConfig(middleware.RateLimiterConfig{
		Store: middleware.NewRateLimiterMemoryStoreWithConfig(middleware.RateLimiterMemoryStoreConfig{
			Rate: rate.Limit(1), Burst: 20,
		}),
		IdentifierExtractor: func(c echo.Context) (string, error) { return c.RealIP(), nil },
		DenyHandler: func(c echo.Context, _ string, _ error) error {
			return echo.NewHTTPError(http.StatusTooManyRequests, "Too many attempts. Wait a minute and try again.")
		},
	})
	e.GET("/setup", s.setupPage, setupLimit)
}
