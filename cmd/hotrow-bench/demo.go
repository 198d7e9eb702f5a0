package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/hotrow/hotrow/bench"
	"github.com/hotrow/hotrow/internal/cli"
)

func demoMain(args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: hotrow-bench demo [flags]

A flash sale, the same one twice: directly against MariaDB and through
hotrow. It starts a throw-away local MariaDB (Debian's mariadb-server, with
sync_binlog=1 and innodb_flush_log_at_trx_commit=1) and the hotrow proxy,
lets --clients buyers compete for --stock units, prints both sides next to
each other, checks that exactly --stock units were sold and none oversold,
and draws the chart. Then hotrow's order feed reads the server's binlog into
orders.jsonl and checks it holds one event per unit sold on either side. It
takes about a minute.

`)
		fs.PrintDefaults()
	}
	o := benchOptions{}
	o.register(fs)
	out := fs.String("out", "out", "`directory` for demo.png and demo.json (unless --chart/--json say otherwise)")
	clients := fs.Int("clients", 256, "concurrent buyers")
	stock := fs.Int64("stock", 50000, "units on sale")
	limit := fs.Duration("max-duration", 30*time.Second, "longest a side may sell before it is stopped")
	warmup := fs.Duration("warmup", 2*time.Second, "warm-up of each side (on another row)")
	if done, err := cli.ParseFlags(fs, args); done || err != nil {
		return err
	}
	if o.chartPath == "" {
		o.chartPath = filepath.Join(*out, "demo.png")
	}
	if o.jsonPath == "" {
		o.jsonPath = filepath.Join(*out, "demo.json")
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	sale, err := bench.LookupScenarios("flash-sale")
	if err != nil {
		return err
	}
	sale[0].Stock = *stock
	fmt.Printf("hotrow demo: a flash sale of %d units to %d concurrent buyers, direct and through hotrow\n", *stock, *clients)
	feedPath := filepath.Join(*out, "orders.jsonl")
	rep, err := o.run(bench.EnvOptions{}, bench.Config{
		Scenarios: sale, Clients: []int{*clients}, Duration: *limit, Warmup: *warmup,
	}, "hotrow-bench demo "+redactDSNs(args), func(ctx context.Context, env *bench.Env, rep *bench.Report, log *slog.Logger) error {
		fmt.Println()
		bench.WriteSaleSummary(os.Stdout, rep.Cells[0], *stock)
		return showFeed(ctx, env, o.database, feedPath, rep.Cells[0], log)
	})
	if rep == nil {
		return err
	}
	next := [][2]string{
		{o.chartPath, "the picture: throughput and units sold over time, both sides"},
		{o.jsonPath, "every figure, with 100 ms timelines"},
		{feedPath, "the order feed: one JSON event per unit sold (hotrow binlog --help)"},
		{"BENCHMARKS.md", "method and the full suite (hot, zipf, cold, mixed, ...)"},
		{"hotrow-bench bench --help", "any scenario or a concurrency sweep, here, on your server (--direct DSN) or in a container (--testcontainers)"},
		{"hotrow proxy --help", "put hotrow in front of your own database"},
	}
	width := 0
	for _, n := range next {
		width = max(width, len(n[0]))
	}
	fmt.Println("\nWhere to look next:")
	for _, n := range next {
		fmt.Printf("  %-*s  %s\n", width, n[0], n[1])
	}
	return err
}
