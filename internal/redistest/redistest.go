// Package redistest starts real redis-server processes for tests: a
// standalone server (which can be stopped and restarted, for outage tests),
// a Sentinel setup and a Cluster.
//
// Every server listens on a free 127.0.0.1 port chosen at start (never
// Redis's well-known ports), keeps no data on disk (save and appendonly
// off), has its own directory under t.TempDir() and is killed by
// t.Cleanup. Nothing here touches a Redis it did not start.
//
// When redis-server is not on PATH the test is skipped, or fails when the
// environment variable CI is set, so that CI never silently loses the Redis
// tests.
package redistest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// startTimeout bounds how long a server or topology may take to come up.
const startTimeout = 15 * time.Second

// RequireServer skips t, or fails it when CI is set, unless redis-server
// is on PATH. It returns the path of redis-server.
func RequireServer(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("redis-server not installed (apt-get install redis-server); CI is set, so this is a failure")
		}
		t.Skip("redis-server not installed (apt-get install redis-server); with CI set this is a failure")
	}
	return path
}

// Server is a redis-server process started by this package.
type Server struct {
	t       testing.TB
	bin     string
	dir     string
	port    int
	busPort int      // cluster bus port, when cluster is set
	cluster bool     // cluster-enabled
	conf    string   // config file passed first, for a sentinel
	args    []string // extra arguments after the defaults

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has exited
}

// StartServer starts redis-server on a free port with the given extra
// arguments (for example "--cluster-enabled", "yes") and waits until it
// answers PING. t.Cleanup stops it.
func StartServer(t testing.TB, args ...string) *Server {
	t.Helper()
	return startServer(t, &Server{args: args})
}

// startServer fills in and starts s.
func startServer(t testing.TB, s *Server) *Server {
	t.Helper()
	s.t, s.bin, s.dir = t, RequireServer(t), t.TempDir()
	t.Cleanup(s.Stop)
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if s.port, err = FreePort(); err != nil {
			t.Fatalf("redistest: %v", err)
		}
		if s.cluster {
			if s.busPort, err = FreePort(); err != nil {
				t.Fatalf("redistest: %v", err)
			}
		}
		if err = s.start(); err == nil {
			return s
		}
		if !errors.Is(err, errPortTaken) {
			break
		}
	}
	t.Fatalf("redistest: %v", err)
	return nil
}

// Standalone starts a standalone redis-server and returns its address
// (host:port). t.Cleanup stops it.
func Standalone(t testing.TB) (addr string) {
	t.Helper()
	return StartServer(t).Addr()
}

// Addr returns the server's address, host:port. It does not change across
// Stop and Start.
func (s *Server) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// Port returns the server's TCP port.
func (s *Server) Port() int { return s.port }

// Dir returns the server's working directory (its log is redis.log).
func (s *Server) Dir() string { return s.dir }

// Stop kills the server, as a crash would, and waits for it to exit.
// Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
}

// Start starts a stopped server again on the same port, with no data (the
// server keeps none on disk), and waits until it answers PING. Starting a
// running server does nothing.
func (s *Server) Start() {
	s.t.Helper()
	var err error
	// The port may be briefly unavailable right after Stop.
	for attempt := 0; attempt < 20; attempt++ {
		if err = s.start(); !errors.Is(err, errPortTaken) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatalf("redistest: restarting %s: %v", s.Addr(), err)
	}
}

var errPortTaken = errors.New("port already in use")

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return nil
	}
	var args []string
	if s.conf != "" {
		args = append(args, s.conf, "--sentinel")
	}
	args = append(args,
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--dir", s.dir,
		"--save", "",
		"--appendonly", "no",
		"--daemonize", "no",
		"--logfile", "",
	)
	if s.cluster {
		args = append(args,
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf",
			"--cluster-port", strconv.Itoa(s.busPort),
			"--cluster-node-timeout", "2000",
		)
	}
	return s.exec(append(args, s.args...))
}

// exec runs redis-server with args, logging to redis.log in s.dir, and
// waits until it answers PING. Call with s.mu held.
func (s *Server) exec(args []string) error {
	logPath := filepath.Join(s.dir, "redis.log")
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer log.Close()
	start, _ := log.Seek(0, io.SeekEnd)
	cmd := exec.Command(s.bin, args...)
	cmd.Dir = s.dir
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting redis-server: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	for {
		if reply, err := Do(ctx, s.Addr(), "PING"); err == nil && reply == "PONG" {
			s.cmd, s.exited = cmd, exited
			return nil
		}
		select {
		case <-exited:
			out := logSince(logPath, start)
			if bytes.Contains(out, []byte("Address already in use")) {
				return fmt.Errorf("%s: %w", s.Addr(), errPortTaken)
			}
			return fmt.Errorf("redis-server on %s exited during start:\n%s", s.Addr(), out)
		case <-ctx.Done():
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("redis-server on %s did not answer PING within %v:\n%s", s.Addr(), startTimeout, logSince(logPath, start))
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// logSince returns the log written from offset on, at most its last 4 KiB.
func logSince(path string, offset int64) []byte {
	b, err := os.ReadFile(path)
	if err != nil || int64(len(b)) < offset {
		return nil
	}
	b = b[offset:]
	if len(b) > 4096 {
		b = b[len(b)-4096:]
	}
	return b
}

// wellKnown are ports FreePort never returns: a developer's or CI's own
// Redis may be there.
var wellKnown = []int{6379, 6380, 16379, 26379}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("finding a free port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		if !slices.Contains(wellKnown, port) {
			return port, nil
		}
	}
}

// waitFor polls cond until it returns nil or the start timeout passes,
// then fails t with what and cond's last error.
func waitFor(t testing.TB, what string, cond func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	for {
		err := cond(ctx)
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("redistest: %s: not ready after %v: %v", what, startTimeout, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
