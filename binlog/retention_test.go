package binlog

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hotrow/hotrow/internal/testdb"
	"github.com/hotrow/hotrow/schema"
)

func TestPrune(t *testing.T) {
	db := testdb.New(t)
	meta := db.Name + "_hr"
	root := db.Server.Root(t)
	t.Cleanup(func() { _, _ = root.Exec("DROP DATABASE IF EXISTS `" + meta + "`") })
	ctx := context.Background()
	if err := schema.Ensure(ctx, root, meta); err != nil {
		t.Fatal(err)
	}
	q := "`" + meta + "`."
	exec := func(s string) {
		t.Helper()
		if _, err := root.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	// 1,200 ledger rows and markers two hours old, 10 of each from now.
	var ledger, batches []string
	for i := range 1210 {
		age := "INTERVAL 2 HOUR"
		if i >= 1200 {
			age = "INTERVAL 0 SECOND"
		}
		ledger = append(ledger, fmt.Sprintf("('b%d', 0, 'db', 'inv', 'k', '-1', '1', 1, 'd', NOW(6) - %s)", i, age))
		batches = append(batches, fmt.Sprintf("('b%d', 'i', 1, 1, NOW(6) - %s)", i, age))
	}
	exec("INSERT INTO " + q + "ledger (" + schema.LedgerColumns + ", created_at) VALUES " + strings.Join(ledger, ","))
	exec("INSERT INTO " + q + "batches (" + schema.MarkerColumns + ", created_at) VALUES " + strings.Join(batches, ","))
	// Claims two hours old: 10 confirmed whose claims row settling left
	// behind, 5 still open (no verdict: the sweep's), 20 settled (only
	// their verdict is left); and 3 confirmed from now.
	var claims, verdicts []string
	claim := func(id, age string, open, settled bool) {
		if !settled {
			claims = append(claims, fmt.Sprintf("('%s', 'i', 1, 1, 'db', 'inv', 'k', 's', 'v', 1, NOW(6) - %s)", id, age))
		}
		if !open {
			verdicts = append(verdicts, fmt.Sprintf("('%s', 'confirm', NOW(6) - %s)", id, age))
		}
	}
	for i := range 10 {
		claim(fmt.Sprint("c", i), "INTERVAL 2 HOUR", false, false)
	}
	for i := range 5 {
		claim(fmt.Sprint("o", i), "INTERVAL 2 HOUR", true, false)
	}
	for i := range 20 {
		claim(fmt.Sprint("s", i), "INTERVAL 2 HOUR", false, true)
	}
	for i := range 3 {
		claim(fmt.Sprint("n", i), "INTERVAL 0 SECOND", false, false)
	}
	exec("INSERT INTO " + q + "claims (claim_id, instance_id, owner_conn, server_start, table_schema, table_name, key_column, stock_column, key_value, amount, created_at) VALUES " + strings.Join(claims, ","))
	exec("INSERT INTO " + q + "verdicts (claim_id, verdict, created_at) VALUES " + strings.Join(verdicts, ","))
	type left struct{ ledger, batches, claims, verdicts int }
	count := func() (n left) {
		t.Helper()
		if err := root.QueryRow("SELECT (SELECT COUNT(*) FROM "+q+"ledger), (SELECT COUNT(*) FROM "+q+"batches), "+
			"(SELECT COUNT(*) FROM "+q+"claims), (SELECT COUNT(*) FROM "+q+"verdicts)").Scan(&n.ledger, &n.batches, &n.claims, &n.verdicts); err != nil {
			t.Fatal(err)
		}
		return n
	}
	all, pruned := left{1210, 1210, 18, 33}, left{10, 10, 8, 3}
	cases := []struct {
		name       string
		checkpoint string // consumers' updated_at, as SQL; empty: none
		retention  time.Duration
		want       left
	}{
		{"no consumer has a checkpoint", "", time.Hour, all},
		{"a consumer is behind the old rows", "NOW(6) - INTERVAL 3 HOUR", time.Hour, all},
		{"the retention keeps them", "NOW(6)", 3 * time.Hour, all},
		{"past the retention and every checkpoint", "NOW(6)", time.Hour, pruned},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			exec("DELETE FROM " + q + "checkpoints")
			if c.checkpoint != "" {
				exec("INSERT INTO " + q + "checkpoints (consumer, gtid, file, pos, updated_at) VALUES ('a', '', '', 0, NOW(6)), ('b', '', '', 0, " + c.checkpoint + ")")
			}
			if _, err := prune(ctx, root, meta, c.retention); err != nil {
				t.Fatal(err)
			}
			if n := count(); n != c.want {
				t.Errorf("left %+v, want %+v", n, c.want)
			}
		})
	}
}
