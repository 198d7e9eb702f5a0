package bench

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func sampleSide(side string, clients int, tput, p99 float64) *SideResult {
	s := &SideResult{Side: side, Clients: clients, Ops: int64(tput * 10), Seconds: 10, Throughput: tput,
		Latency: Latency{P50: p99 / 4, P95: p99 / 2, P99: p99, Max: p99 * 2, Mean: p99 / 3},
		Errors:  map[string]int64{}, Granted: int64(tput * 10), CPU: CPU{Proxy: -1, DB: 85, Bench: 40, ProxyPerOp: -1},
		RequestsPerBatch: -1, BatchesPerSec: -1, Check: "ok"}
	for i := 1; i <= 30; i++ {
		t := float64(i) / 10
		s.Timeline = append(s.Timeline, Sample{T: t, Ops: int64(tput * t), Granted: int64(tput * t)})
	}
	return s
}

func sampleReport() *Report {
	r := &Report{CPUs: 2, Duration: "10s", Warmup: "2s",
		Server: Server{Version: "10.11.19-MariaDB", SyncBinlog: 1, FlushLogAtTrxCommit: 1, LogBin: 1},
		Sides:  AllSides, Relay: "HAProxy 2.6.12 (tcp mode, nbthread 1, pid 42)"}
	for _, n := range []int{1, 16, 256} {
		d, p := sampleSide(Direct, n, 2100, 142), sampleSide(Proxy, n, 25000+float64(n), 11.5)
		rl := sampleSide(Relay, n, 1050, 150)
		p.CPU.Proxy, p.CPU.ProxyPerOp = 120, 47.25
		p.RequestsPerBatch, p.BatchesPerSec = float64(n), 25000/float64(n)
		rl.CPU.Proxy, rl.CPU.ProxyPerOp = 30, 285.7
		c := Cell{Scenario: "hot", Clients: n, Direct: d, Relay: rl, Proxy: p}
		c.setRatios()
		r.Cells = append(r.Cells, c)
	}
	d, p := sampleSide(Direct, 256, 1900, 150), sampleSide(Proxy, 256, 21000, 12)
	d.SoldOutSeconds, p.SoldOutSeconds = 10.5, 0.95
	d.Errors["1213"], d.Errors["conn"], d.Errors["1205"] = 2, 1, 2
	p.Violations, p.Check = []string{"sku 1: oversold, stock -1"}, "FAILED"
	r.Cells = append(r.Cells, Cell{Scenario: "flash-sale", Clients: 256, Direct: d, Proxy: p, Ratio: ratios(d, p)})
	return r
}

func TestWriteTable(t *testing.T) {
	var b strings.Builder
	if err := WriteTable(&b, sampleReport()); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	t.Logf("\n%s", out)
	for _, want := range []string{
		"server 10.11.19-MariaDB (sync_binlog=1, innodb_flush_log_at_trx_commit=1, log_bin=1), 2 CPUs, 10s measured after 2s warm-up",
		"hot             256  direct         2,100",
		"relay: HAProxy 2.6.12 (tcp mode, nbthread 1, pid 42)",
		"proxy/direct   12.0x   -32.6",
		"relay/direct   0.50x   +2.00",
		"proxy/relay    24.1x   -34.6",
		"0.08x",
		"47.2",
		"286",
		"1205:2 1213:2 conn:1",
		"120%",
		"n/a",
		"10.50",
		"CHECK FAILED flash-sale × 256 proxy: sku 1: oversold, stock -1",
		"merger batching on the proxy side (its /metrics over the measured window):\n" +
			"scenario    clients  proxy ops/s  proxy/direct  req/batch  batches/s\n" +
			"hot               1       25,001         11.9x        1.0     25,000\n" +
			"hot              16       25,016         11.9x       16.0      1,563\n" +
			"hot             256       25,256         12.0x        256       97.7\n" +
			"flash-sale      256       21,000         11.1x        n/a        n/a\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q", want)
		}
	}
	if header := strings.Split(out, "\n")[3]; !strings.HasPrefix(header, "scenario    clients  side           ops/s") {
		t.Errorf("header %q", header)
	}
}

func TestFormatting(t *testing.T) {
	tests := []struct{ got, want string }{
		{thousands(0), "0"},
		{thousands(999.6), "1,000"},
		{thousands(1234567), "1,234,567"},
		{millis(0.0432), "0.04"},
		{millis(12.345), "12.3"},
		{millis(142.4), "142"},
		{percent(-1), "n/a"},
		{percent(135.4), "135%"},
		{times(0), "-"},
		{times(0.5), "0.50x"},
		{times(19.96), "20.0x"},
		{micros(-1), "n/a"},
		{micros(12.34), "12.3"},
		{micros(123.4), "123"},
		{added(0.123), "+0.12"},
		{added(-12.34), "-12.3"},
		{batching(-1), "n/a"},
		{batching(0), "-"},
		{batching(15.84), "15.8"},
		{batching(1234.5), "1,235"},
		{formatErrors(nil), "-"},
		{formatErrors(map[string]int64{"conn": 1, "1213": 3}), "1213:3 conn:1"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func TestRatiosAndFailed(t *testing.T) {
	r := sampleReport()
	if !r.Failed() {
		t.Error("report with a violation not Failed")
	}
	c := r.Cells[2]
	if c.Ratio.Throughput < 12 || c.Ratio.Throughput > 12.1 || c.Ratio.P99 > 0.09 {
		t.Errorf("ratio %+v", c.Ratio)
	}
	if got := ratios(&SideResult{}, &SideResult{Throughput: 5}); got.Throughput != 0 {
		t.Errorf("ratio with zero direct = %v, want 0", got.Throughput)
	}
	if pr := c.ProxyVsRelay; pr == nil || pr.Throughput < 24 || pr.Throughput > 24.2 {
		t.Errorf("proxy/relay %+v", pr)
	}
	if fs := r.Cells[3]; fs.RelayVsDirect != nil || fs.ProxyVsRelay != nil {
		t.Error("relay ratios in a cell without a relay side")
	}
}

func TestWriteJSONAndCharts(t *testing.T) {
	dir := t.TempDir()
	r := sampleReport()
	if err := WriteJSON(filepath.Join(dir, "r.json"), r); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "r.json"))
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Cells) != 4 || back.Cells[3].Direct.SoldOutSeconds != 10.5 || back.Cells[0].Relay == nil ||
		back.Cells[0].ProxyVsRelay == nil || back.Cells[0].Proxy.CPU.ProxyPerOp != 47.25 || back.Relay == "" {
		t.Errorf("JSON round trip lost data: %+v", back.Cells)
	}
	for _, name := range []string{"chart.png", "sub/chart.svg"} {
		path := filepath.Join(dir, name)
		if err := WriteChart(path, r); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if st, err := os.Stat(path); err != nil || st.Size() < 1000 {
			t.Errorf("%s: %v, %d bytes", name, err, st.Size())
		}
	}
	if err := WriteChart(filepath.Join(dir, "chart.xyz"), r); err == nil {
		t.Error("unknown chart format accepted")
	}
	if err := WriteChart(filepath.Join(dir, "empty.png"), &Report{}); err == nil {
		t.Error("empty report drawn")
	}
}

func TestParseStatCPU(t *testing.T) {
	const stat = "4242 (mari adbd) S 1 4242 4242 0 -1 4194560 12345 0 0 0 250 75 0 0 20 0 37 0 123 0 0"
	got, err := parseStatCPU(stat)
	if err != nil {
		t.Fatal(err)
	}
	if want := 325 * 10 * time.Millisecond; got != want {
		t.Errorf("cpu %v, want %v", got, want)
	}
	if _, err := parseStatCPU("garbage"); err == nil {
		t.Error("garbage accepted")
	}
	self, err := processCPU(os.Getpid())
	if err != nil || self < 0 {
		t.Errorf("own CPU %v, %v", self, err)
	}
}
