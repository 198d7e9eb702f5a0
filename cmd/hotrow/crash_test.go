package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/hotrow/hotrow/internal/localdb"
	"github.com/hotrow/hotrow/internal/testdb"
)

func TestMain(m *testing.M) {
	// The killed proxy's clients would each log "unexpected EOF".
	_ = mysql.SetLogger(log.New(io.Discard, "", 0))
	testdb.Main(m)
}

// proxyChild is `hotrow proxy` run as a child process.
type proxyChild struct {
	addr string
	cmd  *exec.Cmd
	done chan struct{}
}

// buildHotrow builds this command into a temporary directory.
func buildHotrow(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "hotrow")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startChild runs bin proxy with args on addr and waits until it accepts
// a login; the child is killed at cleanup if still running.
func startChild(t *testing.T, bin, addr string, db *testdb.DB, args ...string) *proxyChild {
	t.Helper()
	logf, err := os.Create(filepath.Join(t.TempDir(), "proxy.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, append([]string{"proxy", "--listen", addr, "--backend", db.Addr,
		"--user", db.User + ":" + db.Password, "--log-level", "warn"}, args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &proxyChild{addr: addr, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); logf.Close(); close(c.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-c.done
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("proxy log:\n%s", b)
		}
	})
	testdb.WaitFor(t, 30*time.Second, "the proxy to accept a login", func() bool {
		pool, err := sql.Open("mysql", clientDSN(db, addr))
		if err != nil {
			return false
		}
		defer pool.Close()
		return pool.Ping() == nil
	})
	return c
}

func clientDSN(db *testdb.DB, addr string) string {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = db.User, db.Password, "tcp", addr, db.Name
	cfg.Timeout = 5 * time.Second
	cfg.InterpolateParams = true
	return cfg.FormatDSN()
}

// saleResult is what one client saw of its deductions.
type saleResult struct {
	connID    int
	ok        int // OK, one row affected: told it got the item
	okNone    int // OK, no row affected: told it is sold out
	failed    int // an error: the outcome is unknown to it, as with a lost direct connection
	lastError error
}

// sale is a hot row many clients buy from, through one or more proxies.
type sale struct {
	db    *testdb.DB
	meta  string
	root  *sql.DB
	stock int
	// sold counts the deductions sellOn was told OK of.
	sold int
}

func newSale(t *testing.T, stock int) *sale {
	t.Helper()
	db := testdb.New(t)
	s := &sale{db: db, meta: db.Name + "_meta", root: db.Open(t), stock: stock}
	t.Cleanup(func() { _, _ = s.root.Exec("DROP DATABASE IF EXISTS `" + s.meta + "`") })
	db.Exec(t, "CREATE TABLE inventory (sku_id BIGINT PRIMARY KEY, stock BIGINT UNSIGNED NOT NULL)",
		fmt.Sprintf("INSERT INTO inventory VALUES (1, %d)", stock))
	return s
}

// proxyArgs are the flags of a proxy instance id selling s's row.
func (s *sale) proxyArgs(id string) []string {
	return []string{"--hot-rule", s.db.Name + ".inventory:sku_id:stock", "--meta-schema", s.meta, "--instance-id", id}
}

// buy deducts one item at a time on one connection through addr until an
// error or stop; started is called once, after its first OK or at its
// end.
func (s *sale) buy(addr string, stop <-chan struct{}, started func()) saleResult {
	var r saleResult
	first := true
	defer func() {
		if first {
			started()
		}
	}()
	pool, err := sql.Open("mysql", clientDSN(s.db, addr))
	if err != nil {
		r.failed, r.lastError = 1, err
		return r
	}
	defer pool.Close()
	ctx := context.Background()
	conn, err := pool.Conn(ctx)
	if err != nil {
		r.failed, r.lastError = 1, err
		return r
	}
	defer conn.Close()
	if err := conn.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&r.connID); err != nil {
		r.failed, r.lastError = 1, err
		return r
	}
	for {
		select {
		case <-stop:
			return r
		default:
		}
		res, err := conn.ExecContext(ctx, "UPDATE inventory SET stock = stock - 1 WHERE sku_id = 1 AND stock >= 1")
		if err != nil {
			r.failed, r.lastError = 1, err
			return r
		}
		if n, _ := res.RowsAffected(); n == 1 {
			r.ok++
		} else {
			r.okNone++
		}
		if first {
			first = false
			started()
		}
	}
}

// run starts clients buyers through addrs (round robin) and returns their
// results once stop is closed or they all failed; midSale runs once every
// buyer has had an OK (or failed).
func (s *sale) run(clients int, addr func(i int) string, midSale func(), stop <-chan struct{}) []saleResult {
	results := make([]saleResult, clients)
	var wg sync.WaitGroup
	var started sync.WaitGroup
	started.Add(clients)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = s.buy(addr(i), stop, started.Done)
		}()
	}
	started.Wait()
	midSale()
	wg.Wait()
	return results
}

// settle waits until the server has no transaction left open: it rolls
// back what a dead proxy left, and a COMMIT one had sent may still land.
func (s *sale) settle(t *testing.T) {
	t.Helper()
	testdb.WaitFor(t, 30*time.Second, "the dead proxy's transactions to end", func() bool {
		n := -1
		_ = s.root.QueryRow("SELECT COUNT(*) FROM information_schema.INNODB_TRX WHERE trx_mysql_thread_id <> CONNECTION_ID()").Scan(&n)
		return n == 0
	})
}

// check verifies the sale's invariants: every OK told is a deduction, and
// every deduction was told OK or was a statement in flight at the crash
// (at most one per client that failed); the ledger has no more rows than
// deductions, and no client more ledger rows than OKs and statements in
// flight (a statement that ran alone on its client's connection has
// none); nobody was told "sold out" with stock left; a client that failed
// got an error, not a success. It returns the ledger's row count.
func (s *sale) check(t *testing.T, phase string, results []saleResult) int {
	t.Helper()
	var left, ledger int
	if err := s.root.QueryRow("SELECT stock FROM inventory WHERE sku_id = 1").Scan(&left); err != nil {
		t.Fatal(err)
	}
	if err := s.root.QueryRow("SELECT COUNT(*) FROM `"+s.meta+"`.ledger WHERE table_schema = ? AND key_value = '1'", s.db.Name).Scan(&ledger); err != nil {
		t.Fatal(err)
	}
	ok, failed := sum(results)
	ok += s.sold
	if deducted := s.stock - left; deducted < ok || deducted > ok+failed || ledger > deducted {
		t.Errorf("%s: %d deducted, %d told OK, %d in flight, %d ledger rows", phase, deducted, ok, failed, ledger)
	}
	for _, r := range results {
		if r.okNone > 0 {
			t.Errorf("%s: client %d was told sold out %d times with stock left", phase, r.connID, r.okNone)
		}
		var rows int
		if err := s.root.QueryRow("SELECT COUNT(*) FROM `"+s.meta+"`.ledger WHERE table_schema = ? AND conn_id = ?", s.db.Name, r.connID).Scan(&rows); err != nil {
			t.Fatal(err)
		}
		if rows > r.ok+r.failed {
			t.Errorf("%s: client %d: told OK %d times, %d errors, %d ledger rows", phase, r.connID, r.ok, r.failed, rows)
		}
		var my *mysql.MySQLError
		if r.failed > 0 && (r.lastError == nil || errors.As(r.lastError, &my) && my.Number != 2013) {
			t.Errorf("%s: client %d ended with %v, want a lost connection", phase, r.connID, r.lastError)
		}
	}
	return ledger
}

// sellOn checks that n more deductions through addr succeed.
func (s *sale) sellOn(t *testing.T, addr string, n int) {
	t.Helper()
	pool, err := sql.Open("mysql", clientDSN(s.db, addr))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	for range n {
		res, err := pool.Exec("UPDATE inventory SET stock = stock - 1 WHERE sku_id = 1 AND stock >= 1")
		if err != nil {
			t.Fatalf("through %s: %v", addr, err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			t.Fatalf("through %s: %d rows affected", addr, n)
		}
		s.sold++
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	port, err := localdb.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}

func sum(results []saleResult) (ok, failed int) {
	for _, r := range results {
		ok, failed = ok+r.ok, failed+r.failed
	}
	return ok, failed
}

// TestCrashMidSale kills the proxy with SIGKILL while clients buy from one
// hot row, then restarts it with the same instance id. Every client told
// OK has its deduction; no deduction was not told OK or in flight;
// a client whose statement was in flight got an error, never a success
// that did not happen; and the restarted proxy sells on.
func TestCrashMidSale(t *testing.T) {
	const clients = 24
	s := newSale(t, 1_000_000)
	bin := buildHotrow(t)
	addr := freeAddr(t)
	child := startChild(t, bin, addr, s.db, s.proxyArgs("crash-test")...)
	results := s.run(clients, func(int) string { return addr }, func() {
		time.Sleep(300 * time.Millisecond) // mid-sale
		if err := child.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Error(err)
		}
		<-child.done
	}, nil)
	s.settle(t)
	startChild(t, bin, addr, s.db, s.proxyArgs("crash-test")...) // recovery of its own batches runs at start
	ledger := s.check(t, "after the crash", results)
	ok, failed := sum(results)
	t.Logf("%d clients: %d told OK, %d in flight at the kill; %d ledger rows (the others ran alone)",
		clients, ok, failed, ledger)
	s.sellOn(t, addr, 10)
	s.check(t, "after the restart", results)
}
