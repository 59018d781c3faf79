package account

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sealpost/sealpost/internal/measure"

	"github.com/rs/zerolog"

	"github.com/sealpost/sealpost/appliance/audit"
	"github.com/sealpost/sealpost/appliance/store"
	"github.com/sealpost/sealpost/appliance/store/storetest"
)

// BenchmarkSignIn50Concurrent measures password sign-in under load: 50
// professional users sign in at once, each from their own client address,
// for b.N sign-ins in all. Every sign-in is a whole one: the password
// checked with argon2id, the session stored, the event audited. It reports
// the rate, the p50 and p99 latency of one SignIn call, and how far resident
// memory rose above where it started (sampled every 20 ms). The keyring runs
// at most runtime.NumCPU() hashes at once, so the rise is bounded by NumCPU
// hashes of 19 MiB and the garbage collector's slack over the live heap, not
// by how many people sign in together.
func BenchmarkSignIn50Concurrent(b *testing.B) {
	const (
		users    = 50
		password = "a long and private passphrase"
	)
	ctx := context.Background()
	st, keys := storetest.Open(b, b.TempDir())
	svc, err := New(ctx, Options{Store: st, Audit: audit.New(keys, time.Now), Logger: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	emails := make([]string, users)
	var created []User
	err = st.Update(ctx, func(tx *store.Tx) error {
		created = created[:0]
		for i := range users {
			u, err := svc.createUser(ctx, tx, NewUser{Email: fmt.Sprintf("pro%02d@clinic.test", i), Name: fmt.Sprintf("Pro %d", i),
				Roles: []Role{RoleProfessional}, Password: password}, StatusEnabled)
			if err != nil {
				return err
			}
			emails[i] = u.Email
			created = append(created, u)
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	svc.Committed(created...)

	// Start from a trimmed heap, so that the hashes of the setup do not
	// hide the growth of the run.
	runtime.GC()
	debug.FreeOSMemory()
	mem := measure.StartMemSampler(b, 20*time.Millisecond)
	cpu0, cpuOK := measure.ProcessCPU()
	steal0, total0, _ := measure.MachineCPU()

	latencies := make([][]time.Duration, users)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for g := range users {
		wg.Go(func() {
			ip := fmt.Sprintf("10.1.%d.%d", g/250, g%250+1)
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				res, err := svc.SignIn(ctx, emails[g], password, ip, "bench")
				d := time.Since(t0)
				if err != nil {
					b.Errorf("sign in %s: %v", emails[g], err)
					return
				}
				if res.Session.Stage != StageFull {
					b.Errorf("sign in %s: stage %s, want %s", emails[g], res.Session.Stage, StageFull)
					return
				}
				latencies[g] = append(latencies[g], d)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	peakRSS, peakAnon := mem.Stop()
	cpu1, _ := measure.ProcessCPU()

	all := slices.Concat(latencies...)
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "sign-ins/s")
	b.ReportMetric(measure.PercentileMS(all, 0.50), "p50-ms")
	b.ReportMetric(measure.PercentileMS(all, 0.99), "p99-ms")
	if mem.OK() {
		b.ReportMetric(peakRSS, "peak-extra-RSS-MiB")
		b.ReportMetric(peakAnon, "peak-extra-anon-MiB")
	}
	if cpuOK {
		// Sign-in is bound by hashing, which can keep every CPU busy: a
		// share well below 1 means other work on the machine had them.
		b.ReportMetric((cpu1-cpu0).Seconds()/elapsed.Seconds()/float64(runtime.NumCPU()), "cpu-share")
	}
	if b.N > 1 {
		b.Logf("N=%d; %s", b.N, measure.MachineLoad(steal0, total0))
	}
}
