package merger

import (
	"context"
	"strconv"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/hotrow/hotrow/internal/ctxsleep"
)

// resolve decides whether the batch x.id committed after its connection
// oldID was lost during COMMIT: on a new connection it kills oldID (if it
// still exists), then reads the batch's marker (or, for a lone request,
// ledger, its ledger row) with a locking read, which waits until the old
// transaction is rolled back or committed. While the server is
// unreachable it retries for ResolveTimeout, and not once ctx ended; the
// first lookup runs even then (bounded by the dial timeout), so that a
// batch whose COMMIT was in flight when the merger closed is still
// resolved if the server answers.
func (x *executor) resolve(ctx context.Context, oldID uint32, ledger bool) (committed bool, err error) {
	x.m.stats.resolved.Add(1)
	deadline := time.Now().Add(x.m.cfg.ResolveTimeout)
	lctx := context.WithoutCancel(ctx)
	for backoff := 20 * time.Millisecond; ; backoff = min(2*backoff, time.Second) {
		committed, err = x.lookupMarker(lctx, oldID, deadline, ledger)
		if err == nil || time.Now().After(deadline) || !ctxsleep.Sleep(ctx, backoff) {
			return committed, err
		}
		lctx = ctx
	}
}

// lookupMarker is one attempt of resolve, on a connection of its own
// dialled until deadline or until ctx ends.
func (x *executor) lookupMarker(ctx context.Context, oldID uint32, deadline time.Time, ledger bool) (bool, error) {
	m := x.m
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	b, err := m.pool.dial(ctx)
	if err != nil {
		return false, err
	}
	defer b.c.Close()
	q := "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = " + strconv.FormatUint(uint64(oldID), 10) +
		" AND USER = SUBSTRING_INDEX(USER(), '@', 1)"
	r, err := b.c.Execute(q)
	if err != nil {
		return false, err
	}
	if n, _ := r.GetInt(0, 0); n > 0 {
		if _, err := b.c.Execute("KILL CONNECTION " + strconv.FormatUint(uint64(oldID), 10)); err != nil {
			if se := serverError(err); se == nil || se.Code != gomysql.ER_NO_SUCH_THREAD {
				return false, err
			}
		}
	}
	b.sql = appendLookup(b.sql[:0], m.metaIdent, x.id, ledger, b.nbe)
	r, err = b.c.Execute(string(b.sql))
	if err != nil {
		return false, err
	}
	return r.RowNumber() > 0, nil
}
