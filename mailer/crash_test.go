package mailer

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sealpost/sealpost/appliance/keyring"
	"github.com/sealpost/sealpost/appliance/store"
	"github.com/sealpost/sealpost/mailer/smtptest"
)

var subjectID = regexp.MustCompile(`Subject: notification (n\d+)`)

// TestBacklogSurvivesSIGKILL fills the queue, then runs it in a child
// process that is killed with SIGKILL at random moments while it drains,
// and restarted, until everything is delivered: every notification must
// arrive at least once.
func TestBacklogSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIP: -short; the SIGKILL drain test takes several seconds")
	}
	relay := smtptest.Start(t, smtptest.Options{})
	dir := t.TempDir()
	const total = 2000
	func() {
		keys, err := keyring.Open(filepath.Join(dir, "k"), filepath.Join(dir, "data"))
		if err != nil {
			t.Fatal(err)
		}
		defer keys.Close()
		st, err := store.Open(filepath.Join(dir, "data"), keys, store.Options{Logger: zerolog.Nop()})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		enqueue(t, newTestQueue(st, Relay{}), total, "outside.test")
	}()

	caFile := filepath.Join(dir, "ca.pem")
	os.WriteFile(caFile, certPEM(relay.CertDER), 0o600)
	received := func() map[string]int {
		seen := map[string]int{}
		for _, m := range relay.Messages() {
			if id := subjectID.FindSubmatch(m.Data); id != nil {
				seen[string(id[1])]++
			}
		}
		return seen
	}
	runner := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperQueueRunner$")
		cmd.Env = append(os.Environ(), "SEALPOST_QUEUE_RUNNER=1", "RUNNER_DIR="+dir, "RUNNER_HOST="+relay.Host,
			"RUNNER_PORT="+strconv.Itoa(relay.Port), "RUNNER_CA="+caFile)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	rounds := 0
	for ; rounds < 40 && len(received()) < total; rounds++ {
		cmd := runner()
		time.Sleep(time.Duration(100+rand.IntN(400)) * time.Millisecond)
		cmd.Process.Kill()
		cmd.Wait()
	}
	// On a loaded machine the killed runs may not have got through it all
	// (each spends part of its time opening the store): a last run, not
	// killed until the relay has everything or two minutes pass, finishes
	// the drain from what the killed runs left.
	if len(received()) < total {
		cmd := runner()
		for deadline := time.Now().Add(2 * time.Minute); len(received()) < total && time.Now().Before(deadline); {
			time.Sleep(50 * time.Millisecond)
		}
		cmd.Process.Kill()
		cmd.Wait()
	}
	seen := received()
	dups := 0
	for i := range total {
		id := fmt.Sprintf("n%06d", i)
		if seen[id] == 0 {
			t.Errorf("notification %s was never delivered", id)
		}
		dups += max(0, seen[id]-1)
	}
	t.Logf("%d notifications delivered across %d killed runs; %d delivered twice (killed between the 250 and its record)", len(seen), rounds, dups)
}

// TestHelperQueueRunner is the child process of TestBacklogSurvivesSIGKILL.
func TestHelperQueueRunner(t *testing.T) {
	if os.Getenv("SEALPOST_QUEUE_RUNNER") != "1" {
		t.Skip("helper process for TestBacklogSurvivesSIGKILL")
	}
	dir := os.Getenv("RUNNER_DIR")
	keys, err := keyring.Open(filepath.Join(dir, "k"), filepath.Join(dir, "data"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(filepath.Join(dir, "data"), keys, store.Options{Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(os.Getenv("RUNNER_PORT"))
	pool, err := loadPool(os.Getenv("RUNNER_CA"))
	if err != nil {
		t.Fatal(err)
	}
	q := newTestQueue(st, Relay{Host: os.Getenv("RUNNER_HOST"), Port: port, Security: "starttls", RootCAs: pool})
	q.Run(context.Background()) // until killed
}

func certPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func loadPool(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(data)
	return pool, nil
}
