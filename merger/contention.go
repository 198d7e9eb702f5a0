package merger

import "sync"

// rowKey names one row of a hot table: its rule and normalized key value
// (normKey).
type rowKey struct {
	rule Rule
	key  any
}

func rowOf(st *Statement, args []any) rowKey {
	return rowKey{st.Rule, normKey(st.Key.Value(args))}
}

// rowUsers counts, per row, what is using it now: requests between the
// start and the end of Do or Alone, and client transactions holding it
// (HoldIfIdle). A row nobody uses is uncontended.
type rowUsers struct {
	mu sync.Mutex
	n  map[rowKey]int
}

// add counts one more user of k.
func (u *rowUsers) add(k rowKey) {
	u.mu.Lock()
	if u.n == nil {
		u.n = make(map[rowKey]int)
	}
	u.n[k]++
	u.mu.Unlock()
}

// done counts one user of k fewer.
func (u *rowUsers) done(k rowKey) {
	u.mu.Lock()
	if u.n[k] <= 1 {
		delete(u.n, k)
	} else {
		u.n[k]--
	}
	u.mu.Unlock()
}

// addIfIdle counts a user of k when k has none, and reports whether it did.
func (u *rowUsers) addIfIdle(k rowKey) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.n[k] > 0 {
		return false
	}
	if u.n == nil {
		u.n = make(map[rowKey]int)
	}
	u.n[k] = 1
	return true
}

// HoldIfIdle decides how a claimable UPDATE of a client's transaction
// runs when nothing else uses its row: no request of this Merger is in Do
// or Alone for it and no other client transaction holds it. Then the
// UPDATE runs in the client's own transaction, as directly: it costs one
// round trip, where a claim waits for a batch to commit before the
// client's own COMMIT (two commits in a row). HoldIfIdle registers the
// transaction as the row's holder, so that the row's later requests
// inside transactions are claims (its row lock, held until the client
// commits, is then waited for once, by their batch, not by each client);
// release must be called once when the transaction has ended. When the
// row is in use, or Config.ClaimUncontended is set, it returns ok false:
// the UPDATE is a claim.
//
// Only this Merger's users are seen: another instance's claims on the row
// are not, nor are autocommit statements of other clients passed through.
func (m *Merger) HoldIfIdle(st *Statement, args []any) (release func(), ok bool) {
	if m.cfg.ClaimUncontended {
		return nil, false
	}
	k := rowOf(st, args)
	if !m.rows.addIfIdle(k) {
		return nil, false
	}
	return sync.OnceFunc(func() { m.rows.done(k) }), true
}
