package merger

import (
	"context"
	"strconv"
	"time"

	"github.com/hotrow/hotrow/schema"
)

// attempt is how one try at running a batch ended.
type attempt int

const (
	// attemptDone: outcomes are final and delivered.
	attemptDone attempt = iota
	// attemptRetry: nothing was applied; run the requests again.
	attemptRetry
)

// executor runs the batches of one table on one backend connection. It
// is owned by the table's worker goroutine; its buffers are reused.
type executor struct {
	m *Merger
	b *backend // nil until needed and after the connection failed

	batch   []*waiter  // the batch being executed
	one     [1]*waiter // a lone request of it, retried alone
	outs    []Outcome
	errs    []error
	after   []int64 // fast path: stock after request i (bits of a uint64 on UNSIGNED columns)
	reqs    []Request
	id      []byte // current batch id
	scratch []byte // appendDelta's text before quoting
	key     []byte // appendLedgerPrefix's key as ledger text

	// The batch's rows (groupKeys): keys[j] is the j-th distinct key value
	// in arrival order (as the first request gave it), keyOf[i] the index
	// of request i's key, keyIdx the reverse map by normalized value.
	keys   []any
	keyOf  []int
	keyIdx map[any]int
	// Fast path, per key j: rowOf[j] is its row in the locking read (-1:
	// no row), final[j] the stock after the batch (bits of a uint64 on
	// UNSIGNED columns), changed[j] whether a granted request changed it.
	rowOf   []int
	final   []int64
	changed []bool
	locked  []lockedRow // the locking read's rows
	stock   []byte      // general path: stock after, as text, for all requests
	ends    []int       // general path: end of request i's stock text in stock
}

func (x *executor) before(step Step) {
	if h := x.m.cfg.Hooks.Before; h != nil && x.b != nil {
		h(step, x.b.id)
	}
}

// execute runs a batch to final outcomes for every request: as one
// transaction when it has several requests; if that failed before COMMIT
// and the batch touches several rows, as one smaller batch per row (rows
// are independent: arrival order is kept within each row); and if that
// failed too, one by one, so that one bad request cannot fail the others.
//
// While the server is unreachable, requests are retried until
// ResolveTimeout after the oldest of them arrived (not after the batch
// started): batches queued behind one another then share that bound, and
// no request waits for a multiple of ResolveTimeout.
func (x *executor) execute(batch []*waiter) {
	oldest := batch[0].enq
	for _, w := range batch[1:] {
		if w.enq.Before(oldest) {
			oldest = w.enq
		}
	}
	deadline := oldest.Add(x.m.cfg.ResolveTimeout)
	if len(batch) > 1 {
		if x.runBatch(batch, deadline) == attemptDone {
			return
		}
		x.m.stats.retries.Add(1)
		if x.groupKeys(batch); len(x.keys) > 1 {
			x.executePerKey(batch, deadline)
			return
		}
	}
	for _, w := range batch {
		x.runLone(w, deadline)
	}
}

// executePerKey runs batch as one batch per row, grouped by x.keyOf, rows
// in order of first arrival, requests of a row in arrival order.
func (x *executor) executePerKey(batch []*waiter, deadline time.Time) {
	byKey := make([]*waiter, len(batch))
	starts := make([]int, len(x.keys)+1)
	for _, j := range x.keyOf {
		starts[j+1]++
	}
	for j := range x.keys {
		starts[j+1] += starts[j]
	}
	next := append([]int(nil), starts[:len(x.keys)]...)
	for i, w := range batch {
		j := x.keyOf[i]
		byKey[next[j]] = w
		next[j]++
	}
	for j := range len(starts) - 1 {
		sub := byKey[starts[j]:starts[j+1]]
		if len(sub) > 1 {
			if x.runBatch(sub, deadline) == attemptDone {
				continue
			}
			x.m.stats.retries.Add(1)
		}
		for _, w := range sub {
			x.runLone(w, deadline)
		}
	}
}

// newBatchID sets x.id to a batch id unique across instances.
func (x *executor) newBatchID() {
	x.id = append(x.id[:0], x.m.idPrefix...)
	x.id = strconv.AppendUint(x.id, x.m.batchSeq.Add(1), 10)
}

// finish reports a batch with final outcomes and delivers them.
func (x *executor) finish(p Path, batch []*waiter, committed bool) {
	m := x.m
	m.stats.batch(p, len(batch))
	if committed {
		m.stats.commits.Add(1)
	}
	if h := m.cfg.Hooks.Executed; h != nil {
		x.reqs = x.reqs[:0]
		for _, w := range batch {
			x.reqs = append(x.reqs, w.req)
		}
		h(Executed{BatchID: string(x.id), Path: p, Requests: x.reqs, Outcomes: x.outs[:len(batch)], Errs: x.errs[:len(batch)]})
		clear(x.reqs)
	}
	for i, w := range batch {
		deliver(w, x.outs[i], x.errs[i])
	}
	clear(x.errs)
}

func (x *executor) reset(n int) {
	x.outs = append(x.outs[:0], make([]Outcome, n)...)
	if cap(x.errs) < n {
		x.errs = make([]error, n)
	}
	x.errs = x.errs[:n]
	x.newBatchID()
}

// table returns the hot table's metadata; ok is false when it cannot be
// read (the general path then lets the server report any problem).
func (x *executor) table(r Rule) (schema.Table, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	t, err := x.m.tables.Get(ctx, r.Schema, r.Table, r.Key, r.Stock)
	return t, err == nil
}
