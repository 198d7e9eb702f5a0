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

	driver "github.com/go-sql-driver/mysql"

	"github.com/hotrow/hotrow/internal/testdb"
	"github.com/hotrow/hotrow/merger"
)

// startHotProxy starts a proxy whose hot rule covers db.inventory, with a
// real merger on the test server writing its ledger to a per-test meta
// schema. It returns the proxy and the merger.
func startHotProxy(t *testing.T, db *testdb.DB) (*testProxy, *merger.Merger, string) {
	t.Helper()
	meta := db.Name + "_meta"
	t.Cleanup(func() {
		root, err := sql.Open("mysql", db.Server.DSN(""))
		if err == nil {
			_, _ = root.Exec("DROP DATABASE IF EXISTS `" + meta + "`")
			root.Close()
		}
	})
	mc := merger.DefaultConfig()
	mc.DSN, mc.MetaSchema = db.Server.DSN(""), meta
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
	r, err := merger.ParseRule(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func ledgerRows(t *testing.T, conn *sql.DB, meta string) int {
	t.Helper()
	var n int
	if err := conn.QueryRow("SELECT COUNT(*) FROM `" + meta + "`.ledger").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestHotRowMixedClients: text-mode and prepared-mode clients hammer one
// row through the proxy; exactly the stock is granted, the ledger has a
// row per grant, and the requests were merged into fewer batches.
func TestHotRowMixedClients(t *testing.T) {
	db := testdb.New(t)
	db.Exec(t, "CREATE TABLE inventory (sku_id BIGINT PRIMARY KEY, stock INT NOT NULL)",
		"INSERT INTO inventory VALUES (1, 300), (2, 1000)")
	p, m, meta := startHotProxy(t, db)
	text := open(t, db, p.Addr, func(c *driver.Config) { c.InterpolateParams = true })
	prepared := open(t, db, p.Addr)
	const clients, each = 32, 20 // demand 640 > stock 300
	var wg sync.WaitGroup
	granted := make(chan int64, clients)
	errs := make(chan error, clients)
	for i := range clients {
		conn := text
		if i%2 == 1 {
			conn = prepared
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
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
		}()
	}
	wg.Wait()
	close(granted)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var total int64
	for g := range granted {
		total += g
	}
	direct := db.Open(t)
	var stock int64
	if err := direct.QueryRow("SELECT stock FROM inventory WHERE sku_id = 1").Scan(&stock); err != nil {
		t.Fatal(err)
	}
	if total != 300 || stock != 0 {
		t.Fatalf("granted %d, stock left %d; want 300 and 0", total, stock)
	}
	if n := ledgerRows(t, direct, meta); n != 300 {
		t.Fatalf("ledger rows %d, want 300", n)
	}
	st := m.Stats()
	if st.Requests != clients*each {
		t.Fatalf("merger saw %d requests, want %d", st.Requests, clients*each)
	}
	if st.Batches >= st.Requests {
		t.Fatalf("no merging: %d batches for %d requests", st.Batches, st.Requests)
	}
	t.Logf("%d requests in %d batches (fast %d, lone %d, general %d)", st.Requests, st.Batches, st.FastPath, st.LonePath, st.GeneralPath)
}

// TestHotRowSerialOutcomes runs the same statements one by one through
// the proxy (merged) and directly on a twin table, and compares every
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
	for _, foundRows := range []bool{false, true} {
		t.Run(fmt.Sprintf("found_rows=%v", foundRows), func(t *testing.T) {
			db.Exec(t, "UPDATE inventory SET stock = 5 WHERE sku_id = 1", "UPDATE inventory SET stock = 0, note = '' WHERE sku_id = 2",
				"UPDATE twin SET stock = 5 WHERE sku_id = 1", "UPDATE twin SET stock = 0, note = '' WHERE sku_id = 2")
			opt := func(c *driver.Config) { c.ClientFoundRows = foundRows }
			viaProxy := open(t, db, p.Addr, opt)
			direct := open(t, db, db.Addr, opt)
			before := m.Stats().Requests
			for _, q := range stmts {
				got := outcome(viaProxy, q)
				want := outcome(direct, strings.Replace(q, "inventory", "twin", 1))
				if got != want {
					t.Errorf("%s\n proxy:  %s\n direct: %s", q, got, want)
				}
				t.Logf("%s: %s", q, got)
			}
			if n := m.Stats().Requests - before; n != uint64(len(stmts)) {
				t.Errorf("merger ran %d of %d statements", n, len(stmts))
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

// outcome runs q and describes what the client saw.
func outcome(conn *sql.DB, q string) string {
	res, err := conn.Exec(q)
	if err != nil {
		var me *driver.MySQLError
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

// TestHotRowNotMerged: inside a transaction, after a sql_mode change, or
// from a user other than the merge user, hot statements pass through.
func TestHotRowNotMerged(t *testing.T) {
	db := testdb.New(t)
	db.Exec(t, "CREATE TABLE inventory (sku_id BIGINT PRIMARY KEY, stock INT NOT NULL)",
		"INSERT INTO inventory VALUES (1, 100)")
	p, m, meta := startHotProxy(t, db)
	ctx := context.Background()
	conn, err := open(t, db, p.Addr).Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const hot = "UPDATE inventory SET stock = stock - 1 WHERE sku_id = 1 AND stock >= 1"
	for _, q := range []string{"BEGIN", hot, "COMMIT", "SET SESSION sql_mode = 'STRICT_ALL_TABLES'", hot} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if n := m.Stats().Requests; n != 0 {
		t.Fatalf("merger ran %d statements, want 0", n)
	}
	direct := db.Open(t)
	if n := ledgerRows(t, direct, meta); n != 0 {
		t.Fatalf("ledger has %d rows for pass-through statements", n)
	}
	var stock int
	_ = direct.QueryRow("SELECT stock FROM inventory WHERE sku_id = 1").Scan(&stock)
	if stock != 98 {
		t.Fatalf("stock %d, want 98", stock)
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
	got, want := run(p.Addr), run(db.Addr)
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
