package binlog

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/hotrow/hotrow/internal/testdb"
	"github.com/hotrow/hotrow/schema"
)

// BenchmarkLedgerToJSONL measures the feed from binlog to a jsonl file:
// 200,000 ledger rows written in 20 transactions, then each iteration runs
// a new consumer from before them until its checkpoint passes them all
// (read, decode, encode, write, fsync, checkpoint).
func BenchmarkLedgerToJSONL(b *testing.B) {
	const txns, perTxn = 20, 10_000
	db := testdb.New(b)
	meta := db.Name + "_hr"
	root := db.Server.Root(b)
	b.Cleanup(func() { _, _ = root.Exec("DROP DATABASE IF EXISTS `" + meta + "`") })
	ctx := context.Background()
	if err := schema.Ensure(ctx, root, meta); err != nil {
		b.Fatal(err)
	}
	srv, err := checkServer(ctx, root)
	if err != nil {
		b.Fatal(err)
	}
	start, err := srv.current(ctx, root)
	if err != nil {
		b.Fatal(err)
	}
	var sb strings.Builder
	for t := range txns {
		sb.Reset()
		sb.WriteString("INSERT INTO `" + meta + "`.ledger (" + schema.LedgerColumns + ") VALUES ")
		for i := range perTxn {
			if i > 0 {
				sb.WriteByte(',')
			}
			fmt.Fprintf(&sb, "('bench-%d',%d,'%s','inv','sku%d','-1','%d',%d,'d41d8cd98f00b204')", t, i, db.Name, i%100, 1000000-i, 7)
		}
		if _, err := root.Exec(sb.String()); err != nil {
			b.Fatal(err)
		}
	}
	end, err := srv.current(ctx, root)
	if err != nil {
		b.Fatal(err)
	}
	endSet, err := gomysql.ParseMariadbGTIDSet(end.GTID)
	if err != nil || !srv.mariadb {
		b.Skipf("the benchmark reads MariaDB GTIDs (%v)", err)
	}
	dir := b.TempDir()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		cfg := DefaultConfig()
		cfg.SourceDSN = db.Server.DSN("")
		cfg.MetaSchema = meta
		cfg.Name = fmt.Sprintf("bench-%d", i)
		cfg.Sinks = []string{"jsonl:" + filepath.Join(dir, cfg.Name+".jsonl")}
		cfg.CheckpointInterval = 5 * time.Millisecond
		cfg.StatsInterval = 0
		if err := newCheckpoints(root, meta, cfg.Name).save(ctx, start); err != nil {
			b.Fatal(err)
		}
		c, err := NewConsumer(cfg, nil)
		if err != nil {
			b.Fatal(err)
		}
		began := time.Now()
		errc := make(chan error, 1)
		go func() { errc <- c.Run(ctx) }()
		testdb.WaitFor(b, 5*time.Minute, "the checkpoint to pass the ledger rows", func() bool {
			var gtid string
			if err := root.QueryRow("SELECT gtid FROM `"+meta+"`.checkpoints WHERE consumer = ?", cfg.Name).Scan(&gtid); err != nil {
				return false
			}
			set, err := gomysql.ParseMariadbGTIDSet(gtid)
			return err == nil && set.Contain(endSet)
		})
		elapsed := time.Since(began)
		c.Close()
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
		if n := len(readEvents(b, cfg.Sinks[0][len("jsonl:"):])); n != txns*perTxn {
			b.Fatalf("%d events delivered, want %d", n, txns*perTxn)
		}
		b.ReportMetric(float64(txns*perTxn)/elapsed.Seconds(), "events/s")
	}
}
