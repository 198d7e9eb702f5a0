package merger

import (
	"time"
)

// gatherer decides, for one table's worker, when its next batch forms.
//
// Without it a batch forms as soon as the previous one ended, from
// whatever queued meanwhile. With clients that send their next request
// when the last one is answered (an application's pooled connections,
// a load test), that splits them into cohorts that never meet again: the
// clients of one batch come back while the other cohort's batch runs, so
// with 16 clients the batches alternate between, say, 14 and 2 requests,
// and each batch costs a full commit (two fsyncs) whatever its size.
// The row lock serialises the batches anyway, so a batch that starts a
// little later with everyone costs its early requests little and the
// others a whole batch less: with 16 clients one batch of 16 every
// commit plus the clients' round trip, instead of 16 requests every two
// commits.
//
// So the next batch waits for the clients of the last two batches to come
// back (counted by connection id, autocommit statements only), but never longer than Config.GatherWait
// nor a quarter of the last batch's duration after its oldest request
// arrived: the wait costs at most that much latency and at most a quarter
// of a batch's throughput when the clients do not come back. A table
// whose last batches served one client waits for nothing, so a lone
// request still runs at once; and after a batch of several clients the
// worker stays for that long, so that the first of them to come back
// queues for the gathering batch instead of running alone.
//
// When the clients come back more slowly than that (many clients on
// busy cores, rows spread over the table), a wait that ends short of its
// target is mostly time the table's batches stand still: after one
// that gathered less than three quarters of its target, the next batch
// does not wait, after another miss the next two, and so on up to 16;
// one that gathers its clients ends the pause.
type gatherer struct {
	max time.Duration // Config.GatherWait (as the last batch formed); 0: never wait
	// target is how many requests the next batch waits for: the distinct
	// clients of the last two batches, at most MaxBatch.
	target int
	// wait bounds the wait: min(max, last batch's duration / 4).
	wait  time.Duration
	timer *time.Timer
	// cur holds the connection ids of the batch running (noted by add
	// before its requests are delivered: their waiters are reused after),
	// prev those of the batch before; seen counts distinct ids.
	cur, prev []uint32
	seen      map[uint32]struct{}
	// skip is how many more batches form without waiting; backoff what
	// skip is set to after the next miss but one.
	skip, backoff int
}

// reset prepares g for a new worker: nothing learnt.
func (g *gatherer) reset() {
	g.target, g.skip, g.backoff = 0, 0, 0
	g.cur, g.prev = g.cur[:0], g.prev[:0]
}

// maxBackoff is the most batches that form without waiting after the
// waits fell short of their targets.
const maxBackoff = 16

// settle learns from a wait that ended with n requests queued.
func (g *gatherer) settle(n int) {
	if 4*n >= 3*g.target {
		g.backoff = 0
		return
	}
	g.backoff = min(max(1, 2*g.backoff), maxBackoff)
	g.skip = g.backoff
}

// add notes that batch runs in the current batch. Claims do not count: a
// claim's client first confirms and commits its transaction and begins
// the next one, too long a way back to wait for (measured: gathering them
// made hot-tx batches no larger).
func (g *gatherer) add(batch []*waiter) {
	if g.max <= 0 {
		return // gathering is off: nothing to learn
	}
	for _, w := range batch {
		if w.req.Claim == nil {
			g.cur = append(g.cur, w.req.ConnID)
		}
	}
}

// after learns from the current batch, which took took: who the next
// batch waits for, and for how long at most.
func (g *gatherer) after(took time.Duration, maxBatch int) {
	if g.max <= 0 {
		g.reset()
		return
	}
	if g.seen == nil {
		g.seen = make(map[uint32]struct{})
	}
	clear(g.seen)
	for _, id := range g.prev {
		g.seen[id] = struct{}{}
	}
	for _, id := range g.cur {
		g.seen[id] = struct{}{}
	}
	g.prev, g.cur = g.cur, g.prev[:0]
	g.target = min(len(g.seen), maxBatch)
	g.wait = min(g.max, took/4)
}

// gather waits until q holds g.target requests, or g.wait after its
// oldest request arrived (g.wait from now while it is empty), or the
// merger closes. It returns at once when there is nothing to wait for,
// or while the waits back off (settle).
func (m *Merger) gather(q *tableQueue, g *gatherer) {
	if g.target <= 1 || g.wait <= 0 {
		return
	}
	if g.skip > 0 {
		g.skip--
		return
	}
	m.mu.Lock()
	n := q.lenLocked()
	if n >= g.target {
		m.mu.Unlock()
		g.settle(n)
		return
	}
	now := time.Now()
	deadline := now.Add(g.wait)
	if n > 0 {
		deadline = q.waiting[q.head].enq.Add(g.wait)
	}
	if !deadline.After(now) {
		// The oldest request queued during the last batch and has
		// waited long enough: no timer, no sleep.
		m.mu.Unlock()
		g.settle(n)
		return
	}
	q.target = g.target
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		q.target = 0
		m.mu.Unlock()
	}()
	if g.timer == nil {
		g.timer = time.NewTimer(time.Until(deadline))
	} else {
		g.timer.Reset(time.Until(deadline))
	}
	defer g.timer.Stop()
	for {
		select {
		case <-q.gathered:
		case <-g.timer.C:
		case <-m.life.Done():
			return
		}
		m.mu.Lock()
		n = q.lenLocked()
		if n > 0 {
			// While the queue was empty the wait counted from the start;
			// from its first request on, from that request's arrival.
			deadline = q.waiting[q.head].enq.Add(g.wait)
		}
		m.mu.Unlock()
		left := time.Until(deadline)
		if n >= g.target || left <= 0 {
			g.settle(n)
			return
		}
		g.timer.Reset(left)
	}
}
