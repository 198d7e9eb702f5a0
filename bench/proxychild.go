package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/hotrow/hotrow/internal/localdb"
)

// ProxyOptions start a proxy child process.
type ProxyOptions struct {
	// Binary is the hotrow executable: from the CLI, the one beside
	// hotrow-bench (or --proxy-binary); in tests, one they build.
	Binary string
	// Backend is the database server's host:port.
	Backend string
	// User and Password are the account clients use; the proxy opens its
	// backend connections with them too.
	User, Password string
	// HotRules are DB.TABLE:KEYCOL:STOCKCOL rules.
	HotRules []string
	// ExtraArgs are appended to the proxy command line (a flag given
	// again there wins, e.g. --log-level=info).
	ExtraArgs []string
}

// ProxyProcess is a running `hotrow proxy` child.
type ProxyProcess struct {
	// Addr is the proxy's client-facing host:port.
	Addr string
	// LogPath is the file that receives the proxy's stderr.
	LogPath string
	// MetricsURL serves the proxy's Prometheus metrics (--metrics-listen
	// on another free loopback port).
	MetricsURL string

	cmd       *exec.Cmd
	exited    chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// HotRule returns the rule that makes the bench's inventory table hot.
func HotRule(database string) string { return database + ".inventory:sku_id:stock" }

// StartProxy runs `Binary proxy ...` on a free loopback port, with its
// metrics on another, and returns once it accepts a login.
func StartProxy(ctx context.Context, opts ProxyOptions, log *slog.Logger) (*ProxyProcess, error) {
	addr, err := freeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	metricsAddr, err := freeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	logFile, err := os.CreateTemp("", "hotrow-proxy-*.log")
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	args := []string{"proxy", "--listen", addr, "--backend", opts.Backend,
		"--user", opts.User + ":" + opts.Password, "--log-level", "warn", "--metrics-listen", metricsAddr}
	for _, r := range opts.HotRules {
		args = append(args, "--hot-rule", r)
	}
	args = append(args, opts.ExtraArgs...)
	cmd := exec.Command(opts.Binary, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Own process group: Ctrl-C reaches the bench, which then stops the
	// proxy after its clients are done.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start proxy: %w", err)
	}
	p := &ProxyProcess{Addr: addr, LogPath: logFile.Name(), MetricsURL: "http://" + metricsAddr + "/metrics",
		cmd: cmd, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	log.Info("proxy starting", "pid", cmd.Process.Pid, "addr", addr, "log", p.LogPath)
	if err := p.waitReady(ctx, opts.User, opts.Password); err != nil {
		_ = p.Stop()
		return nil, err
	}
	return p, nil
}

// DSN returns a DSN for user/password through the proxy.
func (p *ProxyProcess) DSN(user, password string) string {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr = user, password, "tcp", p.Addr
	return cfg.FormatDSN()
}

// PID returns the proxy's process id.
func (p *ProxyProcess) PID() int { return p.cmd.Process.Pid }

// Target returns the proxy side's target for user/password: its DSN, its
// process for CPU and its metrics for batching.
func (p *ProxyProcess) Target(user, password string) Target {
	return Target{DSN: p.DSN(user, password), PID: p.PID(), MetricsURL: p.MetricsURL}
}

// freeLoopbackAddr returns 127.0.0.1:PORT with a port free a moment ago.
func freeLoopbackAddr() (string, error) {
	port, err := localdb.FreePort()
	if err != nil {
		return "", err
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), nil
}

func (p *ProxyProcess) waitReady(ctx context.Context, user, password string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := ping(ctx, p.DSN(user, password))
		if err == nil {
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("proxy exited during start-up: %v; log:\n%s", p.cmd.ProcessState, tail(p.LogPath))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("proxy not accepting logins after 30s: %w; log:\n%s", err, tail(p.LogPath))
		}
	}
}

// Stop ends the proxy (SIGTERM, then SIGKILL after 30 s) and waits for it.
// It is idempotent.
func (p *ProxyProcess) Stop() error {
	p.closeOnce.Do(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(30 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.exited
			p.closeErr = errors.New("proxy did not stop within 30s of SIGTERM; killed")
		}
	})
	return p.closeErr
}

// tail returns the end of a log file.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}
