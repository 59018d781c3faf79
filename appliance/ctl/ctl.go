// Package ctl is the control socket: a unix socket in the data directory
// (mode 0600, and only the server's own user or root may talk to it) through
// which CLI commands reach the running server, since Badger lets only one
// process open the store. A request is one JSON line with the command's
// arguments; the answer is one JSON line with its output and exit code.
package ctl

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

// SocketName is the socket's file name in the data directory.
const SocketName = "control.sock"

// SocketPath returns the socket path for a data directory.
func SocketPath(dataDir string) string { return filepath.Join(dataDir, SocketName) }

// ErrNotRunning means no server answers on the socket.
var ErrNotRunning = errors.New("ctl: no sealpost server is running")

// Handler runs one command and returns its exit code.
type Handler func(ctx context.Context, args []string, stdout, stderr io.Writer) int

type request struct {
	Args []string `json:"args"`
}

type response struct {
	Stdout string `json:"stdout"`
	Stderr string `json:"stderr"`
	Exit   int    `json:"exit"`
}

// maxRequest bounds a request line.
const maxRequest = 1 << 20

// Server answers on the socket.
type Server struct {
	ln      net.Listener
	path    string
	handle  Handler
	log     zerolog.Logger
	wg      sync.WaitGroup
	cancel  context.CancelFunc
	closing sync.Once
}

// Listen creates the socket (replacing a stale one) and serves commands
// until Close.
func Listen(path string, h Handler, log zerolog.Logger) (*Server, error) {
	if conn, err := net.DialTimeout("unix", path, time.Second); err == nil {
		conn.Close()
		return nil, fmt.Errorf("another sealpost server answers on %s", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove stale control socket: %w", err)
	}
	old := syscall.Umask(0o177) // the socket is created 0600
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("listen on control socket %s: %w", path, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{ln: ln, path: path, handle: h, log: log, cancel: cancel}
	s.wg.Add(1)
	go s.serve(ctx)
	return s, nil
}

func (s *Server) serve(ctx context.Context) {
	defer s.wg.Done()
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer conn.Close()
			s.serveConn(ctx, conn.(*net.UnixConn))
		}()
	}
}

func (s *Server) serveConn(ctx context.Context, conn *net.UnixConn) {
	if err := checkPeer(conn); err != nil {
		s.log.Warn().Err(err).Msg("control socket: refused a peer")
		return
	}
	r := bufio.NewReader(io.LimitReader(conn, maxRequest))
	line, err := r.ReadBytes('\n')
	if err != nil {
		return
	}
	var req request
	if err := json.Unmarshal(line, &req); err != nil || len(req.Args) == 0 {
		json.NewEncoder(conn).Encode(response{Stderr: "malformed control request\n", Exit: 2})
		return
	}
	var stdout, stderr bytes.Buffer
	code := s.run(ctx, req.Args, &stdout, &stderr)
	json.NewEncoder(conn).Encode(response{Stdout: stdout.String(), Stderr: stderr.String(), Exit: code})
}

// run is the recover point of a control command.
func (s *Server) run(ctx context.Context, args []string, stdout, stderr io.Writer) (code int) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error().Str("panic", fmt.Sprint(r)).Strs("command", args[:min(2, len(args))]).Msg("control command panicked")
			fmt.Fprintln(stderr, "the command failed inside the server; see its log")
			code = 1
		}
	}()
	return s.handle(ctx, args, stdout, stderr)
}

// checkPeer admits only the server's own user and root.
func checkPeer(conn *net.UnixConn) error {
	raw, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var cred *syscall.Ucred
	var credErr error
	err = raw.Control(func(fd uintptr) {
		cred, credErr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	})
	if err != nil {
		return err
	}
	if credErr != nil {
		return credErr
	}
	if cred.Uid != 0 && int(cred.Uid) != os.Geteuid() {
		return fmt.Errorf("uid %d is neither root nor the server's user", cred.Uid)
	}
	return nil
}

// Close stops accepting, cancels running commands, waits for them and
// removes the socket.
func (s *Server) Close() error {
	var err error
	s.closing.Do(func() {
		err = s.ln.Close()
		s.cancel()
		s.wg.Wait()
	})
	return err
}

// Run sends args to the server on path and copies its output. It returns
// ErrNotRunning when nothing answers there.
func Run(ctx context.Context, path string, args []string, stdout, stderr io.Writer) (int, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) {
			return 0, ErrNotRunning
		}
		return 0, fmt.Errorf("connect to the server's control socket %s: %w", path, err)
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		conn.SetDeadline(deadline)
	}
	if err := json.NewEncoder(conn).Encode(request{Args: args}); err != nil {
		return 0, fmt.Errorf("send command: %w", err)
	}
	var resp response
	if err := json.NewDecoder(conn).Decode(&resp); err != nil {
		return 0, fmt.Errorf("the server closed the control connection without an answer: %w", err)
	}
	io.WriteString(stdout, resp.Stdout)
	io.WriteString(stderr, resp.Stderr)
	return resp.Exit, nil
}
