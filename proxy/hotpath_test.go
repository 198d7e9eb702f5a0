package proxy

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/hotrow/hotrow/internal/testdb"
	"github.com/hotrow/hotrow/merger"
	"github.com/hotrow/hotrow/schema"
)

// startHotProxy starts a proxy whose hot rule covers db.inventory, with a
// real merger on the test server writing its ledger to a per-test meta
// schema. It returns the proxy and the merger. Every claimable UPDATE of
// a transaction is a claim (merger.Config.ClaimUncontended, the default),
// as the tests of claims want; startHotProxyWith tunes the merger's
// configuration.
func startHotProxy(t *testing.T, db *testdb.DB) (*testProxy, *merger.Merger, string) {
	t.Helper()
	return startHotProxyWith(t, db, func(mc *merger.Config) { mc.ClaimUncontended = true })
}

func startHotProxyWith(t *testing.T, db *testdb.DB, tune func(*merger.Config)) (*testProxy, *merger.Merger, string) {
	t.Helper()
	meta := db.Sibling(t, "_meta")
	mc := merger.DefaultConfig()
	mc.DSN, mc.MetaSchema = db.Server.DSN(""), meta
	tune(&mc)
	m, err := merger.New(context.Background(), mc, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	rule := db.Name + ".inventory:sku_id:stock"
	rules := []merger.Rule{mustRule(t, rule)}
	cfg := DefaultConfig()
	cfg.Backend = db.Addr
	cfg.Users = []User{{Name: db.User, Password: db.Password}}
	cfg.HotRules = []string{rule}
	p := serveProxy(t, cfg, db, &HotPath{Matcher: merger.NewMatcher(rules), Executor: m})
	return p, m, meta
}

func mustRule(t *testing.T, s string) merger.Rule {
	t.Helper()
	r, err := schema.ParseRule(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// idle waits until m has no table busy: a statement run alone is counted
// just after its client heard the answer.
func idle(t *testing.T, m *merger.Merger) {
	t.Helper()
	testdb.WaitFor(t, 5*time.Second, "the merger to be idle", func() bool { return len(m.Stats().Tables) == 0 })
}

func ledgerRows(t *testing.T, conn *sql.DB, meta string) int {
	t.Helper()
	var n int
	if err := conn.QueryRow("SELECT COUNT(*) FROM `" + meta + "`.ledger").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// sellConcurrently runs clients buyers, text and prepared by turns, each
// deducting one unit of sku 1 each times, and returns the units granted.
func sellConcurrently(t *testing.T, text, prepared *sql.DB, clients, each int) (total int64) {
	t.Helper()
	granted := make(chan int64, clients)
	errs := make(chan error, clients)
	var wg sync.WaitGroup
	for i := range clients {
		conn := text
		if i%2 == 1 {
			conn = prepared
		}
		wg.Go(func() {
			var mine int64
			for range each {
				res, err := conn.Exec("UPDATE inventory SET stock = stock - ? WHERE sku_id = ? AND stock >= ?", 1, 1, 1)
				if err != nil {
					errs <- err
					return
				}
				n, _ := res.RowsAffected()
				mine += n
			}
			granted <- mine
		})
	}
	wg.Wait()
	close(granted)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for g := range granted {
		total += g
	}
	return total
}

// TestHotRowMixedClients: text-mode and prepared-mode clients hammer one
// row through the proxy; exactly the stock is granted, the ledger has a
// row per grant but those of statements run alone on their client's
// connection, and the requests were merged into fewer batches.
func TestHotRowMixedClients(t *testing.T) {
	db := testdb.New(t)
	db.Exec(t, "CREATE TABLE inventory (sku_id BIGINT PRIMARY KEY, stock INT NOT NULL)",
		"INSERT INTO inventory VALUES (1, 300), (2, 1000)")
	p, m, meta := startHotProxy(t, db)
	text := open(t, db, p.addr, func(c *mysql.Config) { c.InterpolateParams = true })
	prepared := open(t, db, p.addr)
	const clients, each = 32, 20 // demand 640 > stock 300
	total := sellConcurrently(t, text, prepared, clients, each)
	direct := db.Open(t)
	var stock int64
	if err := direct.QueryRow("SELECT stock FROM inventory WHERE sku_id = 1").Scan(&stock); err != nil {
		t.Fatal(err)
	}
	if total != 300 || stock != 0 {
		t.Fatalf("granted %d, stock left %d; want 300 and 0", total, stock)
	}
	idle(t, m)
	st := m.Stats()
	if n := ledgerRows(t, direct, meta); n != 300-int(st.AloneGranted) {
		t.Fatalf("ledger rows %d, want 300 - %d granted alone", n, st.AloneGranted)
	}
	if st.Requests != clients*each {
		t.Fatalf("merger saw %d requests, want %d", st.Requests, clients*each)
	}
	if st.Batches >= st.Requests {
		t.Fatalf("no merging: %d batches for %d requests", st.Batches, st.Requests)
	}
	t.Logf("%d requests in %d batches (fast %d, lone %d of which %d alone, general %d)", st.Requests, st.Batches, st.FastPath, st.LonePath, st.Alone, st.GeneralPath)
}

// TestHotRowSerialOutcomes runs the same statements one by one through
// the proxy (each alone: on the session's own connection) and directly on
// a twin table, in text and prepared form, and compares every
// client-visible outcome: affected rows with and without
// CLIENT_FOUND_ROWS, errors and the final row.
func TestHotRowSerialOutcomes(t *testing.T) {
	db := testdb.New(t)
	db.Exec(t,
		"CREATE TABLE inventory (sku_id BIGINT PRIMARY KEY, stock INT UNSIGNED NOT NULL, note VARCHAR(10) NOT NULL DEFAULT '')",
		"INSERT INTO inventory VALUES (1, 5, ''), (2, 0, '')",
		"CREATE TABLE twin LIKE inventory",
		"INSERT INTO twin SELECT * FROM inventory")
	p, m, _ := startHotProxy(t, db)
	stmts := []string{
		"UPDATE inventory SET stock = stock - 2 WHERE sku_id = 1 AND stock >= 2",
		"UPDATE inventory SET stock = stock - 4 WHERE sku_id = 1 AND stock >= 4",
		"UPDATE inventory SET stock = stock - 0 WHERE sku_id = 1",
		"UPDATE inventory SET stock = stock - 1 WHERE sku_id = 99 AND stock >= 1",
		"UPDATE inventory SET stock = stock - 9 WHERE sku_id = 1",
		"UPDATE inventory SET stock = stock - 1 WHERE sku_id = 2 AND stock > 0",
		"UPDATE inventory SET stock = stock + 10 WHERE sku_id = 2",
		"UPDATE inventory SET stock = stock - 3, note = 'x' WHERE sku_id = 2 AND stock >= 3",
		"UPDATE inventory SET stock = stock - 3, note = 'x' WHERE sku_id = 2 AND stock >= 3",
		"UPDATE inventory SET stock = stock - 20 WHERE sku_id = 2 AND stock - 20 >= 0",
	}
	for _, c := range []struct{ foundRows, prepared bool }{{false, false}, {true, false}, {false, true}, {true, true}} {
		foundRows := c.foundRows
		t.Run(fmt.Sprintf("found_rows=%v,prepared=%v", foundRows, c.prepared), func(t *testing.T) {
			db.Exec(t, "UPDATE inventory SET stock = 5 WHERE sku_id = 1", "UPDATE inventory SET stock = 0, note = '' WHERE sku_id = 2",
				"UPDATE twin SET stock = 5 WHERE sku_id = 1", "UPDATE twin SET stock = 0, note = '' WHERE sku_id = 2")
			opt := func(c *mysql.Config) { c.ClientFoundRows = foundRows }
			viaProxy := open(t, db, p.addr, opt)
			direct := open(t, db, db.Addr, opt)
			before, aloneBefore := m.Stats().Requests, m.Stats().Alone
			for _, q := range stmts {
				got := outcome(viaProxy, q, c.prepared)
				want := outcome(direct, strings.Replace(q, "inventory", "twin", 1), c.prepared)
				if got != want {
					t.Errorf("%s\n proxy:  %s\n direct: %s", q, got, want)
				}
				t.Logf("%s: %s", q, got)
			}
			idle(t, m)
			if n, alone := m.Stats().Requests-before, m.Stats().Alone-aloneBefore; n != uint64(len(stmts)) || alone != n {
				t.Errorf("merger ran %d of %d statements, %d alone", n, len(stmts), alone)
			}
			var a, b string
			_ = direct.QueryRow("SELECT GROUP_CONCAT(sku_id, ':', stock, ':', note ORDER BY sku_id) FROM inventory").Scan(&a)
			_ = direct.QueryRow("SELECT GROUP_CONCAT(sku_id, ':', stock, ':', note ORDER BY sku_id) FROM twin").Scan(&b)
			if a != b {
				t.Errorf("final rows differ: proxy %s, direct %s", a, b)
			}
		})
	}
}

// outcome runs q, as text or as a prepared statement, and describes what
// the client saw.
func outcome(conn *sql.DB, q string, prepared bool) string {
	exec := conn.Exec
	if prepared {
		exec = func(q string, _ ...any) (sql.Result, error) {
			st, err := conn.Prepare(q)
			if err != nil {
				return nil, err
			}
			defer st.Close()
			return st.Exec()
		}
	}
	res, err := exec(q)
	if err != nil {
		var me *mysql.MySQLError
		if errors.As(err, &me) {
			// The twin table's name is the only expected difference.
			msg := strings.ReplaceAll(me.Message, "twin", "inventory")
			return fmt.Sprintf("error %d (%s): %s", me.Number, string(me.SQLState[:]), msg)
		}
		return "error " + err.Error()
	}
	n, _ := res.RowsAffected()
	return fmt.Sprintf("affected %d", n)
}

// TestHotRowNotMerged: hot statements pass through, with the server's own
// outcome, inside a transaction and after session state changes that merged
// batches could not follow; harmless settings keep merging.
func TestHotRowNotMerged(t *testing.T) {
	db := testdb.New(t)
	db.Exec(t, "CREATE TABLE inventory (sku_id BIGINT PRIMARY KEY, stock INT UNSIGNED NOT NULL)")
	p, m, meta := startHotProxy(t, db)
	direct := db.Open(t)
	const hot = "UPDATE inventory SET stock = stock - 1 WHERE sku_id = 1 AND stock >= 1"
	tests := []struct {
		name     string
		setup    []string // run on the session before the hot statement
		prepared bool     // run setup as server-side prepared statements
		merged   bool
		claim    bool // merged as a claim (with a ledger row); else alone
		stock    int  // after the hot statement
		errCode  uint16
	}{
		{name: "autocommit", merged: true, stock: 99},
		{name: "harmless settings", setup: []string{"SET NAMES utf8mb4", "SET autocommit = 1, @x = 5", "SELECT @@sql_mode, @@read_only"}, merged: true, stock: 99},
		{name: "in transaction (a claim)", setup: []string{"BEGIN"}, merged: true, claim: true, stock: 99},
		{name: "in transaction after a locking read", setup: []string{"BEGIN", "SELECT stock FROM inventory WHERE sku_id = 1 FOR UPDATE"}, stock: 99},
		{name: "in transaction after a locking read prepared", setup: []string{"BEGIN", "SELECT stock FROM inventory WHERE sku_id = 1 FOR UPDATE"}, prepared: true, stock: 99},
		{name: "sql_mode", setup: []string{"SET SESSION sql_mode = 'NO_UNSIGNED_SUBTRACTION'"}, stock: 99},
		{name: "sql_mode prepared", setup: []string{"SET SESSION sql_mode = 'NO_UNSIGNED_SUBTRACTION'"}, prepared: true, stock: 99},
		{name: "sql_mode in multi-statement", setup: []string{"SELECT 1; SET sql_mode = ''"}, stock: 99},
		{name: "temporary table shadows", setup: []string{"CREATE TEMPORARY TABLE inventory (sku_id BIGINT PRIMARY KEY, stock INT UNSIGNED NOT NULL)", "INSERT INTO inventory VALUES (1, 5)"}, stock: 100},
		{name: "temporary table prepared", setup: []string{"CREATE TEMPORARY TABLE inventory (sku_id BIGINT PRIMARY KEY, stock INT UNSIGNED NOT NULL)", "INSERT INTO inventory VALUES (1, 5)"}, prepared: true, stock: 100},
		{name: "read only", setup: []string{"SET SESSION TRANSACTION READ ONLY"}, stock: 100, errCode: 1792},
		{name: "lock tables", setup: []string{"LOCK TABLES inventory WRITE"}, stock: 99},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := direct.Exec("REPLACE INTO inventory VALUES (1, 100)"); err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			conn, err := open(t, db, p.addr, func(c *mysql.Config) { c.MultiStatements = true }).Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			for _, q := range tt.setup {
				if tt.prepared {
					st, err := conn.PrepareContext(ctx, q)
					if err == nil {
						_, err = st.ExecContext(ctx)
						st.Close()
					}
					if err != nil {
						t.Fatalf("%s: %v", q, err)
					}
				} else if _, err := conn.ExecContext(ctx, q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			before, ledgerBefore, aloneBefore := m.Stats().Requests, ledgerRows(t, direct, meta), m.Stats().Alone
			_, err = conn.ExecContext(ctx, hot)
			var me *mysql.MySQLError
			switch {
			case tt.errCode != 0 && (!errors.As(err, &me) || me.Number != tt.errCode):
				t.Fatalf("got %v, want error %d", err, tt.errCode)
			case tt.errCode == 0 && err != nil:
				t.Fatal(err)
			}
			_, _ = conn.ExecContext(ctx, "COMMIT")
			_, _ = conn.ExecContext(ctx, "UNLOCK TABLES")
			if merged := m.Stats().Requests != before; merged != tt.merged {
				t.Fatalf("merged = %v, want %v", merged, tt.merged)
			}
			if grew := ledgerRows(t, direct, meta) != ledgerBefore; grew != tt.claim {
				t.Fatalf("ledger grew = %v, want %v", grew, tt.claim)
			}
			if alone := m.Stats().Alone != aloneBefore; alone != (tt.merged && !tt.claim) {
				t.Fatalf("ran alone = %v, want %v", alone, tt.merged && !tt.claim)
			}
			var stock int
			if err := direct.QueryRow("SELECT stock FROM inventory WHERE sku_id = 1").Scan(&stock); err != nil {
				t.Fatal(err)
			}
			if stock != tt.stock {
				t.Fatalf("stock %d, want %d", stock, tt.stock)
			}
		})
	}
}

// TestHotRowCLI: the mariadb client prints the same for a merged UPDATE
// as for the server's own.
func TestHotRowCLI(t *testing.T) {
	cli, err := exec.LookPath("mariadb")
	if err != nil {
		t.Skip("mariadb CLI not installed")
	}
	db := testdb.New(t)
	db.Exec(t, "CREATE TABLE inventory (sku_id BIGINT PRIMARY KEY, stock INT NOT NULL)",
		"INSERT INTO inventory VALUES (1, 100)")
	p, m, _ := startHotProxy(t, db)
	run := func(addr string) string {
		t.Helper()
		host, port := splitAddr(t, addr)
		cmd := exec.Command(cli, "--no-defaults", "-h", host, "-P", port, "-u", db.User, "-p"+db.Password, "-vvv", db.Name,
			"-e", "UPDATE inventory SET stock = stock - 1 WHERE sku_id = 1 AND stock >= 1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("mariadb: %v\n%s", err, out)
		}
		return timingRE.ReplaceAllString(string(out), "(N sec)")
	}
	got, want := run(p.addr), run(db.Addr)
	if got != want {
		t.Fatalf("through proxy:\n%s\ndirect:\n%s", got, want)
	}
	if m.Stats().Requests != 1 {
		t.Fatal("the CLI's UPDATE was not merged")
	}
}

// timingRE matches the timings the mariadb CLI prints.
var timingRE = regexp.MustCompile(`\(\d+\.\d+ sec\)`)

func splitAddr(t *testing.T, addr string) (host, port string) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return host, port
}

// TestMergeableParams: prepared parameters the merger could not bind with
// the client's exact semantics make the execution pass through.
func TestMergeableParams(t *testing.T) {
	lenenc := func(s string) []byte { return append([]byte{byte(len(s))}, s...) }
	tests := []struct {
		name string
		typ  byte
		val  []byte
		ok   bool
	}{
		{"bigint", 0x08, []byte{5, 0, 0, 0, 0, 0, 0, 0}, true},
		{"ascii string", 0xfe, lenenc("sku-1"), true},
		{"decimal", 0xf6, lenenc("1.5"), false},
		{"latin1 string", 0xfe, lenenc("caf\xe9"), false},
		{"datetime", 0x0c, []byte{0}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, ok := decodeBinaryValue(tt.typ, false, tt.val); ok != tt.ok {
				t.Fatalf("decoded = %v, want %v", ok, tt.ok)
			}
		})
	}
}

// TestHotRowClientGoneWhileQueued: a client that disconnects while its
// statement waits for a batch is dropped from the batch; the statement
// of a client still there (run alone, so without a ledger row) is
// applied.
func TestHotRowClientGoneWhileQueued(t *testing.T) {
	db := testdb.New(t)
	db.Exec(t, "CREATE TABLE inventory (sku_id BIGINT PRIMARY KEY, stock INT NOT NULL)",
		"INSERT INTO inventory VALUES (1, 100)")
	p, m, meta := startHotProxy(t, db)
	ctx := context.Background()
	// Hold the row so that the first statement, run alone, waits.
	holder := lockRow(t, db)
	const hot = "UPDATE inventory SET stock = stock - 1 WHERE sku_id = 1 AND stock >= 1"
	first := make(chan error, 1)
	go func() { _, err := open(t, db, p.addr).Exec(hot); first <- err }()
	testdb.WaitFor(t, 5*time.Second, "first statement running alone", func() bool { return m.Stats().Requests == 0 && m.Stats().Queued == 0 && len(m.Stats().Tables) == 1 })
	leaving, cancel := context.WithCancel(ctx)
	second := make(chan error, 1)
	go func() { _, err := open(t, db, p.addr).ExecContext(leaving, hot); second <- err }()
	testdb.WaitFor(t, 5*time.Second, "second statement queued", func() bool { return m.Stats().Queued == 1 })
	cancel() // go-sql-driver closes the connection
	if err := <-second; err == nil {
		t.Fatal("cancelled statement reported success")
	}
	// The merger asks whether a client is gone once its request waited
	// 20 ms: younger ones are applied, as a server applies a statement
	// whose client left right after sending it.
	time.Sleep(40 * time.Millisecond)
	if _, err := holder.ExecContext(ctx, "COMMIT"); err != nil {
		t.Fatal(err)
	}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	direct := db.Open(t)
	testdb.WaitFor(t, 5*time.Second, "the queued statement to be dropped", func() bool { return m.Stats().Dropped == 1 })
	var stock int
	if err := direct.QueryRow("SELECT stock FROM inventory WHERE sku_id = 1").Scan(&stock); err != nil {
		t.Fatal(err)
	}
	if stock != 99 || ledgerRows(t, direct, meta) != 0 || m.Stats().AloneGranted != 1 {
		t.Fatalf("stock %d, ledger %d rows, %d granted alone; want 99, 0 and 1", stock, ledgerRows(t, direct, meta), m.Stats().AloneGranted)
	}
}

// TestShutdownCancelsQueuedMerges: at the drain deadline, a session whose
// merged statement still waits in the merger's queue (its hot row locked
// by a direct transaction, a statement running alone before it) is
// released with an error and its statement never applied, even though
// the end of the statement before it frees the queue at the same moment;
// the statement running alone, already on the server, is applied once
// the row is free (as a direct client's would be after its connection
// closed), and Shutdown returns within the drain timeout and a small
// margin.
func TestShutdownCancelsQueuedMerges(t *testing.T) {
	db := testdb.New(t)
	db.Exec(t, "CREATE TABLE inventory (sku_id BIGINT PRIMARY KEY, stock INT NOT NULL)",
		"INSERT INTO inventory VALUES (1, 100)")
	p, m, meta := startHotProxy(t, db)
	ctx := context.Background()
	holder := lockRow(t, db)
	const hot = "UPDATE inventory SET stock = stock - 1 WHERE sku_id = 1 AND stock >= 1"
	first, second := open(t, db, p.addr), open(t, db, p.addr)
	inBatch, queued := make(chan error, 1), make(chan error, 1)
	go func() { _, err := first.Exec(hot); inBatch <- err }()
	testdb.WaitFor(t, 5*time.Second, "first statement running alone", func() bool {
		s := m.Stats()
		return s.Requests == 0 && s.Queued == 0 && len(s.Tables) == 1
	})
	go func() { _, err := second.Exec(hot); queued <- err }()
	testdb.WaitFor(t, 5*time.Second, "second statement queued", func() bool { return m.Stats().Queued == 1 })

	const drain = 300 * time.Millisecond
	const margin = 2 * time.Second
	start := time.Now()
	shut := make(chan error, 1)
	go func() {
		dctx, cancel := context.WithTimeout(ctx, drain)
		defer cancel()
		shut <- p.Shutdown(dctx)
	}()
	select {
	case err := <-queued:
		if err == nil {
			t.Error("queued statement reported success after the drain deadline")
		}
		if d := time.Since(start); d < drain {
			t.Errorf("queued statement released after %v, before the drain deadline", d)
		}
	case <-time.After(drain + margin):
		t.Fatal("queued statement still blocked past the drain deadline")
	}
	// While the row is still locked, the merger has dropped it.
	testdb.WaitFor(t, margin, "the queued request to be dropped", func() bool { return m.Stats().Dropped == 1 })
	// The statement running alone is the server's: free its row.
	if _, err := holder.ExecContext(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-shut:
		if err == nil {
			t.Error("shutdown reported no error with sessions still busy at its deadline")
		}
		if d := time.Since(start); d > drain+margin {
			t.Errorf("shutdown took %v, want at most %v", d, drain+margin)
		}
	case <-time.After(drain + margin):
		t.Fatal("shutdown did not return")
	}
	<-inBatch // its client connection was closed at the deadline
	direct := db.Open(t)
	var stock int
	testdb.WaitFor(t, 5*time.Second, "the statement running alone to be applied", func() bool {
		return direct.QueryRow("SELECT stock FROM inventory WHERE sku_id = 1").Scan(&stock) == nil && stock != 100
	})
	if n := ledgerRows(t, direct, meta); stock != 99 || n != 0 {
		t.Fatalf("stock %d, ledger %d rows; want 99 and 0 (only the statement running alone applied)", stock, n)
	}
}

// lockRow holds inventory's row sku_id = 1 in an open transaction of a
// direct connection: merged batches on it wait until COMMIT on the
// returned connection (closed at cleanup).
func lockRow(t *testing.T, db *testdb.DB) *sql.Conn {
	t.Helper()
	ctx := context.Background()
	holder, err := db.Open(t).Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { holder.Close() })
	for _, q := range []string{"BEGIN", "SELECT stock FROM inventory WHERE sku_id = 1 FOR UPDATE"} {
		if _, err := holder.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	return holder
}

// TestHotRowAloneKilled: a hot UPDATE running alone on its session's
// connection, waiting for a row lock, is killed (KILL QUERY, KILL): the
// client sees what a direct client sees (the server's 1317, a lost
// connection), never a success; nothing is applied; the merger counts it
// and frees the table for the next statement.
func TestHotRowAloneKilled(t *testing.T) {
	db := testdb.New(t)
	db.Exec(t, "CREATE TABLE inventory (sku_id BIGINT PRIMARY KEY, stock INT NOT NULL)",
		"INSERT INTO inventory VALUES (1, 100)")
	p, m, _ := startHotProxy(t, db)
	root := db.Open(t)
	const hot = "UPDATE inventory SET stock = stock - 1 WHERE sku_id = 1 AND stock >= 1"
	for _, kill := range []string{"KILL QUERY", "KILL"} {
		t.Run(kill, func(t *testing.T) {
			var got [2]string
			for i, addr := range []string{db.Addr, p.addr} {
				holder := lockRow(t, db)
				c, err := open(t, db, addr).Conn(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				var id int64
				if err := c.QueryRowContext(context.Background(), "SELECT CONNECTION_ID()").Scan(&id); err != nil {
					t.Fatal(err)
				}
				res := make(chan string, 1)
				go func() {
					_, err := c.ExecContext(context.Background(), hot)
					var my *mysql.MySQLError
					switch {
					case errors.Is(err, mysql.ErrInvalidConn) || errors.As(err, &my) && my.Number == 2013:
						res <- "lost connection" // the driver's words directly, the proxy's 2013
					case err != nil:
						res <- describeErr(err)
					default:
						res <- "success"
					}
				}()
				testdb.WaitFor(t, 5*time.Second, "the UPDATE to wait for the row", func() bool {
					var n int
					_ = root.QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ? AND INFO LIKE 'UPDATE%'", id).Scan(&n)
					return n == 1
				})
				if _, err := root.Exec(fmt.Sprintf("%s %d", kill, id)); err != nil {
					t.Fatal(err)
				}
				got[i] = <-res
				_ = c.Close()
				if _, err := holder.ExecContext(context.Background(), "ROLLBACK"); err != nil {
					t.Fatal(err)
				}
			}
			if got[0] != got[1] || got[1] == "success" {
				t.Errorf("direct: %s\nproxy:  %s", got[0], got[1])
			}
			var stock int
			if err := root.QueryRow("SELECT stock FROM inventory WHERE sku_id = 1").Scan(&stock); err != nil || stock != 100 {
				t.Fatalf("stock %d (%v), want 100: nothing applied", stock, err)
			}
			idle(t, m)
		})
	}
	if s := m.Stats(); s.Alone != 2 || s.AloneGranted != 0 {
		t.Fatalf("stats %+v: want 2 alone, none granted", s)
	}
	if _, err := open(t, db, p.addr).Exec(hot); err != nil {
		t.Fatal(err)
	}
	idle(t, m)
	if s := m.Stats(); s.Alone != 3 || s.AloneGranted != 1 {
		t.Fatalf("stats %+v: want 3 alone, 1 granted", s)
	}
}

// TestHotRowAloneAndMerged: a few clients, so that statements run alone
// and in batches by turns, sell out a row: stock + granted = initial, the
// ledger holds exactly the grants made in batches, and both paths ran.
func TestHotRowAloneAndMerged(t *testing.T) {
	db := testdb.New(t)
	db.Exec(t, "CREATE TABLE inventory (sku_id BIGINT PRIMARY KEY, stock INT NOT NULL)",
		"INSERT INTO inventory VALUES (1, 400)")
	p, m, meta := startHotProxy(t, db)
	text := open(t, db, p.addr, func(c *mysql.Config) { c.InterpolateParams = true })
	prepared := open(t, db, p.addr)
	const clients, each = 4, 150 // demand 600 > stock 400
	total := sellConcurrently(t, text, prepared, clients, each)
	direct := db.Open(t)
	var stock int64
	if err := direct.QueryRow("SELECT stock FROM inventory WHERE sku_id = 1").Scan(&stock); err != nil {
		t.Fatal(err)
	}
	if stock+total != 400 || stock != 0 {
		t.Fatalf("stock %d + granted %d, want 0 + 400", stock, total)
	}
	idle(t, m)
	st := m.Stats()
	if n := ledgerRows(t, direct, meta); int64(n) != total-int64(st.AloneGranted) {
		t.Fatalf("ledger rows %d, want %d granted - %d granted alone", n, total, st.AloneGranted)
	}
	if st.Requests != clients*each || st.Alone == 0 || st.Alone == st.Requests {
		t.Fatalf("stats %+v: want %d requests, some alone, some merged", st, clients*each)
	}
	t.Logf("%d requests: %d alone (%d granted), %d batches", st.Requests, st.Alone, st.AloneGranted, st.Batches-st.Alone)
}
