package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/hotrow/hotrow/binlog"
	"github.com/hotrow/hotrow/internal/cli"
	"github.com/hotrow/hotrow/schema"
)

// binlogFlags defines the order feed's flags on fs, each name prefixed
// with prefix ("" for `hotrow binlog`, "binlog-" beside the proxy), and
// returns a function that builds the consumer's Config from them once fs
// is parsed; the caller completes and validates it.
func binlogFlags(fs *flag.FlagSet, prefix string) func() (binlog.Config, error) {
	cfg := binlog.DefaultConfig()
	var sinks, rules, include cli.ListFlag
	source := fs.String(prefix+"source", "", "go-sql-driver `DSN` of the binlog user on the primary, e.g. 'feed:pw@tcp(127.0.0.1:3306)/'")
	fs.Var(&sinks, prefix+"sink", "send events to `SINK` (repeatable): stdout, jsonl:PATH, http:URL, nats:URL/SUBJECT, kafka:BROKERS/TOPIC")
	fs.Var(&rules, prefix+"hot-rule", "hot table `DB.TABLE:KEYCOL:STOCKCOL` whose stock changes outside merged batches are events too (repeatable)")
	fs.Var(&include, prefix+"include", "also send every row change of `DB.TABLE` as a row event (repeatable)")
	name := fs.String(prefix+"name", cfg.Name, "consumer `name`: the key of its checkpoint")
	meta := fs.String(prefix+"meta-schema", cfg.MetaSchema, "database of hotrow's ledger and checkpoints")
	fromStart := fs.Bool(prefix+"from-start", false, "without a checkpoint, start at the oldest binlog instead of now")
	reset := fs.Bool(prefix+"reset-checkpoint", false, "discard the checkpoint and start at the server's current position: once, after a purge (events in between are not sent)")
	retention := fs.Duration(prefix+"ledger-retention", 0, "delete ledger rows, batch markers and settled claims older than this and than every consumer's checkpoint (0: keep)")
	serverID := fs.Uint(prefix+"server-id", 0, "replica server id to register (0: derived from --name)")
	maxEvents := fs.Int(prefix+"max-in-flight", cfg.MaxInFlightEvents, "most events read but not yet acknowledged by every sink")
	maxBytes := fs.Int(prefix+"max-in-flight-bytes", cfg.MaxInFlightBytes, "most bytes of events read but not yet acknowledged")
	stats := fs.Duration(prefix+"stats-interval", cfg.StatsInterval, "how often lag and throughput are logged (0: never)")
	secretFile := fs.String(prefix+"webhook-secret-file", "", "`file` holding the secret that signs http sinks' requests (Standard Webhooks); unsigned when empty")
	return func() (binlog.Config, error) {
		if *secretFile != "" {
			secret, err := os.ReadFile(*secretFile)
			if err != nil {
				return cfg, fmt.Errorf("--%swebhook-secret-file: %w", prefix, err)
			}
			cfg.SinkOptions.WebhookSecret = bytes.TrimSpace(secret)
		}
		cfg.SourceDSN, cfg.Sinks, cfg.Include = *source, sinks, include
		cfg.Name, cfg.MetaSchema = *name, *meta
		cfg.FromStart, cfg.ResetCheckpoint, cfg.LedgerRetention = *fromStart, *reset, *retention
		cfg.ServerID = uint32(*serverID)
		cfg.MaxInFlightEvents, cfg.MaxInFlightBytes, cfg.StatsInterval = *maxEvents, *maxBytes, *stats
		for _, s := range rules {
			r, err := schema.ParseRule(s)
			if err != nil {
				return cfg, err
			}
			cfg.HotRules = append(cfg.HotRules, r)
		}
		return cfg, nil
	}
}

func binlogMain(args []string) error {
	fs := flag.NewFlagSet("binlog", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: hotrow binlog --source DSN --sink SINK [--sink ...] [flags]

Runs the order feed: reads the server's binlog and sends one event per
deduction to every sink, whatever path it took: each ledger row of a merged
batch, and each stock change of a --hot-rule table made outside a batch.
Delivery is at least once with stable ids; the checkpoint (table
checkpoints in --meta-schema, one row per --name) advances only past events
every sink acknowledged.

The server needs binlog_format=ROW, binlog_row_image=FULL and
binlog_row_metadata=FULL. The --source user needs
  %s,
and %s on the meta schema, e.g.
  GRANT REPLICATION SLAVE, BINLOG MONITOR, SELECT ON *.* TO feed;
  GRANT %s ON hotrow.* TO feed;

`, binlog.Privileges, schema.Privileges, schema.Privileges)
		fs.PrintDefaults()
	}
	build := binlogFlags(fs, "")
	logLevel := fs.String("log-level", "info", "log `level`: debug, info, warn or error")
	if done, err := cli.ParseFlags(fs, args); done || err != nil {
		return err
	}
	cfg, err := build()
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	log, err := newLogger(*logLevel)
	if err != nil {
		return err
	}
	c, err := binlog.NewConsumer(cfg, log)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return c.Run(ctx)
}
