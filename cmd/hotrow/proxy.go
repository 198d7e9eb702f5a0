package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof" // profiles on --debug-addr
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/hotrow/hotrow/internal/cli"
	"github.com/hotrow/hotrow/merger"
	"github.com/hotrow/hotrow/proxy"
)

func proxyMain(args []string) error {
	cfg := proxy.DefaultConfig()
	fs := flag.NewFlagSet("proxy", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: hotrow proxy --backend HOST:PORT --user NAME:PASSWORD [flags]

Runs the MySQL-protocol proxy. Applications point their DSN at --listen and
change nothing else: every statement passes through to --backend on a
connection pinned to the client session, except autocommit stock updates of
tables named by --hot-rule, which are merged into group-committed batches.

With --binlog-sink, the order feed (see 'hotrow binlog --help') runs beside
the proxy: --binlog-* settings left unset come from the proxy (the source is
--backend with the merge user's credentials, who then needs the binlog
privileges; the hot rules and the meta schema are the proxy's).

Flags given on the command line override the --config file.

`)
		fs.PrintDefaults()
	}
	configFile := fs.String("config", "", "TOML `file` with the same settings (listen, backend, users = [{name, password, default_schema}], hot_rules, ...)")
	listen := fs.String("listen", cfg.Listen, "client-facing `address`")
	backend := fs.String("backend", "", "MySQL/MariaDB server `host:port`")
	var users, rules cli.ListFlag
	fs.Var(&users, "user", "client account `NAME:PASSWORD` (repeatable); the backend session opens with the same credentials")
	fs.Var(&rules, "hot-rule", "merge stock updates of `DB.TABLE:KEYCOL:STOCKCOL` (repeatable)")
	mergeUser := fs.String("merge-user", "", "user whose sessions are merged and whose credentials run merged batches (default: the first --user)")
	maxBatch := fs.Int("max-batch", cfg.MaxBatch, "most requests merged into one transaction")
	metaSchema := fs.String("meta-schema", cfg.MetaSchema, "database for hotrow's ledger and batch markers")
	instanceID := fs.String("instance-id", "", "`id` of this proxy instance in its batch ids, 1-48 of [A-Za-z0-9._-]: keep it stable across\nrestarts of the same instance (recovery after a crash resolves only its own batches) and unique\nacross instances in front of the same server (default: host name, process id and a random suffix)")
	authPlugin := fs.String("auth-plugin", cfg.AuthPlugin, "auth plugin offered to clients: mysql_native_password or caching_sha2_password")
	maxPacket := fs.Int("max-packet-size", cfg.MaxPacketSize, "largest client packet in `bytes` (like max_allowed_packet)")
	drain := fs.Duration("drain-timeout", cfg.DrainTimeout.Duration, "on SIGTERM/SIGINT, how long running statements may finish")
	logLevel := fs.String("log-level", "info", "log `level`: debug, info, warn or error")
	debugAddr := fs.String("debug-addr", "", "serve Go's pprof profiles on this loopback `address` (e.g. 127.0.0.1:6060); off when empty")
	feed := binlogFlags(fs, "binlog-")
	if done, err := cli.ParseFlags(fs, args); done || err != nil {
		return err
	}
	log, err := newLogger(*logLevel)
	if err != nil {
		return err
	}
	if *configFile != "" {
		if err := cfg.LoadFile(*configFile); err != nil {
			return err
		}
	}
	// Command-line flags win over the file.
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "listen":
			cfg.Listen = *listen
		case "backend":
			cfg.Backend = *backend
		case "merge-user":
			cfg.MergeUser = *mergeUser
		case "max-batch":
			cfg.MaxBatch = *maxBatch
		case "meta-schema":
			cfg.MetaSchema = *metaSchema
		case "instance-id":
			cfg.InstanceID = *instanceID
		case "auth-plugin":
			cfg.AuthPlugin = *authPlugin
		case "max-packet-size":
			cfg.MaxPacketSize = *maxPacket
		case "drain-timeout":
			cfg.DrainTimeout.Duration = *drain
		}
	})
	for _, u := range users {
		pu, err := proxy.ParseUser(u)
		if err != nil {
			return err
		}
		cfg.Users = append(cfg.Users, pu)
	}
	cfg.HotRules = append(cfg.HotRules, rules...)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	hot, closeHot, err := startMerger(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer closeHot()
	stopFeed, err := startFeed(ctx, fs, cfg, feed, log)
	if err != nil {
		return err
	}
	defer stopFeed()
	srv, err := proxy.New(cfg, log, hot)
	if err != nil {
		return err
	}
	if *debugAddr != "" {
		if err := serveDebug(*debugAddr, log); err != nil {
			srv.Close()
			return err
		}
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		srv.Close()
		return err
	}
	served := make(chan error, 1)
	// Not ctx: the signal starts the drain, and Shutdown cancels the
	// sessions' context only once the drain timeout has passed.
	go func() { served <- srv.Serve(context.Background(), ln) }()
	select {
	case err := <-served:
		srv.Close()
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down: draining sessions", "drain_timeout", cfg.DrainTimeout.Duration)
	dctx, cancel := context.WithTimeout(context.Background(), cfg.DrainTimeout.Duration)
	defer cancel()
	start := time.Now()
	err = srv.Shutdown(dctx)
	<-served
	log.Info("shut down", "took", time.Since(start).Round(time.Millisecond), "err", err)
	return err
}

func newLogger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}

// startMerger starts the merger when cfg names hot rules; it runs merged
// batches with the merge user's credentials. closeHot waits for in-flight
// batches and must run after the proxy has shut down.
func startMerger(ctx context.Context, cfg proxy.Config, log *slog.Logger) (hot *proxy.HotPath, closeHot func(), err error) {
	closeHot = func() {}
	if len(cfg.HotRules) == 0 {
		return nil, closeHot, nil
	}
	if err := cfg.Validate(); err != nil {
		return nil, closeHot, err
	}
	rules, _ := cfg.Rules()
	m, err := merger.New(ctx, mergerConfig(cfg), log.With("component", "merger"))
	if err != nil {
		return nil, closeHot, fmt.Errorf("start merger: %w", err)
	}
	closeHot = func() {
		if err := m.Close(); err != nil {
			log.Error("closing merger", "err", err)
		}
	}
	return &proxy.HotPath{Matcher: merger.NewMatcher(rules), Executor: m}, closeHot, nil
}

// mergerConfig is the merger's configuration for a valid proxy
// configuration: merged batches run with the merge user's credentials;
// settings left unset keep the merger's defaults.
func mergerConfig(cfg proxy.Config) merger.Config {
	u, _ := cfg.MergeAccount()
	dsn := mysql.NewConfig()
	dsn.User, dsn.Passwd, dsn.Net, dsn.Addr = u.Name, u.Password, "tcp", cfg.Backend
	mc := merger.DefaultConfig()
	mc.DSN = dsn.FormatDSN()
	if cfg.MaxBatch > 0 {
		mc.MaxBatch = cfg.MaxBatch
	}
	if cfg.MetaSchema != "" {
		mc.MetaSchema = cfg.MetaSchema
	}
	if cfg.InstanceID != "" {
		mc.InstanceID = cfg.InstanceID
	}
	return mc
}

// serveDebug exposes net/http/pprof for profiling a running proxy.
func serveDebug(addr string, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--debug-addr: %w", err)
	}
	log.Info("pprof listening", "addr", ln.Addr().String())
	go func() { _ = http.Serve(ln, nil) }()
	return nil
}
