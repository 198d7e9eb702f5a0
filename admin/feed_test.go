package admin

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/hotrow/hotrow/binlog"
)

// fakeFeed returns a fixed snapshot.
type fakeFeed struct{ s binlog.Stats }

func (f fakeFeed) Stats() binlog.Stats { return f.s }

var feedSnapshot = binlog.Stats{Name: "orders", Running: true, EventsTotal: 42, EventsPerSec: 3.25,
	InFlightEvents: 5, InFlightBytes: 900, Lag: 1500 * time.Millisecond,
	LastCommit:      time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
	Checkpoint:      binlog.Position{GTID: "0-1-77", File: "bin.000002", Pos: 4242},
	CheckpointSaved: time.Date(2026, 1, 2, 3, 4, 6, 0, time.UTC)}

// TestFeedStatus: SHOW HOTROW STATUS has the feed's rows when a feed is
// given, none without.
func TestFeedStatus(t *testing.T) {
	f := newFixture(t)
	status := func(addr string) map[string]string {
		m := map[string]string{}
		for _, r := range rows(t, admin(t, addr, "admin", adminPassword), "SHOW HOTROW STATUS") {
			m[r[0]] = r[1]
		}
		return m
	}
	if st := status(f.addr); st["feed_name"] != "" || st["batches"] == "" {
		t.Fatalf("feed rows without a feed: %v", st)
	}
	f.feed = fakeFeed{feedSnapshot}
	_, addr := f.startAdmin(t, f.rules, nil)
	st := status(addr)
	want := map[string]string{"feed_name": "orders", "feed_running": "1", "feed_checkpoint_gtid": "0-1-77",
		"feed_checkpoint_file": "bin.000002", "feed_checkpoint_pos": "4242",
		"feed_checkpoint_saved_at": "2026-01-02T03:04:06Z", "feed_lag_ms": "1500",
		"feed_last_commit": "2026-01-02T03:04:05Z", "feed_events_total": "42", "feed_events_per_sec": "3.2",
		"feed_in_flight_events": "5", "feed_in_flight_bytes": "900"}
	for k, v := range want {
		if st[k] != v {
			t.Errorf("%s = %q, want %q", k, st[k], v)
		}
	}
}

// TestFeedMetrics: the feed's series carry its name, without a merger or
// a proxy too.
func TestFeedMetrics(t *testing.T) {
	h, err := MetricsHandler(NewCollector(nil, nil, nil, nil).WithFeed(fakeFeed{feedSnapshot}))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	fams := scrape(t, srv.URL)
	feed := map[string]string{"feed": "orders"}
	if m := metric(fams, "hotrow_feed_events_total", feed); m == nil || m.GetCounter().GetValue() != 42 {
		t.Errorf("hotrow_feed_events_total = %v", m)
	}
	if m := metric(fams, "hotrow_feed_lag_seconds", feed); m == nil || m.GetGauge().GetValue() != 1.5 {
		t.Errorf("hotrow_feed_lag_seconds = %v", m)
	}
	if m := metric(fams, "hotrow_feed_in_flight_events", feed); m == nil || m.GetGauge().GetValue() != 5 {
		t.Errorf("hotrow_feed_in_flight_events = %v", m)
	}
	h, err = MetricsHandler(NewCollector(nil, nil, nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	srv2 := httptest.NewServer(h)
	defer srv2.Close()
	if fams := scrape(t, srv2.URL); fams["hotrow_feed_events_total"] != nil {
		t.Error("feed series without a feed")
	}
}
