package proxy

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/hotrow/hotrow/internal/testdb"
)

func TestParseInventoryHint(t *testing.T) {
	for _, tc := range []struct {
		q        string
		ok       bool
		hint     inventoryHint
		stripped string
	}{
		{"UPDATE /*+ COMMIT_ON_SUCCESS ROLLBACK_ON_FAIL TARGET_AFFECT_ROW(1) */ t SET a = a - 1 WHERE k = 1", true,
			inventoryHint{true, true, 1}, "UPDATE  t SET a = a - 1 WHERE k = 1"},
		{" update/*+ commit_on_success */ t SET a = 1;", true, inventoryHint{true, false, -1}, "UPDATE  t SET a = 1"},
		{"UPDATE /*+ TARGET_AFFECT_ROW(2) */ t SET a = 1", true, inventoryHint{false, false, 2}, "UPDATE  t SET a = 1"},
		{"UPDATE t SET a = 1 /*+ COMMIT_ON_SUCCESS */", false, inventoryHint{}, ""},
		{"UPDATE /* COMMIT_ON_SUCCESS */ t SET a = 1", false, inventoryHint{}, ""},
		{"UPDATE /*+ NO_INDEX(t) */ t SET a = 1", false, inventoryHint{}, ""},
		{"UPDATE /*+ COMMIT_ON_SUCCESS */ t SET a = 1; SELECT 1", false, inventoryHint{}, ""},
		{"SELECT /*+ COMMIT_ON_SUCCESS */ 1", false, inventoryHint{}, ""},
	} {
		h, stripped, ok := parseInventoryHint(tc.q)
		if ok != tc.ok || ok && (h != tc.hint || stripped != tc.stripped) {
			t.Errorf("%q: got %+v %q %v, want %+v %q %v", tc.q, h, stripped, ok, tc.hint, tc.stripped, tc.ok)
		}
	}
}

const hintPrefix = "UPDATE /*+ COMMIT_ON_SUCCESS ROLLBACK_ON_FAIL TARGET_AFFECT_ROW(1) */ "

// TestInventoryHint: in autocommit mode the hint is refused (7531);
// inside a transaction a granted hinted UPDATE (merged as a claim)
// commits the transaction, so a later ROLLBACK keeps the order; a refused
// one rolls it back and gets 7532; on a table that is not hot the same
// holds through pass-through.
func TestInventoryHint(t *testing.T) {
	db := testdb.New(t)
	db.Exec(t, "CREATE TABLE inventory (sku_id BIGINT PRIMARY KEY, stock INT UNSIGNED NOT NULL)", txSchema,
		"CREATE TABLE cold (id INT PRIMARY KEY, stock INT NOT NULL)",
		"INSERT INTO inventory VALUES (1, 100)", "INSERT INTO cold VALUES (1, 10)")
	p, m, meta := startHotProxy(t, db)
	direct := db.Open(t)
	ctx := context.Background()
	conn, err := open(t, db, p.addr).Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	exec := func(q string) (int64, error) {
		r, err := conn.ExecContext(ctx, q)
		if err != nil {
			return 0, err
		}
		return r.RowsAffected()
	}
	wantErr := func(err error, code uint16) {
		t.Helper()
		var me *mysql.MySQLError
		if !errors.As(err, &me) || me.Number != code {
			t.Fatalf("got %v, want error %d", err, code)
		}
	}
	count := func(q string) int {
		t.Helper()
		var n int
		if err := direct.QueryRow(q).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	hot := hintPrefix + "inventory SET stock = stock - 1 WHERE sku_id = 1 AND stock >= "

	_, err = exec(hot + "1")
	wantErr(err, erInventoryAutocommit)

	requests := m.Stats().Requests
	for _, q := range []string{"BEGIN", "INSERT INTO orders (sku_id, qty) VALUES (1, 1)"} {
		if _, err := exec(q); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := exec(hot + "1"); err != nil || n != 1 {
		t.Fatalf("hinted UPDATE: %d, %v", n, err)
	}
	if _, err := exec("ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	if m.Stats().Requests == requests {
		t.Error("the hinted UPDATE was not merged")
	}
	if n := count("SELECT COUNT(*) FROM orders"); n != 1 {
		t.Fatalf("%d orders after a hinted commit and a ROLLBACK, want 1", n)
	}
	if s := stockOf(t, direct); s != 99 {
		t.Fatalf("stock %d, want 99", s)
	}
	if n := count("SELECT COUNT(*) FROM `" + meta + "`.verdicts WHERE verdict = 'confirm'"); n != 1 {
		t.Fatalf("%d confirmed claims, want 1", n)
	}

	for _, q := range []string{"BEGIN", "INSERT INTO orders (sku_id, qty) VALUES (1, 1000)"} {
		if _, err := exec(q); err != nil {
			t.Fatal(err)
		}
	}
	_, err = exec(hot + "1000")
	wantErr(err, erInventoryMismatch)
	if _, err := exec("COMMIT"); err != nil {
		t.Fatal(err)
	}
	if n := count("SELECT COUNT(*) FROM orders"); n != 1 {
		t.Fatalf("%d orders after a refused hinted UPDATE, want 1", n)
	}

	// TARGET_AFFECT_ROW without ROLLBACK_ON_FAIL: a mismatch fails the
	// statement alone (its claim is cancelled), the transaction goes on.
	for _, q := range []string{"BEGIN", "INSERT INTO orders (sku_id, qty) VALUES (4, 1)"} {
		if _, err := exec(q); err != nil {
			t.Fatal(err)
		}
	}
	_, err = exec("UPDATE /*+ TARGET_AFFECT_ROW(2) */ inventory SET stock = stock - 1 WHERE sku_id = 1 AND stock >= 1")
	wantErr(err, erInventoryMismatch)
	w0 := time.Now()
	testdb.WaitFor(t, 10*time.Second, "the unconfirmed claim cancelled while its transaction is open", func() bool { return stockOf(t, direct) == 99 })
	t.Logf("cancelled after %v", time.Since(w0))
	if _, err := exec("COMMIT"); err != nil {
		t.Fatal(err)
	}
	if n := count("SELECT COUNT(*) FROM orders WHERE sku_id = 4"); n != 1 {
		t.Fatalf("%d orders after a statement-level mismatch and COMMIT, want 1", n)
	}
	if s := stockOf(t, direct); s != 99 {
		t.Fatalf("stock %d after a statement-level mismatch, want 99", s)
	}

	// Not hot: the same through pass-through.
	for _, q := range []string{"BEGIN", "INSERT INTO orders (sku_id, qty) VALUES (2, 1)"} {
		if _, err := exec(q); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := exec(hintPrefix + "cold SET stock = stock - 1 WHERE id = 1"); err != nil || n != 1 {
		t.Fatalf("hinted cold UPDATE: %d, %v", n, err)
	}
	if _, err := exec("ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	if n := count("SELECT COUNT(*) FROM orders WHERE sku_id = 2"); n != 1 {
		t.Fatalf("cold: %d orders after a hinted commit and a ROLLBACK, want 1", n)
	}
	for _, q := range []string{"BEGIN", "INSERT INTO orders (sku_id, qty) VALUES (3, 1)"} {
		if _, err := exec(q); err != nil {
			t.Fatal(err)
		}
	}
	_, err = exec(hintPrefix + "cold SET stock = stock - 1 WHERE id = 2")
	wantErr(err, erInventoryMismatch)
	if n := count("SELECT COUNT(*) FROM orders WHERE sku_id = 3"); n != 0 {
		t.Fatalf("cold: %d orders after a failed hinted UPDATE, want 0", n)
	}
}

// TestInventoryHintCLI: the mariadb CLI prints the hint's errors and
// results.
func TestInventoryHintCLI(t *testing.T) {
	cli, err := exec.LookPath("mariadb")
	if err != nil {
		t.Skip("mariadb CLI not installed")
	}
	db := testdb.New(t)
	db.Exec(t, "CREATE TABLE inventory (sku_id BIGINT PRIMARY KEY, stock INT NOT NULL)", txSchema,
		"INSERT INTO inventory VALUES (1, 5)")
	p, _, _ := startHotProxy(t, db)
	host, port := splitAddr(t, p.addr)
	script := hintPrefix + "inventory SET stock = stock - 1 WHERE sku_id = 1 AND stock >= 1;\n" +
		"BEGIN; INSERT INTO orders (sku_id, qty) VALUES (1, 1);\n" +
		hintPrefix + "inventory SET stock = stock - 1 WHERE sku_id = 1 AND stock >= 1;\n" +
		"ROLLBACK;\n" +
		"BEGIN; INSERT INTO orders (sku_id, qty) VALUES (1, 9);\n" +
		hintPrefix + "inventory SET stock = stock - 9 WHERE sku_id = 1 AND stock >= 9;\n" +
		"COMMIT; SELECT stock FROM inventory; SELECT qty FROM orders;\n"
	cmd := exec.Command(cli, "--no-defaults", "--comments", "--force", "-h", host, "-P", port, "-u", db.User, "-p"+db.Password, "-vvv", db.Name)
	cmd.Stdin = strings.NewReader(script)
	out, _ := cmd.CombinedOutput()
	got := timingRE.ReplaceAllString(string(out), "(N sec)")
	t.Logf("%s", got)
	for _, want := range []string{
		"ERROR 7531 (HY000) at line 1: Inventory transactional hints didn't allowed in autocommit mode",
		"Query OK, 1 row affected (N sec)\nRows matched: 1  Changed: 1  Warnings: 0",
		"ERROR 7532 (HY000) at line 6: Inventory conditional hints didn't match with result",
		"| stock |\n+-------+\n|     4 |",
		"| qty |\n+-----+\n|   1 |\n+-----+\n1 row in set",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q", want)
		}
	}
}
