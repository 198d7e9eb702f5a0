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

// TestCrashMidSale kills the proxy with SIGKILL while clients buy from one
// hot row, then restarts it with the same instance id. Every client told
// OK has its deduction and its ledger row; no deduction lacks a ledger row;
// a client whose statement was in flight got an error, never a success
// that did not happen; and the restarted proxy sells on.
func TestCrashMidSale(t *testing.T) {
	const (
		clients = 24
		stock   = 1_000_000
	)
	db := testdb.New(t)
	meta := db.Name + "_meta"
	root := db.Open(t)
	t.Cleanup(func() { _, _ = root.Exec("DROP DATABASE IF EXISTS `" + meta + "`") })
	db.Exec(t, "CREATE TABLE inventory (sku_id BIGINT PRIMARY KEY, stock BIGINT UNSIGNED NOT NULL)",
		fmt.Sprintf("INSERT INTO inventory VALUES (1, %d)", stock))
	bin := buildHotrow(t)
	port, err := localdb.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	args := []string{"--hot-rule", db.Name + ".inventory:sku_id:stock", "--meta-schema", meta,
		"--instance-id", "crash-test"}
	child := startChild(t, bin, addr, db, args...)

	results := make([]saleResult, clients)
	var wg sync.WaitGroup
	var sold sync.WaitGroup // the first OK of every client
	sold.Add(clients)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &results[i]
			pool, err := sql.Open("mysql", clientDSN(db, addr))
			if err != nil {
				r.lastError = err
				sold.Done()
				return
			}
			defer pool.Close()
			conn, err := pool.Conn(context.Background())
			if err == nil {
				err = conn.QueryRowContext(context.Background(), "SELECT CONNECTION_ID()").Scan(&r.connID)
			}
			first := true
			for err == nil {
				var res sql.Result
				res, err = conn.ExecContext(context.Background(), "UPDATE inventory SET stock = stock - 1 WHERE sku_id = 1 AND stock >= 1")
				if err != nil {
					break
				}
				if n, _ := res.RowsAffected(); n == 1 {
					r.ok++
				} else {
					r.okNone++
				}
				if first {
					first = false
					sold.Done()
				}
			}
			if first {
				sold.Done()
			}
			r.failed, r.lastError = 1, err
			if conn != nil {
				conn.Close()
			}
		}()
	}
	sold.Wait()
	time.Sleep(300 * time.Millisecond) // mid-sale
	if err := child.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-child.done
	wg.Wait()

	// The server rolls back what the dead proxy left open; a COMMIT it had
	// sent may still land. Wait until no transaction is left.
	testdb.WaitFor(t, 30*time.Second, "the dead proxy's transactions to end", func() bool {
		n := -1
		_ = root.QueryRow("SELECT COUNT(*) FROM information_schema.INNODB_TRX WHERE trx_mysql_thread_id <> CONNECTION_ID()").Scan(&n)
		return n == 0
	})
	startChild(t, bin, addr, db, args...) // recovery of its own batches runs at start

	check := func(phase string) {
		t.Helper()
		var left, ledger int
		if err := root.QueryRow("SELECT stock FROM inventory WHERE sku_id = 1").Scan(&left); err != nil {
			t.Fatal(err)
		}
		if err := root.QueryRow("SELECT COUNT(*) FROM `"+meta+"`.ledger WHERE table_schema = ? AND key_value = '1'", db.Name).Scan(&ledger); err != nil {
			t.Fatal(err)
		}
		if stock-left != ledger {
			t.Errorf("%s: %d deducted, %d ledger rows", phase, stock-left, ledger)
		}
	}
	check("after the crash")
	ok, failed := 0, 0
	for _, r := range results {
		if r.okNone > 0 {
			t.Errorf("client %d was told sold out %d times with stock left", r.connID, r.okNone)
		}
		var rows int
		if err := root.QueryRow("SELECT COUNT(*) FROM `"+meta+"`.ledger WHERE table_schema = ? AND conn_id = ?", db.Name, r.connID).Scan(&rows); err != nil {
			t.Fatal(err)
		}
		if rows < r.ok || rows > r.ok+r.failed {
			t.Errorf("client %d: told OK %d times, %d errors, %d ledger rows", r.connID, r.ok, r.failed, rows)
		}
		var my *mysql.MySQLError
		if r.lastError == nil || errors.As(r.lastError, &my) && my.Number != 2013 {
			t.Errorf("client %d ended with %v, want a lost connection", r.connID, r.lastError)
		}
		ok, failed = ok+r.ok, failed+r.failed
	}
	var total int
	_ = root.QueryRow("SELECT COUNT(*) FROM `"+meta+"`.ledger WHERE table_schema = ?", db.Name).Scan(&total)
	t.Logf("%d clients: %d told OK, %d in flight at the kill; %d ledger rows (%d of the in-flight ones committed)",
		clients, ok, failed, total, total-ok)

	// The restarted proxy sells on.
	pool, err := sql.Open("mysql", clientDSN(db, addr))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	for range 10 {
		res, err := pool.Exec("UPDATE inventory SET stock = stock - 1 WHERE sku_id = 1 AND stock >= 1")
		if err != nil {
			t.Fatalf("after restart: %v", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			t.Fatalf("after restart: %d rows affected", n)
		}
	}
	check("after the restart")
}
