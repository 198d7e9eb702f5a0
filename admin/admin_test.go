package admin

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hotrow/hotrow/internal/testdb"
	"github.com/hotrow/hotrow/merger"
)

func TestConfigValidate(t *testing.T) {
	base := DefaultConfig()
	base.MetaDSN = "u:p@tcp(127.0.0.1:3306)/"
	cases := []struct {
		name, listen, password string
		ok                     bool
	}{
		{"loopback without password", "127.0.0.1:6032", "", true},
		{"localhost without password", "localhost:6032", "", true},
		{"ipv6 loopback without password", "[::1]:6032", "", true},
		{"any address without password", "0.0.0.0:6032", "", false},
		{"remote address without password", "10.1.2.3:6032", "", false},
		{"any address with password", "0.0.0.0:6032", "pw", true},
		{"no port", "127.0.0.1", "pw", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			c.Listen, c.Password = tc.listen, tc.password
			if err := c.Validate(); (err == nil) != tc.ok {
				t.Fatalf("Validate = %v, want ok %v", err, tc.ok)
			}
		})
	}
}

func TestAdminLogin(t *testing.T) {
	f := newFixture(t)
	cases := []struct {
		name, user, password string
		code                 uint16
	}{
		{"admin", "admin", adminPassword, 0},
		{"wrong password", "admin", "nope", 1045},
		{"no password", "admin", "", 1045},
		{"application user", f.db.User, f.db.Password, 1045},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := admin(t, f.addr, tc.user, tc.password).Ping()
			if got := code(err); got != tc.code {
				t.Fatalf("Ping: %v (code %d), want code %d", err, got, tc.code)
			}
		})
	}
}

func TestAdminVariablesAndErrors(t *testing.T) {
	f := newFixture(t)
	a := admin(t, f.addr, "admin", adminPassword)
	mustExec(t, a, "SET hotrow.max_batch = 8")
	mustExec(t, a, "SET hotrow.batch_gather_us = 250")
	if l := f.m.Limits(); l.MaxBatch != 8 || l.GatherWait != 250*time.Microsecond {
		t.Fatalf("max_batch = %d, batch gather %v after SET, want 8 and 250µs", l.MaxBatch, l.GatherWait)
	}
	vars := map[string]string{}
	for _, r := range rows(t, a, "SHOW HOTROW VARIABLES") {
		vars[r[0]] = r[1]
	}
	if vars["hotrow.max_batch"] != "8" || vars["hotrow.batch_gather_us"] != "250" || vars["hotrow.instance_id"] != "test" || vars["hotrow.meta_schema"] != f.meta {
		t.Fatalf("SHOW HOTROW VARIABLES = %v", vars)
	}
	status := map[string]string{}
	for _, r := range rows(t, a, "SHOW HOTROW STATUS") {
		status[r[0]] = r[1]
	}
	if _, ok := status["batches"]; !ok || status["sessions"] != "0" {
		t.Fatalf("SHOW HOTROW STATUS = %v", status)
	}
	errCases := []struct {
		q    string
		code uint16
		msg  string
	}{
		{"SET hotrow.nope = 1", 1193, "Unknown system variable 'hotrow.nope'"},
		{"SET hotrow.max_batch = 0", 1231, "max_batch must be at least 1"},
		{"SET hotrow.max_batch = 'many'", 1232, "want an integer"},
		{"SET hotrow.batch_gather_us = 2000000", 1231, "batch gather must be 0 to 1s"},
		{"SET hotrow.meta_schema = 'x'", 1238, "read only"},
		{"DROP TABLE hot_rules", 1064, "supported: SELECT"},
		{"LOAD MYSQL USERS TO RUNTIME", 1064, "LOAD HOT RULES TO RUNTIME"},
		{"SELECT * FROM nope", 1146, "the admin tables are"},
		{"SELECT nope FROM hot_rules", 1054, "Unknown column 'nope'"},
		{"SELECT * FROM stats_batches WHERE nope = 1", 1054, "Unknown column 'nope' in 'where clause'"},
		{"UPDATE stats_batches SET size = 1", 1235, "read-only"},
		{"DELETE FROM hot_rules WHERE nope = 1", 1054, "Unknown column 'nope' in 'where clause'"},
		{"KILL SESSION 424242", 1094, "Unknown thread id: 424242"},
		{"PAUSE MERGE FOR 'db.nope'", 1210, "no hot rule in runtime"},
	}
	for _, tc := range errCases {
		t.Run(tc.q, func(t *testing.T) {
			_, err := a.Exec(tc.q)
			if code(err) != tc.code || err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("%s: %v, want %d containing %q", tc.q, err, tc.code, tc.msg)
			}
		})
	}
}

// TestHotRulesLifecycle: rules seeded from flags, refused when invalid,
// added, loaded to runtime (merging starts), disabled (statements pass
// through), deleted and saved to disk.
func TestHotRulesLifecycle(t *testing.T) {
	f := newFixture(t)
	a := admin(t, f.addr, "admin", adminPassword)
	app := f.app(t)
	name := f.db.Name
	if got := rows(t, a, "SELECT * FROM hot_rules"); len(got) != 0 {
		t.Fatalf("hot_rules = %v, want empty", got)
	}
	refused := []struct {
		q    string
		code uint16
		msg  string
	}{
		{fmt.Sprintf("INSERT INTO hot_rules VALUES ('%s', 'nope', 'sku_id', 'stock', 1)", name), 1054, "no such table or column"},
		{fmt.Sprintf("INSERT INTO hot_rules VALUES ('%s', 'inventory', 'sku_id', 'nope', 1)", name), 1054, "no such table or column"},
		{fmt.Sprintf("INSERT INTO hot_rules VALUES ('%s', 'nokey', 'sku_id', 'stock', 1)", name), 1210, "not a unique key"},
		{fmt.Sprintf("INSERT INTO hot_rules VALUES ('%s', 'textstock', 'sku_id', 'stock', 1)", name), 1210, "not numeric"},
		{fmt.Sprintf("INSERT INTO hot_rules (schema_name, table_name) VALUES ('%s', 'inventory')", name), 1048, "key_column"},
		{fmt.Sprintf("INSERT INTO hot_rules VALUES ('%s', 'inventory', 'sku_id', 'stock', 7)", name), 1210, "enabled"},
	}
	for _, tc := range refused {
		_, err := a.Exec(tc.q)
		if code(err) != tc.code || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: %v, want %d containing %q", tc.q, err, tc.code, tc.msg)
		}
	}
	mustExec(t, a, fmt.Sprintf("INSERT INTO hot_rules (schema_name, table_name, key_column, stock_column) VALUES ('%s', 'inventory', 'sku_id', 'stock')", name))
	if _, err := a.Exec(fmt.Sprintf("INSERT INTO hot_rules VALUES ('%s', 'inventory', 'sku_id', 'stock', 1)", name)); code(err) != 1062 {
		t.Fatalf("duplicate INSERT: %v, want 1062", err)
	}
	update := "UPDATE inventory SET stock = stock - 1 WHERE sku_id = 1 AND stock >= 1"
	merged := func() uint64 { return f.px.Counters().Merged }

	mustExec(t, app, update)
	if merged() != 0 {
		t.Fatal("merged before LOAD HOT RULES TO RUNTIME")
	}
	mustExec(t, a, "LOAD HOT RULES TO RUNTIME")
	mustExec(t, app, update)
	if merged() != 1 {
		t.Fatalf("merged = %d after LOAD, want 1", merged())
	}
	got := rows(t, a, "SELECT table_name, key_value, requests, granted FROM stats_hot_keys WHERE table_name = 'inventory'")
	if len(got) != 1 || got[0][1] != "1" || got[0][2] != "1" || got[0][3] != "1" {
		t.Fatalf("stats_hot_keys = %v", got)
	}
	got = rows(t, a, "SELECT table_name, requests, lone, batches FROM stats_hot_tables WHERE requests > 0")
	if len(got) != 1 || got[0][1] != "1" || got[0][2] != "1" || got[0][3] != "1" {
		t.Fatalf("stats_hot_tables = %v", got)
	}

	// The statement ran alone on its client's connection (nothing else
	// queued), counted just after its client heard the answer.
	testdb.WaitFor(t, 5*time.Second, "the lone statement counted in SHOW HOTROW STATUS", func() bool {
		status := map[string]string{}
		for _, r := range rows(t, a, "SHOW HOTROW STATUS") {
			status[r[0]] = r[1]
		}
		return status["lone_on_client_connection"] == "1" && status["lone_on_client_connection_granted"] == "1"
	})
	res := mustExec(t, a, "UPDATE hot_rules SET enabled = 0 WHERE table_name = 'inventory'")
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("UPDATE affected %d, want 1", n)
	}
	if got := rows(t, a, "SELECT enabled FROM hot_rules"); len(got) != 1 || got[0][0] != "0" {
		t.Fatalf("hot_rules after UPDATE = %v", got)
	}
	mustExec(t, a, "LOAD HOT RULES TO RUNTIME")
	mustExec(t, app, update)
	if merged() != 1 {
		t.Fatalf("merged = %d with the rule disabled, want still 1", merged())
	}
	mustExec(t, a, "SAVE HOT RULES TO DISK")
	var enabled int
	if err := f.conn.QueryRow("SELECT enabled FROM `" + f.meta + "`.hot_rules WHERE table_name = 'inventory'").Scan(&enabled); err != nil || enabled != 0 {
		t.Fatalf("hot_rules on disk: enabled %d, %v", enabled, err)
	}
	res = mustExec(t, a, "DELETE FROM hot_rules WHERE schema_name LIKE 't\\_%'")
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("DELETE affected %d, want 1", n)
	}
	mustExec(t, a, "LOAD HOT RULES FROM DISK")
	if got := rows(t, a, "SELECT COUNT(*) FROM hot_rules"); got[0][0] != "1" {
		t.Fatalf("after LOAD FROM DISK: %v rules, want the saved one", got)
	}
	var stock int
	if err := f.conn.QueryRow("SELECT stock FROM inventory WHERE sku_id = 1").Scan(&stock); err != nil || stock != 997 {
		t.Fatalf("stock = %d, %v; want 997", stock, err)
	}
}

// TestPersistenceAcrossInstancesAndRestart: a rule saved on one instance
// reaches a second by polling; a restarted instance loads the saved
// rules instead of its seed.
func TestPersistenceAcrossInstancesAndRestart(t *testing.T) {
	f := newFixture(t)
	inv := merger.Rule{Schema: f.db.Name, Table: "inventory", Key: "sku_id", Stock: "stock"}
	second := merger.NewRuleSet(nil)
	_, addr2 := f.startAdmin(t, second, nil)
	a := admin(t, f.addr, "admin", adminPassword)
	mustExec(t, a, fmt.Sprintf("INSERT INTO hot_rules VALUES ('%s', 'inventory', 'sku_id', 'stock', 1)", f.db.Name))
	mustExec(t, a, "SAVE HOT RULES TO DISK")
	testdb.WaitFor(t, 5*time.Second, "the second instance to load the saved rule", func() bool {
		r := second.Rules()
		return len(r) == 1 && r[0] == inv
	})
	a2 := admin(t, addr2, "admin", adminPassword)
	if got := rows(t, a2, "SELECT table_name, enabled FROM hot_rules"); len(got) != 1 || got[0][0] != "inventory" {
		t.Fatalf("second instance's hot_rules = %v", got)
	}
	// A restart with a different seed keeps what is on disk.
	third := merger.NewRuleSet(nil)
	f.startAdmin(t, third, []merger.Rule{{Schema: f.db.Name, Table: "other", Key: "id", Stock: "qty"}})
	if r := third.Rules(); len(r) != 1 || r[0] != inv {
		t.Fatalf("restarted instance's rules = %v, want the saved %v", r, inv)
	}
}
