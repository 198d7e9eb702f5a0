package admin

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hotrow/hotrow/internal/testdb"
)

// holdRow locks inventory row 1 from a direct session until release.
func (f *fixture) holdRow(t *testing.T) (release func()) {
	t.Helper()
	tx, err := f.conn.Begin()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	if err := tx.QueryRow("SELECT stock FROM inventory WHERE sku_id = 1 FOR UPDATE").Scan(&v); err != nil {
		t.Fatal(err)
	}
	done := false
	release = func() {
		if !done {
			done = true
			_ = tx.Rollback()
		}
	}
	t.Cleanup(release)
	return release
}

// queueBehindLock sends n merged UPDATEs of row 1 while it is locked and
// waits until one is in flight and n-1 are queued; the returned channel
// gets each one's affected rows (or -1 on error).
func (f *fixture) queueBehindLock(t *testing.T, app *sql.DB, n int) <-chan int64 {
	t.Helper()
	out := make(chan int64, n)
	send := func() {
		res, err := app.Exec("UPDATE inventory SET stock = stock - 1 WHERE sku_id = 1 AND stock >= 1")
		if err != nil {
			t.Logf("queued UPDATE: %v", err)
			out <- -1
			return
		}
		a, _ := res.RowsAffected()
		out <- a
	}
	// The first alone, until its batch has begun (taken off the queue),
	// then the others behind it.
	testdb.WaitFor(t, 10*time.Second, "earlier workers gone", func() bool { return len(f.m.Stats().Tables) == 0 })
	base := f.px.Counters().Merged
	go send()
	testdb.WaitFor(t, 10*time.Second, "a batch in flight", func() bool {
		s := f.m.Stats()
		return len(s.Tables) == 1 && s.Queued == 0 && f.px.Counters().Merged == base+1
	})
	for range n - 1 {
		go send()
	}
	testdb.WaitFor(t, 10*time.Second, "requests queued behind the locked row", func() bool {
		return f.m.Stats().Queued == n-1
	})
	return out
}

// TestRuntimeSwapKeepsInFlight: requests queued behind a batch in flight
// finish, merged and granted, after their rule is disabled at run time
// (LOAD HOT RULES TO RUNTIME); the next statement passes through.
func TestRuntimeSwapKeepsInFlight(t *testing.T) {
	f := newFixture(t)
	a := admin(t, f.addr, "admin", adminPassword)
	app := f.app(t)
	mustExec(t, a, fmt.Sprintf("INSERT INTO hot_rules VALUES ('%s', 'inventory', 'sku_id', 'stock', 1)", f.db.Name))
	mustExec(t, a, "LOAD HOT RULES TO RUNTIME")
	release := f.holdRow(t)
	const n = 6
	results := f.queueBehindLock(t, app, n)
	mustExec(t, a, "UPDATE hot_rules SET enabled = 0")
	mustExec(t, a, "LOAD HOT RULES TO RUNTIME")
	if got := rows(t, a, "SELECT COUNT(*) FROM runtime_hot_rules"); got[0][0] != "0" {
		t.Fatalf("runtime rules after disabling: %v", got)
	}
	release()
	for range n {
		if a := <-results; a != 1 {
			t.Fatalf("in-flight request: affected %d, want 1", a)
		}
	}
	if m := f.px.Counters().Merged; m != n {
		t.Fatalf("merged = %d, want %d", m, n)
	}
	mustExec(t, app, "UPDATE inventory SET stock = stock - 1 WHERE sku_id = 1 AND stock >= 1")
	if m := f.px.Counters().Merged; m != n {
		t.Fatalf("merged = %d after the rule was disabled, want %d", m, n)
	}
	var stock int
	if err := f.conn.QueryRow("SELECT stock FROM inventory WHERE sku_id = 1").Scan(&stock); err != nil || stock != 1000-n-1 {
		t.Fatalf("stock = %d, %v; want %d", stock, err, 1000-n-1)
	}
	// The batches that ran: stats_batches, newest first, filtered and limited.
	got := rows(t, a, fmt.Sprintf("SELECT path, size, granted FROM stats_batches WHERE table_name = 'inventory' AND schema_name = '%s' ORDER BY size DESC, granted LIMIT 1", f.db.Name))
	if len(got) != 1 || got[0][1] != fmt.Sprint(n-1) || got[0][2] != fmt.Sprint(n-1) {
		t.Fatalf("largest batch = %v, want the %d queued ones", got, n-1)
	}
	got = rows(t, a, "SELECT key_value, requests, granted, max_batch FROM stats_hot_keys ORDER BY requests DESC LIMIT 1")
	if len(got) != 1 || got[0][0] != "1" || got[0][1] != fmt.Sprint(n) || got[0][3] != fmt.Sprint(n-1) {
		t.Fatalf("stats_hot_keys = %v, want row 1 with %d requests, at most %d in a batch", got, n, n-1)
	}
}

// TestPauseResume: PAUSE MERGE lets queued requests finish and sends the
// next statements through; RESUME merges again.
func TestPauseResume(t *testing.T) {
	f := newFixture(t)
	a := admin(t, f.addr, "admin", adminPassword)
	app := f.app(t)
	mustExec(t, a, fmt.Sprintf("INSERT INTO hot_rules VALUES ('%s', 'inventory', 'sku_id', 'stock', 1)", f.db.Name))
	mustExec(t, a, "LOAD HOT RULES TO RUNTIME")
	release := f.holdRow(t)
	results := f.queueBehindLock(t, app, 3)
	table := f.db.Name + ".inventory"
	mustExec(t, a, "PAUSE MERGE FOR '"+table+"'")
	if got := rows(t, a, "SELECT paused FROM runtime_hot_rules"); len(got) != 1 || got[0][0] != "1" {
		t.Fatalf("runtime_hot_rules.paused = %v", got)
	}
	release()
	for range 3 {
		if a := <-results; a != 1 {
			t.Fatalf("queued request: affected %d, want 1", a)
		}
	}
	update := "UPDATE inventory SET stock = stock - 1 WHERE sku_id = 2"
	mustExec(t, app, update)
	if m := f.px.Counters().Merged; m != 3 {
		t.Fatalf("merged = %d while paused, want 3", m)
	}
	mustExec(t, a, "RESUME MERGE FOR '"+table+"'")
	mustExec(t, app, update)
	if m := f.px.Counters().Merged; m != 4 {
		t.Fatalf("merged = %d after RESUME, want 4", m)
	}
}

// TestKillSessionAndSessionsTable: stats_sessions lists proxy sessions
// with their backend connection id; KILL SESSION ends one.
func TestKillSessionAndSessionsTable(t *testing.T) {
	f := newFixture(t)
	a := admin(t, f.addr, "admin", adminPassword)
	ctx := context.Background()
	c, err := f.app(t).Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var id int
	if err := c.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&id); err != nil {
		t.Fatal(err)
	}
	got := rows(t, a, fmt.Sprintf("SELECT backend_connection_id, user, state, mergeable, not_mergeable_reason FROM stats_sessions WHERE session_id = %d", id))
	if len(got) != 1 || got[0][0] != fmt.Sprint(id) || got[0][1] != f.db.User || got[0][3] != "1" {
		t.Fatalf("stats_sessions = %v", got)
	}
	mustExec(t, a, fmt.Sprintf("KILL SESSION %d", id))
	testdb.WaitFor(t, 5*time.Second, "the killed session gone", func() bool {
		return len(rows(t, a, "SELECT * FROM stats_sessions")) == 0
	})
	if err := c.PingContext(ctx); err == nil {
		t.Fatal("killed session still answers")
	}
}

// TestMariadbCLI: the mariadb client logs in, reads admin tables and
// gets the server's error numbers.
func TestMariadbCLI(t *testing.T) {
	if _, err := exec.LookPath("mariadb"); err != nil {
		t.Skip("mariadb CLI not installed")
	}
	f := newFixture(t)
	host, port, _ := net.SplitHostPort(f.addr)
	run := func(password, sql string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, "mariadb", "--no-defaults", "--skip-ssl", "-h", host, "-P", port,
			"-u", "admin", "-p"+password, "--batch", "-e", sql).CombinedOutput()
		return string(out), err
	}
	out, err := run(adminPassword, fmt.Sprintf(
		"INSERT INTO hot_rules VALUES ('%s', 'inventory', 'sku_id', 'stock', 1); LOAD HOT RULES TO RUNTIME; "+
			"SELECT schema_name, table_name, enabled FROM hot_rules; SHOW HOTROW VARIABLES", f.db.Name))
	if err != nil {
		t.Fatalf("mariadb: %v\n%s", err, out)
	}
	want := "schema_name\ttable_name\tenabled\n" + f.db.Name + "\tinventory\t1\n"
	if !strings.Contains(out, want) || !strings.Contains(out, "hotrow.max_batch\t256") {
		t.Fatalf("mariadb output:\n%s\nwant it to contain:\n%s", out, want)
	}
	if out, err := run("wrong", "SELECT 1"); err == nil || !strings.Contains(out, "ERROR 1045") {
		t.Fatalf("wrong password: %v\n%s", err, out)
	}
	if out, err := run(adminPassword, "FLUSH EVERYTHING"); err == nil || !strings.Contains(out, "ERROR 1064") || !strings.Contains(out, "LOAD HOT RULES TO RUNTIME") {
		t.Fatalf("unsupported statement: %v\n%s", err, out)
	}
}

// TestPreparedFollowsRuntimeRules: a statement prepared while its rule
// was in force passes through while the table is paused or its rule
// disabled, and merges again after.
func TestPreparedFollowsRuntimeRules(t *testing.T) {
	f := newFixture(t)
	a := admin(t, f.addr, "admin", adminPassword)
	mustExec(t, a, fmt.Sprintf("INSERT INTO hot_rules VALUES ('%s', 'inventory', 'sku_id', 'stock', 1)", f.db.Name))
	mustExec(t, a, "LOAD HOT RULES TO RUNTIME")
	stmt, err := f.app(t).Prepare("UPDATE inventory SET stock = stock - ? WHERE sku_id = ? AND stock >= ?")
	if err != nil {
		t.Fatal(err)
	}
	defer stmt.Close()
	steps := []struct {
		admin  string
		merged uint64
	}{
		{"", 1},
		{fmt.Sprintf("PAUSE MERGE FOR '%s.inventory'", f.db.Name), 1},
		{fmt.Sprintf("RESUME MERGE FOR '%s.inventory'", f.db.Name), 2},
		{"UPDATE hot_rules SET enabled = 0", 3}, // memory only: still merged
		{"LOAD HOT RULES TO RUNTIME", 3},
	}
	for _, st := range steps {
		if st.admin != "" {
			mustExec(t, a, st.admin)
		}
		if _, err := stmt.Exec(1, 1, 1); err != nil {
			t.Fatal(err)
		}
		if m := f.px.Counters().Merged; m != st.merged {
			t.Fatalf("after %q: merged = %d, want %d", st.admin, m, st.merged)
		}
	}
}
