package merger

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-sql-driver/mysql"

	"github.com/hotrow/hotrow/internal/ctxsleep"
	"github.com/hotrow/hotrow/schema"
)

// Cancel cancels claim id unless it has a verdict: in one transaction on
// a backend of the pool it inserts the verdict 'cancel' under the claim's
// id (INSERT IGNORE ... SELECT from the claim's row, a locking read that
// waits for the batch that wrote the claim to end) and, when that
// inserted a row, adds the claim's amount back to its row. cancelled
// reports whether this call restored the stock; false with a nil error
// means the claim was confirmed, already cancelled, or never committed.
//
// The caller must know that the owner transaction has ended (committed
// or rolled back) or can no longer write the confirmation: while it is
// open with the confirmation written, Cancel waits for its row lock. Any
// error leaves the claim as it was (the transaction is rolled back, or
// its COMMIT's outcome is unknown): Cancel is idempotent and may be
// called again.
func (m *Merger) Cancel(ctx context.Context, id string) (cancelled bool, err error) {
	b, err := m.pool.get(ctx)
	if err != nil {
		return false, err
	}
	broken := true
	defer func() { m.pool.put(b, broken) }()
	q := m.metaIdent
	b.sql = append(b.sql[:0], "START TRANSACTION; INSERT IGNORE INTO "...)
	b.sql = append(b.sql, q+"."+schema.VerdictsTable+" (claim_id, verdict) SELECT claim_id, '"+schema.VerdictCancel+"' FROM "+q+"."+schema.ClaimsTable+" WHERE claim_id = "...)
	b.sql = appendQuoted(b.sql, id, b.nbe)
	b.sql = append(b.sql, "; SELECT table_schema, table_name, key_column, stock_column, key_value, amount FROM "+q+"."+schema.ClaimsTable+" WHERE claim_id = "...)
	b.sql = appendQuoted(b.sql, id, b.nbe)
	var inserted bool
	var row []string
	failed, err := b.run(func(i int, r *gomysql.Result) {
		switch i {
		case 1:
			inserted = r.AffectedRows > 0
		case 2:
			if r.Resultset != nil && r.RowNumber() > 0 {
				for c := range 6 {
					s, _ := r.GetString(0, c)
					row = append(row, s)
				}
			}
		}
	})
	if failed >= 0 {
		if serverError(err) != nil {
			_, rerr := b.c.Execute("ROLLBACK")
			broken = rerr != nil
		}
		return false, fmt.Errorf("merger: cancel claim %s: %w", id, err)
	}
	if !inserted || len(row) != 6 {
		_, rerr := b.c.Execute("ROLLBACK")
		broken = rerr != nil
		return false, nil
	}
	b.sql = append(b.sql[:0], "UPDATE "...)
	b.sql = appendTable(b.sql, row[0], row[1])
	b.sql = append(b.sql, " SET "...)
	b.sql = appendIdent(b.sql, row[3])
	b.sql = append(b.sql, " = "...)
	b.sql = appendIdent(b.sql, row[3])
	b.sql = append(b.sql, " + "...)
	b.sql = append(b.sql, row[5]...) // an unsigned integer, from the claims row
	b.sql = append(b.sql, " WHERE "...)
	b.sql = appendIdent(b.sql, row[2])
	b.sql = append(b.sql, " = "...)
	b.sql = appendQuoted(b.sql, row[4], b.nbe)
	// The claims row has served: its verdict decides from now on.
	b.sql = append(b.sql, "; DELETE FROM "+q+"."+schema.ClaimsTable+" WHERE claim_id = "...)
	b.sql = appendQuoted(b.sql, id, b.nbe)
	b.sql = append(b.sql, "; COMMIT"...)
	failed, err = b.run(func(int, *gomysql.Result) {})
	if failed >= 0 {
		if serverError(err) != nil && failed < 2 {
			_, rerr := b.c.Execute("ROLLBACK")
			broken = rerr != nil
		}
		return false, fmt.Errorf("merger: cancel claim %s: %w", id, err)
	}
	broken = false
	m.stats.cancels.Add(1)
	return true, nil
}

// claimJob is work for the cancel worker: claims to cancel, or with
// settle, claims to cancel unless they have a verdict.
type claimJob struct {
	ids    []string
	settle bool
}

// CancelLater queues claim id for Cancel by the merger's cancel worker,
// which retries it until ResolveTimeout; a claim it could not cancel
// (or one queued when the merger closed) is left to the sweep. The caller
// must know that the owner transaction has ended (see Cancel).
func (m *Merger) CancelLater(id string) { m.queueClaims(claimJob{ids: []string{id}}) }

// SettleLater queues the claims a transaction confirmed or may have
// confirmed, once that transaction ended (committed, rolled back, or its
// connection closed): the cancel worker reads their verdicts and cancels
// those without one (the transaction did not commit their confirmation).
// ids is the caller's no longer.
func (m *Merger) SettleLater(ids []string) { m.queueClaims(claimJob{ids: ids, settle: true}) }

func (m *Merger) queueClaims(j claimJob) {
	select {
	case m.cancels <- j:
	default:
		m.log.Warn("cancel queue full: claims left to the sweep", "claims", len(j.ids))
	}
}

// runCancels is the cancel worker: it settles and cancels queued claims
// until ctx ends. Settle jobs queued together share one read of their
// verdicts.
func (m *Merger) runCancels(ctx context.Context) {
	defer m.janitor.Done()
	var settle []string
	for {
		var j claimJob
		select {
		case <-ctx.Done():
			return
		case j = <-m.cancels:
		}
		if !j.settle {
			m.cancelRetrying(ctx, j.ids)
			continue
		}
		settle = append(settle[:0], j.ids...)
	drain:
		for len(settle) < 512 {
			select {
			case j = <-m.cancels:
				if !j.settle {
					m.cancelRetrying(ctx, j.ids)
					continue
				}
				settle = append(settle, j.ids...)
			default:
				break drain
			}
		}
		m.settle(ctx, settle)
	}
}

// settle cancels the claims of ids that have no verdict, and deletes
// the claims rows of those that have one (the sweep never reads them
// again; a Cancel of a claim without its row does nothing).
func (m *Merger) settle(ctx context.Context, ids []string) {
	var open []string
	deadline := time.Now().Add(m.cfg.ResolveTimeout)
	for backoff := 20 * time.Millisecond; ; backoff = min(2*backoff, time.Second) {
		var err error
		if open, err = m.withoutVerdict(ctx, ids); err == nil {
			break
		}
		if time.Now().After(deadline) || !ctxsleep.Sleep(ctx, backoff) {
			m.log.Warn("reading verdicts failed: claims left to the sweep", "claims", len(ids), "err", err)
			return
		}
	}
	m.deleteSettled(ctx, ids, open)
	m.cancelRetrying(ctx, open)
}

// deleteSettled deletes the claims rows of ids except open (those have
// a verdict). A failure is only logged: the rows stay, harmless.
func (m *Merger) deleteSettled(ctx context.Context, ids, open []string) {
	skip := make(map[string]bool, len(open))
	for _, id := range open {
		skip[id] = true
	}
	q := make([]byte, 0, 64+len(ids)*40)
	q = append(q, "DELETE FROM "+m.metaIdent+"."+schema.ClaimsTable+" WHERE claim_id IN ("...)
	n := 0
	for _, id := range ids {
		if skip[id] {
			continue
		}
		if n > 0 {
			q = append(q, ',')
		}
		q = appendQuoted(q, id, true)
		n++
	}
	if n == 0 {
		return
	}
	q = append(q, ')')
	if _, err := m.meta.ExecContext(ctx, string(q)); err != nil && ctx.Err() == nil {
		m.log.Warn("deleting settled claims rows", "claims", n, "err", err)
	}
}

// withoutVerdict returns the claims of ids that have no verdict.
func (m *Merger) withoutVerdict(ctx context.Context, ids []string) ([]string, error) {
	q := make([]byte, 0, 64+len(ids)*40)
	q = append(q, "SELECT claim_id FROM "+m.metaIdent+"."+schema.VerdictsTable+" WHERE claim_id IN ("...)
	for i, id := range ids {
		if i > 0 {
			q = append(q, ',')
		}
		q = appendQuoted(q, id, true) // ids are [A-Za-z0-9._:-]
	}
	q = append(q, ')')
	rows, err := m.meta.QueryContext(ctx, string(q))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	have := make(map[string]bool, len(ids))
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		have[id] = true
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var open []string
	for _, id := range ids {
		if !have[id] {
			open = append(open, id)
		}
	}
	return open, nil
}

// cancelRetrying cancels each claim of ids, retrying each until
// ResolveTimeout; what fails is left to the sweep.
func (m *Merger) cancelRetrying(ctx context.Context, ids []string) {
	for _, id := range ids {
		deadline := time.Now().Add(m.cfg.ResolveTimeout)
		for backoff := 20 * time.Millisecond; ; backoff = min(2*backoff, time.Second) {
			_, err := m.Cancel(ctx, id)
			if err == nil {
				break
			}
			if time.Now().After(deadline) || !ctxsleep.Sleep(ctx, backoff) {
				m.log.Warn("cancel failed: claim left to the sweep", "claim_id", id, "err", err)
				break
			}
		}
	}
}

// MetaSchema is the database of hotrow's tables, where a claim's
// confirmation is written (ConfirmSQL).
func (m *Merger) MetaSchema() string { return m.cfg.MetaSchema }

// ConfirmSQL appends the statement that confirms claim id inside its
// owner's transaction: INSERT INTO verdicts (claim_id, verdict, ledger
// columns) SELECT id, 'confirm', ledger columns FROM ledger WHERE
// batch_id = ... AND seq = ... (the claim's ledger row). It inserts one
// row; none means the claim's ledger row is gone, and the claim must not
// be confirmed. Claim ids need no escaping.
func (m *Merger) ConfirmSQL(b []byte, id string) []byte {
	batch, seq, _ := strings.Cut(id, ":")
	b = append(b, "INSERT INTO "+m.metaIdent+"."+schema.VerdictsTable+" (claim_id, verdict, "+schema.LedgerColumns+") SELECT "...)
	b = appendQuoted(b, id, true)
	b = append(b, ",'"+schema.VerdictConfirm+"', "+schema.LedgerColumns+" FROM "+m.metaIdent+"."+schema.LedgerTable+" WHERE batch_id = "...)
	b = appendQuoted(b, batch, true)
	b = append(b, " AND seq = "...)
	b = appendQuoted(b, seq, true)
	return b
}

// SweepClaims cancels this instance's claims without a verdict, older
// than ClaimSweepAge, whose owner transaction is gone: claims of an
// earlier process of this instance (their sessions died with it; an owner
// connection still on the server is killed first), and claims of this
// process whose owner connection no longer exists. An owner on a server
// that restarted since the claim is gone. It returns how many claims it
// cancelled.
func (m *Merger) SweepClaims(ctx context.Context) (int, error) {
	if err := m.readServerStart(ctx); err != nil {
		return 0, fmt.Errorf("merger: sweep: %w", err)
	}
	q := m.metaIdent
	rows, err := m.meta.QueryContext(ctx, "SELECT c.claim_id, c.owner_conn, c.server_start FROM "+q+"."+schema.ClaimsTable+
		" c LEFT JOIN "+q+"."+schema.VerdictsTable+" v ON v.claim_id = c.claim_id WHERE c.instance_id = ? AND v.claim_id IS NULL"+
		" AND c.created_at < NOW(6) - INTERVAL ? MICROSECOND ORDER BY c.created_at LIMIT 1000",
		m.cfg.InstanceID, m.cfg.ClaimSweepAge.Microseconds())
	if err != nil {
		return 0, fmt.Errorf("merger: sweep: %w", err)
	}
	type claim struct {
		id    string
		owner uint32
		start int64
	}
	var claims []claim
	for rows.Next() {
		var c claim
		if err := rows.Scan(&c.id, &c.owner, &c.start); err != nil {
			rows.Close()
			return 0, fmt.Errorf("merger: sweep: %w", err)
		}
		claims = append(claims, c)
	}
	if err := rows.Close(); err != nil {
		return 0, fmt.Errorf("merger: sweep: %w", err)
	}
	if len(claims) == 0 {
		return 0, nil
	}
	alive := map[uint32]bool{}
	prows, err := m.meta.QueryContext(ctx, "SELECT ID FROM information_schema.PROCESSLIST")
	if err != nil {
		return 0, fmt.Errorf("merger: sweep: %w", err)
	}
	for prows.Next() {
		var id uint32
		if err := prows.Scan(&id); err == nil {
			alive[id] = true
		}
	}
	prows.Close()
	now := m.serverStart.Load()
	n := 0
	var errs []error
	for _, c := range claims {
		sameServer := c.start-now <= 2 && now-c.start <= 2
		ownerAlive := sameServer && alive[c.owner]
		if ownerAlive && strings.HasPrefix(c.id, m.idPrefix) {
			continue // a live session of this process owns it
		}
		if ownerAlive {
			// A session of an earlier process whose connection outlived it.
			if _, err := m.meta.ExecContext(ctx, "KILL CONNECTION "+strconv.FormatUint(uint64(c.owner), 10)); err != nil {
				if mysqlErrorNumber(err) != gomysql.ER_NO_SUCH_THREAD {
					errs = append(errs, err)
					continue
				}
			}
		}
		ok, err := m.Cancel(ctx, c.id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ok {
			n++
		}
	}
	m.stats.swept.Add(uint64(n))
	return n, errors.Join(errs...)
}

// runSweeper sweeps claims at start and every ClaimSweepEvery until ctx
// ends.
func (m *Merger) runSweeper(ctx context.Context) {
	defer m.janitor.Done()
	tick := time.NewTicker(m.cfg.ClaimSweepEvery)
	defer tick.Stop()
	for {
		if n, err := m.SweepClaims(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("sweeping claims", "cancelled", n, "err", err)
		} else if n > 0 {
			m.log.Info("swept claims", "cancelled", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// mysqlErrorNumber is the server error number of a database/sql error,
// 0 if it has none.
func mysqlErrorNumber(err error) uint16 {
	var my *mysql.MySQLError
	if errors.As(err, &my) {
		return my.Number
	}
	return 0
}
