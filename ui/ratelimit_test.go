package ui

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// TestSendingIsPaced: a signed-in user who saves drafts faster than a
// person types gets 429 with a clear message, and another user is not held
// up by it.
func TestSendingIsPaced(t *testing.T) {
	e := newAuthzEnv(t)
	post := func(as string) *httptest.ResponseRecorder {
		form := url.Values{"subject": {"Pacing"}, "body": {"<p>x</p>"}, "format": {"html"}}
		req := httptest.NewRequest(http.MethodPost, authzBase+"/mail/autosave", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		req.RemoteAddr = authzIP + ":40000"
		req.AddCookie(&http.Cookie{Name: sessionCookie, Value: e.tokens[as]})
		rec := httptest.NewRecorder()
		e.srv.Handler().ServeHTTP(rec, req)
		return rec
	}
	limited := 0
	for i := range 40 {
		rec := post(asGuest)
		switch rec.Code {
		case http.StatusOK:
			if limited > 0 {
				t.Fatalf("save %d went through after the limit", i+1)
			}
		case http.StatusTooManyRequests:
			limited++
			if !strings.Contains(rec.Body.String(), "You are sending very fast") {
				t.Fatalf("the 429 says %.200q", rec.Body.String())
			}
		default:
			t.Fatalf("save %d: %d %.200q", i+1, rec.Code, rec.Body.String())
		}
	}
	if limited == 0 || limited > 20 {
		t.Errorf("%d of 40 quick saves were refused; want the ones after the burst of 20", limited)
	}
	if rec := post(asProfessional); rec.Code != http.StatusOK {
		t.Errorf("another user's save while the guest is held back: %d", rec.Code)
	}
}
