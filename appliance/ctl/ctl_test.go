package ctl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

func echo(_ context.Context, args []string, stdout, stderr io.Writer) int {
	if args[0] == "panic" {
		panic("boom")
	}
	fmt.Fprintln(stdout, strings.Join(args, " "))
	fmt.Fprintln(stderr, "note")
	return len(args)
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	path := SocketPath(t.TempDir())
	// A stale socket file from a crashed server is replaced.
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Listen(path, echo, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil || info.Mode().Perm() != 0o600 || info.Mode()&os.ModeSocket == 0 {
		t.Errorf("socket %v mode %v, want a 0600 socket", err, info.Mode())
	}
	if _, err := Listen(path, echo, zerolog.Nop()); err == nil {
		t.Error("a second server took over a live socket")
	}

	var stdout, stderr bytes.Buffer
	code, err := Run(context.Background(), path, []string{"settings", "get", "mail.mode"}, &stdout, &stderr)
	if err != nil || code != 3 || stdout.String() != "settings get mail.mode\n" || stderr.String() != "note\n" {
		t.Errorf("Run = %d, %v, %q, %q", code, err, stdout.String(), stderr.String())
	}
	stderr.Reset()
	if code, err := Run(context.Background(), path, []string{"panic"}, io.Discard, &stderr); err != nil || code != 1 || !strings.Contains(stderr.String(), "failed inside the server") {
		t.Errorf("a panicking command: %d, %v, %q", code, err, stderr.String())
	}

	// A malformed request gets a usage error, not a crash.
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(conn, "{not json")
	reply, _ := io.ReadAll(conn)
	conn.Close()
	if !strings.Contains(string(reply), `"exit":2`) {
		t.Errorf("malformed request answered %q", reply)
	}

	s.Close()
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the socket remains after Close: %v", err)
	}
	if _, err := Run(context.Background(), path, []string{"x"}, io.Discard, io.Discard); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Run with no server = %v, want ErrNotRunning", err)
	}
}

func TestNotRunningWithStaleFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), SocketName)
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close() // the file stays, nobody listens: a crashed server
	if _, err := Run(context.Background(), path, []string{"x"}, io.Discard, io.Discard); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Run on a dead socket = %v, want ErrNotRunning", err)
	}
}
