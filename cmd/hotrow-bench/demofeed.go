package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/hotrow/hotrow/bench"
	"github.com/hotrow/hotrow/binlog"
	"github.com/hotrow/hotrow/schema"
)

// demoFeedName is the order feed consumer the demo runs; its checkpoint is
// dropped first, so every run reads the binlog from the start.
const demoFeedName = "hotrow-demo"

// demoSaleSKU is the row the flash sale sells (bench's warm-up uses 0).
const demoSaleSKU = "1"

// showFeed runs the order feed over the demo's binlog into a jsonl file and
// checks that the sale's orders in it are exactly the units granted on
// both sides: merged ones from their ledger rows, direct ones (and
// hotrow's lone statements, run on the client's connection) from the row
// changes. It prints the count and one event.
func showFeed(ctx context.Context, env *bench.Env, database, path string, cell bench.Cell, log *slog.Logger) error {
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return err
	}
	if db, err := sql.Open("mysql", env.Direct.DSN); err == nil {
		// Absent on a fresh server (1146): nothing to drop.
		_, _ = db.ExecContext(ctx, "DELETE FROM "+schema.QuoteIdent(binlog.DefaultConfig().MetaSchema)+"."+schema.CheckpointsTable+" WHERE consumer = ?", demoFeedName)
		db.Close()
	}
	cfg := binlog.DefaultConfig()
	cfg.SourceDSN, cfg.Sinks, cfg.Name, cfg.FromStart = env.Direct.DSN, []string{"jsonl:" + path}, demoFeedName, true
	cfg.HotRules = []schema.Rule{{Schema: database, Table: "inventory", Key: "sku_id", Stock: "stock"}}
	cfg.StatsInterval = 0
	if err := cfg.Validate(); err != nil {
		return err
	}
	c, err := binlog.NewConsumer(cfg, log.With("component", "binlog"))
	if err != nil {
		return err
	}
	defer c.Close()
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- c.Run(fctx) }()

	want := cell.Direct.Granted + cell.Proxy.Granted
	var merged, direct int64
	var sample []byte
	deadline := time.Now().Add(2 * time.Minute)
	for {
		merged, direct, sample, err = countSaleOrders(path, database+".inventory")
		if err != nil || merged+direct >= want || time.Now().After(deadline) {
			break
		}
		select {
		case err = <-ran:
			return fmt.Errorf("order feed stopped: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	if err != nil {
		return err
	}
	fmt.Printf("\nOrder feed (hotrow's binlog consumer, %s): %d units ordered for the sale's SKU: %d from merged batches' ledger rows, %d from row changes (direct UPDATEs, hotrow's lone statements).\n",
		path, merged+direct, merged, direct)
	if merged+direct != cell.Proxy.Granted+cell.Direct.Granted || merged > cell.Proxy.Granted {
		return fmt.Errorf("order feed: %d merged and %d direct order events, want exactly the units granted (%d through hotrow, %d direct)",
			merged, direct, cell.Proxy.Granted, cell.Direct.Granted)
	}
	fmt.Printf("Exactly the units granted on both sides (%d through hotrow, %d direct), one event per deduction. One of them:\n  %s\n",
		cell.Proxy.Granted, cell.Direct.Granted, sample)
	return nil
}

// countSaleOrders counts the distinct order events of the sale's SKU in the
// jsonl file, by whether a merged batch made them, and returns a merged one.
func countSaleOrders(path, table string) (merged, direct int64, sample []byte, err error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return 0, 0, nil, nil
	}
	if err != nil {
		return 0, 0, nil, err
	}
	defer f.Close()
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e binlog.Event
		if json.Unmarshal(sc.Bytes(), &e) != nil || e.Kind != binlog.KindOrder || e.Table != table || e.Key != demoSaleSKU || seen[e.ID] {
			continue
		}
		seen[e.ID] = true
		q, _ := e.Quantity.Int64()
		if e.Batch != "" {
			merged += q
			if sample == nil {
				sample = bytes.Clone(sc.Bytes())
			}
		} else {
			direct += q
		}
	}
	return merged, direct, sample, sc.Err()
}
