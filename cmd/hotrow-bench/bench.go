package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/hotrow/hotrow/bench"
	"github.com/hotrow/hotrow/internal/cli"
)

func benchMain(args []string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: hotrow-bench bench [flags]

Runs each scenario at each client count on up to three sides in the same
run — directly against the database, through a plain TCP relay, and through
the proxy — one side after the other, each with a warm-up, and prints
throughput, latency percentiles, errors by MySQL code, CPU of the process in
the middle (proxy or relay: percent of a core and µs per request), of the
database and of the load generator (from /proc, when they are local
processes), the proxy/direct, relay/direct and proxy/relay ratios, and how
the proxy child's merger batched (requests per batch, batches per second,
from its /metrics; n/a with --proxy). Every side resets its tables first
and checks afterwards that stock + granted = initial (no oversell, no lost
grant); the exit status is non-zero when a check fails.

The relay side is what the extra hop alone costs: HAProxy (tcp mode,
nbthread 1, a child process) when haproxy is on PATH, else a built-in Go
relay inside the bench process (its CPU then counts as bench cpu, hop cpu
is n/a). --sides direct,proxy runs without it.

Where the database comes from:
  --direct DSN        an existing server (a superuser DSN, e.g.
                      "root:pw@tcp(10.0.0.5:3306)/"); the tables go to --database
  --testcontainers    a container started with testcontainers-go from --image
  (neither)           a throw-away local MariaDB with durable settings
Where the proxy comes from:
  --proxy DSN         a running hotrow in front of that server (with a hot rule
                      for DATABASE.inventory:sku_id:stock)
  (none)              "hotrow proxy" as a child process, from --proxy-binary

Scenarios (--scenario, comma-separated, or "all"):
`)
		for _, s := range bench.Scenarios() {
			fmt.Fprintf(fs.Output(), "  %-13s %s\n", s.Name, s.Summary)
		}
		fmt.Fprintf(fs.Output(), "\nFlags:\n")
		fs.PrintDefaults()
		fmt.Fprintf(fs.Output(), `
Examples:
  hotrow-bench bench --scenario hot --clients 256 --duration 10s
  hotrow-bench bench --scenario hot,select --clients 1,16 --sides direct,proxy
  hotrow-bench bench --scenario hot,zipf --clients 1,16,64,256,1024 --chart out/sweep.png --json out/sweep.json
  hotrow-bench bench --testcontainers --scenario flash-sale --clients 256
`)
	}
	var o benchOptions
	o.register(fs)
	direct := fs.String("direct", "", "`DSN` of an existing server (superuser); default: provision one")
	proxyDSN := fs.String("proxy", "", "`DSN` of a running proxy in front of --direct; default: start one as a child")
	scenarios := fs.String("scenario", "hot", "scenario `names`, comma-separated, or all")
	clients := fs.String("clients", "256", "client counts, comma-separated (`N[,N...]`); several make a sweep")
	duration := fs.Duration("duration", 10*time.Second, "measured window of each side (sell-out scenarios stop earlier when sold out)")
	warmup := fs.Duration("warmup", 2*time.Second, "unmeasured warm-up of each side on the same connections")
	tc := fs.Bool("testcontainers", false, "run the database in a container (testcontainers-go; Ryuk is disabled unless TESTCONTAINERS_RYUK_DISABLED is set)")
	image := fs.String("image", bench.DefaultImage, "container `image` for --testcontainers: the local image scripts/build-mariadb-image.sh builds, or e.g. mariadb:11.4, mysql:8.4 with --pull")
	pull := fs.Bool("pull", false, "allow pulling --image from a registry")
	sidesFlag := fs.String("sides", "direct,relay,proxy", "`sides` to run, comma-separated: direct (always needed), relay, proxy")
	relay := fs.String("relay", bench.RelayAuto, "`relay` of the relay side: auto (haproxy when on PATH, else builtin), haproxy or builtin")
	flashStock := fs.Int64("flash-stock", bench.DefaultFlashStock, "initial stock of the flash-sale scenario")
	if done, err := cli.ParseFlags(fs, args); done || err != nil {
		return err
	}
	switch {
	case *proxyDSN != "" && *direct == "":
		return errors.New("--proxy needs --direct (the server behind it)")
	case *tc && *direct != "":
		return errors.New("--testcontainers and --direct exclude each other")
	}
	scs, err := bench.LookupScenarios(*scenarios)
	if err != nil {
		return err
	}
	for i := range scs {
		if scs[i].SellOut {
			scs[i].Stock = *flashStock
		}
	}
	counts, err := parseCounts(*clients)
	if err != nil {
		return err
	}
	sides, err := bench.ParseSides(*sidesFlag)
	if err != nil {
		return fmt.Errorf("--sides: %w", err)
	}
	if !slices.Contains(sides, bench.Direct) {
		return errors.New("--sides: direct is needed (the tables are reset and checked over it)")
	}
	envOpts := bench.EnvOptions{
		DirectDSN: *direct, ProxyDSN: *proxyDSN,
		Testcontainers: *tc, Image: *image, Pull: *pull,
		NoProxy: !slices.Contains(sides, bench.Proxy),
	}
	if slices.Contains(sides, bench.Relay) {
		envOpts.Relay = *relay
	}
	_, err = o.run(envOpts, bench.Config{Scenarios: scs, Clients: counts, Sides: sides, Duration: *duration, Warmup: *warmup},
		"hotrow-bench bench "+redactDSNs(args), nil)
	return err
}

// benchOptions are the flags bench and demo share, and what they do.
type benchOptions struct {
	jsonPath, chartPath string
	database            string
	logLevel            slog.Level
	proxyBinary         string
	proxyArgs           cli.ListFlag
}

func (o *benchOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&o.jsonPath, "json", o.jsonPath, "write the full report (with timelines) as JSON to `file`")
	fs.StringVar(&o.chartPath, "chart", o.chartPath, "draw the report to `file` (.png, .svg or .pdf)")
	fs.StringVar(&o.database, "database", bench.DefaultDatabase, "`database` for the bench tables (inventory, orders); it is reset by every side")
	fs.TextVar(&o.logLevel, "log-level", slog.LevelInfo, "log `level`: debug, info, warn or error")
	fs.StringVar(&o.proxyBinary, "proxy-binary", "", "the hotrow `executable` that runs the proxy child (default: hotrow next to this binary, else on PATH)")
	fs.Var(&o.proxyArgs, "proxy-arg", "extra `flag` for the proxy child (repeatable), e.g. --proxy-arg=--max-batch=512")
}

// run provisions both sides, runs cfg, prints the table and writes the
// JSON and the chart, then calls after (when not nil). It returns an error
// when a correctness check failed.
func (o *benchOptions) run(envOpts bench.EnvOptions, cfg bench.Config, command string, after afterRun) (*bench.Report, error) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	logOut := io.Writer(os.Stderr)
	if isTerminal(os.Stderr) {
		bar := bench.NewProgressBar(os.Stderr, cfg.Plan())
		defer bar.Close()
		cfg.Progress, logOut = bar, bar
	}
	log := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: o.logLevel}))

	if envOpts.ProxyDSN == "" && !envOpts.NoProxy {
		bin, err := proxyBinary(o.proxyBinary)
		if err != nil {
			return nil, err
		}
		envOpts.ProxyBinary = bin
	}
	envOpts.Database, envOpts.ProxyArgs = o.database, o.proxyArgs
	env, err := bench.Provision(ctx, envOpts, log)
	if err != nil {
		return nil, err
	}
	defer env.Close()

	cfg.Direct, cfg.Relay, cfg.Proxy, cfg.DBPID, cfg.Database, cfg.Log = env.Direct, env.Relay, env.Proxy, env.DBPID, o.database, log
	cfg.RelayName = env.RelayName
	if len(cfg.Sides) == 0 {
		cfg.Sides = []string{bench.Direct, bench.Proxy}
	}
	log.Info("running", "scenarios", len(cfg.Scenarios), "client_counts", len(cfg.Clients), "sides", strings.Join(cfg.Sides, ","), "relay", env.RelayName, "planned", cfg.Plan())
	rep, err := bench.Run(ctx, cfg)
	if bar, ok := cfg.Progress.(*bench.ProgressBar); ok {
		bar.Close() // before printing the table
	}
	if err != nil {
		if env.ProxyProcess != nil {
			log.Error("run failed; see the proxy log", "path", env.ProxyProcess.LogPath)
		}
		return nil, err
	}
	rep.Command = command
	fmt.Println()
	if err := bench.WriteTable(os.Stdout, rep); err != nil {
		return nil, err
	}
	if o.jsonPath != "" {
		if err := bench.WriteJSON(o.jsonPath, rep); err != nil {
			return nil, err
		}
		fmt.Printf("\nreport: %s\n", o.jsonPath)
	}
	if o.chartPath != "" {
		if err := bench.WriteChart(o.chartPath, rep); err != nil {
			return nil, err
		}
		fmt.Printf("chart:  %s\n", o.chartPath)
	}
	if rep.Failed() {
		return rep, errors.New("correctness check failed (see CHECK FAILED above)")
	}
	if after != nil {
		return rep, after(ctx, env, rep, log)
	}
	return rep, nil
}

// afterRun runs once a run's report is written, while its database and
// proxy still run.
type afterRun func(ctx context.Context, env *bench.Env, rep *bench.Report, log *slog.Logger) error

// proxyBinary returns the hotrow executable that runs the proxy child:
// given, when not empty; else hotrow in this binary's directory (make build
// puts both in bin/); else hotrow on PATH.
func proxyBinary(given string) (string, error) {
	if given != "" {
		return given, nil
	}
	if exe, err := os.Executable(); err == nil {
		sibling := filepath.Join(filepath.Dir(exe), "hotrow")
		if st, err := os.Stat(sibling); err == nil && st.Mode().IsRegular() {
			return sibling, nil
		}
	}
	if path, err := exec.LookPath("hotrow"); err == nil {
		return path, nil
	}
	return "", errors.New("no hotrow binary next to hotrow-bench nor on PATH: run make build, or give --proxy-binary")
}

// parseCounts parses "1,16,64".
func parseCounts(list string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("--clients: %q is not a positive number", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// redactDSNs joins args with the passwords of --direct and --proxy DSNs
// masked, for the report.
func redactDSNs(args []string) string {
	out := slices.Clone(args)
	for i, a := range out {
		name, val, inline := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !inline && i > 0 {
			name, val = strings.TrimLeft(args[i-1], "-"), a
		}
		if name != "direct" && name != "proxy" {
			continue
		}
		if cfg, err := mysql.ParseDSN(val); err == nil && cfg.Passwd != "" {
			cfg.Passwd = "xxx"
			out[i] = strings.TrimSuffix(a, val) + cfg.FormatDSN()
		}
	}
	return strings.Join(out, " ")
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
