// Package e2e tests the real sealpost binary the way an operator uses it:
// built with `go build`, started as a process on loopback ports, reached over
// HTTPS, stopped with signals.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binary is the sealpost binary built once for all tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sealpost-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "sealpost")
	build := exec.Command("go", "build", "-ldflags", "-X main.version=e2e-test", "-o", binary, "..")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build sealpost: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// instance is a running `sealpost serve`.
type instance struct {
	t          *testing.T
	cmd        *exec.Cmd
	dataDir    string
	keyFile    string
	https      string // host:port
	http       string
	metrics    string
	relay      string // the SMTP gateway's relay port
	submission string
	setupURL   string
	token      string

	mu     sync.Mutex
	stdout bytes.Buffer
	stderr bytes.Buffer
	exited chan struct{}
	err    error
}

// layout is a data directory and key file for an instance.
type layout struct {
	dataDir, keyFile string
}

func newLayout(t *testing.T) layout {
	dir := t.TempDir()
	return layout{dataDir: filepath.Join(dir, "data"), keyFile: filepath.Join(dir, "etc", "sealpost.key")}
}

// env is the environment that points the binary at l on loopback ports
// chosen by the kernel.
func (l layout) env(extra ...string) []string {
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + os.Getenv("HOME"),
		"SEALPOST_DATA_DIR=" + l.dataDir,
		"SEALPOST_KEY_FILE=" + l.keyFile,
		"SEALPOST_HTTPS__LISTEN=127.0.0.1:0",
		"SEALPOST_HTTP__LISTEN=127.0.0.1:0",
		"SEALPOST_METRICS__LISTEN=127.0.0.1:0",
		"SEALPOST_SMTP__RELAY_LISTEN=127.0.0.1:0",
		"SEALPOST_SMTP__SUBMISSION_LISTEN=127.0.0.1:0",
		"SEALPOST_LOG__LEVEL=debug",
	}
	return append(env, extra...)
}

var setupLine = regexp.MustCompile(`^setup: (https://[^/]+/setup\?token=([A-Z2-7]+))$`)

// start runs `sealpost serve` on l and waits until it has printed where it
// listens (and the setup line, while setup is pending).
func start(t *testing.T, l layout, extraEnv ...string) *instance {
	t.Helper()
	return startBinary(t, binary, l, extraEnv...)
}

// startBinary is start with another build of sealpost (a test build).
func startBinary(t *testing.T, bin string, l layout, extraEnv ...string) *instance {
	t.Helper()
	in := &instance{t: t, dataDir: l.dataDir, keyFile: l.keyFile, exited: make(chan struct{})}
	in.cmd = exec.Command(bin, "serve", "--config", "/dev/null")
	in.cmd.Env = l.env(extraEnv...)
	stdout, err := in.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	in.cmd.Stderr = &lockedWriter{mu: &in.mu, w: &in.stderr}
	if err := in.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		signalled := false
		for sc.Scan() {
			line := sc.Text()
			in.mu.Lock()
			in.stdout.WriteString(line + "\n")
			in.mu.Unlock()
			in.parse(line)
			if !signalled && strings.Contains(line, `"sealpost ready"`) {
				signalled = true
				close(ready)
			}
		}
	}()
	go func() {
		in.err = in.cmd.Wait()
		close(in.exited)
	}()
	t.Cleanup(func() { in.stop(syscall.SIGKILL) })

	select {
	case <-ready:
	case <-in.exited:
		t.Fatalf("sealpost exited before it was ready: %v\nstdout:\n%s\nstderr:\n%s", in.err, in.Stdout(), in.Stderr())
	case <-time.After(60 * time.Second):
		t.Fatalf("sealpost not ready after 60 s\nstdout:\n%s\nstderr:\n%s", in.Stdout(), in.Stderr())
	}
	return in
}

func (in *instance) parse(line string) {
	if m := setupLine.FindStringSubmatch(line); m != nil {
		in.mu.Lock()
		in.setupURL, in.token = m[1], m[2]
		in.mu.Unlock()
		return
	}
	var ev struct {
		Message  string `json:"message"`
		Listener string `json:"listener"`
		Addr     string `json:"addr"`
	}
	if json.Unmarshal([]byte(line), &ev) != nil || ev.Message != "listening" {
		return
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	switch ev.Listener {
	case "https":
		in.https = ev.Addr
	case "http":
		in.http = ev.Addr
	case "metrics":
		in.metrics = ev.Addr
	case "smtp-relay":
		in.relay = ev.Addr
	case "smtp-submission":
		in.submission = ev.Addr
	}
}

// stop sends sig and waits for the process to end; it returns the exit code.
func (in *instance) stop(sig syscall.Signal) int {
	select {
	case <-in.exited:
	default:
		_ = in.cmd.Process.Signal(sig)
		select {
		case <-in.exited:
		case <-time.After(30 * time.Second):
			_ = in.cmd.Process.Kill()
			<-in.exited
			in.t.Errorf("sealpost did not stop within 30 s of %v", sig)
		}
	}
	return in.cmd.ProcessState.ExitCode()
}

func (in *instance) Stdout() string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.stdout.String()
}

func (in *instance) Stderr() string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.stderr.String()
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

// client trusts any certificate: the appliance's is self-signed. Tests that
// care about the certificate inspect it themselves.
func client() *http.Client {
	return &http.Client{
		Timeout:       10 * time.Second,
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// get fetches a URL and returns the response with its body read.
func get(t *testing.T, url string, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := client().Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

// runCLI runs the binary to completion with env and returns its output and
// exit code.
func runCLI(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = env
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatalf("run sealpost %v: %v", args, err)
		}
	}
	return out.String(), errOut.String(), cmd.ProcessState.ExitCode()
}

// treeDigest hashes every path, mode and content under the given roots, so a
// test can prove that nothing on disk changed.
func treeDigest(t *testing.T, roots ...string) string {
	t.Helper()
	h := sha256.New()
	for _, root := range roots {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				if os.IsNotExist(err) {
					fmt.Fprintf(h, "missing %s\n", path)
					return nil
				}
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "%s %v %d\n", path, info.Mode(), info.Size())
			if d.Type().IsRegular() {
				data, err := os.ReadFile(path)
				if err != nil {
					return err
				}
				h.Write(data)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}
