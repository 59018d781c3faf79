// Package measure reads what benchmarks report about the process and the
// machine: resident memory, CPU time, load and the hypervisor's share, and
// percentiles of latencies. Linux only (/proc); elsewhere the readings say
// they are missing.
package measure

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// PercentileMS is the nearest-rank percentile p (0 < p ≤ 1) of ds in
// milliseconds; NaN when ds is empty.
func PercentileMS(ds []time.Duration, p float64) float64 {
	if len(ds) == 0 {
		return math.NaN()
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := max(int(math.Ceil(p*float64(len(s))))-1, 0)
	return float64(s[i]) / float64(time.Millisecond)
}

// MemSampler keeps the highest VmRSS and RssAnon of the process above
// their values when it started.
type MemSampler struct {
	ok         bool // /proc/self/status is readable
	baseRSS    int64
	baseAnon   int64
	peakRSS    atomic.Int64
	peakAnon   atomic.Int64
	done, quit chan struct{}
}

func StartMemSampler(b testing.TB, every time.Duration) *MemSampler {
	m := &MemSampler{done: make(chan struct{}), quit: make(chan struct{})}
	rss, anon, err := ReadMem()
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
func (m *MemSampler) sample() {
	rss, anon, err := ReadMem()
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

// OK reports whether memory can be read here.
func (m *MemSampler) OK() bool { return m.ok }

// Stop ends the sampling and returns the peaks above the start in MiB.
func (m *MemSampler) Stop() (rss, anon float64) {
	if !m.ok {
		return 0, 0
	}
	close(m.quit)
	<-m.done
	return float64(m.peakRSS.Load()-m.baseRSS) / (1 << 20), float64(m.peakAnon.Load()-m.baseAnon) / (1 << 20)
}

// ReadMem returns VmRSS and RssAnon from /proc/self/status in bytes.
func ReadMem() (rss, anon int64, err error) {
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

// ProcessCPU is the CPU time the process has used, from /proc/self/stat
// (utime and stime, in the kernel's fixed 100 ticks a second); ok is false
// where there is no /proc.
func ProcessCPU() (cpu time.Duration, ok bool) {
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

// MachineCPU is the machine's CPU time in ticks from /proc/stat: all of it,
// and what the hypervisor gave to other guests (steal); ok is false where
// there is no /proc.
func MachineCPU() (steal, total int64, ok bool) {
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

// MachineLoad says how busy the machine was since steal0 and total0 (from
// MachineCPU): the load average, and the share of CPU time the hypervisor
// took for other guests.
func MachineLoad(steal0, total0 int64) string {
	load := "load average unknown"
	if data, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(data))
		load = "load average " + strings.Join(f[:min(3, len(f))], " ")
	}
	steal, total, ok := MachineCPU()
	if !ok || total <= total0 {
		return load
	}
	return fmt.Sprintf("%s, %.0f %% of CPU time stolen by the hypervisor", load, 100*float64(steal-steal0)/float64(total-total0))
}
