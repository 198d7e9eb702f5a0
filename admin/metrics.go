package admin

import (
	"net/http"
	"slices"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hotrow/hotrow/merger"
)

// maxTableSeries bounds the tables that get their own series (queue
// depth, latency histograms); the rest are summed under table="other".
const maxTableSeries = 64

// Collector is a prometheus.Collector that reads the merger's and the
// proxy's counters at scrape time: the hot path only counts, it does not
// import the client library.
type Collector struct {
	m     *merger.Merger
	rules *merger.RuleSet
	px    Proxy // nil: no proxy series
	det   *merger.HotKeys
	feed  Feed // nil: no feed series
}

// NewCollector returns a Collector over m, rules, px and det (px and det
// may be nil; m and rules are nil together when no merger runs).
func NewCollector(m *merger.Merger, rules *merger.RuleSet, px Proxy, det *merger.HotKeys) *Collector {
	return &Collector{m: m, rules: rules, px: px, det: det}
}

// WithFeed adds the order feed's series (hotrow_feed_*) to c and returns
// c; call it before c is registered. A nil f adds none.
func (c *Collector) WithFeed(f Feed) *Collector {
	c.feed = f
	return c
}

var (
	descRequests = prometheus.NewDesc("hotrow_requests_total",
		"Statements by path: merged (in a batch of several), lone (a batch of one), pass_through (relayed to the backend).",
		[]string{"path"}, nil)
	descBatches = prometheus.NewDesc("hotrow_batches_total",
		"Batch transactions by execution path (lone, fast, general).", []string{"path"}, nil)
	descBatchSize = prometheus.NewDesc("hotrow_batch_size",
		"Requests per batch.", nil, nil)
	descWait = prometheus.NewDesc("hotrow_wait_seconds",
		"Time a merged request waited in its table's queue before its batch began.", []string{"table"}, nil)
	descCommit = prometheus.NewDesc("hotrow_commit_seconds",
		"Time a batch took from its start to its outcomes (round trips and COMMIT).", []string{"table"}, nil)
	descDepth = prometheus.NewDesc("hotrow_queue_depth",
		"Requests waiting behind the batch in flight, per hot table.", []string{"table"}, nil)
	descOutcomes = prometheus.NewDesc("hotrow_merged_outcomes_total",
		"Merged requests by outcome: granted (matched their row), refused (matched nothing), error.", []string{"outcome"}, nil)
	descErrors = prometheus.NewDesc("hotrow_backend_errors_total",
		"Merged requests that failed, by MySQL error code.", []string{"code"}, nil)
	descNotRun = prometheus.NewDesc("hotrow_requests_not_run_total",
		"Merged requests that never ran: dropped (client gone), timed_out (queue wait), queue_full.", []string{"reason"}, nil)
	descUnmerged = prometheus.NewDesc("hotrow_hot_updates_not_merged_total",
		"Hot-table UPDATEs the merger declined, passed through instead, by reason.", []string{"reason"}, nil)
	descCommits  = prometheus.NewDesc("hotrow_commits_total", "Batch transactions committed with changes.", nil, nil)
	descRetries  = prometheus.NewDesc("hotrow_batch_retries_total", "Batches rolled back and re-run in smaller parts.", nil, nil)
	descSessions = prometheus.NewDesc("hotrow_sessions", "Client sessions now.", nil, nil)
	descLogins   = prometheus.NewDesc("hotrow_logins_total", "Client sessions that logged in.", nil, nil)
	descRules    = prometheus.NewDesc("hotrow_hot_rules", "Hot rules in force, by state (active, paused).", []string{"state"}, nil)
	descCands    = prometheus.NewDesc("hotrow_hot_candidates", "Tables without a rule whose mergeable UPDATEs crossed the hot threshold.", nil, nil)
	descAuto     = prometheus.NewDesc("hotrow_auto_hot_rules_total", "Rules added by hot-key detection (--auto-hot).", nil, nil)

	descFeedEvents = prometheus.NewDesc("hotrow_feed_events_total",
		"Events the order feed read from the binlog.", []string{"feed"}, nil)
	descFeedLag = prometheus.NewDesc("hotrow_feed_lag_seconds",
		"Age (since its commit) of the oldest event the order feed's sinks have not all acknowledged; 0 when none.", []string{"feed"}, nil)
	descFeedInFlight = prometheus.NewDesc("hotrow_feed_in_flight_events",
		"Events the order feed read and its sinks have not all acknowledged.", []string{"feed"}, nil)
)

// Describe sends every descriptor.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRequests, descBatches, descBatchSize, descWait, descCommit, descDepth,
		descOutcomes, descErrors, descNotRun, descUnmerged, descCommits, descRetries, descSessions, descLogins, descRules, descCands, descAuto,
		descFeedEvents, descFeedLag, descFeedInFlight} {
		ch <- d
	}
}

// Collect reads the counters.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	if c.px != nil {
		pc := c.px.Counters()
		counter(descRequests, pc.PassThrough, "pass_through")
		gauge(descSessions, float64(pc.Sessions))
		counter(descLogins, pc.Logins)
	}
	if c.feed != nil {
		f := c.feed.Stats()
		counter(descFeedEvents, f.EventsTotal, f.Name)
		gauge(descFeedLag, f.Lag.Seconds(), f.Name)
		gauge(descFeedInFlight, float64(f.InFlightEvents), f.Name)
	}
	if c.m == nil {
		return // no merger: pass-through only
	}
	st := c.m.Stats()
	tables := c.m.TableStats()
	var merged, lone, granted, refused, failed uint64
	for _, t := range tables {
		merged += t.Requests - t.LoneRequests
		lone += t.LoneRequests
		granted, refused, failed = granted+t.Granted, refused+t.Refused, failed+t.Errors
	}
	counter(descRequests, merged, "merged")
	counter(descRequests, lone, "lone")
	counter(descBatches, st.LonePath, "lone")
	counter(descBatches, st.FastPath, "fast")
	counter(descBatches, st.GeneralPath, "general")
	counter(descOutcomes, granted, "granted")
	counter(descOutcomes, refused, "refused")
	counter(descOutcomes, failed, "error")
	counter(descNotRun, st.Dropped, "dropped")
	counter(descNotRun, st.TimedOut, "timed_out")
	counter(descNotRun, st.QueueFull, "queue_full")
	for why, n := range st.Unmerged {
		counter(descUnmerged, n, merger.Unmerged(why).String())
	}
	counter(descCommits, st.Commits)
	counter(descRetries, st.Retries)
	for code, n := range c.m.ErrorCodes() {
		counter(descErrors, n, strconv.Itoa(int(code)))
	}

	// Batch sizes: bucket i of merger.Stats counts sizes in (2^(i-1), 2^i].
	sizes := map[float64]uint64{}
	var count, cum uint64
	for i, n := range st.BatchSizes {
		cum += n
		if i < len(st.BatchSizes)-1 {
			sizes[float64(uint64(1)<<i)] = cum
		}
	}
	count = cum
	ch <- prometheus.MustNewConstHistogram(descBatchSize, count, float64(st.Requests), sizes)

	// Per table, bounded: the first maxTableSeries names in order get
	// their own series, the others are summed under "other".
	rules := c.rules.Rules()
	var names []string
	for _, r := range rules {
		names = append(names, r.Schema+"."+r.Table)
	}
	for _, t := range tables {
		names = append(names, t.Rule.Schema+"."+t.Rule.Table)
	}
	for _, d := range st.Tables {
		names = append(names, d.Rule.Schema+"."+d.Rule.Table)
	}
	slices.Sort(names)
	names = slices.Compact(names)
	own := make(map[string]bool, min(len(names), maxTableSeries))
	for _, n := range names[:min(len(names), maxTableSeries)] {
		own[n] = true
	}
	name := func(r merger.Rule) string {
		if n := r.Schema + "." + r.Table; own[n] {
			return n
		}
		return "other"
	}
	waits, commits := map[string]merger.Histogram{}, map[string]merger.Histogram{}
	for _, t := range tables {
		n := name(t.Rule)
		waits[n] = sumHist(waits[n], t.Wait)
		commits[n] = sumHist(commits[n], t.Commit)
	}
	for n, h := range waits {
		ch <- constHistogram(descWait, h, n)
	}
	for n, h := range commits {
		ch <- constHistogram(descCommit, h, n)
	}
	depth := map[string]int{}
	active, paused := 0, 0
	for _, r := range rules {
		depth[name(r)] += 0
		if c.rules.Paused(merger.TableName{Schema: r.Schema, Table: r.Table}) {
			paused++
		} else {
			active++
		}
	}
	for _, d := range st.Tables {
		depth[name(d.Rule)] += d.Depth
	}
	for n, d := range depth {
		gauge(descDepth, float64(d), n)
	}
	gauge(descRules, float64(active), "active")
	gauge(descRules, float64(paused), "paused")
	if c.det != nil {
		gauge(descCands, float64(len(c.det.Candidates())))
		counter(descAuto, c.det.AutoAdded())
	}
}

func sumHist(a, b merger.Histogram) merger.Histogram {
	for i := range a.Counts {
		a.Counts[i] += b.Counts[i]
	}
	a.Count += b.Count
	a.Sum += b.Sum
	return a
}

func constHistogram(d *prometheus.Desc, h merger.Histogram, labels ...string) prometheus.Metric {
	buckets := make(map[float64]uint64, len(merger.LatencyBounds))
	var cum uint64
	for i, bound := range merger.LatencyBounds {
		cum += h.Counts[i]
		buckets[bound] = cum
	}
	return prometheus.MustNewConstHistogram(d, h.Count, h.Sum, buckets, labels...)
}

// MetricsHandler serves /metrics for c, with the Go runtime's and the
// process's collectors beside it.
func MetricsHandler(c *Collector) (http.Handler, error) {
	reg := prometheus.NewRegistry()
	for _, col := range []prometheus.Collector{c, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		if err := reg.Register(col); err != nil {
			return nil, err
		}
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	return mux, nil
}
