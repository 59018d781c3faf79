package mailer

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sealpost/sealpost/internal/measure"

	"github.com/sealpost/sealpost/mailer/smtptest"
)

// BenchmarkQueueThroughput measures notifications per second from the queue
// to a relay on loopback (STARTTLS), with a new connection per
// notification and with the connection cache the appliance uses.
func BenchmarkQueueThroughput(b *testing.B) {
	for _, cached := range []bool{false, true} {
		name := "connection per notification"
		if cached {
			name = "cached connections"
		}
		b.Run(name, func(b *testing.B) {
			relay := smtptest.Start(b, smtptest.Options{})
			r := relayFor(relay, "starttls")
			if cached {
				r.Conns = NewConnCache()
				defer r.Conns.Close()
			}
			q := newTestQueue(openStore(b, b.TempDir()), r)
			enqueue(b, q, b.N, "outside.test")
			b.ResetTimer()
			start := time.Now()
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			wg.Go(func() { q.Run(ctx) })
			if got := relay.Wait(b.N, 10*time.Minute); len(got) < b.N {
				b.Fatalf("delivered %d of %d", len(got), b.N)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "notifications/s")
			b.ReportMetric(float64(relay.Sessions()), "connections")
			cancel()
			wg.Wait()
		})
	}
}

// BenchmarkBacklogDrain queues 100,000 notifications, reopens the store as
// after a restart, and drains them, reporting the resident memory the drain
// added. Run it with -benchtime=1x.
func BenchmarkBacklogDrain(b *testing.B) {
	backlog := backlogSize()
	for b.Loop() {
		relay := smtptest.Start(b, smtptest.Options{CountOnly: true})
		dir := b.TempDir()
		func() {
			st := openStore(b, dir)
			q := newTestQueue(st, relayFor(relay, "starttls"))
			var wg sync.WaitGroup
			per := backlog / 50
			for w := range 50 {
				wg.Go(func() {
					for i := w * per; i < (w+1)*per; i++ {
						id := fmt.Sprintf("n%06d", i)
						env := Envelope{ID: id, FromAddress: "no-reply@clinic.test", To: fmt.Sprintf("user%d@outside.test", i), Hostname: "h.test"}
						msg := []byte("Subject: notification " + id + "\r\n\r\n" + strings.Repeat("body line\r\n", 200))
						if err := q.Enqueue(context.Background(), KindNewMessage, env, msg); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			st.Close()
		}()
		b.Logf("queued %d notifications", backlog)

		// The baseline is an idle appliance: the store open, the queue not
		// yet running.
		r := relayFor(relay, "starttls")
		r.Conns = NewConnCache() // as the appliance delivers
		defer r.Conns.Close()
		q := newTestQueue(openStore(b, dir), r)
		runtime.GC()
		before, beforeAnon := rssMiB(), rssAnonMiB()
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Go(func() { q.Run(ctx) })
		peak, peakAnon := before, beforeAnon
		start := time.Now()
		last, progress := 0, time.Now()
		for relay.Count() < backlog {
			peak, peakAnon = max(peak, rssMiB()), max(peakAnon, rssAnonMiB())
			if n := relay.Count(); n != last {
				last, progress = n, time.Now()
			}
			if time.Since(progress) > time.Minute {
				var first []string
				items, _ := q.List(3)
				for _, it := range items {
					first = append(first, fmt.Sprintf("%s %s attempts %d: %s", it.ID, it.State, it.Attempts, it.LastError))
				}
				b.Fatalf("the drain stalled at %d of %d; first in the queue: %q", last, backlog, first)
			}
			time.Sleep(100 * time.Millisecond)
		}
		elapsed := time.Since(start)
		b.Logf("drained in %v", elapsed)
		cancel()
		wg.Wait()
		b.ReportMetric(float64(backlog)/elapsed.Seconds(), "notifications/s")
		b.ReportMetric(peak-before, "extra-RSS-MiB")
		b.ReportMetric(peakAnon-beforeAnon, "extra-anon-RSS-MiB")
	}
}

// rssMiB and rssAnonMiB are this process's resident memory, and the part
// of it that is not mapped files (the store's value log is read through
// mmap: those pages are the page cache, shared and reclaimable). The
// capture server in the same process keeps no messages, only a count.
func rssMiB() float64 {
	rss, _, _ := measure.ReadMem()
	return float64(rss) / (1 << 20)
}

func rssAnonMiB() float64 {
	_, anon, _ := measure.ReadMem()
	return float64(anon) / (1 << 20)
}

// backlogSize is 100,000 unless SEALPOST_BACKLOG says otherwise (for a
// quick run).
func backlogSize() int {
	if n, err := strconv.Atoi(os.Getenv("SEALPOST_BACKLOG")); err == nil && n > 0 {
		return n
	}
	return 100_000
}
