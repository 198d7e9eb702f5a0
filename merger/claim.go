package merger

import (
	"context"
	"math"
	"strconv"
	"time"

	"github.com/hotrow/hotrow/schema"
)

// Owner names the client transaction a claim belongs to: the client's
// backend connection id. The claims row adds the instance id and the
// server's start time: a claim whose owner connection no longer exists on
// that server can never be confirmed any more.
type Owner struct {
	ConnID uint32
}

// Claimable reports whether executions of st may be claims: plain
// decrements (no extra assignments), so that a cancel restores exactly
// what the claim took by adding its amount back.
func (st *Statement) Claimable() bool {
	return st.Op == Decrement && len(st.Extra) == 0
}

// claimAmount returns the amount a claim request deducts when granted:
// a non-negative integer (int64, or uint64 up to MaxInt64).
func claimAmount(r *Request) (uint64, bool) {
	switch v := r.Stmt.Amount.Value(r.Args).(type) {
	case int64:
		return uint64(v), v >= 0
	case uint64:
		return v, v <= math.MaxInt64
	}
	return 0, false
}

// ClaimAllowed reports whether req may run as a claim: a Claimable
// statement whose amount is a non-negative integer. Do refuses other
// claims with ErrBadRequest; the caller passes them through instead.
func ClaimAllowed(st *Statement, args []any) bool {
	if st == nil || !st.Claimable() || len(args) < st.NumParams {
		return false
	}
	_, ok := claimAmount(&Request{Stmt: st, Args: args})
	return ok
}

// CanClaim reports whether an execution of st with args may run as a
// claim, and if not why: ClaimAllowed, and the hot table is not
// Indirect (its metadata read within 5 s, then cached).
func (m *Merger) CanClaim(ctx context.Context, st *Statement, args []any) (bool, Unmerged) {
	if !ClaimAllowed(st, args) {
		return false, UnmergedNotClaimable
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	r := st.Rule
	t, err := m.tables.Get(ctx, r.Schema, r.Table, r.Key, r.Stock)
	if err != nil || t.Indirect {
		return false, UnmergedIndirect
	}
	return true, 0
}

// appendClaimID appends request seq's claim id in the current batch: the
// batch id, ':' and seq (the ledger row's key).
func appendClaimID(b, batchID []byte, seq int) []byte {
	b = append(b, batchID...)
	b = append(b, ':')
	return strconv.AppendInt(b, int64(seq), 10)
}

// appendClaimHead appends the claims INSERT up to its values.
func (x *executor) appendClaimHead(b []byte) []byte {
	b = append(b, "INSERT INTO "...)
	b = append(b, x.m.metaIdent...)
	return append(b, "."+schema.ClaimsTable+" ("+schema.ClaimColumns+") "...)
}

// appendClaimValues appends claim request r's values in
// schema.ClaimColumns order, without parentheses.
func (x *executor) appendClaimValues(b []byte, r *Request, seq int) []byte {
	nbe := x.b.nbe
	rule := r.Stmt.Rule
	x.text = appendClaimID(x.text[:0], x.id, seq)
	b = appendQuoted(b, x.text, nbe)
	b = append(b, ',')
	b = appendQuoted(b, x.m.cfg.InstanceID, nbe)
	b = append(b, ',')
	b = strconv.AppendUint(b, uint64(r.Claim.ConnID), 10)
	b = append(b, ',')
	b = strconv.AppendInt(b, x.m.serverStart.Load(), 10)
	for _, s := range []string{rule.Schema, rule.Table, rule.Key, rule.Stock} {
		b = append(b, ',')
		b = appendQuoted(b, s, nbe)
	}
	b = append(b, ',')
	x.text = appendText(x.text[:0], keyValue(r))
	b = appendQuoted(b, clip(x.text, schema.MaxKey), nbe)
	b = append(b, ',')
	amount, _ := claimAmount(r)
	return strconv.AppendUint(b, amount, 10)
}

// appendClaims appends "; INSERT INTO claims ... VALUES ..." for the
// granted claims of batch, if any, and reports whether it wrote one.
func (x *executor) appendClaims(b []byte, batch []*waiter, res *results) ([]byte, bool) {
	sep := false
	for i, w := range batch {
		if w.req.Claim == nil || res.outs[i].Matched == 0 {
			continue
		}
		if sep {
			b = append(b, ',')
		} else {
			b = append(b, "; "...)
			b = x.appendClaimHead(b)
			b = append(b, "VALUES "...)
			sep = true
		}
		b = append(b, '(')
		b = x.appendClaimValues(b, &w.req, i)
		b = append(b, ')')
	}
	return b, sep
}

// appendLoneClaim appends a lone claim's claims row as "; INSERT INTO
// claims ... SELECT values FROM ledger WHERE batch_id = id AND seq = 0":
// it exists exactly when the request's ledger row does (it was granted).
func (x *executor) appendLoneClaim(b []byte, r *Request) []byte {
	b = append(b, "; "...)
	b = x.appendClaimHead(b)
	b = append(b, "SELECT "...)
	b = x.appendClaimValues(b, r, 0)
	b = append(b, " FROM "...)
	b = append(b, x.m.metaIdent...)
	b = append(b, "."+schema.LedgerTable+" WHERE batch_id = "...)
	b = appendQuoted(b, x.id, x.b.nbe)
	return append(b, " AND seq = 0"...)
}

// claimIDs sets the claim id of every claim in batch that was granted,
// or whose outcome is unknown.
func (x *executor) claimIDs(batch []*waiter) {
	for i, w := range batch {
		if w.req.Claim == nil {
			continue
		}
		if x.res.outs[i].Matched > 0 && x.res.errs[i] == nil || x.res.errs[i] == ErrOutcomeUnknown {
			x.res.outs[i].ClaimID = string(appendClaimID(nil, x.id, i))
		}
	}
}

// readServerStart sets m.serverStart from the server's uptime.
func (m *Merger) readServerStart(ctx context.Context) error {
	var start int64
	err := m.meta.QueryRowContext(ctx, "SELECT CAST(UNIX_TIMESTAMP() - CAST(VARIABLE_VALUE AS UNSIGNED) AS SIGNED) FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'UPTIME'").Scan(&start)
	if err != nil {
		return err
	}
	m.serverStart.Store(start)
	return nil
}

// Unmerged is a reason a hot-table UPDATE was passed through instead of
// merged; the proxy counts each (CountUnmerged, Stats.Unmerged).
type Unmerged int

const (
	// UnmergedTouched: inside a transaction that already read, locked or
	// wrote a hot table through pass-through; a claim could wait for the
	// client's own row lock.
	UnmergedTouched Unmerged = iota
	// UnmergedNotClaimable: inside a transaction, a statement a claim
	// cannot carry (a restock, extra assignments, a non-integer amount).
	UnmergedNotClaimable
	// UnmergedIndirect: inside a transaction, on a table whose rows other
	// statements may lock without naming it (schema.Table.Indirect), or
	// whose metadata could not be read.
	UnmergedIndirect
	// UnmergedParams: prepared parameters the proxy does not decode
	// exactly, or data sent with COM_STMT_SEND_LONG_DATA.
	UnmergedParams
	// UnmergedUncontended: inside a transaction, on a row nothing else
	// used (HoldIfIdle): it runs in the client's own transaction.
	UnmergedUncontended
	// NumUnmerged is the number of reasons.
	NumUnmerged
)

func (u Unmerged) String() string {
	switch u {
	case UnmergedTouched:
		return "tx_touched_hot_table"
	case UnmergedNotClaimable:
		return "tx_not_claimable"
	case UnmergedIndirect:
		return "tx_indirect_references"
	case UnmergedParams:
		return "params_not_decoded"
	case UnmergedUncontended:
		return "tx_uncontended"
	}
	return "unmerged(" + strconv.Itoa(int(u)) + ")"
}

// CountUnmerged counts a hot-table UPDATE passed through for reason u.
func (m *Merger) CountUnmerged(u Unmerged) {
	if u >= 0 && u < NumUnmerged {
		m.stats.unmerged[u].Add(1)
	}
}
