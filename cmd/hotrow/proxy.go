package main

import (
	"context"
	"database/sql"
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

	"github.com/hotrow/hotrow/admin"
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
	lonePassThrough := fs.Bool("lone-passthrough", cfg.LonePassThrough, "run a hot UPDATE with nothing queued for its table on the client's own connection, as a plain\nstatement (its order event comes from the row change); false: as a merged batch of one with a\nledger row, slower, but every grant made through hotrow has a ledger row")
	batchGather := fs.Duration("batch-gather", cfg.BatchGather.Duration, "most a hot table's next batch waits for the clients of its last two batches to come back\n(and at most a quarter of the last batch's time): clients that send their next statement when\nanswered then share one batch instead of splitting into two that alternate, each paying a\ncommit; a table whose last batches served one client never waits. 0: a batch forms as soon as\nthe previous one ends")
	instanceID := fs.String("instance-id", "", "`id` of this proxy instance in its batch ids, 1-48 of [A-Za-z0-9._-]: keep it stable across\nrestarts of the same instance (recovery after a crash resolves only its own batches) and unique\nacross instances in front of the same server (default: host name, process id and a random suffix)")
	claimUncontended := fs.Bool("claim-uncontended", cfg.ClaimUncontended, "merge every hot UPDATE inside a transaction as a claim; false: on a row that is not hot\n(see --tx-hot-threshold) it runs in the client's own transaction, as directly, which is faster\nthan a claim's extra batch commit for rows nobody waits for, but holds the row's lock across\nthe client's round trips: a batch of the table that includes the row waits for that transaction")
	txHotThreshold := fs.Int("tx-hot-threshold", cfg.TxHotThreshold, "transactions updating one row at once that make it hot: while it is (and for a second\nafter), UPDATEs of it inside transactions are claims; below, they run in the transaction")
	sweepAge := fs.Duration("claim-sweep-age", cfg.ClaimSweepAge.Duration, "the sweep cancels claims of merged transactions older than this whose owner connection is gone")
	sweepEvery := fs.Duration("claim-sweep-every", cfg.ClaimSweepEvery.Duration, "how often the sweep of claims runs (also at start)")
	authPlugin := fs.String("auth-plugin", cfg.AuthPlugin, "auth plugin offered to clients: mysql_native_password or caching_sha2_password")
	maxPacket := fs.Int("max-packet-size", cfg.MaxPacketSize, "largest client packet in `bytes` (like max_allowed_packet)")
	handshakeTimeout := fs.Duration("handshake-timeout", cfg.HandshakeTimeout.Duration, "close a client that has not authenticated within this `duration` (like connect_timeout)")
	connectTimeout := fs.Duration("connect-timeout", cfg.ConnectTimeout.Duration, "bound on dialing and logging in to the backend, and on how long a client that has not\nanswered its greeting keeps the backend connection it was greeted for; keep it below the\nserver's connect_timeout")
	deadAfter := fs.Duration("backend-dead-after", cfg.BackendDeadAfter.Duration, "close a connection to the server (a session's or a merged batch's) once the server's host\nhas answered nothing for this `duration` (network cut, host gone: packets dropped, not refused);\na statement waiting on it then fails with 2013 (a merged one is retried or resolved) instead\nof waiting. TCP keepalive probes from half of it on, and TCP_USER_TIMEOUT on Linux; a long\nstatement is not cut as long as the host answers. 0: the OS defaults (about 2.5 minutes, up\nto 15 for unacknowledged data)")
	maxConns := fs.Int("max-connections", cfg.MaxConnections, "most client connections (authenticated or not); beyond it ERROR 1040 Too many connections")
	maxHandshakes := fs.Int("max-handshakes", cfg.MaxHandshakes, "most clients in their handshake at once; beyond it the one waiting longest is closed")
	handshakeBackends := fs.Int("handshake-backends", cfg.HandshakeBackends, "most backend connections held for clients that have not authenticated yet")
	tlsCert := fs.String("tls-cert", "", "PEM `file` of the certificate offered to clients for TLS (with --tls-key); no TLS when empty")
	tlsKey := fs.String("tls-key", "", "PEM `file` of the key of --tls-cert")
	requireTLS := fs.Bool("require-tls", false, "refuse clients that do not upgrade to TLS, with the error the server gives under\nrequire_secure_transport=ON (MariaDB: 1045, MySQL: 3159)")
	backendTLS := fs.String("backend-tls", cfg.BackendTLS, "TLS to the server: off, preferred (when the server offers it) or required")
	backendCA := fs.String("backend-ca", "", "PEM `file` of the CAs that verify the server's certificate (default: not verified)")
	drain := fs.Duration("drain-timeout", cfg.DrainTimeout.Duration, "on SIGTERM/SIGINT, how long running statements may finish")
	logLevel := fs.String("log-level", "info", "log `level`: debug, info, warn or error")
	debugAddr := fs.String("debug-addr", "", "serve Go's pprof profiles on this loopback `address` (e.g. 127.0.0.1:6060); off when empty")
	adminListen := fs.String("admin-listen", "", "serve the admin port (MySQL protocol: hot_rules, stats_* tables, SHOW HOTROW STATUS) on this\n`address`, e.g. 127.0.0.1:6032; off when empty")
	adminUser := fs.String("admin-user", "admin:", "the admin port's account `NAME:PASSWORD`; a non-loopback --admin-listen needs a password")
	metricsListen := fs.String("metrics-listen", "", "serve Prometheus metrics at http://`ADDR`/metrics; off when empty")
	autoHot := fs.Bool("auto-hot", false, "merge keys detected as hot on tables without a rule automatically (unique key, integer stock);\nthe admin port's SET hotrow.auto_hot = 1 does the same")
	hotThreshold := fs.Int("hot-threshold", merger.DefaultHotThreshold, "concurrent pass-through UPDATEs of one key that make it a hot candidate")
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
		case "lone-passthrough":
			cfg.LonePassThrough = *lonePassThrough
		case "batch-gather":
			cfg.BatchGather.Duration = *batchGather
		case "instance-id":
			cfg.InstanceID = *instanceID
		case "claim-uncontended":
			cfg.ClaimUncontended = *claimUncontended
		case "tx-hot-threshold":
			cfg.TxHotThreshold = *txHotThreshold
		case "claim-sweep-age":
			cfg.ClaimSweepAge.Duration = *sweepAge
		case "claim-sweep-every":
			cfg.ClaimSweepEvery.Duration = *sweepEvery
		case "auth-plugin":
			cfg.AuthPlugin = *authPlugin
		case "max-packet-size":
			cfg.MaxPacketSize = *maxPacket
		case "handshake-timeout":
			cfg.HandshakeTimeout.Duration = *handshakeTimeout
		case "connect-timeout":
			cfg.ConnectTimeout.Duration = *connectTimeout
		case "backend-dead-after":
			cfg.BackendDeadAfter.Duration = *deadAfter
		case "max-connections":
			cfg.MaxConnections = *maxConns
		case "max-handshakes":
			cfg.MaxHandshakes = *maxHandshakes
		case "handshake-backends":
			cfg.HandshakeBackends = *handshakeBackends
		case "tls-cert":
			cfg.TLSCert = *tlsCert
		case "tls-key":
			cfg.TLSKey = *tlsKey
		case "require-tls":
			cfg.RequireTLS = *requireTLS
		case "backend-tls":
			cfg.BackendTLS = *backendTLS
		case "backend-ca":
			cfg.BackendCA = *backendCA
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
	// The admin settings are checked before anything starts.
	var adminCfg admin.Config
	if *adminListen != "" {
		if adminCfg, err = adminConfig(cfg, *adminListen, *adminUser); err != nil {
			return err
		}
	}
	opts := hotOptions{always: *adminListen != "" || *autoHot, detect: *adminListen != "" || *metricsListen != "" || *autoHot,
		autoHot: *autoHot, admin: *adminListen != "", threshold: *hotThreshold}
	hot, closeHot, err := startMerger(ctx, cfg, log, opts)
	if err != nil {
		return err
	}
	defer closeHot()
	consumer, stopFeed, err := startFeed(ctx, fs, cfg, feed, log)
	if err != nil {
		return err
	}
	defer stopFeed()
	var feedStats admin.Feed // nil when no feed runs, not a typed nil
	if consumer != nil {
		feedStats = consumer
	}
	adminCfg.Feed = feedStats
	var proxyHot *proxy.HotPath
	if hot != nil {
		proxyHot = &proxy.HotPath{Matcher: hot.rules, Executor: hot.m}
		if hot.obs != nil {
			proxyHot.Observer = hot.obs
		}
	}
	srv, err := proxy.New(cfg, log, proxyHot)
	if err != nil {
		return err
	}
	if *debugAddr != "" {
		if err := serveDebug(*debugAddr, log); err != nil {
			srv.Close()
			return err
		}
	}
	if *adminListen != "" {
		closeAdmin, err := startAdmin(ctx, adminCfg, log, hot, srv)
		if err != nil {
			srv.Close()
			return err
		}
		defer closeAdmin()
	}
	if *metricsListen != "" {
		closeMetrics, err := serveMetrics(*metricsListen, log, hot, srv, feedStats)
		if err != nil {
			srv.Close()
			return err
		}
		defer closeMetrics()
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

// hotOptions say when the merger runs besides hot rules in cfg, and how
// hot keys are detected.
type hotOptions struct {
	always    bool // start the merger even without rules (admin port, --auto-hot)
	detect    bool // count pass-through UPDATEs for hot-key detection
	autoHot   bool
	admin     bool // an admin port runs (it vets hot-key candidates)
	threshold int
}

// hotParts are the merger, the rules in force and the hot-key detector
// (nil when not detecting).
type hotParts struct {
	m     *merger.Merger
	rules *merger.RuleSet
	det   *merger.HotKeys
	obs   *admin.Observer // nil when not detecting
}

// startMerger starts the merger when cfg names hot rules or opts.always;
// it runs merged batches with the merge user's credentials. closeHot
// waits for in-flight batches and must run after the proxy has shut down.
func startMerger(ctx context.Context, cfg proxy.Config, log *slog.Logger, opts hotOptions) (hot *hotParts, closeHot func(), err error) {
	closeHot = func() {}
	if len(cfg.HotRules) == 0 && !opts.always {
		return nil, closeHot, nil
	}
	if err := cfg.Validate(); err != nil {
		return nil, closeHot, err
	}
	if _, ok := cfg.MergeAccount(); !ok {
		return nil, closeHot, fmt.Errorf("merge user %q is not a configured user", cfg.MergeUser)
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
	hot = &hotParts{m: m, rules: merger.NewRuleSet(rules)}
	if opts.detect {
		hot.det = merger.NewHotKeys(hot.rules, log.With("component", "hotkeys"))
		if err := hot.det.SetThreshold(int64(opts.threshold)); err != nil {
			closeHot()
			return nil, func() {}, fmt.Errorf("--hot-threshold: %w", err)
		}
		hot.det.SetAuto(opts.autoHot)
		hot.obs = admin.NewObserver(hot.rules, hot.det)
		if opts.autoHot && !opts.admin {
			// Without an admin port (which vets candidates itself), a
			// pool of the merge user's checks them.
			db, err := sql.Open("mysql", mergerConfig(cfg).DSN)
			if err != nil {
				closeHot()
				return nil, func() {}, err
			}
			db.SetMaxOpenConns(1)
			hot.det.SetCheck(admin.AutoCheck(db))
			closeMerger := closeHot
			closeHot = func() {
				closeMerger()
				db.Close()
			}
		}
	}
	return hot, closeHot, nil
}

// adminConfig is the admin port's configuration on addr with account
// (NAME:PASSWORD), validated: hot_rules is seeded with cfg's rules and
// lives in the merger's meta schema, read with the merge user's
// credentials.
func adminConfig(cfg proxy.Config, addr, account string) (admin.Config, error) {
	ac := admin.DefaultConfig()
	var err error
	if ac.User, ac.Password, err = admin.ParseAccount(account); err != nil {
		return ac, fmt.Errorf("--admin-user: %w", err)
	}
	mc := mergerConfig(cfg)
	ac.Listen, ac.MetaDSN, ac.MetaSchema = addr, mc.DSN, mc.MetaSchema
	ac.Seed, _ = cfg.Rules()
	return ac, ac.Validate()
}

// startAdmin starts the admin port; it puts the saved rules in force.
func startAdmin(ctx context.Context, ac admin.Config, log *slog.Logger, hot *hotParts, srv *proxy.Server) (func(), error) {
	addr := ac.Listen
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--admin-listen: %w", err)
	}
	adm, err := admin.New(ctx, ac, log.With("component", "admin"), hot.rules, hot.m, srv, hot.obs)
	if err != nil {
		ln.Close()
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := adm.Serve(ln); err != nil {
			log.Error("admin port stopped", "err", err)
		}
	}()
	return func() {
		adm.Close()
		<-done
	}, nil
}

// serveMetrics serves /metrics on addr until the returned func runs.
// feed may be nil (no order feed).
func serveMetrics(addr string, log *slog.Logger, hot *hotParts, srv *proxy.Server, feed admin.Feed) (func(), error) {
	var c *admin.Collector
	if hot != nil {
		c = admin.NewCollector(hot.m, hot.rules, srv, hot.det)
	} else {
		c = admin.NewCollector(nil, nil, srv, nil)
	}
	c.WithFeed(feed)
	h, err := admin.MetricsHandler(c)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-listen: %w", err)
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = hs.Serve(ln)
	}()
	log.Info("metrics listening", "addr", ln.Addr().String())
	return func() {
		hs.Close()
		<-done
	}, nil
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
	if cfg.ClaimSweepAge.Duration > 0 {
		mc.ClaimSweepAge = cfg.ClaimSweepAge.Duration
	}
	if cfg.ClaimSweepEvery.Duration > 0 {
		mc.ClaimSweepEvery = cfg.ClaimSweepEvery.Duration
	}
	mc.DeadAfter = cfg.BackendDeadAfter.Duration
	mc.LonePassThrough = cfg.LonePassThrough
	mc.GatherWait = cfg.BatchGather.Duration
	mc.ClaimUncontended = cfg.ClaimUncontended
	if cfg.TxHotThreshold > 0 {
		mc.TxHotThreshold = cfg.TxHotThreshold
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
