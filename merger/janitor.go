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

// runJanitor deletes the batch markers of every instance (this one, its
// earlier processes, others sharing the meta schema) older than
// MarkerRetention, at start and then every quarter of it (at most
// hourly), until ctx ends. Markers only serve to resolve uncertain
// COMMITs, which ends at most the backend read timeout plus
// ResolveTimeout after the marker was written; New refuses a retention
// not comfortably longer, so no instance can read "absent" for a batch
// that committed. The ledger is never touched.
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

// pruneQuery is the janitor's DELETE of one chunk: the oldest markers
// older than MarkerRetention, at most janitorChunk, found by a range of
// the created_at index (schema version 2) in a derived table, then
// deleted by primary key. The index is forced: with most markers old (as
// after an upgrade from a version that left other instances' markers
// behind) the optimizer would otherwise scan and sort the whole table for
// every chunk. In READ COMMITTED without gap locks only the chunk's rows
// are locked, so markers that batches insert are never blocked.
func (m *Merger) pruneQuery() string {
	table := m.metaIdent + "." + schema.BatchesTable
	old := "created_at < NOW(6) - INTERVAL " + strconv.FormatInt(int64(m.cfg.MarkerRetention/time.Second), 10) + " SECOND"
	return "DELETE " + table + " FROM " + table + " JOIN (SELECT batch_id FROM " + table + " FORCE INDEX (created) WHERE " + old +
		" ORDER BY created_at LIMIT " + strconv.Itoa(janitorChunk) + ") AS chunk USING (batch_id)"
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
		res, err := conn.ExecContext(ctx, q)
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
