package ui

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sealpost/sealpost/internal/measure"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/sealpost/sealpost/appliance/account"
	"github.com/sealpost/sealpost/appliance/audit"
	"github.com/sealpost/sealpost/appliance/settings"
	"github.com/sealpost/sealpost/appliance/store"
	"github.com/sealpost/sealpost/appliance/store/storetest"
)

// The directory of the user-list benchmark: listUsers invited users, one
// in listCohorts of them in each cohort (a word in the name, so searching
// for one cohort matches 1 %), one in listGuestEvery a guest.
const (
	listUsers      = 100_000
	listCohorts    = 100
	listGuestEvery = 4
)

// dropNotices is a notifier that sends nothing: the benchmark invites
// 100,000 people and reads none of the mail.
type dropNotices struct{}

func (dropNotices) Notify(*store.Tx, account.Notice) error { return nil }

var _ account.Notifier = dropNotices{}

// cohort is the word in the names of the users of cohort k: "cohortaa" to
// "cohortdv", none a part of another or of anything else in the directory.
func cohort(k int) string { return fmt.Sprintf("cohort%c%c", 'a'+k/26, 'a'+k%26) }

// BenchmarkUserList100k measures GET /admin/users through the whole
// handler (session check, CSRF, query of the in-memory directory, counts,
// template) on a store of 100,000 users, for page 1, a middle page, the
// last page, a search matching 1 % of users, a search matching none and a
// role filter. Each kind reports the p50 and p95 server time of a request;
// the target is a p95 under 100 ms for any of them. The store is filled
// with Invite, the way administrators add people, once per run and outside
// the timer; nothing is kept between runs.
func BenchmarkUserList100k(b *testing.B) {
	ctx := context.Background()
	st, keys := storetest.Open(b, b.TempDir())
	trail := audit.New(keys, time.Now)
	svc, err := account.New(ctx, account.Options{Store: st, Audit: trail, Notifier: dropNotices{}, Logger: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	if err := settings.Set(ctx, st, trail, "bench", settings.Change{Key: "security.admin_requires_totp", Value: "false"}); err != nil {
		b.Fatal(err)
	}
	const adminPassword = "correct horse battery staple"
	var admin account.User
	err = st.Update(ctx, func(tx *store.Tx) error {
		var err error
		admin, err = svc.CreateAdmin(ctx, tx, "admin@clinic.test", "Ada Admin", adminPassword)
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	svc.Committed(admin)

	// One Invite after another: concurrent ones conflict on the audit
	// trail's head, and with 32 at once some fail after Update's retries.
	start := time.Now()
	for i := range listUsers {
		role := account.RoleProfessional
		if i%listGuestEvery == 0 {
			role = account.RoleGuest
		}
		_, err := svc.Invite(ctx, admin.ID, account.Invite{Email: fmt.Sprintf("user%06d@example.test", i),
			Name: fmt.Sprintf("Person %d %s", i, cohort(i%listCohorts)), Role: role})
		if err != nil {
			b.Fatalf("invite %d: %v", i, err)
		}
	}
	took := time.Since(start)
	filled := fmt.Sprintf("filled the store with %d Invite calls in %v: %.0f invites/s", listUsers, took.Round(time.Second), listUsers/took.Seconds())

	s, err := New(Options{
		Logger:       zerolog.Nop(),
		Version:      "bench",
		Setup:        &tokenGate{},
		SetupFacts:   func() SetupFacts { return SetupFacts{Hostname: "mail.example.org"} },
		Ready:        func() error { return nil },
		HSTS:         func() bool { return true },
		Registry:     prometheus.NewRegistry(),
		Accounts:     svc,
		ReadSettings: func() (settings.Settings, error) { return settings.Read(st) },
		SaveSettings: func(ctx context.Context, actor string, changes ...settings.Change) error {
			return settings.Set(ctx, st, trail, actor, changes...)
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	// httptest requests come from 192.0.2.1.
	signIn, err := svc.SignIn(ctx, "admin@clinic.test", adminPassword, "192.0.2.1", "bench")
	if err != nil || signIn.Session.Stage != account.StageFull {
		b.Fatalf("sign in the administrator: stage %q, %v", signIn.Session.Stage, err)
	}
	cookie := &http.Cookie{Name: sessionCookie, Value: signIn.Token}

	total := listUsers + 1 // and the administrator
	kinds := []struct {
		name, url string
		matches   int // the total the page must show
	}{
		{"first", "/admin/users", total},
		{"middle", "/admin/users?offset=" + strconv.Itoa(listUsers/2), total},
		{"last", "/admin/users?offset=" + strconv.Itoa((total-1)/usersPerPage*usersPerPage), total},
		{"search-1pct", "/admin/users?q=" + cohort(42), listUsers / listCohorts},
		{"search-none", "/admin/users?q=nobody-is-called-this", 0},
		{"role", "/admin/users?role=guest", (listUsers + listGuestEvery - 1) / listGuestEvery},
	}
	get := func(b *testing.B, url string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, url, nil)
		req.AddCookie(cookie)
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("GET %s: status %d", url, rec.Code)
		}
		return rec
	}
	for _, k := range kinds {
		b.Run(k.name, func(b *testing.B) {
			// The page shows what was asked for: the right total, or none.
			body := get(b, k.url).Body.String()
			want := " of " + strconv.Itoa(k.matches) + "</span>"
			if k.matches == 0 {
				want = "No users match"
			}
			if !strings.Contains(body, want) {
				b.Fatalf("GET %s: the page lacks %q", k.url, want)
			}
			times := make([]time.Duration, 0, b.N)
			size := 0
			cpu0, cpuOK := measure.ProcessCPU()
			steal0, total0, _ := measure.MachineCPU()
			b.ResetTimer()
			for range b.N {
				t0 := time.Now()
				rec := get(b, k.url)
				times = append(times, time.Since(t0))
				size = rec.Body.Len()
			}
			b.StopTimer()
			cpu1, _ := measure.ProcessCPU()
			b.ReportMetric(measure.PercentileMS(times, 0.50), "p50-ms")
			b.ReportMetric(measure.PercentileMS(times, 0.95), "p95-ms")
			b.ReportMetric(float64(size)/1024, "page-KiB")
			if cpuOK {
				// What a request costs in CPU, garbage collection included;
				// a p50 well above it is time spent waiting for a CPU.
				b.ReportMetric((cpu1-cpu0).Seconds()*1000/float64(b.N), "cpu-ms/op")
			}
			if filled != "" { // shown once, with the first kind
				b.Log(filled)
				filled = ""
			}
			if b.N > 1 {
				b.Logf("N=%d; %s", b.N, measure.MachineLoad(steal0, total0))
			}
		})
	}
}
