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
	count := func() (l, b int) {
		t.Helper()
		if err := root.QueryRow("SELECT (SELECT COUNT(*) FROM "+q+"ledger), (SELECT COUNT(*) FROM "+q+"batches)").Scan(&l, &b); err != nil {
			t.Fatal(err)
		}
		return l, b
	}
	cases := []struct {
		name       string
		checkpoint string // consumers' updated_at, as SQL; empty: none
		retention  time.Duration
		want       int // rows left in each table
	}{
		{"no consumer has a checkpoint", "", time.Hour, 1210},
		{"a consumer is behind the old rows", "NOW(6) - INTERVAL 3 HOUR", time.Hour, 1210},
		{"the retention keeps them", "NOW(6)", 3 * time.Hour, 1210},
		{"past the retention and every checkpoint", "NOW(6)", time.Hour, 10},
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
			if l, b := count(); l != c.want || b != c.want {
				t.Errorf("%d ledger rows and %d markers left, want %d", l, b, c.want)
			}
		})
	}
}
