package merger

import (
	"sync"
	"time"
)

// txHotWindow is how long a row stays hot for transactions after its last
// sign of contention (HoldIfIdle).
const txHotWindow = time.Second

// rowKey names one row of a hot table: its rule and normalized key value
// (normKey).
type rowKey struct {
	rule Rule
	key  any
}

func rowOf(st *Statement, args []any) rowKey {
	return rowKey{st.Rule, normKey(st.Key.Value(args))}
}

// rowUse is what uses one row now: requests between the start and the
// end of Do or Alone, and client transactions that updated it on their
// own connection (HoldIfIdle) until they end; and until when the row
// counts as hot for transactions.
type rowUse struct {
	users    int
	hotUntil time.Time
}

// rowUsers tracks the rows in use (rowUse), for HoldIfIdle; Do and Alone
// count their requests only when Config.ClaimUncontended is off (the
// default never asks).
type rowUsers struct {
	mu   sync.Mutex
	rows map[rowKey]*rowUse
	// sweepAt is the size of rows at which forgotten rows (no users, no
	// longer hot, but not removed by done because hot then) are swept.
	sweepAt int
}

// rowsSweepMin is the least sweepAt.
const rowsSweepMin = 1024

// use counts one more user of k; a merged request (merged) joining
// another user makes k hot for txHotWindow (holders alone count against
// the threshold of holdIfCold instead).
func (u *rowUsers) use(k rowKey, now time.Time, merged bool) *rowUse {
	if u.rows == nil {
		u.rows = make(map[rowKey]*rowUse)
	}
	r := u.rows[k]
	if r == nil {
		if len(u.rows) >= max(u.sweepAt, rowsSweepMin) {
			for k, r := range u.rows {
				if r.users <= 0 && now.After(r.hotUntil) {
					delete(u.rows, k)
				}
			}
			u.sweepAt = 2 * len(u.rows)
		}
		r = &rowUse{}
		u.rows[k] = r
	}
	r.users++
	if merged && r.users > 1 {
		r.hotUntil = now.Add(txHotWindow)
	}
	return r
}

// add counts a request of Do or Alone on k until done.
func (u *rowUsers) add(k rowKey) {
	u.mu.Lock()
	u.use(k, time.Now(), true)
	u.mu.Unlock()
}

// done counts one user of k fewer; a row without users that is no longer
// hot is forgotten.
func (u *rowUsers) done(k rowKey) {
	u.mu.Lock()
	if r := u.rows[k]; r != nil {
		r.users--
		if r.users <= 0 && time.Now().After(r.hotUntil) {
			delete(u.rows, k)
		}
	}
	u.mu.Unlock()
}

// holdIfCold counts a transaction's hold on k and reports true when k is
// not hot and fewer than threshold users, the newcomer included, use it;
// otherwise k is hot from now on (for txHotWindow) and nothing is counted.
func (u *rowUsers) holdIfCold(k rowKey, threshold int) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	now := time.Now()
	r := u.rows[k]
	switch {
	case r != nil && now.Before(r.hotUntil):
		return false
	case r != nil && r.users+1 >= threshold:
		r.hotUntil = now.Add(txHotWindow)
		return false
	}
	u.use(k, now, false)
	return true
}

// HoldIfIdle decides how a claimable UPDATE of a client's transaction
// runs. A row that is not hot runs it in the client's own transaction, as
// directly: one round trip, where a claim waits for a batch to commit
// before the client's own COMMIT (two commits in a row), and the
// transaction holds the row until it ends (release, to be called once).
// A row is hot, and the UPDATE a claim (ok false), for a second after
// this Merger saw two of its requests on it at once (merged ones, in Do
// or Alone), or after Config.TxHotThreshold transactions held or waited
// for it at once: a transaction's UPDATE of a row in steady demand never
// holds its lock across the client's round trips, and the claims of a row
// turning hot wait, in their batch, only for the holders that made it
// hot. With Config.ClaimUncontended every such UPDATE is a claim.
//
// Only this Merger's users are seen: another instance's, or autocommit
// statements of other clients passed through, are not.
func (m *Merger) HoldIfIdle(st *Statement, args []any) (release func(), ok bool) {
	if m.cfg.ClaimUncontended {
		return nil, false
	}
	k := rowOf(st, args)
	if !m.rows.holdIfCold(k, m.cfg.TxHotThreshold) {
		return nil, false
	}
	return sync.OnceFunc(func() { m.rows.done(k) }), true
}
