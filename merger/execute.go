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
// is owned by the table's worker goroutine. Its fields are buffers reused
// from batch to batch, each filled by one step and passed explicitly to
// the steps that read it.
type executor struct {
	m *Merger
	b *backend    // nil until needed and after the connection failed
	q *tableQueue // the queue of the table whose worker owns x
	g gatherer    // when that worker's next batch forms

	batch []*waiter  // the batch being executed (runTable's buffer)
	one   [1]*waiter // a lone request of it, retried alone
	reqs  []Request  // the requests of a batch (requests)
	id    []byte     // the current attempt's batch id (reset)
	text  []byte     // ledger text of a key or delta before quoting

	keys   keySet      // the batch's rows
	locked []lockedRow // the locking read's rows
	stocks []any       // the locked stock per row of keys (rowStocks)
	plan   fastPlan    // the fast path's evaluation
	res    results     // the current attempt's outcomes
	began  time.Time   // when the current attempt began (reset)
}

// results are one attempt's per-request outcomes and, for the ledger,
// the stock after each granted request as text. reset clears them per
// attempt; finish delivers them.
type results struct {
	outs []Outcome
	errs []error // errs[i] is the server error request i got, or nil
	// stock[ends[i-1]:ends[i]] is the stock after request i (ends[-1] =
	// 0), empty when unknown.
	stock []byte
	ends  []int
}

// reset prepares r for an attempt of n requests.
func (r *results) reset(n int) {
	r.outs = append(r.outs[:0], make([]Outcome, n)...)
	clear(r.errs)
	r.errs = append(r.errs[:0], make([]error, n)...)
	r.stock, r.ends = r.stock[:0], r.ends[:0]
}

// granted counts the requests that matched their row.
func (r *results) granted() int {
	n := 0
	for i := range r.outs {
		n += int(r.outs[i].Matched)
	}
	return n
}

// endStock ends request len(r.ends)'s stock text with s appended.
func (r *results) endStock(s string) {
	r.stock = append(r.stock, s...)
	r.ends = append(r.ends, len(r.stock))
}

// stockAfter is request i's stock after, as text.
func (r *results) stockAfter(i int) []byte {
	from := 0
	if i > 0 {
		from = r.ends[i-1]
	}
	return r.stock[from:r.ends[i]]
}

// takePlan copies a fast plan's outcomes and stock values into r.
func (r *results) takePlan(p *fastPlan) {
	copy(r.outs, p.outs)
	r.stock, r.ends = r.stock[:0], r.ends[:0]
	for _, v := range p.after {
		r.stock = appendStock(r.stock, v, p.unsigned)
		r.ends = append(r.ends, len(r.stock))
	}
}

// requests returns the requests of batch, in x.reqs.
func (x *executor) requests(batch []*waiter) []Request {
	x.reqs = x.reqs[:0]
	for _, w := range batch {
		x.reqs = append(x.reqs, w.req)
	}
	return x.reqs
}

// before runs the before hook of step with the backend's connection id.
func (x *executor) before(step batchStep) {
	if h := x.m.cfg.hooks.before; h != nil && x.b != nil {
		h(step, x.b.id)
	}
}

// execute runs a batch to final outcomes for every request: as one
// transaction when it has several requests; if that failed before COMMIT
// and the batch touches several rows, as one smaller batch per row (rows
// are independent: arrival order is kept within each row); and if that
// failed too, one by one, so that one bad request cannot fail the others.
//
// The first attempt may grow the batch (see join); execute returns the
// batch it ran.
//
// While the server is unreachable, requests are retried until
// ResolveTimeout after the oldest of them arrived (not after the batch
// started): batches queued behind one another then share that bound, and
// no request waits for a multiple of ResolveTimeout.
func (x *executor) execute(ctx context.Context, batch []*waiter) []*waiter {
	oldest := batch[0].enq
	for _, w := range batch[1:] {
		if w.enq.Before(oldest) {
			oldest = w.enq
		}
	}
	deadline := oldest.Add(x.m.cfg.ResolveTimeout)
	if len(batch) > 1 {
		var a attempt
		if batch, a = x.runBatch(ctx, batch, deadline, true); a == attemptDone {
			return batch
		}
		x.m.stats.retries.Add(1)
		if x.keys.group(batch); len(x.keys.keys) > 1 {
			x.executePerKey(ctx, batch, deadline)
			return batch
		}
	}
	for _, w := range batch {
		x.runLone(ctx, w, deadline)
	}
	return batch
}

// executePerKey runs batch as one batch per row, as x.keys grouped it, rows
// in order of first arrival, requests of a row in arrival order.
func (x *executor) executePerKey(ctx context.Context, batch []*waiter, deadline time.Time) {
	rows := len(x.keys.keys)
	byKey := make([]*waiter, len(batch))
	starts := make([]int, rows+1)
	for _, j := range x.keys.of {
		starts[j+1]++
	}
	for j := range rows {
		starts[j+1] += starts[j]
	}
	next := append([]int(nil), starts[:rows]...)
	for i, w := range batch {
		j := x.keys.of[i]
		byKey[next[j]] = w
		next[j]++
	}
	for j := range len(starts) - 1 {
		sub := byKey[starts[j]:starts[j+1]]
		if len(sub) > 1 {
			if _, a := x.runBatch(ctx, sub, deadline, false); a == attemptDone {
				continue
			}
			x.m.stats.retries.Add(1)
		}
		for _, w := range sub {
			x.runLone(ctx, w, deadline)
		}
	}
}

// newBatchID sets x.id to a batch id unique across instances.
func (x *executor) newBatchID() {
	x.id = append(x.id[:0], x.m.idPrefix...)
	x.id = strconv.AppendUint(x.id, x.m.batchSeq.Add(1), 10)
}

// finish reports a batch with final outcomes and delivers them.
func (x *executor) finish(p execPath, batch []*waiter, committed bool) {
	m := x.m
	m.record(p, x.id, x.began, batch, &x.res, committed)
	x.claimIDs(batch)
	if h := m.cfg.hooks.executed; h != nil {
		h(executed{BatchID: string(x.id), Path: p, Requests: x.requests(batch), Outcomes: x.res.outs, Errs: x.res.errs})
		clear(x.reqs)
	}
	for i, w := range batch {
		deliver(w, x.res.outs[i], x.res.errs[i])
	}
	clear(x.res.errs)
}

// record counts a batch and its outcomes res in the statistics (see
// observer.observe).
func (m *Merger) record(p execPath, id []byte, began time.Time, batch []*waiter, res *results, committed bool) {
	m.stats.batch(p, len(batch))
	m.obs.observe(p, id, began, batch, res, committed)
	if committed {
		m.stats.commits.Add(1)
	}
}

// reset starts an attempt of n requests: fresh results and batch id.
func (x *executor) reset(n int) {
	x.res.reset(n)
	x.newBatchID()
	x.began = time.Now()
}

// table returns the hot table's metadata, read within 5 s unless ctx
// ends; ok is false when it cannot be read (the general path then lets
// the server report any problem).
func (x *executor) table(ctx context.Context, r Rule) (schema.Table, bool) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	t, err := x.m.tables.Get(ctx, r.Schema, r.Table, r.Key, r.Stock)
	return t, err == nil
}
