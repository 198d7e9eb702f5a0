package merger

import (
	"context"
	"math"
	"strconv"
	"strings"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"

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

// loneAttempts is how often a lone request is retried after errors that
// belong to its transaction (deadlock, lock wait timeout ...) before the
// client gets the server's error.
const loneAttempts = 3

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

// lockedRow is one row of the batch's locking read.
type lockedRow struct {
	key   any // normalized (normKey)
	text  string
	stock any
}

func (x *executor) close() {
	if x.b != nil {
		x.m.pool.put(x.b, false)
		x.b = nil
	}
}

// conn returns the executor's backend, connecting (with backoff while the
// server is unreachable) until deadline. It always makes one attempt, even
// past the deadline, so that a request that waited long in its queue still
// runs when the server is up; while the server is down, a batch past its
// deadline costs one failed dial, not another ResolveTimeout.
func (x *executor) conn(deadline time.Time) (*backend, error) {
	if x.b != nil {
		return x.b, nil
	}
	for backoff := 20 * time.Millisecond; ; backoff = min(2*backoff, time.Second) {
		until := time.Now().Add(x.m.pool.dialTimeout())
		if deadline.After(until) {
			until = deadline
		}
		ctx, cancel := context.WithDeadline(context.Background(), until)
		b, err := x.m.pool.get(ctx)
		cancel()
		if err == nil {
			x.b = b
			return b, nil
		}
		if time.Now().Add(backoff).After(deadline) {
			return nil, err
		}
		time.Sleep(backoff)
	}
}

// drop closes a backend whose connection failed.
func (x *executor) drop() {
	if x.b != nil {
		x.m.pool.put(x.b, true)
		x.b = nil
	}
}

// rollback ends the open transaction after a failed attempt.
func (x *executor) rollback() {
	if x.b == nil {
		return
	}
	if _, err := x.b.c.Execute("ROLLBACK"); err != nil {
		x.drop()
	}
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

// keyValue is request r's key value as the statement gives it.
func keyValue(r *Request) any { return r.Stmt.Key.Value(r.Args) }

// normKey returns a comparable value that is equal for two key values
// exactly when they name the same row by exact comparison: bytes become
// strings, integers that fit int64 are int64, floats compare by bits.
func normKey(v any) any {
	switch v := v.(type) {
	case []byte:
		return string(v)
	case uint64:
		if v <= math.MaxInt64 {
			return int64(v)
		}
	case float64:
		return floatKey(math.Float64bits(v))
	}
	return v
}

// groupKeys fills x.keys, x.keyOf and x.keyIdx for batch.
func (x *executor) groupKeys(batch []*waiter) {
	if x.keyIdx == nil {
		x.keyIdx = make(map[any]int)
	}
	clear(x.keyIdx)
	clear(x.keys)
	x.keys, x.keyOf = x.keys[:0], x.keyOf[:0]
	for _, w := range batch {
		v := keyValue(&w.req)
		k := normKey(v)
		j, ok := x.keyIdx[k]
		if !ok {
			j = len(x.keys)
			x.keyIdx[k] = j
			x.keys = append(x.keys, v)
		}
		x.keyOf = append(x.keyOf, j)
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

// mapRows sets x.rowOf: the locked row of each key, -1 for a key that
// has no row (its requests match nothing). It returns false when a key
// without an exactly equal row might still equal a locked row under the
// column's collation (case, trailing spaces, non-ASCII text): only the
// server can tell, so the general path runs.
func (x *executor) mapRows() bool {
	x.rowOf = x.rowOf[:0]
	for range x.keys {
		x.rowOf = append(x.rowOf, -1)
	}
	for r := range x.locked {
		if j, ok := x.keyIdx[x.locked[r].key]; ok {
			x.rowOf[j] = r
		}
	}
	for j, k := range x.keys {
		if x.rowOf[j] >= 0 {
			continue
		}
		if s, isStr := normKey(k).(string); isStr {
			for r := range x.locked {
				if mayCollateEqual(s, x.locked[r].text) {
					return false
				}
			}
		}
	}
	return true
}

// mayCollateEqual reports whether two different strings may compare equal
// under some collation: unless both are printable ASCII and differ other
// than by letter case and trailing spaces, it says yes.
func mayCollateEqual(a, b string) bool {
	if !printableASCII(a) || !printableASCII(b) {
		return true
	}
	return strings.EqualFold(strings.TrimRight(a, " "), strings.TrimRight(b, " "))
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// keyFits reports whether comparing the key column with key is exact and
// warning-free: an integer with an integer column, a string with a string
// column. Anything else goes to the general path, where the server
// compares and warns as it would directly.
func keyFits(t schema.Table, key any) bool {
	switch key.(type) {
	case int64, uint64:
		return t.KeyInteger
	case string, []byte:
		return t.KeyString
	}
	return false
}

// failed handles an error of a statement before COMMIT: a lost connection
// is dropped (the server rolls the transaction back), otherwise the
// transaction is rolled back here.
func (x *executor) failed(err error) {
	if serverError(err) == nil {
		x.drop()
		return
	}
	x.rollback()
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

// fastOperands returns the amount and guard value of a request the fast
// path can evaluate exactly: no extra assignments, non-negative integer
// operands of a type that keeps the server's arithmetic signed on signed
// columns (a uint64 parameter makes it unsigned).
func fastOperands(r *Request, unsigned bool) (amount, guard int64, ok bool) {
	st := r.Stmt
	if len(st.Extra) > 0 || (st.Op != Decrement && st.Op != Increment) {
		return 0, 0, false
	}
	if amount, ok = fastInt(st.Amount.Value(r.Args), unsigned); !ok {
		return 0, 0, false
	}
	switch st.Guard {
	case GuardNone, GuardPositive:
	case GuardAtLeast, GuardDiffNonNegative:
		if guard, ok = fastInt(st.GuardValue.Value(r.Args), unsigned); !ok {
			return 0, 0, false
		}
	default:
		return 0, 0, false
	}
	return amount, guard, true
}

func fastInt(v any, unsigned bool) (int64, bool) {
	switch v := v.(type) {
	case int64:
		return v, v >= 0
	case uint64:
		return int64(v), unsigned && v <= math.MaxInt64
	}
	return 0, false
}

// integerRange is the range of an integer column from its result field.
func integerRange(f *gomysql.Field) (lo int64, hi uint64, unsigned, ok bool) {
	var bits uint
	switch f.Type {
	case gomysql.MYSQL_TYPE_TINY:
		bits = 8
	case gomysql.MYSQL_TYPE_SHORT:
		bits = 16
	case gomysql.MYSQL_TYPE_INT24:
		bits = 24
	case gomysql.MYSQL_TYPE_LONG:
		bits = 32
	case gomysql.MYSQL_TYPE_LONGLONG:
		bits = 64
	default:
		return 0, 0, false, false
	}
	if f.Flag&gomysql.UNSIGNED_FLAG != 0 {
		if bits == 64 {
			return 0, math.MaxUint64, true, true
		}
		return 0, 1<<bits - 1, true, true
	}
	return -1 << (bits - 1), 1<<(bits-1) - 1, false, true
}

// simulate evaluates the batch's requests in arrival order on the locked
// stock values, each on its own row's value, filling x.outs, x.after,
// x.final and x.changed. It returns false when any request would raise
// an error or leave the column's range (the server must then evaluate it:
// general path).
func (x *executor) simulate(batch []*waiter, t schema.Table, f *gomysql.Field) bool {
	if f == nil {
		// No row locked: every request matches nothing.
		x.after = append(x.after[:0], make([]int64, len(batch))...)
		x.final, x.changed = x.final[:0], x.changed[:0]
		for range x.keys {
			x.final, x.changed = append(x.final, 0), append(x.changed, false)
		}
		return true
	}
	lo, hi, unsigned, ok := integerRange(f)
	if !ok || unsigned != t.Unsigned {
		x.m.tables.Forget(t.Schema, t.Name)
		return false
	}
	x.after = x.after[:0]
	x.final, x.changed = x.final[:0], x.changed[:0]
	for j := range x.keys {
		var v int64
		if r := x.rowOf[j]; r >= 0 {
			switch s := x.locked[r].stock.(type) {
			case uint64:
				if !unsigned {
					return false
				}
				v = int64(s)
			case int64:
				if unsigned {
					return false
				}
				v = s
			default:
				return false
			}
		}
		x.final, x.changed = append(x.final, v), append(x.changed, false)
	}
	if unsigned {
		return simulateIn(x, batch, uint64(0), hi)
	}
	return simulateIn(x, batch, lo, int64(hi))
}

// simulateIn runs the batch in the server's BIGINT (int64) or BIGINT
// UNSIGNED (uint64) arithmetic on a column of range [lo, hi], each
// request on x.final of its key. Operands are non-negative, so a
// subtraction wrapped iff its result exceeds v, where the server raises
// 1690 (out of range) and the fast path gives up.
func simulateIn[T int64 | uint64](x *executor, batch []*waiter, lo, hi T) bool {
	for i, w := range batch {
		j := x.keyOf[i]
		if x.rowOf[j] < 0 {
			x.after = append(x.after, 0) // no row: matched nothing
			continue
		}
		v := T(x.final[j])
		a64, g64, _ := fastOperands(&w.req, true)
		a, g := T(a64), T(g64)
		pass := true
		switch w.req.Stmt.Guard {
		case GuardAtLeast:
			pass = v >= g
		case GuardDiffNonNegative:
			d := v - g
			if d > v {
				return false // stock - e out of range: the server raises 1690
			}
			pass = d >= 0
		case GuardPositive:
			pass = v > 0
		}
		if pass {
			if w.req.Stmt.Op == Decrement {
				r := v - a
				if r > v || r < lo {
					return false
				}
				v = r
			} else {
				r := v + a
				if r < v || r > hi {
					return false
				}
				v = r
			}
			x.outs[i] = Outcome{Matched: 1, Changed: b2u(a != 0)}
			x.changed[j] = x.changed[j] || a != 0
		}
		x.final[j] = int64(v)
		x.after = append(x.after, int64(v))
	}
	return true
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// appendFromKey appends " FROM `schema`.`table` WHERE `key` = k".
func (x *executor) appendFromKey(b []byte, r Rule, key any) []byte {
	b = append(b, " FROM "...)
	b = appendTable(b, r.Schema, r.Table)
	b = append(b, " WHERE "...)
	b = appendIdent(b, r.Key)
	b = append(b, " = "...)
	return appendValue(b, key, x.b.nbe)
}

// appendLedgerHead appends the ledger INSERT up to its VALUES.
func (x *executor) appendLedgerHead(b []byte) []byte {
	b = append(b, "INSERT INTO "...)
	b = append(b, x.m.metaIdent...)
	b = append(b, "."+schema.LedgerTable+
		" (batch_id, table_schema, table_name, key_value, digest, conn_id, seq, delta, stock_after) "...)
	return b
}

// appendLedgerPrefix appends a ledger row's columns up to conn_id:
// 'batch', 'schema', 'table', 'key', 'digest', conn_id.
func (x *executor) appendLedgerPrefix(b []byte, r *Request) []byte {
	nbe := x.b.nbe
	x.key = appendText(x.key[:0], keyValue(r))
	b = appendQuoted(b, x.id, nbe)
	b = append(b, ',')
	b = appendQuoted(b, r.Stmt.Rule.Schema, nbe)
	b = append(b, ',')
	b = appendQuoted(b, r.Stmt.Rule.Table, nbe)
	b = append(b, ',')
	b = appendQuoted(b, clip(x.key, schema.MaxKey), nbe)
	b = append(b, ',')
	b = appendQuoted(b, x.m.ledgerDigest(r.Stmt), nbe)
	b = append(b, ',')
	b = strconv.AppendUint(b, uint64(r.ConnID), 10)
	return b
}

// appendDelta appends the request's signed change to the stock as a
// quoted literal: the amount as given, negated for a decrement.
func (x *executor) appendDelta(b []byte, r *Request) []byte {
	d := x.scratch[:0]
	if r.Stmt.Op == Decrement {
		d = append(d, '-')
	}
	d = appendText(d, r.Stmt.Amount.Value(r.Args))
	x.scratch = d
	if len(d) > 1 && d[0] == '-' && d[1] == '-' {
		d = d[2:]
	}
	return appendQuoted(b, clip(d, schema.MaxDelta), x.b.nbe)
}

// appendLedgerCommit appends the ledger INSERT of the granted requests
// (stock after request i is x.stock[x.ends[i-1]:x.ends[i]]), the marker
// and COMMIT: statements 0, 1 and 2 of the round trip.
func (x *executor) appendLedgerCommit(b []byte, batch []*waiter, granted int) []byte {
	b = x.appendLedgerHead(b)
	b = append(b, "VALUES "...)
	sep := false
	for i, w := range batch {
		if x.outs[i].Matched == 0 {
			continue
		}
		if sep {
			b = append(b, ',')
		}
		sep = true
		b = append(b, '(')
		b = x.appendLedgerPrefix(b, &w.req)
		b = append(b, ',')
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, ',')
		b = x.appendDelta(b, &w.req)
		b = append(b, ',')
		from := 0
		if i > 0 {
			from = x.ends[i-1]
		}
		b = appendQuoted(b, clip(x.stock[from:x.ends[i]], schema.MaxDelta), x.b.nbe)
		b = append(b, ')')
	}
	b = append(b, "; "...)
	b = x.appendMarker(b, len(batch), strconv.Itoa(granted))
	return append(b, "; COMMIT"...)
}

// appendMarker appends the marker INSERT of the current batch.
func (x *executor) appendMarker(b []byte, requests int, granted string) []byte {
	b = append(b, "INSERT INTO "...)
	b = append(b, x.m.metaIdent...)
	b = append(b, "."+schema.BatchesTable+" (batch_id, instance_id, requests, granted) VALUES ("...)
	b = appendQuoted(b, x.id, x.b.nbe)
	b = append(b, ',')
	b = appendQuoted(b, x.m.cfg.InstanceID, x.b.nbe)
	b = append(b, ',')
	b = strconv.AppendInt(b, int64(requests), 10)
	b = append(b, ',')
	b = append(b, granted...)
	return append(b, ')')
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

func appendStock(b []byte, v int64, unsigned bool) []byte {
	if unsigned {
		return strconv.AppendUint(b, uint64(v), 10)
	}
	return strconv.AppendInt(b, v, 10)
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

// appendStatement appends the request's statement: the client's text
// verbatim when it has one, else the statement with its arguments.
func (x *executor) appendStatement(b []byte, r *Request) []byte {
	if r.Text != "" {
		b = append(b, trimStatement(r.Text)...)
	} else {
		b = appendInterpolated(b, r.Stmt.SQL, r.Args, x.b.nbe)
	}
	// A trailing -- or # comment must not swallow the next statement.
	return append(b, '\n')
}

// trimStatement drops trailing blanks and semicolons, which would make an
// empty statement inside a multi-statement round trip.
func trimStatement(s string) string {
	for len(s) > 0 {
		switch s[len(s)-1] {
		case ' ', '\t', '\n', '\r', ';':
			s = s[:len(s)-1]
			continue
		}
		break
	}
	return s
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

// runLone runs one request until it has a final outcome: one round trip
// of BEGIN, the statement, its ledger row (INSERT ... SELECT when
// ROW_COUNT() > 0) and COMMIT. It writes no marker: the ledger row, which
// exists exactly when the request matched, proves the commit of a request
// that changed something, and one that matched nothing changed nothing,
// so its outcome holds whether or not COMMIT ran. It retries while the backend
// is unreachable or the transaction failed, up to the deadline.
func (x *executor) runLone(w *waiter, deadline time.Time) {
	x.one[0] = w
	defer func() { x.one[0] = nil }()
	batch := x.one[:]
	var lastErr error
	for n := 1; ; n++ {
		var res attempt
		res, lastErr = x.loneAttempt(batch, deadline)
		if res == attemptDone {
			return
		}
		se := serverError(lastErr)
		// Server errors get loneAttempts tries whatever the deadline (a
		// request may have waited long in its queue); an unreachable server
		// is retried until the deadline.
		if se == nil && time.Now().After(deadline) || se != nil && n >= loneAttempts {
			if se == nil {
				lastErr = ErrNotApplied
			} else {
				lastErr = se
			}
			x.reset(1)
			x.errs[0] = lastErr
			x.finish(PathLone, batch, false)
			return
		}
		time.Sleep(time.Duration(n) * 20 * time.Millisecond)
	}
}

func (x *executor) loneAttempt(batch []*waiter, deadline time.Time) (attempt, error) {
	b, err := x.conn(deadline)
	if err != nil {
		return attemptRetry, err
	}
	r := &batch[0].req
	rule := r.Stmt.Rule
	x.reset(1)
	keyVal := keyValue(r)
	b.sql = b.sql[:0]
	base := 0
	useDB := b.db != rule.Schema
	if useDB {
		b.sql = append(b.sql, "USE "...)
		b.sql = appendIdent(b.sql, rule.Schema)
		b.sql = append(b.sql, "; "...)
		base = 1
	}
	b.sql = append(b.sql, "START TRANSACTION; "...)
	b.sql = x.appendStatement(b.sql, r)
	b.sql = append(b.sql, "; "...)
	b.sql = x.appendLedgerHead(b.sql)
	b.sql = append(b.sql, "SELECT "...)
	b.sql = x.appendLedgerPrefix(b.sql, r)
	b.sql = append(b.sql, ",0,"...)
	b.sql = x.appendDelta(b.sql, r)
	b.sql = append(b.sql, ","...)
	b.sql = appendIdent(b.sql, rule.Stock)
	b.sql = x.appendFromKey(b.sql, rule, keyVal)
	// LIMIT 1: one ledger row per request even if the key is not unique.
	b.sql = append(b.sql, " AND ROW_COUNT() > 0 LIMIT 1; COMMIT"...)
	stmtIdx, commitIdx := base+1, base+3
	gotOutcome := false
	x.before(StepBegin)
	x.before(StepUpdate)
	x.before(StepCommit)
	failed, err := b.run(func(i int, res *gomysql.Result) {
		switch {
		case useDB && i == 0:
			b.db = rule.Schema
		case i == stmtIdx:
			x.outs[0], gotOutcome = statementOutcome(res), true
		}
	})
	if failed < 0 {
		x.finish(PathLone, batch, x.outs[0].Matched > 0)
		return attemptDone, nil
	}
	se := serverError(err)
	switch {
	case se != nil && failed < base:
		// USE failed: the client would get this error too.
		x.errs[0] = se
		x.finish(PathLone, batch, false)
		return attemptDone, nil
	case se != nil && failed == stmtIdx && (!batchLevel(se) || se.Number == ErrLockWaitTimeout.Number):
		// The statement's own error, as direct execution reports it; a
		// lock wait timeout is not retried: it already waited that long.
		x.rollback()
		x.errs[0] = se
		x.finish(PathLone, batch, false)
		return attemptDone, nil
	case se != nil && failed < commitIdx:
		x.rollback()
		return attemptRetry, se
	}
	oldID := b.id
	x.drop()
	if gotOutcome && x.outs[0].Matched == 0 {
		// The statement matched nothing, so it changed nothing and wrote no
		// ledger row: its outcome holds whether or not COMMIT ran.
		x.finish(PathLone, batch, false)
		return attemptDone, nil
	}
	// The statement matched (or its OK was lost): the ledger row of this
	// batch exists exactly when the transaction committed a grant.
	committed, _, rerr := x.resolve(oldID, time.Now().Add(x.m.cfg.ResolveTimeout), true)
	switch {
	case rerr != nil:
		x.errs[0] = ErrOutcomeUnknown
	case !committed:
		// Not committed, or committed having matched nothing: either way
		// nothing was applied, and the request runs again.
		return attemptRetry, err
	case !gotOutcome:
		// Committed with a grant, but the statement's OK was lost with the
		// connection: it matched exactly one row when the key is unique;
		// whether it changed the row is known only for plain integer
		// changes.
		amount, _, ok := fastOperands(r, true)
		t, tok := x.table(rule)
		if !ok || !tok || !t.KeyUnique {
			x.errs[0] = ErrOutcomeUnknown
			break
		}
		x.outs[0] = Outcome{Matched: 1, Changed: b2u(amount != 0)}
	}
	x.finish(PathLone, batch, committed)
	return attemptDone, nil
}

// resolve decides whether the batch x.id committed after its connection
// oldID was lost during COMMIT: on a new connection it kills oldID (if it
// still exists), then reads the batch's marker (or, for a lone request,
// ledger, its ledger row) with a locking read, which waits until the old
// transaction is rolled back or committed. It retries while the server is
// unreachable, until deadline.
func (x *executor) resolve(oldID uint32, deadline time.Time, ledger bool) (committed bool, granted uint64, err error) {
	m := x.m
	m.stats.resolved.Add(1)
	for backoff := 20 * time.Millisecond; ; backoff = min(2*backoff, time.Second) {
		committed, granted, err = x.lookupMarker(oldID, deadline, ledger)
		if err == nil || time.Now().After(deadline) {
			return committed, granted, err
		}
		time.Sleep(backoff)
	}
}

func (x *executor) lookupMarker(oldID uint32, deadline time.Time, ledger bool) (bool, uint64, error) {
	m := x.m
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	b, err := m.pool.dial(ctx)
	if err != nil {
		return false, 0, err
	}
	defer b.c.Close()
	q := "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = " + strconv.FormatUint(uint64(oldID), 10) +
		" AND USER = SUBSTRING_INDEX(USER(), '@', 1)"
	r, err := b.c.Execute(q)
	if err != nil {
		return false, 0, err
	}
	if n, _ := r.GetInt(0, 0); n > 0 {
		if _, err := b.c.Execute("KILL CONNECTION " + strconv.FormatUint(uint64(oldID), 10)); err != nil {
			if se := serverError(err); se == nil || se.Number != 1094 { // 1094: unknown thread
				return false, 0, err
			}
		}
	}
	if ledger {
		b.sql = append(b.sql[:0], "SELECT 1 FROM "...)
		b.sql = append(b.sql, m.metaIdent...)
		b.sql = append(b.sql, "."+schema.LedgerTable+" WHERE batch_id = "...)
		b.sql = appendQuoted(b.sql, x.id, b.nbe)
		b.sql = append(b.sql, " AND seq = 0 LOCK IN SHARE MODE"...)
	} else {
		b.sql = append(b.sql[:0], "SELECT granted FROM "...)
		b.sql = append(b.sql, m.metaIdent...)
		b.sql = append(b.sql, "."+schema.BatchesTable+" WHERE batch_id = "...)
		b.sql = appendQuoted(b.sql, x.id, b.nbe)
		b.sql = append(b.sql, " LOCK IN SHARE MODE"...)
	}
	r, err = b.c.Execute(string(b.sql))
	if err != nil {
		return false, 0, err
	}
	if r.RowNumber() == 0 {
		return false, 0, nil
	}
	granted, _ := r.GetUint(0, 0)
	return true, granted, nil
}
