package merger

import (
	"crypto/sha256"
	"encoding/hex"
	"math/bits"
	"sync/atomic"
)

// SizeBuckets is the number of batch-size histogram buckets: bucket i
// counts batches of 2^(i-1) < size <= 2^i requests (bucket 0: size 1),
// the last one everything larger.
const SizeBuckets = 12

// Stats is a snapshot of the merger's counters.
type Stats struct {
	// Queued is the number of requests waiting in all queues.
	Queued int
	// Tables lists the hot tables with a running worker and their queue
	// depth (requests waiting behind the batch in flight).
	Tables []TableDepth
	// Batches counts executed batches by path; a batch that fell back to
	// one-by-one execution counts once per attempt.
	Batches     uint64
	LonePath    uint64
	FastPath    uint64
	GeneralPath uint64
	// Alone counts requests run alone on their client's connection
	// (Merger.Alone; counted in LonePath and Batches too), AloneGranted
	// those of them that matched their row: deductions without a ledger
	// row, whose order events come from the row change itself.
	Alone, AloneGranted uint64
	// Commits counts batch transactions committed with changes, and
	// statements run alone that matched their row.
	Commits uint64
	// Requests counts requests that reached a final outcome or error in a
	// batch.
	Requests uint64
	// Retries counts batches rolled back and re-run one by one.
	Retries uint64
	// Resolved counts uncertain COMMITs looked up by marker.
	Resolved uint64
	// Cancels counts claims cancelled (stock restored); Swept those of
	// them the sweep found.
	Cancels, Swept uint64
	// Unmerged counts hot-table UPDATEs passed through, by reason.
	Unmerged [NumUnmerged]uint64
	// Dropped, TimedOut and QueueFull count requests that never ran.
	Dropped, TimedOut, QueueFull uint64
	// BatchSizes is the histogram of batch sizes (see SizeBuckets).
	BatchSizes [SizeBuckets]uint64
}

// TableDepth is one hot table's queue depth.
type TableDepth struct {
	Rule  Rule
	Depth int
}

// counters are the merger's statistics, updated without locks.
type counters struct {
	batches, lone, fast, general atomic.Uint64
	commits, requests, retries   atomic.Uint64
	alone, aloneGranted          atomic.Uint64
	resolved                     atomic.Uint64
	cancels, swept               atomic.Uint64
	unmerged                     [NumUnmerged]atomic.Uint64
	dropped, timedOut, queueFull atomic.Uint64
	sizes                        [SizeBuckets]atomic.Uint64
}

// batch counts a batch of n requests executed on path p.
func (c *counters) batch(p execPath, n int) {
	c.batches.Add(1)
	switch p {
	case pathLone:
		c.lone.Add(1)
	case pathFast:
		c.fast.Add(1)
	case pathGeneral:
		c.general.Add(1)
	}
	c.requests.Add(uint64(n))
	c.sizes[min(bits.Len(uint(n-1)), SizeBuckets-1)].Add(1)
}

// Stats returns a snapshot of the counters and queue depths.
func (m *Merger) Stats() Stats {
	s := Stats{
		Batches:      m.stats.batches.Load(),
		LonePath:     m.stats.lone.Load(),
		FastPath:     m.stats.fast.Load(),
		GeneralPath:  m.stats.general.Load(),
		Commits:      m.stats.commits.Load(),
		Alone:        m.stats.alone.Load(),
		AloneGranted: m.stats.aloneGranted.Load(),
		Requests:     m.stats.requests.Load(),
		Retries:      m.stats.retries.Load(),
		Resolved:     m.stats.resolved.Load(),
		Cancels:      m.stats.cancels.Load(),
		Swept:        m.stats.swept.Load(),
		Dropped:      m.stats.dropped.Load(),
		TimedOut:     m.stats.timedOut.Load(),
		QueueFull:    m.stats.queueFull.Load(),
	}
	for i := range s.BatchSizes {
		s.BatchSizes[i] = m.stats.sizes[i].Load()
	}
	for i := range s.Unmerged {
		s.Unmerged[i] = m.stats.unmerged[i].Load()
	}
	m.mu.Lock()
	s.Queued = m.queued
	for r, q := range m.queues {
		s.Tables = append(s.Tables, TableDepth{Rule: r, Depth: q.lenLocked()})
	}
	m.mu.Unlock()
	return s
}

// shortDigest hashes a long statement digest to fit the ledger.
func shortDigest(d string) string {
	sum := sha256.Sum256([]byte(d))
	return hex.EncodeToString(sum[:16])
}
