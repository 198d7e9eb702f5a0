package admin

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hotrow/hotrow/internal/testdb"
	"github.com/hotrow/hotrow/merger"
)

func TestUpdateTable(t *testing.T) {
	cases := []struct {
		q    string
		want merger.TableName
		ok   bool
	}{
		{"UPDATE inv SET a = 1", merger.TableName{Schema: "db", Table: "inv"}, true},
		{"  update `shop`.`inv` set a = 1", merger.TableName{Schema: "shop", Table: "inv"}, true},
		{"UPDATE LOW_PRIORITY IGNORE shop.inv SET a = 1", merger.TableName{Schema: "shop", Table: "inv"}, true},
		{"UPDATE `unterminated SET a = 1", merger.TableName{}, false},
		{"UPDATE (SELECT 1) SET a = 1", merger.TableName{}, false},
	}
	for _, tc := range cases {
		t.Run(tc.q, func(t *testing.T) {
			got, ok := updateTable([]byte(tc.q), "db")
			if ok != tc.ok || ok && got != tc.want {
				t.Fatalf("updateTable = %v %v, want %v %v", got, ok, tc.want, tc.ok)
			}
		})
	}
	if _, ok := updateTable([]byte("UPDATE inv SET a = 1"), ""); ok {
		t.Fatal("unqualified table without a default database: want not ok")
	}
}

// TestNotMergedAndPassThroughDigests: UPDATEs of a ruled table that pass
// through are counted by reason; with digests on, pass-through
// statements are counted and timed by digest.
func TestNotMergedAndPassThroughDigests(t *testing.T) {
	f := newFixture(t)
	a := admin(t, f.addr, "admin", adminPassword)
	app := f.app(t)
	mustExec(t, a, fmt.Sprintf("INSERT INTO hot_rules VALUES ('%s', 'inventory', 'sku_id', 'stock', 1)", f.db.Name))
	mustExec(t, a, "LOAD HOT RULES TO RUNTIME")
	ctx := context.Background()
	c, err := app.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A transaction that locked the hot row through pass-through keeps its
	// hot UPDATE on pass-through (no claim: it could deadlock a batch).
	for _, q := range []string{"BEGIN", "SELECT stock FROM inventory WHERE sku_id = 1 FOR UPDATE",
		"UPDATE inventory SET stock = stock - 1 WHERE sku_id = 1", "COMMIT",
		"UPDATE inventory SET stock = stock - 1 WHERE sku_id = 1 LIMIT 1"} {
		if _, err := c.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	mustExec(t, a, fmt.Sprintf("PAUSE MERGE FOR '%s.inventory'", f.db.Name))
	mustExec(t, app, "UPDATE inventory SET stock = stock - 1 WHERE sku_id = 1")
	got := rows(t, a, "SELECT reason, statements FROM stats_not_merged ORDER BY reason")
	want := [][]string{{"statement not of the mergeable shape", "1"}, {"table paused", "1"}, {"tx_touched_hot_table", "1"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("stats_not_merged = %v, want %v", got, want)
	}

	mustExec(t, a, "SET hotrow.pass_through_digests = 1")
	for i := range 3 {
		var v int
		if err := app.QueryRow(fmt.Sprintf("SELECT %d", i)).Scan(&v); err != nil {
			t.Fatal(err)
		}
	}
	// A statement is counted once its response was relayed, which may be
	// just after the client has read it.
	testdb.WaitFor(t, 5*time.Second, "three SELECTs in stats_pass_through", func() bool {
		got = rows(t, a, "SELECT digest_text, count FROM stats_pass_through WHERE digest_text LIKE 'select%' ORDER BY count DESC LIMIT 1")
		return len(got) == 1 && got[0][0] == "select ?" && got[0][1] == "3"
	})
}
