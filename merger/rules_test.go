package merger

import (
	"context"
	"testing"
	"time"

	"github.com/hotrow/hotrow/internal/testdb"
)

func TestRuleSetSwapAndPause(t *testing.T) {
	inv := Rule{Schema: "shop", Table: "inv", Key: "sku", Stock: "stock"}
	other := Rule{Schema: "shop", Table: "other", Key: "id", Stock: "qty"}
	s := NewRuleSet([]Rule{inv})
	const q = "UPDATE inv SET stock = stock - 1 WHERE sku = 'a'"
	const q2 = "UPDATE other SET qty = qty - 1 WHERE id = 1"
	steps := []struct {
		name     string
		do       func()
		inv, oth bool
	}{
		{"initial", func() {}, true, false},
		{"add other", func() { s.Add(other) }, true, true},
		{"pause inv", func() { s.Pause(TableName{"shop", "inv"}) }, false, true},
		{"resume inv", func() { s.Resume(TableName{"shop", "inv"}) }, true, true},
		{"set other only", func() { s.Set([]Rule{other}) }, false, true},
		{"set none", func() { s.Set(nil) }, false, false},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			st.do()
			if _, _, ok := s.MatchText("shop", q); ok != st.inv {
				t.Errorf("inv matched = %v, want %v", ok, st.inv)
			}
			if _, ok := s.MatchPrepared("shop", q2); ok != st.oth {
				t.Errorf("other matched = %v, want %v", ok, st.oth)
			}
			if s.Active(inv) != st.inv || s.Active(other) != st.oth {
				t.Errorf("Active(inv, other) = %v, %v, want %v, %v", s.Active(inv), s.Active(other), st.inv, st.oth)
			}
		})
	}
	if !s.Add(other) || s.Add(other) {
		t.Error("Add: want true for a new table, then false")
	}
}

func TestHistogramQuantile(t *testing.T) {
	var h Histogram
	if h.Quantile(0.5) != 0 {
		t.Fatal("empty histogram: want 0")
	}
	for range 98 {
		h.add(300 * time.Microsecond)
	}
	h.add(30 * time.Millisecond)
	h.add(time.Minute)
	cases := []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Microsecond}, {0.99, 50 * time.Millisecond}, {1, 10 * time.Second}}
	for _, tc := range cases {
		if got := h.Quantile(tc.q); got != tc.want {
			t.Errorf("Quantile(%v) = %v, want %v", tc.q, got, tc.want)
		}
	}
}

func TestTableStatsAndLimits(t *testing.T) {
	f := newFixture(t, "INT", map[string]int64{"a": 2}, nil)
	ctx := context.Background()
	for range 3 {
		_, _ = f.m.Do(ctx, f.text(t, "UPDATE inv SET stock = stock - 1 WHERE sku = 'a' AND stock >= 1", 1))
	}
	ts := f.m.TableStats()
	if len(ts) != 1 {
		t.Fatalf("TableStats = %+v, want one table", ts)
	}
	got := ts[0]
	if got.Rule != f.rule || got.Requests != 3 || got.Granted != 2 || got.Refused != 1 || got.Batches != 3 || got.Wait.Count != 3 {
		t.Fatalf("TableStats = %+v", got)
	}
	ks := f.m.KeyStats()
	if len(ks) != 1 || ks[0].Key != "a" || ks[0].Requests != 3 || ks[0].Granted != 2 || ks[0].Batches != 3 || ks[0].MaxBatch != 1 {
		t.Fatalf("KeyStats = %+v", ks)
	}
	rb := f.m.RecentBatches()
	if len(rb) != 3 || rb[0].Granted != 0 || rb[2].Granted != 1 || rb[0].Path != "lone" || rb[0].ID == "" {
		t.Fatalf("RecentBatches = %+v", rb)
	}

	if err := f.m.SetLimits(Limits{MaxBatch: 0, MaxQueue: 1, MaxQueueTotal: 1}); err == nil {
		t.Fatal("SetLimits with MaxBatch 0: want an error")
	}
	// A batch in flight, then three queued requests: with MaxBatch 2 the
	// next batch carries two of them.
	testdb.WaitFor(t, 5*time.Second, "the last worker gone", func() bool { return len(f.m.Stats().Tables) == 0 })
	release, first := f.batchInFlight(t)
	if err := f.m.SetLimits(Limits{MaxBatch: 2, MaxQueue: 100, MaxQueueTotal: 100}); err != nil {
		t.Fatal(err)
	}
	if l := f.m.Limits(); l.MaxBatch != 2 {
		t.Fatalf("Limits = %+v", l)
	}
	errs := make(chan error, 3)
	for range 3 {
		go func() {
			_, err := f.m.Do(ctx, f.text(t, "UPDATE inv SET stock = stock + 1 WHERE sku = 'a'", 2))
			errs <- err
		}()
	}
	testdb.WaitFor(t, 5*time.Second, "three queued", func() bool { return f.m.Stats().Queued == 3 })
	release()
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	for _, b := range f.m.RecentBatches() {
		if b.Size > 2 {
			t.Fatalf("batch of %d after SetLimits(MaxBatch 2)", b.Size)
		}
	}
	if ts := f.m.TableStats(); ts[0].MaxBatch != 2 {
		t.Fatalf("MaxBatch = %d, want 2", ts[0].MaxBatch)
	}
	if ks := f.m.KeyStats(); len(ks) != 1 || ks[0].MaxBatch != 2 || ks[0].Requests != 7 {
		t.Fatalf("KeyStats = %+v, want row a with 7 requests, at most 2 in a batch", ks)
	}
}
