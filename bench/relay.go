package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Relay kinds for StartRelay.
const (
	// RelayAuto is HAProxy when haproxy is on PATH, else the built-in relay.
	RelayAuto = "auto"
	// RelayHAProxy is `haproxy` in TCP mode with one thread, as a child
	// process (its CPU is read from /proc).
	RelayHAProxy = "haproxy"
	// RelayBuiltin is a plain Go relay in the bench process: io.Copy both
	// ways per connection. Its CPU is part of the bench's and is not
	// reported on its own.
	RelayBuiltin = "builtin"
)

// RelayProcess is a plain TCP relay in front of the database: the hop
// without any MySQL awareness, the fair anchor for pass-through traffic.
type RelayProcess struct {
	// Addr is the relay's client-facing host:port.
	Addr string
	// Name says which relay it is, for the report's header.
	Name string

	pid   int // 0 for the in-process relay
	stop  func() error
	once  sync.Once
	error error
}

// PID returns the relay's process id, 0 when it runs inside the bench
// process (its CPU cannot be told apart).
func (r *RelayProcess) PID() int { return r.pid }

// Stop ends the relay and waits for it. It is idempotent.
func (r *RelayProcess) Stop() error {
	r.once.Do(func() { r.error = r.stop() })
	return r.error
}

// StartRelay starts a relay of kind (RelayAuto, RelayHAProxy or
// RelayBuiltin) on a free loopback port in front of backend (host:port)
// and returns once it accepts connections.
func StartRelay(ctx context.Context, kind, backend string, log *slog.Logger) (*RelayProcess, error) {
	if kind == RelayAuto {
		kind = RelayBuiltin
		if _, err := exec.LookPath("haproxy"); err == nil {
			kind = RelayHAProxy
		}
	}
	switch kind {
	case RelayHAProxy:
		return startHAProxy(ctx, backend, log)
	case RelayBuiltin:
		return startBuiltinRelay(backend, log)
	}
	return nil, fmt.Errorf("bench: unknown relay %q (auto, haproxy or builtin)", kind)
}

// haproxyConfig is the configuration of a plain TCP relay on listen in
// front of backend: one thread (like the proxy's measured single hop on a
// small machine), no health checks, timeouts long enough for idle pooled
// connections between sides.
func haproxyConfig(listen, backend string, maxconn int) string {
	return fmt.Sprintf(`global
    nbthread 1
    maxconn %d

defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h

listen mysql
    bind %s
    server db %s
`, maxconn, listen, backend)
}

// haproxyMaxconn bounds the relay's connections: above any client count
// the bench is run with.
const haproxyMaxconn = 8192

func startHAProxy(ctx context.Context, backend string, log *slog.Logger) (*RelayProcess, error) {
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		return nil, fmt.Errorf("haproxy relay: %w", err)
	}
	addr, err := freeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "hotrow-haproxy-*")
	if err != nil {
		return nil, err
	}
	cfgPath := dir + "/haproxy.cfg"
	if err := os.WriteFile(cfgPath, []byte(haproxyConfig(addr, backend, haproxyMaxconn)), 0o644); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	logPath := dir + "/haproxy.log"
	logFile, err := os.Create(logPath)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	defer logFile.Close()
	version := "haproxy"
	if out, err := exec.Command(bin, "-v").Output(); err == nil {
		if f := strings.Fields(string(out)); len(f) >= 3 {
			version = "HAProxy " + f[2]
		}
	}
	// -db: stay in the foreground, so that the child is haproxy itself.
	cmd := exec.Command(bin, "-db", "-f", cfgPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start haproxy: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	r := &RelayProcess{
		Addr: addr,
		Name: fmt.Sprintf("%s (tcp mode, nbthread 1, pid %d)", version, cmd.Process.Pid),
		pid:  cmd.Process.Pid,
	}
	r.stop = func() error {
		defer os.RemoveAll(dir)
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
			return nil
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			return errors.New("haproxy did not stop within 10s of SIGTERM; killed")
		}
	}
	log.Info("haproxy relay starting", "pid", r.pid, "addr", addr, "backend", backend)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return r, nil
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(logPath)
			r.Stop()
			return nil, fmt.Errorf("haproxy exited during start-up: %s", b)
		case <-ctx.Done():
			r.Stop()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			r.Stop()
			return nil, fmt.Errorf("haproxy not accepting on %s after 10s: %w", addr, err)
		}
	}
}

// builtinRelay accepts on ln and copies bytes both ways between each
// client and a fresh backend connection.
type builtinRelay struct {
	ln      net.Listener
	backend string
	log     *slog.Logger
	wg      sync.WaitGroup

	mu     sync.Mutex
	conns  map[net.Conn]struct{} // guarded by mu
	closed bool                  // guarded by mu
}

func startBuiltinRelay(backend string, log *slog.Logger) (*RelayProcess, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b := &builtinRelay{ln: ln, backend: backend, log: log, conns: map[net.Conn]struct{}{}}
	b.wg.Go(b.accept)
	log.Info("built-in relay listening", "addr", ln.Addr().String(), "backend", backend)
	return &RelayProcess{
		Addr: ln.Addr().String(),
		Name: "built-in Go relay (io.Copy both ways, in the bench process: its CPU counts as bench cpu)",
		stop: b.close,
	}, nil
}

func (b *builtinRelay) accept() {
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		b.wg.Go(func() { b.serve(c) })
	}
}

// track registers c; false once the relay is closing (c is then closed).
func (b *builtinRelay) track(c net.Conn) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		c.Close()
		return false
	}
	b.conns[c] = struct{}{}
	return true
}

func (b *builtinRelay) untrack(c net.Conn) {
	b.mu.Lock()
	delete(b.conns, c)
	b.mu.Unlock()
	c.Close()
}

func (b *builtinRelay) serve(client net.Conn) {
	if !b.track(client) {
		return
	}
	defer b.untrack(client)
	server, err := net.DialTimeout("tcp", b.backend, 5*time.Second)
	if err != nil {
		b.log.Warn("built-in relay: backend unreachable", "err", err)
		return
	}
	if !b.track(server) {
		return
	}
	defer b.untrack(server)
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(server, client)
		// The client is gone: end the server side too, so that the other
		// copy returns.
		server.Close()
		close(done)
	}()
	_, _ = io.Copy(client, server)
	client.Close()
	<-done
}

// close stops accepting, closes every connection and waits for every
// goroutine.
func (b *builtinRelay) close() error {
	err := b.ln.Close()
	b.mu.Lock()
	b.closed = true
	for c := range b.conns {
		c.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
	return err
}
