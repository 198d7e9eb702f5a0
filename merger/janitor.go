package merger

import (
	"context"
	"database/sql/driver"
	"strconv"
	"time"

	"github.com/hotrow/hotrow/schema"
)

// janitorChunk bounds the marker rows one DELETE removes: each chunk is a
// short transaction, so batches inserting markers never wait long behind
// it.
const janitorChunk = 500

// janitorLockWait is the janitor session's innodb_lock_wait_timeout in
// seconds: when a row it would delete is locked, it gives up until the
// next round rather than queue (and hold its own locks) for long.
const janitorLockWait = 1

// runJanitor deletes this instance's batch markers older than
// MarkerRetention, at start and then every quarter of it (at most
// hourly), until ctx ends. Markers only serve to resolve uncertain
// COMMITs, which takes at most ResolveTimeout; the ledger is never
// touched. Another instance's markers are never deleted: that instance
// may be resolving an uncertain commit and must not read "absent" for a
// batch that committed.
func (m *Merger) runJanitor(ctx context.Context) {
	defer m.janitor.Done()
	every := min(m.cfg.MarkerRetention/4, time.Hour)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		m.pruneMarkers(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// pruneQuery is the janitor's DELETE; its one argument is the instance
// id. It reads the (instance_id, created_at) index as a range: only this
// instance's old markers are scanned and locked, in READ COMMITTED
// without gap locks, so markers other batches insert are never blocked.
func (m *Merger) pruneQuery() string {
	return "DELETE FROM " + m.metaIdent + "." + schema.BatchesTable +
		" WHERE instance_id = ? AND created_at < NOW(6) - INTERVAL " +
		strconv.FormatInt(int64(m.cfg.MarkerRetention/time.Second), 10) +
		" SECOND ORDER BY instance_id, created_at LIMIT " + strconv.Itoa(janitorChunk)
}

// pruneMarkers runs the janitor's DELETE in chunks until fewer than a
// chunk's rows are old, on a connection of its own, until ctx ends.
func (m *Merger) pruneMarkers(ctx context.Context) {
	conn, err := m.meta.Conn(ctx)
	if err != nil {
		if ctx.Err() == nil {
			m.log.Warn("pruning batch markers", "err", err)
		}
		return
	}
	// The session settings below must not outlive the janitor: the
	// connection is discarded, not returned to the pool.
	defer func() {
		_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		conn.Close()
	}()
	for _, set := range []string{
		"SET SESSION innodb_lock_wait_timeout = " + strconv.Itoa(janitorLockWait),
		"SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
	} {
		if _, err := conn.ExecContext(ctx, set); err != nil {
			if ctx.Err() == nil {
				m.log.Warn("pruning batch markers", "err", err)
			}
			return
		}
	}
	q := m.pruneQuery()
	for {
		res, err := conn.ExecContext(ctx, q, m.cfg.InstanceID)
		if err != nil {
			if ctx.Err() == nil {
				m.log.Warn("pruning batch markers", "err", err)
			}
			return
		}
		if n, _ := res.RowsAffected(); n < janitorChunk {
			return
		}
		select { // let batches in between chunks
		case <-ctx.Done():
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}
