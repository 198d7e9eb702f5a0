package merger

import (
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/hotrow/hotrow/schema"
)

// runBatch runs several requests, on one or several rows of their table,
// in one transaction: a locking read of the batch's rows in key order,
// then the fast path when every request can be evaluated in Go without
// any error, else the general path.
func (x *executor) runBatch(batch []*waiter, deadline time.Time) attempt {
	b, err := x.conn(deadline)
	if err != nil {
		return attemptRetry
	}
	rule := batch[0].req.Stmt.Rule
	x.groupKeys(batch)
	t, ok := x.table(rule)
	fast := ok && t.Integer && t.KeyUnique && t.Exact()
	for j := 0; fast && j < len(x.keys); j++ {
		fast = keyFits(t, x.keys[j])
	}
	for i := 0; fast && i < len(batch); i++ {
		_, _, fast = fastOperands(&batch[i].req, t.Unsigned)
	}
	x.reset(len(batch))

	// The locking read takes the locks of every row the batch touches, in
	// key order: InnoDB scans an IN list on an index in index order (the
	// optimizer sorts the list into ranges; ORDER BY key keeps it on the
	// index), so every hotrow batch on this table, of this instance or
	// another, acquires its row locks in the same ascending order and two
	// batches cannot wait for each other in a cycle. Only keys the column
	// compares exactly (keyFits) are listed: a key of another type could
	// make the server compare by conversion and scan (and lock) the whole
	// table; such a batch locks its rows statement by statement (general
	// path), and a deadlock there is retried.
	x.before(StepBegin)
	b.sql = append(b.sql[:0], "START TRANSACTION"...)
	locks := 0
	for _, k := range x.keys {
		if len(x.keys) > 1 && !(ok && keyFits(t, k)) {
			continue
		}
		if locks == 0 {
			b.sql = append(b.sql, "; SELECT "...)
			b.sql = appendIdent(b.sql, rule.Key)
			b.sql = append(b.sql, ", "...)
			b.sql = appendIdent(b.sql, rule.Stock)
			b.sql = append(b.sql, " FROM "...)
			b.sql = appendTable(b.sql, rule.Schema, rule.Table)
			b.sql = append(b.sql, " WHERE "...)
			b.sql = appendIdent(b.sql, rule.Key)
			b.sql = append(b.sql, " IN ("...)
		} else {
			b.sql = append(b.sql, ',')
		}
		b.sql = appendValue(b.sql, k, b.nbe)
		locks++
	}
	if locks > 0 {
		b.sql = append(b.sql, ") ORDER BY "...)
		b.sql = appendIdent(b.sql, rule.Key)
		b.sql = append(b.sql, " FOR UPDATE"...)
	}
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
		if se := serverError(err); se != nil && se.Number == ErrLockWaitTimeout.Number && len(x.keys) == 1 {
			// Another transaction held the row for innodb_lock_wait_timeout:
			// each request would have waited as long and failed so directly.
			// (With several rows it is not known which one was held: the
			// batch is retried per row.)
			for i := range batch {
				x.errs[i] = se
			}
			x.finish(PathGeneral, batch, false)
			return attemptDone
		}
		return attemptRetry
	}
	if fast && x.mapRows() && x.simulate(batch, t, field) {
		return x.commitFast(batch, t, rule, deadline)
	}
	return x.runGeneral(batch, rule, deadline)
}

// commitNothing ends a batch that changed nothing.
func (x *executor) commitNothing(p Path, batch []*waiter) attempt {
	if _, err := x.b.c.Execute("COMMIT"); err != nil {
		x.failed(err)
		return attemptRetry
	}
	x.finish(p, batch, false)
	return attemptDone
}

// commitFast writes the simulated batch: one UPDATE to the final stock
// per changed row (already locked, so in any order), one multi-row ledger
// INSERT, the marker and COMMIT, in one round trip.
func (x *executor) commitFast(batch []*waiter, t schema.Table, r Rule, deadline time.Time) attempt {
	b := x.b
	granted := 0
	for i := range batch {
		granted += int(x.outs[i].Matched)
	}
	if granted == 0 {
		return x.commitNothing(PathFast, batch)
	}
	unsigned := t.Unsigned
	x.before(StepUpdate)
	b.sql = b.sql[:0]
	stmts := 0
	for j, k := range x.keys {
		if !x.changed[j] {
			continue
		}
		b.sql = append(b.sql, "UPDATE "...)
		b.sql = appendTable(b.sql, r.Schema, r.Table)
		b.sql = append(b.sql, " SET "...)
		b.sql = appendIdent(b.sql, r.Stock)
		b.sql = append(b.sql, " = "...)
		b.sql = appendStock(b.sql, x.final[j], unsigned)
		b.sql = append(b.sql, " WHERE "...)
		b.sql = appendIdent(b.sql, r.Key)
		b.sql = append(b.sql, " = "...)
		b.sql = appendValue(b.sql, k, b.nbe)
		b.sql = append(b.sql, "; "...)
		stmts++
	}
	x.stock, x.ends = x.stock[:0], x.ends[:0]
	for _, v := range x.after {
		x.stock = appendStock(x.stock, v, unsigned)
		x.ends = append(x.ends, len(x.stock))
	}
	b.sql = x.appendLedgerCommit(b.sql, batch, granted)
	commitIdx := stmts + 2
	x.before(StepCommit)
	failed, err := b.run(func(int, *gomysql.Result) {})
	return x.afterCommit(PathFast, batch, failed, commitIdx, err, deadline)
}

// afterCommit settles a batch whose last round trip carried COMMIT at
// statement index commitIdx.
func (x *executor) afterCommit(p Path, batch []*waiter, failed, commitIdx int, err error, deadline time.Time) attempt {
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
	committed, _, rerr := x.resolve(oldID, time.Now().Add(x.m.cfg.ResolveTimeout), false)
	switch {
	case rerr != nil:
		for i := range batch {
			x.outs[i], x.errs[i] = Outcome{}, ErrOutcomeUnknown
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
func (x *executor) runGeneral(batch []*waiter, r Rule, deadline time.Time) attempt {
	b := x.b
	clear(x.outs)
	x.stock, x.ends = x.stock[:0], x.ends[:0]
	x.before(StepUpdate)
	for start := 0; start < len(batch); {
		b.sql = b.sql[:0]
		// base is the index of request start's SAVEPOINT.
		base := 0
		if start > 0 {
			b.sql = append(b.sql, "ROLLBACK TO SAVEPOINT hotrow; "...)
			base++
		}
		if b.db != r.Schema {
			b.sql = append(b.sql, "USE "...)
			b.sql = appendIdent(b.sql, r.Schema)
			b.sql = append(b.sql, "; "...)
			base++
		}
		for _, w := range batch[start:] {
			b.sql = append(b.sql, "SAVEPOINT hotrow; "...)
			b.sql = x.appendStatement(b.sql, &w.req)
			b.sql = append(b.sql, "; SELECT "...)
			b.sql = appendIdent(b.sql, r.Stock)
			b.sql = x.appendFromKey(b.sql, r, keyValue(&w.req))
			b.sql = append(b.sql, "; "...)
		}
		b.sql = b.sql[:len(b.sql)-2]
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
				x.outs[j] = statementOutcome(res)
			case 2:
				if res.Resultset != nil && res.RowNumber() > 0 {
					s, _ := res.GetString(0, 0)
					x.stock = append(x.stock, s...)
				}
				x.ends = append(x.ends, len(x.stock))
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
		x.outs[j], x.errs[j] = Outcome{}, se
		x.ends = append(x.ends, len(x.stock))
		start = j + 1
		if start == len(batch) {
			if _, err := b.c.Execute("ROLLBACK TO SAVEPOINT hotrow"); err != nil {
				x.failed(err)
				return attemptRetry
			}
		}
	}
	granted := 0
	for i := range batch {
		granted += int(x.outs[i].Matched)
	}
	if granted == 0 {
		return x.commitNothing(PathGeneral, batch)
	}
	b.sql = x.appendLedgerCommit(b.sql[:0], batch, granted)
	x.before(StepCommit)
	failed, err := b.run(func(int, *gomysql.Result) {})
	return x.afterCommit(PathGeneral, batch, failed, 2, err, deadline)
}

// statementOutcome reads an UPDATE's outcome from its OK packet.
func statementOutcome(r *gomysql.Result) Outcome {
	out := Outcome{Warnings: r.Warnings}
	var ok bool
	if out.Matched, out.Changed, ok = parseInfo(r.StatusMessage); !ok {
		// No info: affected rows are found rows (CLIENT_FOUND_ROWS).
		out.Matched, out.Changed = r.AffectedRows, r.AffectedRows
	}
	return out
}
