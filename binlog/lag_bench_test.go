package binlog

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hotrow/hotrow/internal/testdb"
	"github.com/hotrow/hotrow/merger"
	"github.com/hotrow/hotrow/schema"
)

// BenchmarkFeedLag measures the order feed's lag under merged load: 256
// goroutines send deductions of a few hot rows through a merger
// (in-process, no proxy), paced to HOTROW_FEED_RATE orders/s (default
// 10,000) for HOTROW_FEED_SECONDS (default 5) per iteration, while a
// consumer started before the load feeds a sink that records, once each
// message is acknowledged, how long ago its ledger row was written
// (Message.Committed: the row's created_at, inside the batch transaction,
// so the lag includes the batch's COMMIT). Sub-benchmark mem acknowledges
// at once; jsonl acknowledges once the real jsonl sink wrote and fsynced.
//
//	go test -run '^$' -bench FeedLag -benchtime 1x ./binlog/
func BenchmarkFeedLag(b *testing.B) {
	rate := lagEnvFloat(b, "HOTROW_FEED_RATE", 10_000)
	dur := time.Duration(lagEnvFloat(b, "HOTROW_FEED_SECONDS", 5) * float64(time.Second))
	const workers, skus = 256, 4
	db := testdb.New(b)
	meta := db.Name + "_hr"
	root := db.Server.Root(b)
	b.Cleanup(func() { _, _ = root.Exec("DROP DATABASE IF EXISTS `" + meta + "`") })
	db.Exec(b, "CREATE TABLE inv (sku VARCHAR(16) PRIMARY KEY, stock BIGINT NOT NULL, note VARCHAR(16))")
	for i := range skus {
		db.Exec(b, fmt.Sprintf("INSERT INTO inv (sku, stock) VALUES ('s%d', 1000000000)", i))
	}
	rule := schema.Rule{Schema: db.Name, Table: "inv", Key: "sku", Stock: "stock"}
	log := slog.New(slog.NewTextHandler(feedLogWriter{b}, &slog.HandlerOptions{Level: slog.LevelWarn}))

	mcfg := merger.DefaultConfig()
	mcfg.DSN = db.DSN()
	mcfg.MetaSchema = meta
	m, err := merger.New(context.Background(), mcfg, log)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	matcher := merger.NewMatcher([]merger.Rule{rule})
	reqs := make([]merger.Request, skus)
	for i := range reqs {
		q := fmt.Sprintf("UPDATE inv SET stock = stock - 1 WHERE sku = 's%d' AND stock >= 1", i)
		st, args, ok := matcher.MatchText(db.Name, q)
		if !ok {
			b.Fatalf("not mergeable: %s", q)
		}
		reqs[i] = merger.Request{Stmt: st, Args: args, Text: q}
	}

	ledgerRows := func() int {
		var n int
		if err := root.QueryRow("SELECT COUNT(*) FROM `" + meta + "`.ledger").Scan(&n); err != nil {
			b.Fatal(err)
		}
		return n
	}

	for _, variant := range []string{"mem", "jsonl"} {
		b.Run("sink="+variant, func(b *testing.B) {
			var lags, doTimes []time.Duration
			var orders, delivers int
			var loadTime time.Duration
			dir := b.TempDir()
			b.ResetTimer()
			for i := range b.N {
				name := fmt.Sprintf("lag-%s-%d", variant, i)
				rec := &lagRecorder{ids: map[string]bool{}}
				if variant == "jsonl" {
					rec.inner = "jsonl:" + filepath.Join(dir, name+".jsonl")
				}
				lagRecorders.Store(name, rec)
				cfg := DefaultConfig()
				cfg.SourceDSN = db.Server.DSN("")
				cfg.MetaSchema = meta
				cfg.Name = name
				cfg.Sinks = []string{"lagtest:" + name}
				cfg.HotRules = []schema.Rule{rule}
				cfg.StatsInterval = 0
				c, err := NewConsumer(cfg, log)
				if err != nil {
					b.Fatal(err)
				}
				errc := make(chan error, 1)
				go func() { errc <- c.Run(context.Background()) }()
				// Run stores its start (the current position) before it
				// reads: the load comes after it.
				testdb.WaitFor(b, 30*time.Second, "the consumer's checkpoint row", func() bool {
					var n int
					err := root.QueryRow("SELECT COUNT(*) FROM `"+meta+"`.checkpoints WHERE consumer = ?", name).Scan(&n)
					return err == nil && n == 1
				})
				before := ledgerRows()

				done, elapsed, dos := driveMerged(b, m, reqs, workers, rate, dur)
				orders += done
				loadTime += elapsed
				doTimes = append(doTimes, dos...)

				want := ledgerRows() - before
				if want != done {
					b.Errorf("%d ledger rows for %d merged deductions", want, done)
				}
				testdb.WaitFor(b, 2*time.Minute, "every ledger row at the sink", func() bool { return rec.delivered() >= want })
				time.Sleep(200 * time.Millisecond) // anything beyond them would show
				c.Close()
				if err := <-errc; err != nil {
					b.Fatal(err)
				}
				lagRecorders.Delete(name)
				rec.mu.Lock()
				if n := len(rec.ids); n != want {
					b.Fatalf("%d distinct events delivered, want %d (the ledger rows)", n, want)
				}
				lags = append(lags, rec.lags...)
				delivers += rec.delivers
				rec.mu.Unlock()
			}
			b.StopTimer()
			slices.Sort(lags)
			slices.Sort(doTimes)
			b.ReportMetric(float64(orders)/loadTime.Seconds(), "orders/s")
			b.ReportMetric(float64(len(lags))/float64(b.N), "events")
			b.ReportMetric(lagMs(percentile(lags, 50)), "lag_p50_ms")
			b.ReportMetric(lagMs(percentile(lags, 99)), "lag_p99_ms")
			b.ReportMetric(lagMs(percentile(lags, 100)), "lag_max_ms")
			b.ReportMetric(lagMs(percentile(doTimes, 99)), "do_p99_ms")
			b.ReportMetric(float64(len(lags))/float64(max(delivers, 1)), "msgs/deliver")
		})
	}
}

// driveMerged sends deductions of reqs (round robin) through m from
// workers goroutines, the k-th not before start + k/rate, and none after
// start + dur. It returns the deductions done, the time from the start
// to the last one's return, and each one's Do latency.
func driveMerged(b *testing.B, m *merger.Merger, reqs []merger.Request, workers int, rate float64, dur time.Duration) (int, time.Duration, []time.Duration) {
	b.Helper()
	var next atomic.Int64
	var mu sync.Mutex
	var dos []time.Duration
	var firstErr error
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(dur)
	for w := range workers {
		wg.Go(func() {
			var mine []time.Duration
			defer func() {
				mu.Lock()
				dos = append(dos, mine...)
				mu.Unlock()
			}()
			for {
				k := next.Add(1) - 1
				due := start.Add(time.Duration(float64(k) * float64(time.Second) / rate))
				if !due.Before(end) {
					return
				}
				if d := time.Until(due); d > 0 {
					time.Sleep(d)
				} else if time.Now().After(end) {
					return // behind schedule and out of time
				}
				req := reqs[int(k)%len(reqs)]
				req.ConnID = uint32(1000 + w)
				t0 := time.Now()
				out, err := m.Do(context.Background(), req)
				if err == nil && out.Matched != 1 {
					err = fmt.Errorf("matched %d rows", out.Matched)
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("merged %s: %w", req.Text, err)
					}
					mu.Unlock()
					return
				}
				mine = append(mine, time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		b.Fatal(firstErr)
	}
	return len(dos), elapsed, dos
}

// lagRecorders holds the recorders of lagtest sinks by name: sink spec
// "lagtest:NAME".
var lagRecorders sync.Map // string -> *lagRecorder

func init() {
	sinkKinds["lagtest"] = func(ctx context.Context, arg string, opts SinkOptions) (Sink, error) {
		v, ok := lagRecorders.Load(arg)
		if !ok {
			return nil, fmt.Errorf("sink lagtest: no recorder %q", arg)
		}
		rec := v.(*lagRecorder)
		s := &lagSink{name: "lagtest:" + arg, rec: rec}
		if rec.inner != "" {
			inner, err := OpenSink(ctx, rec.inner, opts)
			if err != nil {
				return nil, err
			}
			s.inner = inner
		}
		return s, nil
	}
}

// lagRecorder collects, per distinct message id, the time from the
// message's commit to its acknowledgement.
type lagRecorder struct {
	inner string // spec of a sink to deliver to first; "": none

	mu       sync.Mutex
	ids      map[string]bool // guarded by mu
	lags     []time.Duration // guarded by mu
	delivers int             // guarded by mu
}

func (r *lagRecorder) delivered() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ids)
}

// lagSink records each message's lag when its Deliver (after the inner
// sink's, if any) succeeds.
type lagSink struct {
	name  string
	rec   *lagRecorder
	inner Sink // nil: acknowledge at once
}

func (s *lagSink) Name() string { return s.name }

func (s *lagSink) Deliver(ctx context.Context, msgs []Message) error {
	if s.inner != nil {
		if err := s.inner.Deliver(ctx, msgs); err != nil {
			return err
		}
	}
	now := time.Now()
	r := s.rec
	r.mu.Lock()
	defer r.mu.Unlock()
	r.delivers++
	for i := range msgs {
		if r.ids[msgs[i].ID] {
			continue // a redelivery
		}
		r.ids[msgs[i].ID] = true
		r.lags = append(r.lags, now.Sub(msgs[i].Committed))
	}
	return nil
}

func (s *lagSink) Close() error {
	if s.inner != nil {
		return s.inner.Close()
	}
	return nil
}

// percentile returns the p-th percentile (nearest rank) of sorted ds.
func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	i := (len(ds)*p + 99) / 100
	return ds[max(i, 1)-1]
}

func lagMs(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func lagEnvFloat(b *testing.B, name string, def float64) float64 {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v <= 0 {
		b.Fatalf("%s=%q: want a positive number", name, s)
	}
	return v
}
