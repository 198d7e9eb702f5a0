package merger

import (
	"context"
	"strconv"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/hotrow/hotrow/schema"
)

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
			if se := serverError(err); se == nil || se.Code != gomysql.ER_NO_SUCH_THREAD {
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
