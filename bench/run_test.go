package bench

import (
	"context"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/hotrow/hotrow/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// shortConfig is every scenario, briefly, at a few clients, with db as
// the direct side.
func shortConfig(t *testing.T, db *testdb.DB) Config {
	t.Helper()
	scs := Scenarios()
	for i := range scs {
		if scs[i].SellOut {
			// Small enough to sell out within the short window even on a
			// loaded 2-core CI machine (direct has been seen at ~100/s).
			scs[i].Stock = 20
		}
	}
	var pid int
	if db.Local != nil {
		pid = db.Local.PID()
	}
	return Config{
		Direct:    Target{DSN: db.Server.DSN("")},
		DBPID:     pid,
		Scenarios: scs,
		Clients:   []int{8},
		Duration:  400 * time.Millisecond,
		Warmup:    100 * time.Millisecond,
		Database:  db.Name,
		Log:       testLogger(t),
	}
}

// TestRunDirectVsDirect runs the whole suite with the plain server on
// both sides: the load generator's own checks must pass there.
func TestRunDirectVsDirect(t *testing.T) {
	db := testdb.New(t)
	cfg := shortConfig(t, db)
	cfg.Proxy = cfg.Direct
	rep := runAndCheck(t, cfg)
	if db.Local != nil && rep.Cells[0].Direct.CPU.DB < 0 {
		t.Error("database CPU not measured for a local server")
	}
	if p := rep.Cells[0].Proxy; p.RequestsPerBatch != -1 || p.BatchesPerSec != -1 {
		t.Errorf("batching %v req/batch, %v batches/s without a metrics URL, want n/a", p.RequestsPerBatch, p.BatchesPerSec)
	}
}

// TestRunThroughProxy runs the suite on all three sides: direct, through
// the built-in relay, and through a proxy child built from this tree.
func TestRunThroughProxy(t *testing.T) {
	db := testdb.New(t)
	bin := buildHotrow(t)
	ctx := context.Background()
	p, err := StartProxy(ctx, ProxyOptions{
		Binary: bin, Backend: db.Addr, User: db.User, Password: db.Password,
		HotRules: []string{HotRule(db.Name)},
	}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Stop(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("proxy log:\n%s", tail(p.LogPath))
		}
	})
	r, err := StartRelay(ctx, RelayBuiltin, db.Addr, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Stop(); err != nil {
			t.Error(err)
		}
	})
	cfg := shortConfig(t, db)
	cfg.Proxy = p.Target(db.User, db.Password)
	cfg.Relay = Target{DSN: relayDSN(t, db, r.Addr), PID: r.PID()}
	cfg.Sides, cfg.RelayName = AllSides, r.Name
	rep := runAndCheck(t, cfg)
	if rep.Relay != r.Name {
		t.Errorf("report's relay %q, want %q", rep.Relay, r.Name)
	}
	for _, c := range rep.Cells {
		if c.Relay == nil || c.RelayVsDirect == nil || c.ProxyVsRelay == nil {
			t.Fatalf("%s: relay side or its ratios missing", c.Scenario)
		}
		// Measured, not n/a; /proc counts CPU in 10 ms ticks, so a short
		// window (the flash sale's) may read zero.
		if c.Proxy.CPU.Proxy < 0 || c.Proxy.CPU.ProxyPerOp < 0 {
			t.Errorf("%s: proxy CPU not measured for the proxy child: %+v", c.Scenario, c.Proxy.CPU)
		}
		// The built-in relay runs in the bench process: not measured on
		// its own.
		if c.Relay.CPU.Proxy != -1 || c.Relay.CPU.ProxyPerOp != -1 {
			t.Errorf("%s: built-in relay CPU %+v, want n/a", c.Scenario, c.Relay.CPU)
		}
		if c.Direct.CPU.Proxy != -1 || c.Direct.CPU.ProxyPerOp != -1 {
			t.Errorf("%s: direct side has hop CPU %+v", c.Scenario, c.Direct.CPU)
		}
		// Batching is read from the proxy child's /metrics; the other
		// sides have no merger.
		p := c.Proxy
		if p.RequestsPerBatch < 0 || p.BatchesPerSec < 0 || c.Scenario == "hot" && (p.RequestsPerBatch < 1 || p.BatchesPerSec <= 0) {
			t.Errorf("%s: proxy batching %v req/batch, %v batches/s", c.Scenario, p.RequestsPerBatch, p.BatchesPerSec)
		}
		for _, s := range []*SideResult{c.Direct, c.Relay} {
			if s.RequestsPerBatch != -1 || s.BatchesPerSec != -1 {
				t.Errorf("%s %s: batching %v, %v, want n/a", c.Scenario, s.Side, s.RequestsPerBatch, s.BatchesPerSec)
			}
		}
	}
}

// TestRunDirectVsRelay is the two-side run without the proxy: what
// --sides direct,relay does.
func TestRunDirectVsRelay(t *testing.T) {
	db := testdb.New(t)
	r, err := StartRelay(context.Background(), RelayBuiltin, db.Addr, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Stop() })
	cfg := shortConfig(t, db)
	cfg.Scenarios, _ = LookupScenarios("hot,select")
	cfg.Relay = Target{DSN: relayDSN(t, db, r.Addr)}
	cfg.Sides = []string{Direct, Relay}
	rep := runAndCheck(t, cfg)
	for _, c := range rep.Cells {
		if c.Proxy != nil || c.RelayVsDirect == nil || c.ProxyVsRelay != nil {
			t.Errorf("%s: sides %v, ratios relay/direct %v proxy/relay %v", c.Scenario, c.sideResults(), c.RelayVsDirect, c.ProxyVsRelay)
		}
	}
}

// relayDSN is the test server's superuser DSN through a relay at addr.
func relayDSN(t *testing.T, db *testdb.DB, addr string) string {
	t.Helper()
	cfg, err := mysql.ParseDSN(db.Server.DSN(""))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Addr = addr
	return cfg.FormatDSN()
}

func runAndCheck(t *testing.T, cfg Config) *Report {
	t.Helper()
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := WriteTable(&b, rep); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", b.String())
	if rep.Failed() {
		t.Fatal("correctness check failed")
	}
	if len(rep.Cells) != len(cfg.Scenarios) {
		t.Fatalf("%d cells, want %d", len(rep.Cells), len(cfg.Scenarios))
	}
	for _, c := range rep.Cells {
		if got := len(c.sideResults()); got != len(cfg.sides()) {
			t.Errorf("%s: %d sides, want %d", c.Scenario, got, len(cfg.sides()))
		}
		for _, s := range c.sideResults() {
			if s.Ops == 0 || s.Latency.P99 <= 0 {
				t.Errorf("%s %s: %d ops, p99 %v ms: nothing measured", c.Scenario, s.Side, s.Ops, s.Latency.P99)
			}
			if len(s.Errors) > 0 {
				t.Errorf("%s %s: errors %v", c.Scenario, s.Side, s.Errors)
			}
			if c.Scenario == "flash-sale" && s.SoldOutSeconds == 0 {
				t.Errorf("%s %s: not sold out (granted %d)", c.Scenario, s.Side, s.Granted)
			}
		}
	}
	return rep
}

func TestParseSides(t *testing.T) {
	tests := []struct {
		in   string
		want string
		err  bool
	}{
		{"direct,relay,proxy", "direct,relay,proxy", false},
		{"direct, proxy", "direct,proxy", false},
		{"relay,direct", "relay,direct", false},
		{"direct", "", true},
		{"direct,haproxy", "", true},
		{"direct,direct", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSides(tt.in)
			if (err != nil) != tt.err || strings.Join(got, ",") != tt.want {
				t.Fatalf("ParseSides(%q) = %v, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

// TestCheckDetectsViolations changes the stock behind the clients' back:
// the check must see the lost grant and the oversell.
func TestCheckDetectsViolations(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	sc := Scenarios()[0]
	sc.Stock = 5
	s, err := startSide(ctx, db.Open(t), db.Server.DSN(""), db.Name, &sc, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	w := s.newWorker()
	for range 3 {
		if err := w.step(ctx); err != nil {
			t.Fatal(err)
		}
	}
	admin := db.Open(t)
	if bad, err := sc.check(ctx, admin, s.tally); err != nil || len(bad) > 0 {
		t.Fatalf("clean run: violations %v, err %v", bad, err)
	}
	tests := []struct {
		name, stmt, want string
	}{
		{"lost grant", "UPDATE inventory SET stock = stock - 1 WHERE sku_id = 1", "want initial 5 + net -3"},
		{"oversell", "UPDATE inventory SET stock = -1 WHERE sku_id = 1", "oversold"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := admin.ExecContext(ctx, tt.stmt); err != nil {
				t.Fatal(err)
			}
			bad, err := sc.check(ctx, admin, s.tally)
			if err != nil {
				t.Fatal(err)
			}
			if len(bad) == 0 || !strings.Contains(strings.Join(bad, "\n"), tt.want) {
				t.Fatalf("violations %q, want one with %q", bad, tt.want)
			}
		})
	}
}

// buildHotrow builds the hotrow binary of this tree into a temp dir.
func buildHotrow(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "hotrow")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/hotrow/hotrow/cmd/hotrow").CombinedOutput()
	if err != nil {
		t.Fatalf("go build ./cmd/hotrow: %v\n%s", err, out)
	}
	return bin
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// tWriter sends log lines to t.Log.
type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
