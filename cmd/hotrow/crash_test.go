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
	"sync/atomic"
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

// child is a process a test started: killed at cleanup if still running,
// its output (stdout and stderr, in the file log) shown if the test failed.
type child struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

// startProcess starts name with args as a child of the test.
func startProcess(t *testing.T, name string, args ...string) *child {
	t.Helper()
	logf, err := os.CreateTemp(t.TempDir(), filepath.Base(name)+"-*.log")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatal(err)
	}
	c := &child{cmd: cmd, log: logf.Name(), done: make(chan struct{})}
	go func() { _ = cmd.Wait(); logf.Close(); close(c.done) }()
	t.Cleanup(func() {
		c.kill()
		if t.Failed() {
			b, _ := os.ReadFile(c.log)
			t.Logf("%s log:\n%s", filepath.Base(name), b)
		}
	})
	return c
}

// kill ends the process with SIGKILL and waits until it is gone; it does
// nothing to a process already gone.
func (c *child) kill() {
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.done
}

// proxyChild is `hotrow proxy` run as a child process.
type proxyChild struct {
	*child
	addr string
	bin  string
	db   *testdb.DB
	args []string
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
	c := startProcess(t, bin, append([]string{"proxy", "--listen", addr, "--backend", db.Addr,
		"--user", db.User + ":" + db.Password, "--log-level", "warn"}, args...)...)
	waitLogin(t, db, addr, "the proxy")
	return &proxyChild{child: c, addr: addr, bin: bin, db: db, args: args}
}

// restart starts the proxy again, on the same address with the same
// flags, once it has ended.
func (c *proxyChild) restart(t *testing.T) *proxyChild {
	t.Helper()
	return startChild(t, c.bin, c.addr, c.db, c.args...)
}

// waitLogin waits until a client logs in to db through what, on addr.
func waitLogin(t *testing.T, db *testdb.DB, addr, what string) {
	t.Helper()
	testdb.WaitFor(t, 30*time.Second, what+" to accept a login", func() bool {
		pool, err := sql.Open("mysql", clientDSN(db, addr))
		if err != nil {
			return false
		}
		defer pool.Close()
		return pool.Ping() == nil
	})
}

func clientDSN(db *testdb.DB, addr string) string {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = db.User, db.Password, "tcp", addr, db.Name
	cfg.Timeout = 5 * time.Second
	cfg.InterpolateParams = true
	return cfg.FormatDSN()
}

// saleResult is what one client saw of its deductions in one session.
type saleResult struct {
	connID    int
	ok        int       // OK, one row affected: told it got the item
	okNone    int       // OK, no row affected: told it is sold out (ends the session)
	soldOutAt time.Time // when told sold out
	failed    int       // an error: the outcome is unknown to it, as with a lost direct connection
	lastError error
}

// sale is a hot row many clients buy from, through one or more proxies.
// A client buys one item at a time on one connection (a session) until
// it is told sold out, stop, or an error; with reconnect it then goes on
// in a new session (not after sold out), and it ends a session after
// perConn OKs when perConn > 0, pausing think after each purchase.
type sale struct {
	db    *testdb.DB
	meta  string
	root  *sql.DB
	stock int

	reconnect bool
	perConn   int
	think     time.Duration

	granted atomic.Int64 // OKs told so far, over all clients

	// onExec, when set, sees each deduction's start and error (buyers
	// call it concurrently).
	onExec func(start time.Time, err error)

	// sold counts the deductions sellOn was told OK of.
	sold int
	// flags are more flags for every proxy instance (proxyArgs).
	flags []string
}

func newSale(t *testing.T, stock int) *sale {
	t.Helper()
	return newSaleIn(t, testdb.New(t), stock)
}

// newSaleIn is newSale on the database db.
func newSaleIn(t *testing.T, db *testdb.DB, stock int) *sale {
	t.Helper()
	s := &sale{db: db, meta: db.Name + "_meta", root: db.Open(t), stock: stock}
	t.Cleanup(func() { _, _ = s.root.Exec("DROP DATABASE IF EXISTS `" + s.meta + "`") })
	db.Exec(t, "CREATE TABLE inventory (sku_id BIGINT PRIMARY KEY, stock BIGINT UNSIGNED NOT NULL)",
		fmt.Sprintf("INSERT INTO inventory VALUES (1, %d)", stock))
	return s
}

// proxyArgs are the flags of a proxy instance id selling s's row.
func (s *sale) proxyArgs(id string) []string {
	return append([]string{"--hot-rule", s.db.Name + ".inventory:sku_id:stock", "--meta-schema", s.meta, "--instance-id", id}, s.flags...)
}

// buy is one session of a client through addr (see sale); started is
// called once, after its first answer or at its end.
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
		start := time.Now()
		res, err := conn.ExecContext(ctx, "UPDATE inventory SET stock = stock - 1 WHERE sku_id = 1 AND stock >= 1")
		if s.onExec != nil {
			s.onExec(start, err)
		}
		if err != nil {
			r.failed, r.lastError = 1, err
			return r
		}
		if n, _ := res.RowsAffected(); n != 1 {
			r.okNone, r.soldOutAt = 1, time.Now()
			return r
		}
		r.ok++
		s.granted.Add(1)
		if first {
			first = false
			started()
		}
		if s.perConn > 0 && r.ok >= s.perConn {
			return r
		}
		time.Sleep(s.think)
	}
}

// client runs the sessions of one client through addr (see sale);
// started is called after its first answer or at its end.
func (s *sale) client(addr string, stop <-chan struct{}, started func()) []saleResult {
	started = sync.OnceFunc(started)
	var rs []saleResult
	for {
		r := s.buy(addr, stop, started)
		rs = append(rs, r)
		select {
		case <-stop:
			return rs
		default:
		}
		if !s.reconnect || r.okNone > 0 {
			return rs
		}
		time.Sleep(s.think)
	}
}

// run starts clients buyers, client i through addr(i), and returns the
// results of their sessions once every client ended (see sale); midSale
// runs once every buyer has had an answer (or failed).
func (s *sale) run(clients int, addr func(i int) string, midSale func(), stop <-chan struct{}) []saleResult {
	var results []saleResult
	var mu sync.Mutex
	var wg sync.WaitGroup
	var started sync.WaitGroup
	started.Add(clients)
	for i := range clients {
		wg.Go(func() {
			rs := s.client(addr(i), stop, started.Done)
			mu.Lock()
			defer mu.Unlock()
			results = append(results, rs...)
		})
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
	testdb.WaitEvery(t, 30*time.Second, 150*time.Millisecond, "the dead proxy's transactions to end", func() bool {
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
// none); nobody was told "sold out" with stock left (at the end, or
// granted after the answer); a client that failed got an error, not a
// success. It returns the ledger's row count.
func (s *sale) check(t *testing.T, phase string, results []saleResult) int {
	t.Helper()
	var left, ledger int
	var lastGrant int64 // µs since the epoch, the server's clock (this machine's)
	if err := s.root.QueryRow("SELECT stock FROM inventory WHERE sku_id = 1").Scan(&left); err != nil {
		t.Fatal(err)
	}
	if err := s.root.QueryRow("SELECT COUNT(*), COALESCE(CAST(UNIX_TIMESTAMP(MAX(created_at)) * 1000000 AS SIGNED), 0) FROM `"+s.meta+"`.ledger WHERE table_schema = ? AND key_value = '1'",
		s.db.Name).Scan(&ledger, &lastGrant); err != nil {
		t.Fatal(err)
	}
	ok, failed := sum(results)
	ok += s.sold
	if deducted := s.stock - left; deducted < ok || deducted > ok+failed || ledger > deducted {
		t.Errorf("%s: %d deducted, %d told OK, %d in flight, %d ledger rows", phase, deducted, ok, failed, ledger)
	}
	for _, r := range results {
		if r.okNone > 0 && (left > 0 || r.soldOutAt.UnixMicro() <= lastGrant) {
			t.Errorf("%s: client %d was told sold out at %s with stock left (%d at the end, the last granted at %s)",
				phase, r.connID, r.soldOutAt.Format(time.StampMicro), left, time.UnixMicro(lastGrant).Format(time.StampMicro))
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

// startInstances starts one proxy instance selling s's row per id, each
// on a free loopback port.
func (s *sale) startInstances(t *testing.T, bin string, ids ...string) []*proxyChild {
	t.Helper()
	cs := make([]*proxyChild, len(ids))
	for i, id := range ids {
		cs[i] = startChild(t, bin, freeAddr(t), s.db, s.proxyArgs(id)...)
	}
	return cs
}

// logLedgerGaps logs where the ledger of row 1 does not count down one
// unit per row from the sale's stock to left: each stock_after missing or
// repeated, with the ledger rows around it (which batch, instance and
// moment), and the sale's ledger rows by table and key, to find a
// deduction that has no ledger row or a row that has no deduction.
func (s *sale) logLedgerGaps(t *testing.T, left int) {
	t.Helper()
	rows, err := s.root.Query("SELECT batch_id, seq, CAST(stock_after AS SIGNED), conn_id, created_at FROM `"+s.meta+"`.ledger"+
		" WHERE table_schema = ? AND key_value = '1' ORDER BY CAST(stock_after AS SIGNED) DESC, created_at", s.db.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	type ledgerRow struct {
		batch, at      string
		seq, after, by int
	}
	var all []ledgerRow
	for rows.Next() {
		var r ledgerRow
		if err := rows.Scan(&r.batch, &r.seq, &r.after, &r.by, &r.at); err != nil {
			t.Fatal(err)
		}
		all = append(all, r)
	}
	want, gaps := s.stock-1, 0
	for i, r := range all {
		if r.after != want {
			if gaps++; gaps <= 10 {
				lo, hi := max(i-3, 0), min(i+3, len(all))
				t.Logf("ledger: stock_after %d where %d was next; rows around it: %+v", r.after, want, all[lo:hi])
			}
		}
		want = r.after - 1
	}
	if gaps > 10 {
		t.Logf("ledger: %d places in all where it does not count down by one (the first 10 above)", gaps)
	}
	if want != left-1 {
		t.Logf("ledger: ends at stock_after %d, want %d", want+1, left)
	}
	// A row of another key or table would also be missing from the count.
	var keys []string
	byKey, err := s.root.Query("SELECT CONCAT(table_name, ':', key_value, ' ', COUNT(*)) FROM `"+s.meta+"`.ledger WHERE table_schema = ? GROUP BY table_name, key_value", s.db.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer byKey.Close()
	for byKey.Next() {
		var k string
		if err := byKey.Scan(&k); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	t.Logf("ledger rows by table and key: %v", keys)
}

// ledgerRows counts the ledger rows of s's row by instance and process:
// rows[id][i] are those of the i-th process (by its first row) of instance
// id that wrote any. A batch id is the instance id, the process's start
// time and a counter, joined by '-'.
func (s *sale) ledgerRows(t *testing.T, ids ...string) map[string][]int {
	t.Helper()
	rows := make(map[string][]int, len(ids))
	for _, id := range ids {
		res, err := s.root.Query("SELECT COUNT(*) FROM `"+s.meta+"`.ledger WHERE table_schema = ? AND key_value = '1' AND LEFT(batch_id, ?) = ?"+
			" GROUP BY SUBSTRING_INDEX(SUBSTR(batch_id, ?), '-', 1) ORDER BY MIN(created_at)", s.db.Name, len(id)+1, id+"-", len(id)+2)
		if err != nil {
			t.Fatal(err)
		}
		for res.Next() {
			var n int
			if err := res.Scan(&n); err != nil {
				t.Fatal(err)
			}
			rows[id] = append(rows[id], n)
		}
		if err := res.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return rows
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
		child.kill()
	}, nil)
	s.settle(t)
	child.restart(t) // recovery of its own batches runs at start
	ledger := s.check(t, "after the crash", results)
	ok, failed := sum(results)
	t.Logf("%d clients: %d told OK, %d in flight at the kill; %d ledger rows (the others ran alone)",
		clients, ok, failed, ledger)
	s.sellOn(t, addr, 10)
	s.check(t, "after the restart", results)
}
