package bench

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Side names.
const (
	Direct = "direct"
	// Relay is a plain TCP relay (HAProxy or a built-in one) in front of
	// the same server: what the extra hop alone costs.
	Relay = "relay"
	Proxy = "proxy"
)

// AllSides lists every side in report order.
var AllSides = []string{Direct, Relay, Proxy}

// ParseSides parses a comma-separated list of side names ("direct,proxy").
// Direct is always needed: the tables are reset and checked over it.
func ParseSides(list string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(list, ",") {
		f = strings.TrimSpace(f)
		switch {
		case !slices.Contains(AllSides, f):
			return nil, fmt.Errorf("unknown side %q (direct, relay, proxy)", f)
		case slices.Contains(out, f):
			return nil, fmt.Errorf("side %q given twice", f)
		}
		out = append(out, f)
	}
	if len(out) < 2 {
		return nil, errors.New("at least two sides are needed to compare (e.g. direct,proxy)")
	}
	return out, nil
}

// Target is one side's way to the database.
type Target struct {
	// DSN is a go-sql-driver/mysql DSN; its database name is replaced by
	// Config.Database.
	DSN string
	// PID is the local process in the middle whose CPU is reported for
	// this side (the proxy, or the relay), 0 for none.
	PID int
	// MetricsURL is the proxy's Prometheus endpoint
	// (http://ADDR/metrics), read for how its merger batched; empty: not
	// measured.
	MetricsURL string
}

// Config is one bench run.
type Config struct {
	Direct, Relay, Proxy Target
	// Sides are the sides each cell runs (Direct, Relay, Proxy); empty:
	// direct and proxy, and relay too when Relay.DSN is set.
	Sides []string
	// RelayName says which relay the relay side goes through, for the
	// report.
	RelayName string
	// DBPID is the database server's local process id for CPU accounting,
	// 0 when it is not a local process.
	DBPID     int
	Scenarios []Scenario
	Clients   []int
	// Duration is the measured window of every side; Warmup runs before it
	// on the same connections and is not measured.
	Duration, Warmup time.Duration
	// Database is created if needed and holds the bench tables.
	Database string
	// Progress, when set, hears when each side begins and ends.
	Progress Progress
	Log      *slog.Logger
}

// Progress follows a run; ProgressBar implements it.
type Progress interface {
	Begin(label string, planned time.Duration)
	End()
}

// DefaultDatabase holds the bench tables unless told otherwise.
const DefaultDatabase = "hotrow_bench"

// Validate checks the configuration.
func (c *Config) Validate() error {
	sides := c.sides()
	for _, s := range sides {
		if !slices.Contains(AllSides, s) {
			return fmt.Errorf("bench: unknown side %q", s)
		}
	}
	switch {
	case c.Direct.DSN == "":
		return errors.New("bench: a direct DSN is needed (tables are reset and checked over it)")
	case slices.Contains(sides, Proxy) && c.Proxy.DSN == "":
		return errors.New("bench: the proxy side needs a proxy DSN")
	case slices.Contains(sides, Relay) && c.Relay.DSN == "":
		return errors.New("bench: the relay side needs a relay DSN")
	case len(c.Scenarios) == 0:
		return errors.New("bench: no scenario")
	case len(c.Clients) == 0:
		return errors.New("bench: no client count")
	case c.Duration <= 0 || c.Warmup < 0:
		return errors.New("bench: duration must be positive and warm-up not negative")
	case c.Database == "":
		return errors.New("bench: no database name")
	}
	for _, n := range c.Clients {
		if n < 1 {
			return fmt.Errorf("bench: client count %d < 1", n)
		}
	}
	return nil
}

// sides returns the sides to run, in report order.
func (c *Config) sides() []string {
	if len(c.Sides) > 0 {
		return c.Sides
	}
	if c.Relay.DSN != "" {
		return AllSides
	}
	return []string{Direct, Proxy}
}

// Plan is the wall time the measured and warm-up windows of the run take
// (sell-out scenarios may end sooner).
func (c *Config) Plan() time.Duration {
	return time.Duration(len(c.sides())*len(c.Scenarios)*len(c.Clients)) * (c.Duration + c.Warmup)
}

// Run runs every scenario at every client count, direct and through the
// proxy, and returns the report. An error means the run could not be made;
// failed correctness checks are in the report (Report.Failed).
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	log := cfg.Log
	admin, err := openAdmin(ctx, cfg.Direct.DSN, cfg.Database)
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	rep := &Report{
		Started:  time.Now().UTC(),
		CPUs:     runtime.NumCPU(),
		Duration: cfg.Duration.String(),
		Warmup:   cfg.Warmup.String(),
		Sides:    cfg.sides(),
	}
	if slices.Contains(rep.Sides, Relay) {
		rep.Relay = cfg.RelayName
	}
	if rep.Server, err = serverInfo(ctx, admin); err != nil {
		return nil, err
	}
	if !rep.Server.Durable() {
		log.Warn("the server is not durable: figures are not comparable with BENCHMARKS.md",
			"sync_binlog", rep.Server.SyncBinlog, "innodb_flush_log_at_trx_commit", rep.Server.FlushLogAtTrxCommit, "log_bin", rep.Server.LogBin)
	}
	// Direct needs a connection per client; through the proxy each client
	// session pins one backend connection and the merger has its own pool.
	// Idle pools of the sides are closed between sides.
	if need := 2*slices.Max(cfg.Clients) + 50; rep.Server.MaxConnections < need {
		log.Warn("max_connections may be too low for this client count", "max_connections", rep.Server.MaxConnections, "suggested", need)
	}
	cell := 0
	for i := range cfg.Scenarios {
		sc := &cfg.Scenarios[i]
		for _, clients := range cfg.Clients {
			// Rotate which side goes first, so that none always runs on
			// a fresher (or more fragmented) server.
			sides := rep.Sides
			k := cell % len(sides)
			order := append(slices.Clone(sides[k:]), sides[:k]...)
			cell++
			c := Cell{Scenario: sc.Name, Clients: clients}
			for _, side := range order {
				t := cfg.Direct
				switch side {
				case Proxy:
					t = cfg.Proxy
				case Relay:
					t = cfg.Relay
				}
				label := fmt.Sprintf("%s × %d %s", sc.Name, clients, side)
				if cfg.Progress != nil {
					cfg.Progress.Begin(label, cfg.Warmup+cfg.Duration)
				}
				res, err := runSide(ctx, cfg, admin, sc, clients, side, t)
				if cfg.Progress != nil {
					cfg.Progress.End()
				}
				if err != nil {
					return rep, fmt.Errorf("%s: %w", label, err)
				}
				log.Info("side done", "scenario", sc.Name, "clients", clients, "side", side,
					"ops_per_s", int(res.Throughput), "p99_ms", math.Round(res.Latency.P99*100)/100, "check", res.Check)
				switch side {
				case Direct:
					c.Direct = res
				case Relay:
					c.Relay = res
				default:
					c.Proxy = res
				}
			}
			c.setRatios()
			rep.Cells = append(rep.Cells, c)
		}
	}
	return rep, nil
}

// openAdmin opens a direct pool on the bench database, creating it.
func openAdmin(ctx context.Context, dsn, database string) (*sql.DB, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("direct DSN: %w", err)
	}
	cfg.DBName = ""
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		return nil, err
	}
	_, err = db.ExecContext(ctx, "CREATE DATABASE IF NOT EXISTS `"+database+"`")
	db.Close()
	if err != nil {
		return nil, fmt.Errorf("create database %s: %w", database, err)
	}
	return openSide(dsn, database, false, 4)
}

// openSide opens the pool of one side: clients connections at most, text
// protocol with client-side interpolation unless prepared.
func openSide(dsn, database string, prepared bool, clients int) (*sql.DB, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, err
	}
	cfg.DBName = database
	cfg.InterpolateParams = !prepared
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	// A hung statement ends the run with its outcome in doubt rather than
	// blocking it for ever.
	if cfg.ReadTimeout == 0 {
		cfg.ReadTimeout = time.Minute
	}
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(clients)
	db.SetMaxIdleConns(clients)
	return db, nil
}

// runSide resets the tables, runs the warm-up and the measured window of
// one side and checks the result.
func runSide(ctx context.Context, cfg Config, admin *sql.DB, sc *Scenario, clients int, side string, t Target) (*SideResult, error) {
	s, err := startSide(ctx, admin, t.DSN, cfg.Database, sc, clients)
	if err != nil {
		return nil, err
	}
	defer s.close()

	cs := make([]*worker, clients)
	var wg sync.WaitGroup
	for i := range cs {
		cs[i] = s.newWorker()
		wg.Go(func() { cs[i].run(ctx) })
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	stopAndWait := func() { s.stop.Store(true); <-done }

	if !sleepOrDone(ctx, done, cfg.Warmup) {
		stopAndWait()
		return nil, fmt.Errorf("warm-up ended early: %w", context.Cause(ctx))
	}
	res := &SideResult{Side: side, Clients: clients}
	// Scraped outside the CPU meters: the scrape's CPU is not the window's.
	batches := startBatches(ctx, t.MetricsURL)
	proxyCPU, dbCPU, selfCPU := startCPU(t.PID), startCPU(cfg.DBPID), startCPU(os.Getpid())
	start := time.Now()
	s.measuring.Store(true)
	res.Timeline = sample(ctx, s, start, cfg.Duration, done)
	stopAndWait()
	wall := time.Since(start)
	if ctx.Err() != nil {
		return nil, fmt.Errorf("interrupted: %w", context.Cause(ctx))
	}

	var hist Histogram
	res.Errors = map[string]int64{}
	for _, c := range cs {
		hist.Merge(&c.hist)
		for k, n := range c.errors {
			res.Errors[k] += n
		}
	}
	res.Ops = int64(hist.Count())
	res.Seconds = wall.Seconds()
	res.Throughput = float64(res.Ops) / wall.Seconds()
	res.Latency = latencyOf(&hist)
	res.Granted = s.granted.Load()
	if at := s.soldOutAt.Load(); at != 0 {
		res.SoldOutSeconds = time.Unix(0, at).Sub(start).Seconds()
	}
	res.CPU = CPU{Proxy: -1, DB: dbCPU.percent(wall), Bench: selfCPU.percent(wall), ProxyPerOp: -1}
	if used, ok := proxyCPU.used(); ok && side != Direct {
		res.CPU.Proxy = 100 * float64(used) / float64(wall)
		if res.Ops > 0 {
			res.CPU.ProxyPerOp = float64(used) / float64(time.Microsecond) / float64(res.Ops)
		}
	}
	res.RequestsPerBatch, res.BatchesPerSec, err = batches.rates(ctx, wall)
	if err != nil {
		// The figures are an explanation, not the measurement: n/a.
		cfg.Log.Warn("merger batching not measured", "side", side, "err", err)
	}
	if res.Violations, err = sc.check(ctx, admin, s.tally); err != nil {
		return nil, fmt.Errorf("check: %w", err)
	}
	res.Check = "ok"
	if len(res.Violations) > 0 {
		res.Check = "FAILED"
	}
	if sc.SellOut && res.SoldOutSeconds == 0 {
		res.Check += " (not sold out)"
	}
	return res, nil
}

// startSide resets the scenario's tables (over admin, a direct pool on
// the bench database) and opens the side's pool on dsn, with its prepared
// statements when the scenario uses them. close releases them.
func startSide(ctx context.Context, admin *sql.DB, dsn, database string, sc *Scenario, clients int) (*sideRun, error) {
	if err := sc.reset(ctx, admin); err != nil {
		return nil, err
	}
	db, err := openSide(dsn, database, sc.Prepared, clients)
	if err != nil {
		return nil, err
	}
	s := &sideRun{sc: sc, db: db, tally: newTally(sc.SKUs)}
	if sc.Keys == ZipfKeys {
		s.zipf = NewZipf(sc.SKUs, sc.ZipfS)
	}
	if sc.Prepared {
		s.prep = map[string]*sql.Stmt{}
		for _, q := range []string{decrementSQL, restockSQL, selectSQL} {
			st, err := db.PrepareContext(ctx, q)
			if err != nil {
				s.close()
				return nil, fmt.Errorf("prepare %q: %w", q, err)
			}
			s.prep[q] = st
		}
	}
	return s, nil
}

func (s *sideRun) close() {
	for _, st := range s.prep {
		st.Close()
	}
	s.db.Close()
}

// newWorker returns a client of the side with its own random source.
func (s *sideRun) newWorker() *worker {
	return &worker{s: s, r: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())), errors: map[string]int64{}}
}

// sleepOrDone waits d; false when ctx ended or the clients returned first.
func sleepOrDone(ctx context.Context, done <-chan struct{}, d time.Duration) bool {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-ctx.Done():
	case <-done:
	}
	return false
}

// timelineStep is the sampling interval of SideResult.Timeline.
const timelineStep = 100 * time.Millisecond

// sample records the side's progress until d has passed (or the clients
// stopped on their own: sold out) and returns the samples.
func sample(ctx context.Context, s *sideRun, start time.Time, d time.Duration, done <-chan struct{}) []Sample {
	tk := time.NewTicker(timelineStep)
	defer tk.Stop()
	end := time.NewTimer(d)
	defer end.Stop()
	var out []Sample
	for {
		select {
		case <-tk.C:
			out = append(out, Sample{T: time.Since(start).Seconds(), Ops: s.ops.Load(), Granted: s.granted.Load()})
			if s.stop.Load() {
				return out
			}
		case <-end.C:
			return out
		case <-done:
			return out
		case <-ctx.Done():
			return out
		}
	}
}

func latencyOf(h *Histogram) Latency {
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return Latency{P50: ms(h.Quantile(0.5)), P95: ms(h.Quantile(0.95)), P99: ms(h.Quantile(0.99)), Max: ms(h.Max()), Mean: ms(h.Mean())}
}

// ratios compares side s with base (s / base); zero figures where either
// is missing.
func ratios(base, s *SideResult) Ratio {
	if base == nil || s == nil {
		return Ratio{}
	}
	div := func(a, b float64) float64 {
		if b == 0 {
			return 0
		}
		return a / b
	}
	return Ratio{Throughput: div(s.Throughput, base.Throughput), P99: div(s.Latency.P99, base.Latency.P99),
		AddedP50: s.Latency.P50 - base.Latency.P50}
}

// setRatios fills the cell's ratios from the sides it ran.
func (c *Cell) setRatios() {
	c.Ratio = ratios(c.Direct, c.Proxy)
	if c.Relay != nil {
		rd, pr := ratios(c.Direct, c.Relay), ratios(c.Relay, c.Proxy)
		if c.Direct != nil {
			c.RelayVsDirect = &rd
		}
		if c.Proxy != nil {
			c.ProxyVsRelay = &pr
		}
	}
}

// serverInfo reads the version and the durability settings.
func serverInfo(ctx context.Context, db *sql.DB) (Server, error) {
	var s Server
	err := db.QueryRowContext(ctx, "SELECT @@version, @@sync_binlog, @@innodb_flush_log_at_trx_commit, @@log_bin, @@max_connections").
		Scan(&s.Version, &s.SyncBinlog, &s.FlushLogAtTrxCommit, &s.LogBin, &s.MaxConnections)
	if err != nil {
		return s, fmt.Errorf("read server settings: %w", err)
	}
	return s, nil
}

// Server describes the database the run measured.
type Server struct {
	Version             string `json:"version"`
	SyncBinlog          int    `json:"sync_binlog"`
	FlushLogAtTrxCommit int    `json:"innodb_flush_log_at_trx_commit"`
	LogBin              int    `json:"log_bin"`
	MaxConnections      int    `json:"max_connections"`
}

// Durable reports whether every commit is fsynced to binlog and redo log,
// the settings hotrow is measured with.
func (s Server) Durable() bool {
	return s.SyncBinlog == 1 && s.FlushLogAtTrxCommit == 1 && s.LogBin == 1
}

// Report is the outcome of a run.
type Report struct {
	// Command is the command line that produced the report, if known.
	Command  string    `json:"command,omitempty"`
	Started  time.Time `json:"started"`
	CPUs     int       `json:"cpus"`
	Duration string    `json:"duration"`
	Warmup   string    `json:"warmup"`
	Server   Server    `json:"server"`
	// Sides are the sides every cell ran, in report order.
	Sides []string `json:"sides,omitempty"`
	// Relay names the relay of the relay side (empty without one).
	Relay string `json:"relay,omitempty"`
	Cells []Cell `json:"cells"`
}

// Failed reports whether any correctness check failed.
func (r *Report) Failed() bool {
	for _, c := range r.Cells {
		for _, s := range c.sideResults() {
			if len(s.Violations) > 0 {
				return true
			}
		}
	}
	return false
}

// Cell is one scenario at one client count, every side; a side that was
// not run is nil.
type Cell struct {
	Scenario string      `json:"scenario"`
	Clients  int         `json:"clients"`
	Direct   *SideResult `json:"direct"`
	Relay    *SideResult `json:"relay,omitempty"`
	Proxy    *SideResult `json:"proxy"`
	// Ratio is proxy / direct.
	Ratio Ratio `json:"ratio"`
	// RelayVsDirect (relay / direct) is what the hop alone costs;
	// ProxyVsRelay (proxy / relay) compares the proxy with a plain relay.
	// Nil without a relay side.
	RelayVsDirect *Ratio `json:"relay_vs_direct,omitempty"`
	ProxyVsRelay  *Ratio `json:"proxy_vs_relay,omitempty"`
}

// sideResults returns the sides the cell ran, in report order.
func (c *Cell) sideResults() []*SideResult {
	var out []*SideResult
	for _, s := range []*SideResult{c.Direct, c.Relay, c.Proxy} {
		if s != nil {
			out = append(out, s)
		}
	}
	return out
}

// Ratio compares one side with another (side / base).
type Ratio struct {
	Throughput float64 `json:"throughput"`
	P99        float64 `json:"p99"`
	// AddedP50 is the side's p50 minus the base's, in milliseconds: the
	// latency the hop adds to a typical request.
	AddedP50 float64 `json:"added_p50_ms"`
}

// SideResult is one side of a cell.
type SideResult struct {
	Side    string `json:"side"`
	Clients int    `json:"clients"`
	// Ops counts statements (transactions for hot-tx) completed in the
	// measured window, Seconds is its length, Throughput their quotient.
	Ops        int64   `json:"ops"`
	Seconds    float64 `json:"seconds"`
	Throughput float64 `json:"ops_per_sec"`
	Latency    Latency `json:"latency_ms"`
	// Errors counts failed statements of the measured window by MySQL
	// error number (or driver error class).
	Errors map[string]int64 `json:"errors"`
	// Granted counts units granted in the measured window.
	Granted int64 `json:"granted"`
	// SoldOutSeconds is, for sell-out scenarios, the time from the start of
	// the sale to the grant of the last unit (0: not sold out).
	SoldOutSeconds float64 `json:"sold_out_seconds,omitempty"`
	CPU            CPU     `json:"cpu_percent"`
	// RequestsPerBatch and BatchesPerSec say how the proxy's merger
	// batched in the measured window, from the proxy's /metrics
	// (hotrow_batch_size): requests per batch on average, lone batches of
	// one included (0 when no batch ran), and batches per second. -1: not
	// measured (not the proxy side, a proxy the bench did not start, or a
	// failed scrape).
	RequestsPerBatch float64 `json:"requests_per_batch"`
	BatchesPerSec    float64 `json:"batches_per_sec"`
	// Check is "ok" or "FAILED"; Violations says what was wrong.
	Check      string   `json:"check"`
	Violations []string `json:"violations,omitempty"`
	Timeline   []Sample `json:"timeline,omitempty"`
}

// Latency holds latency figures in milliseconds.
type Latency struct {
	P50  float64 `json:"p50"`
	P95  float64 `json:"p95"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

// CPU holds CPU use in percent of one core over the measured window; -1
// means not measured (not a local process, or the built-in relay, which
// runs inside the bench process and counts in Bench).
type CPU struct {
	// Proxy is the process in the middle: the proxy on the proxy side, the
	// relay on the relay side.
	Proxy float64 `json:"proxy"`
	DB    float64 `json:"db"`
	Bench float64 `json:"bench"`
	// ProxyPerOp is Proxy's CPU time over the window divided by the
	// window's operations, in microseconds. /proc counts CPU time in 10 ms
	// ticks: over a window of seconds that is exact enough, over a sell-out
	// of a few ms it may read zero.
	ProxyPerOp float64 `json:"proxy_us_per_op"`
}

// Sample is the cumulative progress of the measured window at time T
// (seconds since its start).
type Sample struct {
	T       float64 `json:"t"`
	Ops     int64   `json:"ops"`
	Granted int64   `json:"granted"`
}
