package smtpd

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/emersion/go-smtp"
	"github.com/rs/zerolog"
)

// BenchmarkIntake16: 16 connections at once send 10 KiB messages with one
// recipient to the relay port; Accept does nothing (no store, no fsync), so
// this is the SMTP and MIME cost alone. Reports msgs/s.
func BenchmarkIntake16(b *testing.B) {
	const conns = 16
	var accepted atomic.Int64
	srv := New(Options{
		Hostname: hostName, Logger: zerolog.Nop(),
		RelayAllowed: func(ip netip.Addr) bool { return ip.IsLoopback() },
		CheckSender:  func(context.Context, *Envelope) error { return nil },
		Accept: func(context.Context, *Envelope, *Message) error {
			accepted.Add(1)
			return nil
		},
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(l, PortRelay)
	defer srv.Close()

	line := strings.Repeat("The quick brown fox jumps over the lazy dog. ", 2)[:76] + "\r\n"
	body := "From: alice@example.org\r\nTo: bob@example.org\r\nSubject: bench\r\n\r\n" +
		strings.Repeat(line, 10240/len(line))
	clients := make([]*smtp.Client, conns)
	for i := range clients {
		c, err := smtp.Dial(l.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		clients[i] = c
	}

	var next atomic.Int64
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				if err := c.SendMail(aliceAddr, []string{"bob@example.org"}, strings.NewReader(body)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	if got := accepted.Load(); got != int64(b.N) {
		b.Fatalf("accepted %d of %d", got, b.N)
	}
}
