package merger

import (
	"strconv"

	"github.com/hotrow/hotrow/schema"
)

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
