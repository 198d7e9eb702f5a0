package merger

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/hotrow/hotrow/internal/deadpeer"
	"github.com/hotrow/hotrow/schema"
)

// Merger queues mergeable requests per hot table and runs each queue as a
// sequence of batch transactions (group commit) that may touch several
// rows of the table. See the package doc for
// its invariants.
type Merger struct {
	cfg    Config
	log    *slog.Logger
	meta   *sql.DB // DDL, metadata and start-up queries
	tables *schema.Cache
	pool   *connPool
	// metaIdent is the quoted MetaSchema, ready to splice into SQL.
	metaIdent string
	// idPrefix starts every batch id: the instance id and this process's
	// start time, so that ids stay unique across instances and restarts
	// of an instance that keeps its configured id.
	idPrefix string

	batchSeq atomic.Uint64
	// serverStart is the server's start time (Unix seconds, from its
	// uptime), recorded in claims rows; refreshed by the claim sweep.
	serverStart atomic.Int64
	executors   sync.Pool // idle *executor, their buffers kept
	digests     sync.Map  // *Statement -> string, the ledger's digest
	stats       counters
	obs         observer // per-table statistics, recent batches (observe.go)
	rows        rowUsers // who uses which row now (HoldIfIdle)

	mu     sync.Mutex
	queues map[Rule]*tableQueue // guarded by mu; an entry while its worker runs
	queued int                  // guarded by mu; requests waiting in all queues
	closed bool                 // guarded by mu
	// life is the merger's lifetime, not a request's: Close cancels it
	// (stop), which ends every wait of the workers (backoff, dial,
	// resolve, table metadata) and of the janitor.
	life context.Context
	stop context.CancelFunc
	// workers counts the running table workers; Close waits for them.
	workers sync.WaitGroup
	// janitor counts the background goroutines: marker pruning, the cancel
	// worker and the claim sweep.
	janitor sync.WaitGroup
	// cancels queues claim ids for the cancel worker (CancelLater).
	cancels chan claimJob

	closeOnce sync.Once
}

// floatKey is a float64 key value by its bits (NaN never equals itself
// as a map key).
type floatKey uint64

// tableQueue is the FIFO of the requests waiting for one hot table (one
// rule), whatever rows they touch.
type tableQueue struct {
	rule    Rule
	waiting []*waiter // guarded by Merger.mu; arrival order from head
	head    int       // guarded by Merger.mu
	// target, while the worker gathers its next batch (gather), is how
	// many waiting requests end the wait; 0 otherwise. Guarded by
	// Merger.mu.
	target int
	// gathered wakes the gathering worker once target requests wait.
	gathered chan struct{}
}

// newTableQueue returns the empty queue of rule's table.
func newTableQueue(rule Rule) *tableQueue {
	return &tableQueue{rule: rule, gathered: make(chan struct{}, 1)}
}

// lenLocked is the number of requests waiting in q.
func (q *tableQueue) lenLocked() int { return len(q.waiting) - q.head }

// takeLocked moves up to n waiting requests into batch, in arrival order.
func (q *tableQueue) takeLocked(batch []*waiter, n int) []*waiter {
	end := min(q.head+n, len(q.waiting))
	for _, w := range q.waiting[q.head:end] {
		w.state = stateBatched
		batch = append(batch, w)
	}
	clear(q.waiting[q.head:end])
	q.head = end
	if q.head == len(q.waiting) {
		q.waiting, q.head = q.waiting[:0], 0
	}
	return batch
}

// joinLocked moves into batch, until it holds n requests, the waiting
// requests for which locked is true, in arrival order; the others keep
// their order in q.
func (q *tableQueue) joinLocked(batch []*waiter, n int, locked func(*waiter) bool) []*waiter {
	kept := q.head
	for i := q.head; i < len(q.waiting); i++ {
		w := q.waiting[i]
		if len(batch) < n && locked(w) {
			w.state = stateBatched
			batch = append(batch, w)
			continue
		}
		q.waiting[kept] = w
		kept++
	}
	clear(q.waiting[kept:])
	q.waiting = q.waiting[:kept]
	if q.head == len(q.waiting) {
		q.waiting, q.head = q.waiting[:0], 0
	}
	return batch
}

// removeLocked takes w out of the queue (its client went away).
func (q *tableQueue) removeLocked(w *waiter) {
	for i := q.head; i < len(q.waiting); i++ {
		if q.waiting[i] == w {
			copy(q.waiting[i:], q.waiting[i+1:])
			q.waiting[len(q.waiting)-1] = nil
			q.waiting = q.waiting[:len(q.waiting)-1]
			return
		}
	}
}

// waiter carries one request through its queue and batch.
type waiter struct {
	req Request
	// ctx is the ctx of the request's Do. When it ends while the request
	// is queued, Do drops the request, or expire does when the batch
	// forms first (e.g. at once, when the statement before ran Alone).
	ctx  context.Context
	enq  time.Time
	done chan struct{} // receives once out and err are final
	out  Outcome
	err  error
	// state is guarded by Merger.mu while the request waits.
	state int
}

const (
	stateQueued = iota + 1
	stateBatched
)

var waiterPool = sync.Pool{New: func() any { return &waiter{done: make(chan struct{}, 1)} }}

// New opens the merger's pool on cfg.DSN, ensures hotrow's tables in
// cfg.MetaSchema and reads the server's innodb_lock_wait_timeout when
// cfg.QueueTimeout is 0.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Merger, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	dsn, _ := mysql.ParseDSN(cfg.DSN)
	metaDSN := dsn.Clone()
	metaDSN.DBName = ""
	metaDSN.DialFunc = deadpeer.Dialer(0, cfg.DeadAfter).DialContext // go-sql-driver applies its Timeout
	// A connector keeps DialFunc (a DSN string cannot carry it).
	connector, err := mysql.NewConnector(metaDSN)
	if err != nil {
		return nil, fmt.Errorf("merger: %w", err)
	}
	meta := sql.OpenDB(connector)
	meta.SetMaxOpenConns(4)
	if err := schema.Ensure(ctx, meta, cfg.MetaSchema); err != nil {
		meta.Close()
		return nil, fmt.Errorf("merger: %w", err)
	}
	var lockWait int
	if err := meta.QueryRowContext(ctx, "SELECT @@innodb_lock_wait_timeout").Scan(&lockWait); err != nil {
		meta.Close()
		return nil, fmt.Errorf("merger: read innodb_lock_wait_timeout: %w", err)
	}
	if cfg.QueueTimeout == 0 {
		cfg.QueueTimeout = time.Duration(lockWait) * time.Second
	}
	// A batch statement may wait for the row lock as long as the server
	// lets it; a read that takes longer means the connection is gone.
	readTimeout := time.Duration(lockWait)*time.Second + 30*time.Second
	// A marker may be looked up until its COMMIT's read timed out and
	// ResolveTimeout passed: the janitor must not delete it before.
	if window := readTimeout + cfg.ResolveTimeout; cfg.MarkerRetention < 2*window {
		meta.Close()
		return nil, fmt.Errorf("merger: MarkerRetention %v: want at least %v, twice the read timeout (innodb_lock_wait_timeout + 30s) plus ResolveTimeout", cfg.MarkerRetention, 2*window)
	}
	m := &Merger{
		cfg:       cfg,
		log:       log,
		meta:      meta,
		tables:    schema.NewCache(meta),
		pool:      newConnPool(dsn, cfg.PoolSize, readTimeout, cfg.DeadAfter),
		metaIdent: schema.QuoteIdent(cfg.MetaSchema),
		idPrefix:  cfg.InstanceID + "-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "-",
		queues:    make(map[Rule]*tableQueue),
		cancels:   make(chan claimJob, 4096),
	}
	if err := m.readServerStart(ctx); err != nil {
		meta.Close()
		return nil, fmt.Errorf("merger: read the server's uptime: %w", err)
	}
	m.life, m.stop = context.WithCancel(context.Background())
	m.executors.New = func() any { return &executor{m: m} }
	// Fail at start, not at the first hot statement, when the merge user
	// cannot connect with the capabilities a batch needs.
	b, err := m.pool.get(ctx)
	if err != nil {
		m.stop()
		meta.Close()
		return nil, err
	}
	m.pool.put(b, false)
	m.janitor.Add(3)
	go m.runJanitor(m.life)
	go m.runCancels(m.life)
	go m.runSweeper(m.life)
	log.Info("merger started", "instance_id", cfg.InstanceID, "meta_schema", cfg.MetaSchema,
		"max_batch", cfg.MaxBatch, "queue_timeout", cfg.QueueTimeout, "pool_size", cfg.PoolSize)
	return m, nil
}

// Do executes req merged with concurrent requests for the same table and
// returns what executing it alone would have returned. Errors are
// *gomysql.MyError values (the server's, or ErrQueueFull,
// ErrLockWaitTimeout, ErrOutcomeUnknown, ErrNotApplied, ErrBadRequest,
// ErrClosed: match them with errors.Is),
// except ctx.Err() when ctx ended before the request's batch started, or
// context.Canceled when req.Gone reported the client gone then (the request
// was then dropped). Once in a batch the request is applied and
// Do waits for its outcome even if ctx ends.
func (m *Merger) Do(ctx context.Context, req Request) (Outcome, error) {
	if err := ctx.Err(); err != nil {
		return Outcome{}, err
	}
	if req.Stmt == nil || len(req.Args) < req.Stmt.NumParams || req.Claim != nil && !ClaimAllowed(req.Stmt, req.Args) {
		return Outcome{}, ErrBadRequest
	}
	if !m.cfg.ClaimUncontended { // rows in use matter to HoldIfIdle only
		row := rowOf(req.Stmt, req.Args)
		m.rows.add(row)
		defer m.rows.done(row)
	}
	w := waiterPool.Get().(*waiter)
	w.req, w.ctx, w.enq = req, ctx, time.Now()

	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		m.release(w)
		return Outcome{}, ErrClosed
	}
	q := m.queues[req.Stmt.Rule]
	if m.queued >= m.cfg.MaxQueueTotal || q != nil && q.lenLocked() >= m.cfg.MaxQueue {
		m.mu.Unlock()
		m.release(w)
		m.stats.queueFull.Add(1)
		return Outcome{}, ErrQueueFull
	}
	if q == nil {
		q = newTableQueue(req.Stmt.Rule)
		m.queues[q.rule] = q
		m.workers.Add(1)
		go m.runTable(q)
	}
	q.waiting = append(q.waiting, w)
	if q.target > 0 && q.lenLocked() == q.target {
		select {
		case q.gathered <- struct{}{}:
		default:
		}
	}
	w.state = stateQueued
	m.queued++
	m.mu.Unlock()

	select {
	case <-w.done:
	case <-ctx.Done():
		m.mu.Lock()
		if w.state == stateQueued {
			q.removeLocked(w)
			m.queued--
			m.mu.Unlock()
			m.release(w)
			m.stats.dropped.Add(1)
			return Outcome{}, ctx.Err()
		}
		m.mu.Unlock()
		<-w.done
	}
	out, err := w.out, w.err
	m.release(w)
	return out, err
}

// release returns w, cleared, to the waiter pool.
func (m *Merger) release(w *waiter) {
	*w = waiter{done: w.done}
	waiterPool.Put(w)
}

// runTable is the worker of one hot table: it forms batches from the
// table's queue (gathering each first, see gatherer) until the queue is
// empty, then removes the queue and exits. Batches of one table thus never run at the same time in one
// Merger.
func (m *Merger) runTable(q *tableQueue) {
	defer m.workers.Done()
	x := m.executors.Get().(*executor)
	x.q = q
	x.g.reset()
	defer func() {
		x.q = nil
		x.close()
		m.executors.Put(x)
	}()
	for {
		m.gather(q, &x.g)
		m.mu.Lock()
		maxBatch := m.cfg.MaxBatch
		x.g.max = m.cfg.GatherWait // SetLimits may change either
		batch := q.takeLocked(x.batch[:0], maxBatch)
		x.batch = batch
		m.queued -= len(batch)
		if len(batch) == 0 {
			delete(m.queues, q.rule)
			m.mu.Unlock()
			return
		}
		m.mu.Unlock()
		batch = m.expire(batch)
		if len(batch) > 0 {
			began := time.Now()
			x.g.add(batch)
			x.batch = x.execute(m.life, batch)
			x.g.after(time.Since(began), maxBatch)
		}
		clear(x.batch)
	}
}

// goneCheckAge is how long a request waits before its batch asks whether
// its client is still there (Request.Gone, a system call per request in
// the proxy). A client that leaves sooner is like one that disconnects
// right after sending a statement to the server, which executes it all
// the same: its request is applied and recorded. Dropping is for requests
// abandoned in a long queue.
const goneCheckAge = 20 * time.Millisecond

// expire fails the requests that waited longer than QueueTimeout with
// ErrLockWaitTimeout, as the server fails a lock wait that long, drops
// those whose ctx ended or whose client is gone, and returns the others.
func (m *Merger) expire(batch []*waiter) []*waiter {
	now := time.Now()
	limit, goneLimit := now.Add(-m.cfg.QueueTimeout), now.Add(-goneCheckAge)
	kept := batch[:0]
	for _, w := range batch {
		if err := w.ctx.Err(); err != nil {
			m.stats.dropped.Add(1)
			deliver(w, Outcome{}, err)
			continue
		}
		if w.req.Gone != nil && w.enq.Before(goneLimit) && w.req.Gone() {
			m.stats.dropped.Add(1)
			deliver(w, Outcome{}, context.Canceled)
			continue
		}
		if w.enq.Before(limit) {
			m.stats.timedOut.Add(1)
			deliver(w, Outcome{}, ErrLockWaitTimeout)
			continue
		}
		kept = append(kept, w)
	}
	return kept
}

// deliver hands a request its final outcome and wakes its Do.
func deliver(w *waiter, out Outcome, err error) {
	w.out, w.err = out, err
	w.done <- struct{}{}
}

// Close stops accepting requests and ends every wait: queued and
// in-flight batches finish on the connections they hold, but nothing is
// retried any more, so a request that has not been applied (the server
// unreachable, its transaction rolled back) fails with ErrNotApplied. A
// batch whose COMMIT was in flight is still looked up once, else fails
// with ErrOutcomeUnknown. Close returns once every worker and the janitor
// ended: within a statement's or a connection attempt's timeout. It then
// releases the backend connections. It is idempotent.
func (m *Merger) Close() error {
	m.closeOnce.Do(func() {
		m.mu.Lock()
		m.closed = true
		m.mu.Unlock()
		m.stop()
		m.workers.Wait()
		m.janitor.Wait()
		m.pool.close()
		m.meta.Close()
		m.log.Info("merger closed")
	})
	return nil
}

// ledgerDigest returns the statement digest the ledger records: Digest
// itself when short, else a hash of it (cached per statement).
func (m *Merger) ledgerDigest(st *Statement) string {
	if len(st.Digest) <= schema.MaxDigest {
		return st.Digest
	}
	if d, ok := m.digests.Load(st); ok {
		return d.(string)
	}
	d := shortDigest(st.Digest)
	m.digests.Store(st, d)
	return d
}
