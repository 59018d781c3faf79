package account

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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
	mem := startMemSampler(b, 20*time.Millisecond)
	cpu0, cpuOK := processCPU()
	steal0, total0, _ := machineCPU()

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
	peakRSS, peakAnon := mem.stop()
	cpu1, _ := processCPU()

	all := slices.Concat(latencies...)
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "sign-ins/s")
	b.ReportMetric(percentileMS(all, 0.50), "p50-ms")
	b.ReportMetric(percentileMS(all, 0.99), "p99-ms")
	if mem.ok {
		b.ReportMetric(peakRSS, "peak-extra-RSS-MiB")
		b.ReportMetric(peakAnon, "peak-extra-anon-MiB")
	}
	if cpuOK {
		// Sign-in is bound by hashing, which can keep every CPU busy: a
		// share well below 1 means other work on the machine had them.
		b.ReportMetric((cpu1-cpu0).Seconds()/elapsed.Seconds()/float64(runtime.NumCPU()), "cpu-share")
	}
	if b.N > 1 {
		b.Logf("N=%d; %s", b.N, machineLoad(steal0, total0))
	}
}

// percentileMS is the nearest-rank percentile p (0 < p ≤ 1) of ds in
// milliseconds; NaN when ds is empty.
func percentileMS(ds []time.Duration, p float64) float64 {
	if len(ds) == 0 {
		return math.NaN()
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := max(int(math.Ceil(p*float64(len(s))))-1, 0)
	return float64(s[i]) / float64(time.Millisecond)
}

// memSampler keeps the highest VmRSS and RssAnon of the process above
// their values when it started.
type memSampler struct {
	ok         bool // /proc/self/status is readable
	baseRSS    int64
	baseAnon   int64
	peakRSS    atomic.Int64
	peakAnon   atomic.Int64
	done, quit chan struct{}
}

func startMemSampler(b *testing.B, every time.Duration) *memSampler {
	m := &memSampler{done: make(chan struct{}), quit: make(chan struct{})}
	rss, anon, err := readMem()
	if err != nil {
		b.Logf("no memory figures: %v", err)
		close(m.done)
		return m
	}
	m.ok, m.baseRSS, m.baseAnon = true, rss, anon
	m.peakRSS.Store(rss)
	m.peakAnon.Store(anon)
	go func() {
		defer close(m.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			m.sample()
			select {
			case <-m.quit:
				m.sample()
				return
			case <-t.C:
			}
		}
	}()
	return m
}

func (m *memSampler) sample() {
	rss, anon, err := readMem()
	if err != nil {
		return
	}
	if rss > m.peakRSS.Load() {
		m.peakRSS.Store(rss)
	}
	if anon > m.peakAnon.Load() {
		m.peakAnon.Store(anon)
	}
}

// stop ends the sampling and returns the peaks above the start in MiB.
func (m *memSampler) stop() (rss, anon float64) {
	if !m.ok {
		return 0, 0
	}
	close(m.quit)
	<-m.done
	return float64(m.peakRSS.Load()-m.baseRSS) / (1 << 20), float64(m.peakAnon.Load()-m.baseAnon) / (1 << 20)
}

// readMem returns VmRSS and RssAnon from /proc/self/status in bytes.
func readMem() (rss, anon int64, err error) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, 0, err
	}
	found := 0
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		name, value, ok := bytes.Cut(sc.Bytes(), []byte(":"))
		if !ok {
			continue
		}
		var dst *int64
		switch string(name) {
		case "VmRSS":
			dst = &rss
		case "RssAnon":
			dst = &anon
		default:
			continue
		}
		kb, err := strconv.ParseInt(string(bytes.TrimSuffix(bytes.TrimSpace(value), []byte(" kB"))), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("parse %s in /proc/self/status: %w", name, err)
		}
		*dst = kb << 10
		found++
	}
	if found != 2 {
		return 0, 0, fmt.Errorf("read /proc/self/status: VmRSS or RssAnon missing")
	}
	return rss, anon, nil
}

// processCPU is the CPU time the process has used, from /proc/self/stat
// (utime and stime, in the kernel's fixed 100 ticks a second); ok is false
// where there is no /proc.
func processCPU() (cpu time.Duration, ok bool) {
	data, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0, false
	}
	_, rest, found := strings.Cut(string(data), ") ") // the command name may hold spaces
	f := strings.Fields(rest)
	if !found || len(f) < 13 {
		return 0, false
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, true
}

// machineCPU is the machine's CPU time in ticks from /proc/stat: all of it,
// and what the hypervisor gave to other guests (steal); ok is false where
// there is no /proc.
func machineCPU() (steal, total int64, ok bool) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, false
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0, false
	}
	for i, v := range f[1:] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, 0, false
		}
		if i < 8 { // user … steal; guest time is counted in user already
			total += n
		}
		if i == 7 {
			steal = n
		}
	}
	return steal, total, true
}

// machineLoad says how busy the machine was since steal0 and total0 (from
// machineCPU): the load average, and the share of CPU time the hypervisor
// took for other guests.
func machineLoad(steal0, total0 int64) string {
	load := "load average unknown"
	if data, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(data))
		load = "load average " + strings.Join(f[:min(3, len(f))], " ")
	}
	steal, total, ok := machineCPU()
	if !ok || total <= total0 {
		return load
	}
	return fmt.Sprintf("%s, %.0f %% of CPU time stolen by the hypervisor", load, 100*float64(steal-steal0)/float64(total-total0))
}
