package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sealpost/sealpost/appliance/keyring"
)

// BenchmarkDurableWrites measures durable 2 KiB writes (one Update with one
// Put each) with 1, 16 and 64 concurrent writers. Group commit shows as the
// rate growing with the number of writers.
func BenchmarkDurableWrites(b *testing.B) {
	for _, writers := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			s := newEnv(b).open(b)
			value := make([]byte, 2048)
			var next atomic.Int64
			ctx := context.Background()
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for range writers {
				wg.Go(func() {
					for {
						i := next.Add(1)
						if i > int64(b.N) {
							return
						}
						err := s.Update(ctx, func(tx *Tx) error { return tx.Put(fmt.Appendf(nil, "bench/%012d", i), value) })
						if err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "writes/s")
		})
	}
}

// BenchmarkPointReads measures random Gets on a store of 100,000 records.
func BenchmarkPointReads(b *testing.B) {
	s := openDir(b, populated(b))
	defer s.Close()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			key := fmt.Appendf(nil, "rec/%08d", rand.IntN(populatedRecords))
			if err := s.View(func(tx *Tx) error { _, err := tx.Get(key); return err }); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "reads/s")
}

// BenchmarkStartup measures opening a store of 100,000 records up to the
// first read (the keyring is open already).
func BenchmarkStartup(b *testing.B) {
	dir := populated(b)
	keys := openKeys(b, dir)
	for b.Loop() {
		s, err := Open(filepath.Join(dir, "data"), keys, Options{Logger: zerolog.Nop()})
		if err != nil {
			b.Fatal(err)
		}
		if err := s.View(func(tx *Tx) error { _, err := tx.Get([]byte("rec/00000001")); return err }); err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
}

func openKeys(b *testing.B, dir string) *keyring.Keyring {
	keys, err := keyring.Open(filepath.Join(dir, "sealpost.key"), filepath.Join(dir, "data"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(keys.Close)
	return keys
}

// openDir opens the keyring and store kept in dir (made on first use).
func openDir(b *testing.B, dir string) *Store {
	s, err := Open(filepath.Join(dir, "data"), openKeys(b, dir), Options{Logger: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	return s
}

const populatedRecords = 100_000

var (
	populateOnce sync.Once
	populateDir  string
)

// populated returns a directory holding a store of 100,000 2 KiB records,
// made once per benchmark run.
func populated(b *testing.B) string {
	populateOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sealpost-bench-")
		if err != nil {
			b.Fatal(err)
		}
		s := openDir(b, dir)
		value := make([]byte, 2048)
		for i := 0; i < populatedRecords; i += 1000 {
			err := s.Update(context.Background(), func(tx *Tx) error {
				for j := i; j < i+1000; j++ {
					if err := tx.Put(fmt.Appendf(nil, "rec/%08d", j), value); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		s.Close()
		populateDir = dir
	})
	if populateDir == "" {
		b.Fatal("populating the benchmark store failed")
	}
	return populateDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if populateDir != "" {
		os.RemoveAll(populateDir)
	}
	os.Exit(code)
}
