package binlog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/hotrow/hotrow/internal/ctxsleep"
	"github.com/hotrow/hotrow/schema"
)

// pruneChunk is how many rows one retention DELETE removes.
const pruneChunk = 500

// retentionLoop prunes the ledger and batch markers every tenth of the
// retention (between a second and a minute).
func (c *Consumer) retentionLoop(ctx context.Context, db *sql.DB) {
	interval := min(max(c.cfg.LedgerRetention/10, time.Second), time.Minute)
	for ctxsleep.Sleep(ctx, interval) {
		n, err := prune(ctx, db, c.cfg.MetaSchema, c.cfg.LedgerRetention)
		switch {
		case err != nil && ctx.Err() == nil:
			c.log.Warn("ledger retention", "err", err, "deleted", n)
		case n > 0:
			c.log.Info("ledger retention", "deleted", n)
		}
	}
}

// pruneStatements are the chunked DELETEs of prune, in order, for the
// meta schema q: ledger rows, batch markers, then settled claims. A claims
// row is deleted only once its claim has a verdict, and a verdict only
// once its claims row is gone: the claim sweep cancels claims rows without
// a verdict, so a verdict deleted before its claims row would let the
// sweep cancel a confirmed claim. (Settling deletes claims rows as soon as
// their verdict is read; the first DELETE catches those it missed.)
func pruneStatements(q string) []string {
	old := " WHERE created_at < @hotrow_horizon"
	limit := " ORDER BY created_at LIMIT " + fmt.Sprint(pruneChunk)
	claims, verdicts := q+"."+schema.ClaimsTable, q+"."+schema.VerdictsTable
	return []string{
		"DELETE FROM " + q + "." + schema.LedgerTable + old + limit,
		"DELETE FROM " + q + "." + schema.BatchesTable + old + limit,
		"DELETE FROM " + claims + old + " AND claim_id IN (SELECT claim_id FROM " + verdicts + ")" + limit,
		"DELETE FROM " + verdicts + old + " AND claim_id NOT IN (SELECT claim_id FROM " + claims + ")" + limit,
	}
}

// prune deletes ledger rows, batch markers and settled claims created
// before retention ago and before every consumer's checkpoint
// (checkpoints.updated_at), in
// chunks of pruneChunk rows with a one-second lock wait, so it never holds
// up merged batches for long. It returns the rows deleted.
func prune(ctx context.Context, db *sql.DB, meta string, retention time.Duration) (int64, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	// READ COMMITTED: no gap locks, so the claims' DELETEs (whose
	// subqueries may still lock the old rows they read) never stand in
	// the way of the confirmations clients are inserting.
	for _, set := range []string{"SET SESSION innodb_lock_wait_timeout = 1", "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED"} {
		if _, err := conn.ExecContext(ctx, set); err != nil {
			return 0, err
		}
	}
	q := schema.QuoteIdent(meta)
	// The horizon stays in the session, so no time zone comes between.
	if _, err := conn.ExecContext(ctx, "SET @hotrow_horizon = LEAST(NOW(6) - INTERVAL ? MICROSECOND, "+
		"(SELECT MIN(updated_at) FROM "+q+"."+schema.CheckpointsTable+"))", retention.Microseconds()); err != nil {
		return 0, privilegeError("ledger retention", err)
	}
	var valid bool
	if err := conn.QueryRowContext(ctx, "SELECT @hotrow_horizon IS NOT NULL").Scan(&valid); err != nil {
		return 0, err
	}
	if !valid {
		return 0, nil // no consumer has a checkpoint yet
	}
	var total int64
	for _, del := range pruneStatements(q) {
		for {
			res, err := conn.ExecContext(ctx, del)
			if err != nil {
				var my *mysql.MySQLError
				if errors.As(err, &my) && my.Number == 1205 {
					break // busy: the next round goes on
				}
				return total, privilegeError("ledger retention", err)
			}
			n, _ := res.RowsAffected()
			total += n
			if n < pruneChunk || !ctxsleep.Sleep(ctx, 5*time.Millisecond) {
				break
			}
		}
	}
	return total, nil
}
