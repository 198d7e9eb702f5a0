package admin

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/hotrow/hotrow/internal/testdb"
)

// scrape fetches and parses /metrics.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// metric finds the series of fam with the given label values.
func metric(fams map[string]*dto.MetricFamily, fam string, labels map[string]string) *dto.Metric {
	f := fams[fam]
	if f == nil {
		return nil
	}
next:
	for _, m := range f.Metric {
		for k, v := range labels {
			found := false
			for _, lp := range m.Label {
				if lp.GetName() == k && lp.GetValue() == v {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		return m
	}
	return nil
}

// TestMetricsScrape: after a lone and a merged batch, /metrics parses and
// carries requests by path, the batch size histogram, per-table latency
// histograms and queue depth, outcomes and sessions.
func TestMetricsScrape(t *testing.T) {
	f := newFixture(t)
	a := admin(t, f.addr, "admin", adminPassword)
	app := f.app(t)
	mustExec(t, a, fmt.Sprintf("INSERT INTO hot_rules VALUES ('%s', 'inventory', 'sku_id', 'stock', 1)", f.db.Name))
	mustExec(t, a, "LOAD HOT RULES TO RUNTIME")
	mustExec(t, app, "UPDATE inventory SET stock = stock - 1 WHERE sku_id = 2")
	release := f.holdRow(t)
	results := f.queueBehindLock(t, app, 4)
	release()
	for range 4 {
		<-results
	}
	tx, err := app.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"SELECT stock FROM inventory WHERE sku_id = 2 FOR UPDATE", "UPDATE inventory SET stock = stock - 1 WHERE sku_id = 2"} {
		if _, err := tx.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	mustExec(t, app, "SELECT 1")
	srv := httptest.NewServer(mustHandler(t, f))
	defer srv.Close()
	fams := scrape(t, srv.URL)
	table := f.db.Name + ".inventory"
	checks := []struct {
		fam    string
		labels map[string]string
		ok     func(*dto.Metric) bool
	}{
		{"hotrow_requests_total", map[string]string{"path": "merged"}, func(m *dto.Metric) bool { return m.GetCounter().GetValue() == 3 }},
		{"hotrow_requests_total", map[string]string{"path": "lone"}, func(m *dto.Metric) bool { return m.GetCounter().GetValue() == 2 }},
		{"hotrow_requests_total", map[string]string{"path": "pass_through"}, func(m *dto.Metric) bool { return m.GetCounter().GetValue() >= 1 }},
		{"hotrow_batch_size", nil, func(m *dto.Metric) bool {
			return m.GetHistogram().GetSampleCount() == 3 && m.GetHistogram().GetSampleSum() == 5
		}},
		{"hotrow_wait_seconds", map[string]string{"table": table}, func(m *dto.Metric) bool { return m.GetHistogram().GetSampleCount() == 5 }},
		{"hotrow_commit_seconds", map[string]string{"table": table}, func(m *dto.Metric) bool { return m.GetHistogram().GetSampleCount() == 3 }},
		{"hotrow_queue_depth", map[string]string{"table": table}, func(m *dto.Metric) bool { return m.GetGauge().GetValue() == 0 }},
		{"hotrow_merged_outcomes_total", map[string]string{"outcome": "granted"}, func(m *dto.Metric) bool { return m.GetCounter().GetValue() == 5 }},
		{"hotrow_hot_updates_not_merged_total", map[string]string{"reason": "tx_touched_hot_table"}, func(m *dto.Metric) bool { return m.GetCounter().GetValue() == 1 }},
		{"hotrow_sessions", nil, func(m *dto.Metric) bool { return m.GetGauge().GetValue() >= 1 }},
		{"hotrow_hot_rules", map[string]string{"state": "active"}, func(m *dto.Metric) bool { return m.GetGauge().GetValue() == 1 }},
		{"go_goroutines", nil, func(m *dto.Metric) bool { return m.GetGauge().GetValue() > 0 }},
	}
	for _, c := range checks {
		m := metric(fams, c.fam, c.labels)
		if m == nil || !c.ok(m) {
			t.Errorf("%s%v = %v", c.fam, c.labels, m)
		}
	}
}

// TestAutoHotUnderLoad: pass-through UPDATEs of one row of a table
// without a rule pile up behind a lock; the key becomes a candidate, and
// with auto_hot on its table is merged from then on, shown in
// runtime_hot_rules, hot_rules and the metrics; a table hot_rules names
// (disabled) is not promoted.
func TestAutoHotUnderLoad(t *testing.T) {
	f := newFixture(t)
	a := admin(t, f.addr, "admin", adminPassword)
	app := f.app(t)
	app.SetMaxOpenConns(32)
	// The key is promoted when all n UPDATEs wait (not before: on a
	// loaded machine the last ones would be sent after the promotion and
	// merged).
	const n = 8
	mustExec(t, a, fmt.Sprint("SET hotrow.hot_threshold = ", n))
	mustExec(t, a, "SET hotrow.auto_hot = 1")
	release := f.holdRow(t)
	results := make(chan error, n)
	for range n {
		go func() {
			_, err := app.Exec("UPDATE inventory SET stock = stock - 1 WHERE sku_id = 1 AND stock >= 1")
			results <- err
		}()
	}
	testdb.WaitFor(t, 10*time.Second, "the hot key promoted to a runtime rule", func() bool {
		return len(rows(t, a, "SELECT * FROM runtime_hot_rules WHERE table_name = 'inventory'")) == 1
	})
	got := rows(t, a, "SELECT key_column, stock_column, hottest_key, auto_merged FROM stats_hot_candidates")
	if len(got) != 1 || got[0][0] != "sku_id" || got[0][1] != "stock" || got[0][2] != "1" || got[0][3] != "1" {
		t.Fatalf("stats_hot_candidates = %v", got)
	}
	if got := rows(t, a, "SELECT table_name, enabled FROM hot_rules"); len(got) != 1 || got[0][0] != "inventory" || got[0][1] != "1" {
		t.Fatalf("hot_rules after auto promotion = %v, want the rule", got)
	}
	release()
	for range n {
		if err := <-results; err != nil {
			t.Fatal(err)
		}
	}
	if m := f.px.Counters().Merged; m != 0 {
		t.Fatalf("merged = %d before the promotion took effect, want 0", m)
	}
	mustExec(t, app, "UPDATE inventory SET stock = stock - 1 WHERE sku_id = 1 AND stock >= 1")
	if m := f.px.Counters().Merged; m != 1 {
		t.Fatalf("merged = %d after auto promotion, want 1", m)
	}
	srv := httptest.NewServer(mustHandler(t, f))
	defer srv.Close()
	fams := scrape(t, srv.URL)
	if m := metric(fams, "hotrow_auto_hot_rules_total", nil); m == nil || m.GetCounter().GetValue() != 1 {
		t.Fatalf("hotrow_auto_hot_rules_total = %v", m)
	}
	var stock int
	if err := f.conn.QueryRow("SELECT stock FROM inventory WHERE sku_id = 1").Scan(&stock); err != nil || stock != 1000-n-1 {
		t.Fatalf("stock = %d, %v; want %d", stock, err, 1000-n-1)
	}

	// A table hot_rules names, disabled by a DBA: a candidate, not merged.
	f.db.Exec(t, "CREATE TABLE flash (sku_id BIGINT PRIMARY KEY, stock INT NOT NULL)", "INSERT INTO flash VALUES (1, 100)")
	mustExec(t, a, fmt.Sprintf("INSERT INTO hot_rules VALUES ('%s', 'flash', 'sku_id', 'stock', 0)", f.db.Name))
	tx, err := f.conn.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("SELECT stock FROM flash WHERE sku_id = 1 FOR UPDATE"); err != nil {
		t.Fatal(err)
	}
	for range n {
		go func() {
			_, err := app.Exec("UPDATE flash SET stock = stock - 1 WHERE sku_id = 1")
			results <- err
		}()
	}
	testdb.WaitFor(t, 10*time.Second, "the candidate refused", func() bool {
		got := rows(t, a, "SELECT auto_merged, not_merged_reason FROM stats_hot_candidates WHERE table_name = 'flash'")
		return len(got) == 1 && got[0][0] == "0" && strings.Contains(got[0][1], "hot_rules has a rule")
	})
	_ = tx.Rollback()
	for range n {
		if err := <-results; err != nil {
			t.Fatal(err)
		}
	}
	if got := rows(t, a, "SELECT COUNT(*) FROM runtime_hot_rules WHERE table_name = 'flash'"); got[0][0] != "0" {
		t.Fatalf("runtime rules = %v, want none for flash", got)
	}
}

func mustHandler(t *testing.T, f *fixture) http.Handler {
	t.Helper()
	h, err := MetricsHandler(NewCollector(f.m, f.rules, f.px, f.det))
	if err != nil {
		t.Fatal(err)
	}
	return h
}
