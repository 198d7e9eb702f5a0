package merger

import (
	"context"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/hotrow/hotrow/internal/ctxsleep"
)

// Alone reports whether req may run by itself, as the client sent it, on
// its client's own backend connection instead of as a batch of one on the
// merger's: when nothing of its table is queued or in a batch in this
// Merger, and req is no claim. That costs what a direct statement costs:
// no transaction of its own, no ledger row, no marker. Its deduction is
// an ordinary row change, which the order feed (package binlog) turns
// into its event; what the client hears is the server's own answer, and a
// connection lost during the statement is the client's 2013, as direct.
//
// While it runs the table counts as busy, as while a batch runs: requests
// that arrive queue, and the batch that serves them starts only when the
// caller calls done with the statement's outcome (or the error it got).
// It could start at once and wait for the row lock in the server; waiting
// here instead keeps no pool connection and open transaction waiting on
// that lock, lets everything that arrives meanwhile join one batch, as
// behind a batch of one, and keeps one statement of this Merger per table
// in flight. done must be called exactly once; Close waits for it.
func (m *Merger) Alone(req Request) (done func(Outcome, error), ok bool) {
	if !m.cfg.LonePassThrough || req.Claim != nil || req.Stmt == nil {
		return nil, false
	}
	m.mu.Lock()
	if m.closed || m.queues[req.Stmt.Rule] != nil {
		m.mu.Unlock()
		return nil, false
	}
	q := newTableQueue(req.Stmt.Rule)
	m.queues[q.rule] = q
	m.workers.Add(1) // the statement stands for the table's worker
	m.mu.Unlock()
	track := !m.cfg.ClaimUncontended // rows in use matter to HoldIfIdle only
	var row rowKey
	if track {
		row = rowOf(req.Stmt, req.Args)
		m.rows.add(row)
	}
	began := time.Now()
	return func(out Outcome, err error) {
		if track {
			m.rows.done(row)
		}
		m.aloneDone(q, req, began, out, err)
	}, true
}

// aloneDone records a statement run alone (Alone) and ends the table's
// busy mark: the requests queued meanwhile get a worker.
func (m *Merger) aloneDone(q *tableQueue, req Request, began time.Time, out Outcome, err error) {
	granted := err == nil && out.Matched > 0
	m.stats.alone.Add(1)
	if granted {
		m.stats.aloneGranted.Add(1)
	}
	w := waiter{req: req, enq: began}
	m.record(pathLone, nil, began, []*waiter{&w}, &results{outs: []Outcome{out}, errs: []error{err}}, granted)
	m.mu.Lock()
	if q.lenLocked() == 0 {
		delete(m.queues, q.rule)
		m.mu.Unlock()
		m.workers.Done()
		return
	}
	m.mu.Unlock()
	go m.runTable(q) // takes over the worker count
}

// loneAttempts is how often a lone request is retried after errors that
// belong to its transaction (deadlock, lock wait timeout ...) before the
// client gets the server's error.
const loneAttempts = 3

// runLone runs one request on the merger's connection (a batch of one
// that did not run Alone: a claim, a request of a failed batch run again,
// one taken from the queue alone, or any with LonePassThrough off) until
// it has a final outcome: one round trip of BEGIN, a locking read of the
// row's stock, the statement, its ledger row (INSERT ... SELECT when the
// statement matched or the stock moved) and COMMIT (appendLone). It
// writes no marker: the ledger row proves the commit of a request that
// changed something, and one that matched nothing changed nothing, so
// its outcome holds whether or not COMMIT ran. It retries while the
// backend is unreachable or the transaction failed, up to the deadline
// and until ctx ends.
func (x *executor) runLone(ctx context.Context, w *waiter, deadline time.Time) {
	x.one[0] = w
	defer func() { x.one[0] = nil }()
	batch := x.one[:]
	for n := 1; ; n++ {
		res, err := x.loneAttempt(ctx, batch, deadline)
		if res == attemptDone {
			return
		}
		se := serverError(err)
		// Server errors get loneAttempts tries whatever the deadline (a
		// request may have waited long in its queue); an unreachable server
		// is retried until the deadline. When the merger closes, the
		// request is not retried: nothing of it was applied.
		switch {
		case se == nil && (time.Now().After(deadline) || ctx.Err() != nil):
			x.failLone(batch, ErrNotApplied)
			return
		case se != nil && n >= loneAttempts:
			x.failLone(batch, se)
			return
		}
		if !ctxsleep.Sleep(ctx, time.Duration(n)*20*time.Millisecond) {
			x.failLone(batch, ErrNotApplied)
			return
		}
	}
}

// loneAttempt is one try of runLone; its error is the one that made it
// retry (a server error, or a connection failure).
func (x *executor) loneAttempt(ctx context.Context, batch []*waiter, deadline time.Time) (attempt, error) {
	b, err := x.conn(ctx, deadline)
	if err != nil {
		return attemptRetry, err
	}
	r := &batch[0].req
	rule := r.Stmt.Rule
	x.reset(1)
	b.sql = b.sql[:0]
	base := 0
	useDB := b.db != rule.Schema
	if useDB {
		b.sql = appendUse(b.sql, rule.Schema)
		base = 1
	}
	b.sql = x.appendLone(b.sql, r)
	// START TRANSACTION, the locking read, the statement, the ledger row,
	// [the claims row,] COMMIT.
	readIdx, stmtIdx, commitIdx := base+1, base+2, base+4
	if r.Claim != nil {
		commitIdx++ // the claims row
	}
	gotOutcome := false
	x.before(stepBegin)
	x.before(stepUpdate)
	x.before(stepCommit)
	failed, err := b.run(func(i int, res *gomysql.Result) {
		switch {
		case useDB && i == 0:
			b.db = rule.Schema
		case i == stmtIdx:
			x.res.outs[0], gotOutcome = statementOutcome(res), true
		}
	})
	if failed < 0 {
		x.finish(pathLone, batch, x.res.outs[0].Matched > 0)
		return attemptDone, nil
	}
	se := serverError(err)
	switch {
	case se != nil && failed < base:
		// USE failed: the client would get this error too.
		x.res.errs[0] = se
		x.finish(pathLone, batch, false)
		return attemptDone, nil
	case se != nil && (failed == stmtIdx || failed == readIdx) && (!batchLevel(se) || se.Code == gomysql.ER_LOCK_WAIT_TIMEOUT):
		// The statement's own error, as direct execution reports it (the
		// locking read before it reads and locks what it would: its errors
		// are the statement's); a lock wait timeout is not retried: it
		// already waited that long.
		x.rollback()
		x.res.errs[0] = se
		x.finish(pathLone, batch, false)
		return attemptDone, nil
	case se != nil && failed < commitIdx:
		x.rollback()
		return attemptRetry, se
	}
	oldID := b.id
	x.drop()
	if gotOutcome && x.res.outs[0].Matched == 0 {
		// The statement matched nothing, so it changed nothing and wrote no
		// ledger row: its outcome holds whether or not COMMIT ran.
		x.finish(pathLone, batch, false)
		return attemptDone, nil
	}
	// The statement matched (or its OK was lost): the ledger row of this
	// batch exists when the transaction committed a grant that moved the
	// stock (with the connection lost, ROW_COUNT() may have read -1:
	// appendLone).
	committed, rerr := x.resolve(ctx, oldID, true)
	switch {
	case rerr != nil:
		x.res.errs[0] = ErrOutcomeUnknown
	case !committed && len(r.Stmt.Extra) > 0 && !amountNonZero(r):
		// No ledger row, but the statement may have committed its other
		// assignments without moving the stock: running it again could
		// apply them twice.
		x.res.errs[0] = ErrOutcomeUnknown
	case !committed:
		// Not committed, or committed having changed nothing (its stock
		// did not move and it assigns nothing else): either way nothing
		// was applied, and the request runs again.
		return attemptRetry, err
	case !gotOutcome:
		// Committed with a grant, but the statement's OK was lost with the
		// connection: it matched exactly one row when the key is unique;
		// whether it changed the row is known only for plain integer
		// changes. Part of the resolution, the metadata read runs even
		// when the merger is closing (bounded by table's timeout).
		amount, _, ok := fastOperands(r, true)
		t, tok := x.table(context.WithoutCancel(ctx), rule)
		if !ok || !tok || !t.KeyUnique {
			x.res.errs[0] = ErrOutcomeUnknown
			break
		}
		x.res.outs[0] = Outcome{Matched: 1, Changed: b2u(amount != 0)}
	}
	x.finish(pathLone, batch, committed)
	return attemptDone, nil
}

// amountNonZero reports whether r's amount is a number other than zero,
// so that a statement that matched moved its stock.
func amountNonZero(r *Request) bool {
	switch v := r.Stmt.Amount.Value(r.Args).(type) {
	case int64:
		return v != 0
	case uint64:
		return v != 0
	case float64:
		return v != 0
	}
	return false
}

// failLone ends a lone request, not applied, with err.
func (x *executor) failLone(batch []*waiter, err error) {
	x.reset(1)
	x.res.errs[0] = err
	x.finish(pathLone, batch, false)
}
