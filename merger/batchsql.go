package merger

import (
	"strconv"

	"github.com/hotrow/hotrow/schema"
)

// The SQL of a batch's round trips. Every builder appends to a buffer
// (the backend's, reused) and takes what it writes as arguments: the
// batch's requests, its keys, its fast plan or its results. Executor
// methods read only the batch id, the session's NO_BACKSLASH_ESCAPES and
// the merger's configuration from x.

// appendLockingRead appends the batch's first round trip: START
// TRANSACTION and the locking read of its rows, "SELECT key, stock FROM t
// WHERE key IN (keys) ORDER BY key FOR UPDATE" (statement 1).
//
// The locking read takes the locks of every row the batch touches, in key
// order: InnoDB scans an IN list on an index in index order (the optimizer
// sorts the list into ranges; ORDER BY key keeps it on the index), so
// every hotrow batch on this table, of this instance or another, acquires
// its row locks in the same ascending order and two batches cannot wait
// for each other in a cycle. Of several keys, only those the column
// compares exactly (keyFits; t is nil when the table is unknown) are
// listed: a key of another type could make the server compare by
// conversion and scan (and lock) the whole table; such a batch locks its
// rows statement by statement (general path), and a deadlock there is
// retried. With no key listed, there is no locking read.
func appendLockingRead(b []byte, r Rule, keys []any, t *schema.Table, nbe bool) []byte {
	b = append(b, "START TRANSACTION"...)
	locks := 0
	for _, k := range keys {
		if len(keys) > 1 && !(t != nil && keyFits(*t, k)) {
			continue
		}
		if locks == 0 {
			b = append(b, "; SELECT "...)
			b = appendIdent(b, r.Key)
			b = append(b, ", "...)
			b = appendIdent(b, r.Stock)
			b = append(b, " FROM "...)
			b = appendTable(b, r.Schema, r.Table)
			b = append(b, " WHERE "...)
			b = appendIdent(b, r.Key)
			b = append(b, " IN ("...)
		} else {
			b = append(b, ',')
		}
		b = appendValue(b, k, nbe)
		locks++
	}
	if locks > 0 {
		b = append(b, ") ORDER BY "...)
		b = appendIdent(b, r.Key)
		b = append(b, " FOR UPDATE"...)
	}
	return b
}

// appendFastUpdates appends one "UPDATE t SET stock = final WHERE key = k;
// " per row the plan changed (keys[j] is row j) and returns how many.
func appendFastUpdates(b []byte, r Rule, keys []any, p *fastPlan, nbe bool) ([]byte, int) {
	n := 0
	for j, k := range keys {
		if !p.changed[j] {
			continue
		}
		b = append(b, "UPDATE "...)
		b = appendTable(b, r.Schema, r.Table)
		b = append(b, " SET "...)
		b = appendIdent(b, r.Stock)
		b = append(b, " = "...)
		b = appendStock(b, p.final[j], p.unsigned)
		b = append(b, " WHERE "...)
		b = appendIdent(b, r.Key)
		b = append(b, " = "...)
		b = appendValue(b, k, nbe)
		b = append(b, "; "...)
		n++
	}
	return b, n
}

// appendUse appends "USE `db`; ".
func appendUse(b []byte, db string) []byte {
	b = append(b, "USE "...)
	b = appendIdent(b, db)
	return append(b, "; "...)
}

// appendGeneral appends the general path's statements for batch: per
// request "SAVEPOINT hotrow; the statement; SELECT stock FROM t WHERE key =
// k", three statements each, joined by "; ".
func (x *executor) appendGeneral(b []byte, r Rule, batch []*waiter) []byte {
	for i, w := range batch {
		if i > 0 {
			b = append(b, "; "...)
		}
		b = append(b, "SAVEPOINT hotrow; "...)
		b = x.appendStatement(b, &w.req)
		b = append(b, "; SELECT "...)
		b = appendIdent(b, r.Stock)
		b = x.appendFromKey(b, r, keyValue(&w.req))
	}
	return b
}

// appendLone appends a lone request's transaction after any USE: "START
// TRANSACTION; the locking read of its row's stock into @hotrow_before;
// the statement; its ledger row; [its claims row;] COMMIT". The ledger
// row is an INSERT ... SELECT of the row's stock WHERE ROW_COUNT() > 0
// (the statement matched) or the stock moved, so it exists exactly when
// the statement matched. The second test is for a round trip whose
// client is gone: the server still runs the rest of it, but ROW_COUNT()
// then reads -1 (the statement's OK could not be sent), and without it a
// committed deduction would have no ledger row
// (TestRepeatedKillsKeepLedgerExact). A match that moved nothing then has
// none. SUM covers a key that is not unique: every row the statement
// changes moves the same way.
func (x *executor) appendLone(b []byte, r *Request) []byte {
	rule := r.Stmt.Rule
	key := keyValue(r)
	b = append(b, "START TRANSACTION; SELECT "...)
	b = appendStockSum(b, rule)
	b = append(b, " INTO @hotrow_before"...)
	b = x.appendFromKey(b, rule, key)
	b = append(b, " FOR UPDATE; "...)
	b = x.appendStatement(b, r)
	b = append(b, "; "...)
	b = x.appendLedgerHead(b)
	b = append(b, "SELECT "...)
	b = x.appendLedgerLead(b, r, 0)
	b = appendIdent(b, rule.Stock)
	b = x.appendLedgerTail(b, r)
	b = x.appendFromKey(b, rule, key)
	b = append(b, " AND (ROW_COUNT() > 0 OR NOT ((SELECT "...)
	b = appendStockSum(b, rule)
	b = x.appendFromKey(b, rule, key)
	// LIMIT 1: one ledger row per request even if the key is not unique.
	b = append(b, ") <=> @hotrow_before)) LIMIT 1"...)
	if r.Claim != nil {
		b = x.appendLoneClaim(b, r)
	}
	return append(b, "; COMMIT"...)
}

// appendStockSum appends "SUM(stock)".
func appendStockSum(b []byte, r Rule) []byte {
	b = append(b, "SUM("...)
	b = appendIdent(b, r.Stock)
	return append(b, ')')
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
	return append(b, "."+schema.LedgerTable+" ("+schema.LedgerColumns+") "...)
}

// appendLedgerLead appends request r's ledger values before stock_after,
// in schema.LedgerColumns order: 'batch', seq, 'schema', 'table', 'key',
// 'delta',. The caller appends stock_after, then appendLedgerTail.
func (x *executor) appendLedgerLead(b []byte, r *Request, seq int) []byte {
	nbe := x.b.nbe
	b = appendQuoted(b, x.id, nbe)
	b = append(b, ',')
	b = strconv.AppendInt(b, int64(seq), 10)
	b = append(b, ',')
	b = appendQuoted(b, r.Stmt.Rule.Schema, nbe)
	b = append(b, ',')
	b = appendQuoted(b, r.Stmt.Rule.Table, nbe)
	b = append(b, ',')
	x.text = appendText(x.text[:0], keyValue(r))
	b = appendQuoted(b, clip(x.text, schema.MaxKey), nbe)
	b = append(b, ',')
	b = x.appendDelta(b, r)
	return append(b, ',')
}

// appendLedgerTail appends request r's ledger values after stock_after:
// ,conn_id,'digest'.
func (x *executor) appendLedgerTail(b []byte, r *Request) []byte {
	b = append(b, ',')
	b = strconv.AppendUint(b, uint64(r.ConnID), 10)
	b = append(b, ',')
	return appendQuoted(b, x.m.ledgerDigest(r.Stmt), x.b.nbe)
}

// appendDelta appends the request's signed change to the stock as a
// quoted literal: the amount as given, negated for a decrement.
func (x *executor) appendDelta(b []byte, r *Request) []byte {
	d := x.text[:0]
	if r.Stmt.Op == Decrement {
		d = append(d, '-')
	}
	d = appendText(d, r.Stmt.Amount.Value(r.Args))
	x.text = d
	if len(d) > 1 && d[0] == '-' && d[1] == '-' {
		d = d[2:]
	}
	return appendQuoted(b, clip(d, schema.MaxDelta), x.b.nbe)
}

// appendLedgerCommit appends the ledger INSERT of the requests res
// granted, with their stock after from res, the claims INSERT of its
// granted claims if any, the marker and COMMIT; commit is the index of
// COMMIT in the round trip (2, or 3 with claims).
func (x *executor) appendLedgerCommit(b []byte, batch []*waiter, res *results) (_ []byte, commit int) {
	b = x.appendLedgerHead(b)
	b = append(b, "VALUES "...)
	sep := false
	for i, w := range batch {
		if res.outs[i].Matched == 0 {
			continue
		}
		if sep {
			b = append(b, ',')
		}
		sep = true
		b = append(b, '(')
		b = x.appendLedgerLead(b, &w.req, i)
		b = appendQuoted(b, clip(res.stockAfter(i), schema.MaxDelta), x.b.nbe)
		b = x.appendLedgerTail(b, &w.req)
		b = append(b, ')')
	}
	commit = 2
	var claims bool
	if b, claims = x.appendClaims(b, batch, res); claims {
		commit = 3
	}
	b = append(b, "; "...)
	b = x.appendMarker(b, len(batch), res.granted())
	return append(b, "; COMMIT"...), commit
}

// appendMarker appends the marker INSERT of the current batch.
func (x *executor) appendMarker(b []byte, requests, granted int) []byte {
	b = append(b, "INSERT INTO "...)
	b = append(b, x.m.metaIdent...)
	b = append(b, "."+schema.BatchesTable+" ("+schema.MarkerColumns+") VALUES ("...)
	b = appendQuoted(b, x.id, x.b.nbe)
	b = append(b, ',')
	b = appendQuoted(b, x.m.cfg.InstanceID, x.b.nbe)
	b = append(b, ',')
	b = strconv.AppendInt(b, int64(requests), 10)
	b = append(b, ',')
	b = strconv.AppendInt(b, int64(granted), 10)
	return append(b, ')')
}

// appendLookup appends resolve's locking read of batch id's marker in the
// meta schema meta (quoted), or with ledger of its ledger row of seq 0
// (a lone request's).
func appendLookup(b []byte, meta string, id []byte, ledger, nbe bool) []byte {
	b = append(b, "SELECT 1 FROM "...)
	b = append(b, meta...)
	if ledger {
		b = append(b, "."+schema.LedgerTable...)
	} else {
		b = append(b, "."+schema.BatchesTable...)
	}
	b = append(b, " WHERE batch_id = "...)
	b = appendQuoted(b, id, nbe)
	if ledger {
		b = append(b, " AND seq = 0"...)
	}
	return append(b, " LOCK IN SHARE MODE"...)
}

// appendStock appends a stock value (the bits of a uint64 when unsigned).
func appendStock(b []byte, v int64, unsigned bool) []byte {
	if unsigned {
		return strconv.AppendUint(b, uint64(v), 10)
	}
	return strconv.AppendInt(b, v, 10)
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
