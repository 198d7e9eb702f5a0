// Package localdb provisions a throw-away MariaDB (or MySQL) server in a
// temporary data directory on a free loopback port, with the binlog on and
// the durable settings hotrow is designed and measured against
// (sync_binlog=1, innodb_flush_log_at_trx_commit=1).
//
// The test harness, `hotrow-bench demo` and `hotrow-bench bench` all use it, so that a
// newcomer needs nothing but Debian's mariadb-server package. The server
// runs as a child process; Stop kills it and removes the data directory.
//
// Every instance has one superuser, User/Password, reachable over TCP from
// 127.0.0.1; the anonymous accounts that mariadb-install-db creates are
// dropped because they shadow other logins with error 1045.
package localdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"
)

// User and Password are the superuser of every local instance.
const (
	User     = "hotrow"
	Password = "hotrow-secret"
)

// ErrNotInstalled is returned by Start when no server binary is on PATH.
var ErrNotInstalled = errors.New("localdb: mariadbd not found on PATH (install Debian's mariadb-server: apt-get install -y mariadb-server)")

// Options tune a local instance. The zero value is a durable server.
type Options struct {
	// ExtraArgs are appended to the server command line.
	ExtraArgs []string
	// LogDir, when set, keeps the server's error log there instead of in
	// the (removed) data directory.
	LogDir string
}

// Instance is one running local server.
type Instance struct {
	// Addr is the server's host:port on 127.0.0.1.
	Addr string

	dir  string
	args []string
	opts Options

	mu  sync.Mutex // guards cmd and exited
	cmd *exec.Cmd
	// exited is closed when the current server process ends.
	exited chan struct{}
}

// Installed reports whether a server binary is available.
func Installed() bool {
	_, err := serverBinary()
	return err == nil
}

func serverBinary() (string, error) {
	for _, name := range []string{"mariadbd", "mysqld"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
		// Debian installs the server in /usr/sbin, which is not always on PATH.
		if p := filepath.Join("/usr/sbin", name); fileExists(p) {
			return p, nil
		}
	}
	return "", ErrNotInstalled
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// Start initialises a data directory and starts a server on a free
// loopback port. It returns once the server accepts the superuser.
func Start(ctx context.Context, opts Options) (*Instance, error) {
	bin, err := serverBinary()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "hotrow-mariadb-")
	if err != nil {
		return nil, err
	}
	inst := &Instance{dir: dir, opts: opts}
	// A private tmpdir: servers installing or running side by side (one
	// per test binary) must not share temporary table files in /tmp.
	if err := os.Mkdir(inst.tmpDir(), 0o700); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := inst.install(ctx); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	inst.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	initFile := filepath.Join(dir, "init.sql")
	if err := os.WriteFile(initFile, []byte(initSQL), 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	errLog := filepath.Join(dir, "error.log")
	if opts.LogDir != "" {
		errLog = filepath.Join(opts.LogDir, "mariadb-error.log")
	}
	inst.args = append([]string{bin,
		"--no-defaults",
		"--datadir=" + filepath.Join(dir, "data"),
		"--tmpdir=" + inst.tmpDir(),
		"--socket=" + filepath.Join(dir, "mysqld.sock"),
		"--pid-file=" + filepath.Join(dir, "mysqld.pid"),
		"--log-error=" + errLog,
		"--init-file=" + initFile,
		"--bind-address=127.0.0.1",
		"--port=" + strconv.Itoa(port),
		"--user=" + currentUser(),
		"--skip-name-resolve",
		"--log-bin=" + filepath.Join(dir, "data", "binlog"),
		"--binlog-format=ROW",
		"--binlog-row-image=FULL",
		"--binlog-row-metadata=FULL",
		"--server-id=1",
		"--sync-binlog=1",
		"--innodb-flush-log-at-trx-commit=1",
		"--innodb-buffer-pool-size=256M",
		"--max-connections=3000",
		"--max-allowed-packet=64M",
		"--character-set-server=utf8mb4",
		"--collation-server=utf8mb4_general_ci",
	}, opts.ExtraArgs...)
	if err := inst.launch(ctx); err != nil {
		inst.Stop()
		return nil, err
	}
	return inst, nil
}

// initSQL runs at every server start: it makes the superuser and drops the
// anonymous accounts (they match before named users and yield 1045).
const initSQL = `CREATE USER IF NOT EXISTS '` + User + `'@'%' IDENTIFIED BY '` + Password + `';
GRANT ALL PRIVILEGES ON *.* TO '` + User + `'@'%' WITH GRANT OPTION;
DELETE FROM mysql.global_priv WHERE User = '';
FLUSH PRIVILEGES;
`

func currentUser() string {
	if os.Geteuid() == 0 {
		return "root"
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return strconv.Itoa(os.Geteuid())
}

// tmpDir is the instance's own directory for temporary files.
func (in *Instance) tmpDir() string { return filepath.Join(in.dir, "tmp") }

func (in *Instance) install(ctx context.Context) error {
	tool, err := exec.LookPath("mariadb-install-db")
	if err != nil {
		tool, err = exec.LookPath("mysql_install_db")
	}
	if err != nil {
		return fmt.Errorf("localdb: mariadb-install-db not found: %w", ErrNotInstalled)
	}
	cmd := exec.CommandContext(ctx, tool,
		"--no-defaults",
		"--datadir="+filepath.Join(in.dir, "data"),
		"--tmpdir="+in.tmpDir(),
		"--user="+currentUser(),
		"--auth-root-authentication-method=normal",
		"--skip-test-db",
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("localdb: mariadb-install-db: %w\n%s", err, out)
	}
	return nil
}

// launch starts the server process and waits until it accepts logins.
func (in *Instance) launch(ctx context.Context) error {
	cmd := exec.Command(in.args[0], in.args[1:]...)
	// Own process group: a Ctrl-C aimed at the parent must not kill the
	// server before the parent has stopped using it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("localdb: start %s: %w", in.args[0], err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	in.mu.Lock()
	in.cmd, in.exited = cmd, exited
	in.mu.Unlock()

	deadline := time.Now().Add(60 * time.Second)
	var lastErr error
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("localdb: server exited during start-up; log:\n%s", in.logTail())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if lastErr = in.ping(); lastErr == nil {
			return nil
		}
	}
	return fmt.Errorf("localdb: server not ready after 60s: %v; log:\n%s", lastErr, in.logTail())
}

func (in *Instance) ping() error {
	db, err := sql.Open("mysql", in.DSN(""))
	if err != nil {
		return err
	}
	defer db.Close()
	return db.Ping()
}

func (in *Instance) logTail() string {
	p := filepath.Join(in.dir, "error.log")
	if in.opts.LogDir != "" {
		p = filepath.Join(in.opts.LogDir, "mariadb-error.log")
	}
	b, _ := os.ReadFile(p)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// DSN returns a go-sql-driver/mysql DSN for the superuser and database db
// (empty: none).
func (in *Instance) DSN(db string) string {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd = User, Password
	cfg.Net, cfg.Addr, cfg.DBName = "tcp", in.Addr, db
	cfg.Timeout = 5 * time.Second
	return cfg.FormatDSN()
}

// Kill stops the server abruptly (SIGKILL), as a crash would, and waits
// for the process to end. The data directory stays for Restart.
func (in *Instance) Kill() { in.signal(syscall.SIGKILL) }

// Shutdown stops the server cleanly (SIGTERM) and waits for it.
func (in *Instance) Shutdown() { in.signal(syscall.SIGTERM) }

func (in *Instance) signal(sig syscall.Signal) {
	in.mu.Lock()
	cmd, exited := in.cmd, in.exited
	in.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// Restart starts the server again on the same port and data directory
// after Kill or Shutdown (InnoDB crash recovery runs as after a real crash).
func (in *Instance) Restart(ctx context.Context) error {
	in.mu.Lock()
	exited := in.exited
	in.mu.Unlock()
	if exited != nil {
		select {
		case <-exited:
		default:
			return errors.New("localdb: Restart while the server is running")
		}
	}
	return in.launch(ctx)
}

// Stop shuts the server down and removes its data directory.
func (in *Instance) Stop() {
	in.Shutdown()
	os.RemoveAll(in.dir)
}

// PID returns the server's process id (0 when not running), for CPU
// accounting from /proc.
func (in *Instance) PID() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.cmd == nil || in.cmd.Process == nil {
		return 0
	}
	return in.cmd.Process.Pid
}

// FreePort asks the kernel for a free loopback TCP port.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
