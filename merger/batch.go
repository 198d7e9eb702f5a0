package merger

import (
	"context"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/hotrow/hotrow/schema"
)

// runBatch runs several requests, on one or several rows of their table,
// in one transaction: a locking read of the batch's rows in key order,
// then the fast path when planFast can evaluate every request in Go
// without any error, else the general path. With join, the requests
// queued meanwhile on the locked rows join the batch (see join); runBatch
// returns the batch it ran.
func (x *executor) runBatch(ctx context.Context, batch []*waiter, deadline time.Time, join bool) ([]*waiter, attempt) {
	b, err := x.conn(ctx, deadline)
	if err != nil {
		return batch, attemptRetry
	}
	rule := batch[0].req.Stmt.Rule
	x.keys.group(batch)
	t, known := x.table(ctx, rule)
	var table *schema.Table
	if known {
		table = &t
	}
	fast := known && t.Integer && t.KeyUnique && t.Exact()
	for j := 0; fast && j < len(x.keys.keys); j++ {
		fast = keyFits(t, x.keys.keys[j])
	}
	x.reset(len(batch))

	x.before(stepBegin)
	b.sql = appendLockingRead(b.sql[:0], rule, x.keys.keys, table, b.nbe)
	var field *gomysql.Field
	clear(x.locked)
	x.locked = x.locked[:0]
	failed, err := b.run(func(i int, r *gomysql.Result) {
		if i != 1 || r.Resultset == nil || len(r.Fields) != 2 {
			return
		}
		field = r.Fields[1]
		for row := range r.RowNumber() {
			k, _ := r.GetValue(row, 0)
			v, _ := r.GetValue(row, 1)
			lr := lockedRow{key: normKey(k), stock: v}
			if s, isStr := lr.key.(string); isStr {
				lr.text = s
			}
			x.locked = append(x.locked, lr)
		}
	})
	if failed >= 0 {
		x.failed(err)
		if se := serverError(err); se != nil && se.Code == gomysql.ER_LOCK_WAIT_TIMEOUT && len(x.keys.keys) == 1 {
			// Another transaction held the row for innodb_lock_wait_timeout:
			// each request would have waited as long and failed so directly.
			// (With several rows it is not known which one was held: the
			// batch is retried per row.)
			for i := range batch {
				x.res.errs[i] = se
			}
			x.finish(pathGeneral, batch, false)
			return batch, attemptDone
		}
		return batch, attemptRetry
	}
	if join {
		batch = x.join(batch)
	}
	if fast && x.planBatch(batch, t, field) {
		return batch, x.commitFast(ctx, batch, rule)
	}
	return batch, x.runGeneral(ctx, batch, rule)
}

// join adds to batch, up to MaxBatch, the requests that queued while its
// locking read ran and whose row it locked, in arrival order, and grows
// x.keys and x.res with them. They arrived after every request of the
// batch, and the batch holds their rows' locks, so running them last in it
// is their serial order: a late arrival rides the batch in flight instead
// of waiting for it and forming the next one. With many clients answered
// by one batch and coming back together, this keeps them in one batch
// instead of splitting them into two that alternate.
func (x *executor) join(batch []*waiter) []*waiter {
	m, n := x.m, len(batch)
	if x.q == nil {
		return batch
	}
	m.mu.Lock()
	batch = x.q.joinLocked(batch, m.cfg.MaxBatch, x.locksRow)
	m.queued -= len(batch) - n
	m.mu.Unlock()
	if len(batch) == n {
		return batch
	}
	batch = batch[:n+len(m.expire(batch[n:]))]
	x.g.add(batch[n:])
	for _, w := range batch[n:] {
		x.keys.of = append(x.keys.of, x.keys.idx[normKey(keyValue(&w.req))])
	}
	x.res.reset(len(batch))
	return batch
}

// locksRow reports whether the batch's locking read locked w's row.
func (x *executor) locksRow(w *waiter) bool {
	_, ok := x.keys.idx[normKey(keyValue(&w.req))]
	return ok
}

// planBatch evaluates the batch in Go on its locked rows (planFast into
// x.plan) and reports whether the fast path can commit it.
func (x *executor) planBatch(batch []*waiter, t schema.Table, field *gomysql.Field) bool {
	var ok bool
	if x.stocks, ok = rowStocks(x.stocks[:0], &x.keys, x.locked); !ok {
		return false
	}
	col := stockColumn{unsigned: t.Unsigned} // no row locked: no stock to range
	if field != nil {
		if col, ok = integerColumn(field); !ok || col.unsigned != t.Unsigned {
			x.m.tables.Forget(t.Schema, t.Name) // the table changed
			return false
		}
	}
	ok = planFast(&x.plan, x.requests(batch), x.keys.of, x.stocks, col)
	clear(x.reqs)
	clear(x.stocks)
	return ok
}

// commitNothing ends a batch that changed nothing.
func (x *executor) commitNothing(p execPath, batch []*waiter) attempt {
	if _, err := x.b.c.Execute("COMMIT"); err != nil {
		x.failed(err)
		return attemptRetry
	}
	x.finish(p, batch, false)
	return attemptDone
}

// commitFast writes the planned batch (x.plan): one UPDATE to the final
// stock per changed row (already locked, so in any order), one multi-row
// ledger INSERT, the marker and COMMIT, in one round trip.
func (x *executor) commitFast(ctx context.Context, batch []*waiter, r Rule) attempt {
	x.res.takePlan(&x.plan)
	if x.plan.granted == 0 {
		return x.commitNothing(pathFast, batch)
	}
	b := x.b
	x.before(stepUpdate)
	var updates int
	b.sql, updates = appendFastUpdates(b.sql[:0], r, x.keys.keys, &x.plan, b.nbe)
	var commit int
	b.sql, commit = x.appendLedgerCommit(b.sql, batch, &x.res)
	x.before(stepCommit)
	failed, err := b.run(func(int, *gomysql.Result) {})
	return x.afterCommit(ctx, pathFast, batch, failed, updates+commit, err)
}

// afterCommit settles a batch whose last round trip carried COMMIT at
// statement index commitIdx.
func (x *executor) afterCommit(ctx context.Context, p execPath, batch []*waiter, failed, commitIdx int, err error) attempt {
	if failed < 0 {
		x.finish(p, batch, true)
		return attemptDone
	}
	if se := serverError(err); se != nil && failed < commitIdx {
		x.rollback()
		return attemptRetry
	}
	oldID := x.b.id
	x.drop()
	committed, rerr := x.resolve(ctx, oldID, false)
	switch {
	case rerr != nil:
		for i := range batch {
			x.res.outs[i], x.res.errs[i] = Outcome{}, ErrOutcomeUnknown
		}
		x.m.log.Error("batch commit outcome unknown", "batch_id", string(x.id), "requests", len(batch), "err", rerr)
		x.finish(p, batch, false)
		return attemptDone
	case committed:
		x.finish(p, batch, true)
		return attemptDone
	}
	return attemptRetry
}

// runGeneral executes each request's own statement inside the batch
// transaction (already holding the row locks), after a savepoint, and
// takes its outcome from the server; a request that fails is rolled back
// to its savepoint and the batch goes on.
func (x *executor) runGeneral(ctx context.Context, batch []*waiter, r Rule) attempt {
	b := x.b
	x.before(stepUpdate)
	for start := 0; start < len(batch); {
		b.sql = b.sql[:0]
		// base is the index of request start's SAVEPOINT.
		base := 0
		if start > 0 {
			b.sql = append(b.sql, "ROLLBACK TO SAVEPOINT hotrow; "...)
			base++
		}
		if b.db != r.Schema {
			b.sql = appendUse(b.sql, r.Schema)
			base++
		}
		b.sql = x.appendGeneral(b.sql, r, batch[start:])
		failed, err := b.run(func(i int, res *gomysql.Result) {
			if i == base-1 && b.db != r.Schema {
				b.db = r.Schema
			}
			if i < base {
				return
			}
			j := start + (i-base)/3
			switch (i - base) % 3 {
			case 1:
				x.res.outs[j] = statementOutcome(res)
			case 2:
				var s string
				if res.Resultset != nil && res.RowNumber() > 0 {
					s, _ = res.GetString(0, 0)
				}
				x.res.endStock(s)
			}
		})
		if failed < 0 {
			break
		}
		se := serverError(err)
		if failed < base || se == nil || batchLevel(se) || (failed-base)%3 != 1 {
			x.failed(err)
			return attemptRetry
		}
		j := start + (failed-base)/3
		x.res.outs[j], x.res.errs[j] = Outcome{}, se
		x.res.endStock("")
		start = j + 1
		if start == len(batch) {
			if _, err := b.c.Execute("ROLLBACK TO SAVEPOINT hotrow"); err != nil {
				x.failed(err)
				return attemptRetry
			}
		}
	}
	if x.res.granted() == 0 {
		return x.commitNothing(pathGeneral, batch)
	}
	var commit int
	b.sql, commit = x.appendLedgerCommit(b.sql[:0], batch, &x.res)
	x.before(stepCommit)
	failed, err := b.run(func(int, *gomysql.Result) {})
	return x.afterCommit(ctx, pathGeneral, batch, failed, commit, err)
}

// statementOutcome reads an UPDATE's outcome from its OK packet.
func statementOutcome(r *gomysql.Result) Outcome {
	return UpdateOutcome(r.AffectedRows, r.StatusMessage, r.Warnings)
}

// UpdateOutcome is the Outcome of an UPDATE the server answered with an OK
// packet: its affected rows, its info ("Rows matched: N  Changed: M
// Warnings: W") and its warning count.
func UpdateOutcome(affected uint64, info string, warnings uint16) Outcome {
	out := Outcome{Warnings: warnings}
	var ok bool
	if out.Matched, out.Changed, ok = parseInfo(info); !ok {
		// No info: affected rows are found rows (CLIENT_FOUND_ROWS).
		out.Matched, out.Changed = affected, affected
	}
	return out
}
