package store

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sealpost/sealpost/appliance/keyring"
)

// TestDurabilityUnderSIGKILL runs a writer process, records every write it
// acknowledges, kills it with SIGKILL at a random moment, reopens the store
// and checks that every acknowledged write is there with its value. The
// rounds share one data directory, so state accumulates across crashes.
func TestDurabilityUnderSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIP: -short; the SIGKILL durability test takes about 20 s")
	}
	dir := t.TempDir()
	keyFile, dataDir := filepath.Join(dir, "sealpost.key"), filepath.Join(dir, "data")
	acked := map[string]string{}
	word := canaryWord() // in every value the writer stores
	const rounds = 20
	for round := range rounds {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperWriter$")
		cmd.Env = append(os.Environ(), "SEALPOST_HELPER_WRITER=1", "HELPER_KEY="+keyFile, "HELPER_DATA="+dataDir, "HELPER_WORD="+word,
			fmt.Sprintf("HELPER_ROUND=%d", round))
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		roundAcks := 0
		started := make(chan struct{})
		readDone := make(chan struct{})
		go func() {
			defer close(readDone)
			sc := bufio.NewScanner(stdout)
			once := sync.Once{}
			for sc.Scan() {
				line := sc.Text()
				if line == "ready" {
					once.Do(func() { close(started) })
					continue
				}
				key, value, ok := strings.Cut(line, "=")
				if !ok {
					continue
				}
				mu.Lock()
				acked[key] = value
				roundAcks++
				mu.Unlock()
			}
			once.Do(func() { close(started) })
		}()
		select {
		case <-started:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			t.Fatal("writer did not start")
		}
		time.Sleep(time.Duration(50+rand.IntN(750)) * time.Millisecond)
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		<-readDone
		cmd.Wait()
		mu.Lock()
		if roundAcks == 0 {
			t.Logf("round %d: no write acknowledged before the kill", round)
		}
		mu.Unlock()

		// What a killed writer leaves behind is encrypted too.
		if round == rounds-1 {
			if found := filesContaining(t, dataDir, word); len(found) > 0 {
				t.Errorf("the canary word is readable in %v after SIGKILL", found)
			}
		}

		// Reopen in this process and check every acknowledged write.
		keys, err := keyring.Open(keyFile, dataDir)
		if err != nil {
			t.Fatalf("round %d: reopen keyring: %v", round, err)
		}
		s, err := Open(dataDir, keys, Options{Logger: zerolog.Nop()})
		if err != nil {
			t.Fatalf("round %d: reopen store after SIGKILL: %v", round, err)
		}
		missing := 0
		err = s.View(func(tx *Tx) error {
			for k, want := range acked {
				got, err := tx.Get([]byte(k))
				if err != nil || string(got) != want {
					missing++
					if missing < 5 {
						t.Errorf("round %d: acknowledged %s=%s, found %q (%v)", round, k, want, got, err)
					}
				}
			}
			return nil
		})
		s.Close()
		keys.Close()
		if err != nil || missing > 0 {
			t.Fatalf("round %d: %d of %d acknowledged writes lost (%v)", round, missing, len(acked), err)
		}
	}
	t.Logf("%d rounds, %d acknowledged writes, none lost", rounds, len(acked))
	if len(acked) < rounds {
		t.Errorf("only %d writes acknowledged in %d rounds; the test proved little", len(acked), rounds)
	}
}

// TestHelperWriter is the writer process of TestDurabilityUnderSIGKILL; it
// does nothing in a normal test run.
func TestHelperWriter(t *testing.T) {
	if os.Getenv("SEALPOST_HELPER_WRITER") != "1" {
		t.Skip("helper process for TestDurabilityUnderSIGKILL")
	}
	keys, err := keyring.Open(os.Getenv("HELPER_KEY"), os.Getenv("HELPER_DATA"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	s, err := Open(os.Getenv("HELPER_DATA"), keys, Options{Logger: zerolog.Nop()})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	round := os.Getenv("HELPER_ROUND")
	var out sync.Mutex
	w := bufio.NewWriter(os.Stdout)
	fmt.Fprintln(w, "ready")
	w.Flush()
	var wg sync.WaitGroup
	for writer := range 8 {
		wg.Go(func() {
			value := os.Getenv("HELPER_WORD") + strings.Repeat("v", 1000+rand.IntN(3000))
			for i := 0; ; i++ {
				key := fmt.Sprintf("r%s/w%d/%06d", round, writer, i)
				val := fmt.Sprintf("%s-%d", key, len(value))
				err := s.Update(context.Background(), func(tx *Tx) error {
					return tx.Put([]byte(key), []byte(val+value))
				})
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
				// Acknowledge only after Update returned: the write is durable.
				out.Lock()
				fmt.Fprintf(w, "%s=%s%s\n", key, val, value)
				w.Flush()
				out.Unlock()
			}
		})
	}
	wg.Wait()
}
