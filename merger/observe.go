package merger

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
)

// LatencyBounds are the upper bounds, in seconds, of the buckets of the
// wait and commit histograms (a last bucket counts everything above).
var LatencyBounds = []float64{0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10}

// recentBatches is how many finished batches Recent remembers.
const recentBatches = 256

// maxErrorCodes bounds the distinct error codes counted.
const maxErrorCodes = 64

// maxKeyStats bounds the rows KeyStats tracks; requests of further keys
// count under the key "(other)" of their table.
const maxKeyStats = 4096

// Histogram counts durations in the buckets of LatencyBounds.
type Histogram struct {
	// Counts[i] counts values <= LatencyBounds[i] and above the previous
	// bound; Counts[len(LatencyBounds)] those above the last bound.
	Counts [15]uint64
	Count  uint64
	Sum    float64 // seconds
}

func (h *Histogram) add(d time.Duration) {
	s := d.Seconds()
	i, _ := slices.BinarySearch(LatencyBounds, s)
	h.Counts[i]++
	h.Count++
	h.Sum += s
}

// Quantile estimates the q-quantile (0 < q <= 1) as the upper bound of
// the bucket it falls in (the last finite bound for the overflow bucket),
// 0 when empty.
func (h Histogram) Quantile(q float64) time.Duration {
	if h.Count == 0 {
		return 0
	}
	rank := uint64(q*float64(h.Count) + 0.5)
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.Counts {
		seen += c
		if seen >= rank {
			i = min(i, len(LatencyBounds)-1)
			return time.Duration(LatencyBounds[i] * float64(time.Second))
		}
	}
	return time.Duration(LatencyBounds[len(LatencyBounds)-1] * float64(time.Second))
}

// TableStats are the counters of one hot table since the merger started.
type TableStats struct {
	Rule Rule
	// Requests reached a final outcome in a batch: Granted matched their
	// row, Refused matched nothing (the guard failed or no such row),
	// Errors got an error.
	Requests, Granted, Refused, Errors uint64
	// LoneRequests ran alone (a batch of one); the others were merged.
	LoneRequests uint64
	// Batches is the number of batch attempts that delivered outcomes,
	// MaxBatch the largest.
	Batches  uint64
	MaxBatch int
	// Wait is the time each request spent queued before its batch's
	// final attempt began, Commit each batch's execution time.
	Wait, Commit Histogram
}

// KeyStats are the counters of one row (a hot table's key value).
type KeyStats struct {
	Rule Rule
	Key  string
	// Requests, Granted, Refused, Errors: as in TableStats.
	Requests, Granted, Refused, Errors uint64
	// Batches counts the batches that carried requests for this row;
	// MaxBatch is the most requests for it one batch carried.
	Batches  uint64
	MaxBatch int
	// Wait is per request, Commit per batch, as in TableStats.
	Wait, Commit Histogram
}

// keyID identifies a row: its table's rule and its key value as the
// request carried it (int64, uint64 or string; []byte as string).
type keyID struct {
	rule Rule
	v    any
}

// BatchInfo describes one finished batch.
type BatchInfo struct {
	ID        string
	Rule      Rule
	Path      string // lone, fast or general
	Size      int
	Granted   int
	Committed bool
	// MaxWait is the longest a request of the batch waited; Commit how
	// long the batch ran.
	MaxWait, Commit time.Duration
	Finished        time.Time
}

// observer keeps the per-table statistics and the recent batches. The
// executor reports each finished batch (one lock per batch, not per
// request).
type observer struct {
	mu     sync.Mutex
	tables map[Rule]*TableStats // guarded by mu
	recent []BatchInfo          // guarded by mu; a ring of recentBatches
	next   int                  // guarded by mu; the ring's next slot
	codes  map[uint16]uint64    // guarded by mu; request errors by code
	keys   map[keyID]*KeyStats  // guarded by mu; at most maxKeyStats
	inB    map[*KeyStats]int    // guarded by mu; scratch: a batch's requests per row
}

// observe records a batch with batch id id (empty for a statement run
// alone on its client's connection) that began at began and whose
// outcomes res holds, about to be delivered.
func (o *observer) observe(p execPath, id []byte, began time.Time, batch []*waiter, res *results, committed bool) {
	if len(batch) == 0 {
		return
	}
	now := time.Now()
	info := BatchInfo{Rule: batch[0].req.Stmt.Rule, Path: p.String(), Size: len(batch),
		Committed: committed, Commit: now.Sub(began), Finished: now}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.tables == nil {
		o.tables = map[Rule]*TableStats{}
		o.codes = map[uint16]uint64{}
		o.keys = map[keyID]*KeyStats{}
		o.inB = map[*KeyStats]int{}
	}
	t := o.tables[info.Rule]
	if t == nil {
		t = &TableStats{Rule: info.Rule}
		o.tables[info.Rule] = t
	}
	t.Batches++
	t.MaxBatch = max(t.MaxBatch, len(batch))
	t.Commit.add(info.Commit)
	if p == pathLone {
		t.LoneRequests += uint64(len(batch))
	}
	for i, w := range batch {
		t.Requests++
		wait := began.Sub(w.enq)
		info.MaxWait = max(info.MaxWait, wait)
		t.Wait.add(wait)
		k := o.keyLocked(w.req)
		k.Requests++
		k.Wait.add(wait)
		o.inB[k]++
		var err error
		if i < len(res.errs) {
			err = res.errs[i]
		}
		switch {
		case err != nil:
			t.Errors++
			k.Errors++
			var my *gomysql.MyError
			if errors.As(err, &my) {
				if _, ok := o.codes[my.Code]; ok || len(o.codes) < maxErrorCodes {
					o.codes[my.Code]++
				}
			}
		case i < len(res.outs) && res.outs[i].Matched > 0:
			t.Granted++
			k.Granted++
			info.Granted++
		default:
			t.Refused++
			k.Refused++
		}
	}
	for k, n := range o.inB {
		k.Batches++
		k.MaxBatch = max(k.MaxBatch, n)
		k.Commit.add(info.Commit)
	}
	clear(o.inB)
	info.ID = string(id)
	if len(o.recent) < recentBatches {
		o.recent = append(o.recent, info)
	} else {
		o.recent[o.next] = info
	}
	o.next = (o.next + 1) % recentBatches
}

// keyLocked returns the statistics of req's row, created when new (under
// "(other)" once maxKeyStats rows are tracked).
func (o *observer) keyLocked(req Request) *KeyStats {
	v := req.Stmt.Key.Value(req.Args)
	if b, ok := v.([]byte); ok {
		v = string(b)
	}
	switch v.(type) {
	case int64, uint64, string:
	default:
		v = fmt.Sprint(v)
	}
	id := keyID{req.Stmt.Rule, v}
	if k := o.keys[id]; k != nil {
		return k
	}
	if len(o.keys) >= maxKeyStats {
		id.v = "(other)"
		if k := o.keys[id]; k != nil {
			return k
		}
	}
	k := &KeyStats{Rule: id.rule, Key: fmt.Sprint(id.v)}
	o.keys[id] = k
	return k
}

// KeyStats returns the statistics of every row that was in a batch.
func (m *Merger) KeyStats() []KeyStats {
	m.obs.mu.Lock()
	defer m.obs.mu.Unlock()
	return copyValues(m.obs.keys)
}

// TableStats returns the statistics of every table that ran a batch.
func (m *Merger) TableStats() []TableStats {
	m.obs.mu.Lock()
	defer m.obs.mu.Unlock()
	return copyValues(m.obs.tables)
}

// copyValues returns copies of the values m points to, in map order.
func copyValues[K comparable, V any](m map[K]*V) []V {
	out := make([]V, 0, len(m))
	for _, v := range m {
		out = append(out, *v)
	}
	return out
}

// RecentBatches returns the last finished batches, newest first.
func (m *Merger) RecentBatches() []BatchInfo {
	m.obs.mu.Lock()
	defer m.obs.mu.Unlock()
	n := len(m.obs.recent)
	out := make([]BatchInfo, 0, n)
	for i := 1; i <= n; i++ {
		out = append(out, m.obs.recent[(m.obs.next-i+n)%n])
	}
	return out
}

// ErrorCodes returns how many merged requests failed with each MySQL
// error code (at most 64 distinct codes are counted).
func (m *Merger) ErrorCodes() map[uint16]uint64 {
	m.obs.mu.Lock()
	defer m.obs.mu.Unlock()
	out := make(map[uint16]uint64, len(m.obs.codes))
	for c, n := range m.obs.codes {
		out[c] = n
	}
	return out
}

// Limits are the merger's tunable queue limits.
type Limits struct {
	MaxBatch, MaxQueue, MaxQueueTotal int
	// GatherWait is Config.GatherWait, at most MaxGatherWait.
	GatherWait time.Duration
}

// Limits returns the limits in force.
func (m *Merger) Limits() Limits {
	m.mu.Lock()
	defer m.mu.Unlock()
	return Limits{MaxBatch: m.cfg.MaxBatch, MaxQueue: m.cfg.MaxQueue, MaxQueueTotal: m.cfg.MaxQueueTotal, GatherWait: m.cfg.GatherWait}
}

// SetLimits replaces the limits; the next batch forms under them and
// requests already queued stay queued. It refuses limits Config.Validate
// would refuse.
func (m *Merger) SetLimits(l Limits) error {
	c := Config{MaxBatch: l.MaxBatch, MaxQueue: l.MaxQueue, MaxQueueTotal: l.MaxQueueTotal, GatherWait: l.GatherWait}
	switch {
	case c.GatherWait < 0 || c.GatherWait > MaxGatherWait:
		return fmt.Errorf("batch gather must be 0 to %v", MaxGatherWait)
	case c.MaxBatch < 1:
		return errors.New("max_batch must be at least 1")
	case c.MaxQueue < 1:
		return errors.New("max_queue must be at least 1")
	case c.MaxQueueTotal < c.MaxQueue:
		return errors.New("max_queue_total must be at least max_queue")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cfg.MaxBatch, m.cfg.MaxQueue, m.cfg.MaxQueueTotal, m.cfg.GatherWait = c.MaxBatch, c.MaxQueue, c.MaxQueueTotal, c.GatherWait
	return nil
}

// InstanceID is the instance id batch ids embed.
func (m *Merger) InstanceID() string { return m.cfg.InstanceID }
