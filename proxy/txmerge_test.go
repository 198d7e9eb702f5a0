package proxy

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/hotrow/hotrow/internal/testdb"
	"github.com/hotrow/hotrow/merger"
)

const txSchema = "CREATE TABLE orders (id BIGINT AUTO_INCREMENT PRIMARY KEY, sku_id BIGINT NOT NULL, qty INT NOT NULL)"

// verdictOf returns a claim's verdict, "" when it has none.
func verdictOf(t testing.TB, conn *sql.DB, meta, id string) string {
	t.Helper()
	var v string
	err := conn.QueryRow("SELECT verdict FROM `"+meta+"`.verdicts WHERE claim_id = ?", id).Scan(&v)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		t.Fatal(err)
	}
	return v
}

// lastClaim returns the newest claim id: the newest ledger row's id
// (the tests that use it merge only claims; settled claims rows are
// deleted).
func lastClaim(t testing.TB, conn *sql.DB, meta string) string {
	t.Helper()
	var id string
	if err := conn.QueryRow("SELECT CONCAT(batch_id, ':', seq) FROM `" + meta + "`.ledger ORDER BY created_at DESC, batch_id DESC, seq DESC LIMIT 1").Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

func stockOf(t testing.TB, conn *sql.DB) int64 {
	t.Helper()
	var v int64
	if err := conn.QueryRow("SELECT stock FROM inventory WHERE sku_id = 1").Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestTxClaims: a hot UPDATE inside a transaction, text and prepared, is
// merged as a claim: the client gets the server's OK (affected rows,
// its order's LAST_INSERT_ID untouched); COMMIT confirms it with the
// order; ROLLBACK and a disconnect cancel it (stock restored, no order);
// a refused UPDATE gets 0 rows and no claim; after a locking read of the
// hot table the UPDATE passes through and the reason is counted.
func TestTxClaims(t *testing.T) {
	db := testdb.New(t)
	db.Exec(t, "CREATE TABLE inventory (sku_id BIGINT PRIMARY KEY, stock INT UNSIGNED NOT NULL)", txSchema,
		"INSERT INTO inventory VALUES (1, 100)")
	p, m, meta := startHotProxy(t, db)
	direct := db.Open(t)
	ctx := context.Background()
	for _, mode := range []string{"text", "prepared"} {
		t.Run(mode, func(t *testing.T) {
			pool := open(t, db, p.addr, func(c *mysql.Config) { c.InterpolateParams = mode == "text" })
			const hot = "UPDATE inventory SET stock = stock - ? WHERE sku_id = 1 AND stock >= ?"
			order := func(tx *sql.Tx, qty int) (orderID int64) {
				t.Helper()
				r, err := tx.Exec("INSERT INTO orders (sku_id, qty) VALUES (1, ?)", qty)
				if err != nil {
					t.Fatal(err)
				}
				orderID, _ = r.LastInsertId()
				r, err = tx.Exec(hot, qty, qty)
				if err != nil {
					t.Fatal(err)
				}
				if n, _ := r.RowsAffected(); n != 1 {
					t.Fatalf("claim: %d rows affected", n)
				}
				var last int64
				if err := tx.QueryRow("SELECT LAST_INSERT_ID()").Scan(&last); err != nil || last != orderID {
					t.Fatalf("LAST_INSERT_ID() = %d, %v; want the order's %d", last, err, orderID)
				}
				return orderID
			}
			requests := m.Stats().Requests

			// COMMIT: confirmed with the order.
			s0 := stockOf(t, direct)
			tx, err := pool.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			id := order(tx, 3)
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			claim := lastClaim(t, direct, meta)
			if v := verdictOf(t, direct, meta, claim); v != "confirm" {
				t.Fatalf("committed claim %s: verdict %q", claim, v)
			}
			var n int
			if err := direct.QueryRow("SELECT COUNT(*) FROM orders WHERE id = ?", id).Scan(&n); err != nil || n != 1 {
				t.Fatalf("order %d: %d rows, %v", id, n, err)
			}
			if s := stockOf(t, direct); s != s0-3 {
				t.Fatalf("stock %d after a committed claim of 3 from %d", s, s0)
			}
			if m.Stats().Requests == requests {
				t.Fatal("the UPDATE was not merged")
			}

			// ROLLBACK: cancelled, the stock comes back, no order.
			tx, err = pool.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			id = order(tx, 5)
			if err := tx.Rollback(); err != nil {
				t.Fatal(err)
			}
			claim = lastClaim(t, direct, meta)
			testdb.WaitFor(t, 10*time.Second, "the rolled back claim is cancelled", func() bool { return verdictOf(t, direct, meta, claim) == "cancel" })
			if s := stockOf(t, direct); s != s0-3 {
				t.Fatalf("stock %d after a rolled back claim, want %d", s, s0-3)
			}
			if err := direct.QueryRow("SELECT COUNT(*) FROM orders WHERE id = ?", id).Scan(&n); err != nil || n != 0 {
				t.Fatalf("rolled back order %d: %d rows, %v", id, n, err)
			}

			// Refused: 0 rows, no claim.
			tx, err = pool.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			r, err := tx.Exec(hot, 1000, 1000)
			if err != nil {
				t.Fatal(err)
			}
			if n, _ := r.RowsAffected(); n != 0 {
				t.Fatalf("refused claim: %d rows affected", n)
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			if c := lastClaim(t, direct, meta); c != claim {
				t.Fatalf("a refused UPDATE wrote claim %s", c)
			}

			// Disconnect inside the transaction: cancelled.
			conn, err := pool.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, q := range []string{"BEGIN", "INSERT INTO orders (sku_id, qty) VALUES (1, 2)"} {
				if _, err := conn.ExecContext(ctx, q); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := conn.ExecContext(ctx, hot, 2, 2); err != nil {
				t.Fatal(err)
			}
			claim = lastClaim(t, direct, meta)
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
			conn.Close()
			testdb.WaitFor(t, 10*time.Second, "the disconnected claim is cancelled", func() bool { return verdictOf(t, direct, meta, claim) == "cancel" })
			if s := stockOf(t, direct); s != s0-3 {
				t.Fatalf("stock %d after a disconnected claim, want %d", s, s0-3)
			}

			// After a locking read of the hot table: pass-through, counted.
			touched := m.Stats().Unmerged[merger.UnmergedTouched]
			tx, err = pool.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			var v int
			if err := tx.QueryRow("SELECT stock FROM inventory WHERE sku_id = 1 FOR UPDATE").Scan(&v); err != nil {
				t.Fatal(err)
			}
			requests = m.Stats().Requests
			if _, err := tx.Exec(hot, 1, 1); err != nil {
				t.Fatal(err)
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			if m.Stats().Requests != requests || m.Stats().Unmerged[merger.UnmergedTouched] != touched+1 {
				t.Fatalf("UPDATE after FOR UPDATE: merged %v, touched count %d -> %d", m.Stats().Requests != requests, touched, m.Stats().Unmerged[merger.UnmergedTouched])
			}
			if s := stockOf(t, direct); s != s0-4 {
				t.Fatalf("stock %d, want %d", s, s0-4)
			}
		})
	}
}

// TestTxClaimsConcurrent: clients in text and prepared mode run order
// transactions (an order, a guarded hot UPDATE, COMMIT or ROLLBACK at
// random, sometimes a disconnect) and autocommit deductions against a
// small stock. Never oversold; once every claim is settled, every claim
// has a verdict, and stock + committed orders + autocommit grants =
// initial. With every UPDATE a claim, confirmed claims match the
// committed orders one for one; by default, an UPDATE on a row nothing
// else uses runs in its client's transaction, so the confirmed claims are
// some of the orders.
func TestTxClaimsConcurrent(t *testing.T) {
	t.Run("every UPDATE a claim", func(t *testing.T) { txClaimsConcurrent(t, true) })
	t.Run("uncontended in the transaction", func(t *testing.T) { txClaimsConcurrent(t, false) })
}

func txClaimsConcurrent(t *testing.T, claimAll bool) {
	db := testdb.New(t)
	const initial = 300
	db.Exec(t, "CREATE TABLE inventory (sku_id BIGINT PRIMARY KEY, stock INT UNSIGNED NOT NULL)", txSchema,
		fmt.Sprintf("INSERT INTO inventory VALUES (1, %d)", initial))
	p, m, meta := startHotProxyWith(t, db, func(mc *merger.Config) { mc.ClaimUncontended = claimAll })
	direct := db.Open(t)
	text := open(t, db, p.addr, func(c *mysql.Config) { c.InterpolateParams = true })
	prep := open(t, db, p.addr)
	ctx := context.Background()
	const hot = "UPDATE inventory SET stock = stock - ? WHERE sku_id = 1 AND stock >= ?"
	var mu sync.Mutex
	var autoGranted int64
	errs := make(chan error, 64)
	var wg sync.WaitGroup
	for g := range 32 {
		pool := text
		if g%2 == 1 {
			pool = prep
		}
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			for range 25 {
				qty := int64(1 + rng.IntN(3))
				if rng.IntN(4) == 0 {
					r, err := pool.ExecContext(ctx, hot, qty, qty)
					if err != nil {
						errs <- err
						return
					}
					if n, _ := r.RowsAffected(); n == 1 {
						mu.Lock()
						autoGranted += qty
						mu.Unlock()
					}
					continue
				}
				conn, err := pool.Conn(ctx)
				if err != nil {
					errs <- err
					return
				}
				err = func() error {
					if _, err := conn.ExecContext(ctx, "BEGIN"); err != nil {
						return err
					}
					if _, err := conn.ExecContext(ctx, "INSERT INTO orders (sku_id, qty) VALUES (1, ?)", qty); err != nil {
						return err
					}
					r, err := conn.ExecContext(ctx, hot, qty, qty)
					if err != nil {
						return err
					}
					granted, _ := r.RowsAffected()
					switch k := rng.IntN(10); {
					case k == 0:
						_ = conn.Raw(func(any) error { return driver.ErrBadConn })
						return nil
					case k < 4 || granted == 0:
						_, err = conn.ExecContext(ctx, "ROLLBACK")
					default:
						_, err = conn.ExecContext(ctx, "COMMIT")
					}
					return err
				}()
				conn.Close()
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	unsettled := func() int {
		var n int
		if err := direct.QueryRow("SELECT COUNT(*) FROM `" + meta + "`.claims c LEFT JOIN `" + meta + "`.verdicts v USING (claim_id) WHERE v.claim_id IS NULL").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	testdb.WaitFor(t, 30*time.Second, "every claim settled", func() bool { return unsettled() == 0 })
	testdb.WaitFor(t, 30*time.Second, "settled claims rows deleted", func() bool {
		var n int
		if err := direct.QueryRow("SELECT COUNT(*) FROM `" + meta + "`.claims").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 0
	})
	var orders, orderQty, confirmed, confirmedQty int64
	if err := direct.QueryRow("SELECT COUNT(*), COALESCE(SUM(qty), 0) FROM orders").Scan(&orders, &orderQty); err != nil {
		t.Fatal(err)
	}
	if err := direct.QueryRow("SELECT COUNT(*), COALESCE(SUM(-CAST(delta AS SIGNED)), 0) FROM `"+meta+"`.verdicts WHERE verdict = 'confirm'").Scan(&confirmed, &confirmedQty); err != nil {
		t.Fatal(err)
	}
	stock := stockOf(t, direct)
	uncontended := m.Stats().Unmerged[merger.UnmergedUncontended]
	t.Logf("stock %d, %d orders (%d units), %d confirmed claims (%d units), %d units autocommit; %d UPDATEs in their transaction, uncontended",
		stock, orders, orderQty, confirmed, confirmedQty, autoGranted, uncontended)
	if claimAll && (orders != confirmed || orderQty != confirmedQty || uncontended != 0) ||
		!claimAll && (confirmed > orders || confirmedQty > orderQty) {
		t.Errorf("%d orders of %d units, %d confirmed claims of %d units, %d uncontended", orders, orderQty, confirmed, confirmedQty, uncontended)
	}
	if stock+orderQty+autoGranted != initial {
		t.Errorf("stock %d + orders %d + autocommit %d != initial %d", stock, orderQty, autoGranted, initial)
	}
}

// TestTxUncontended: with ClaimUncontended off, a hot UPDATE of a transaction on a row
// that is not hot runs in the client's own transaction (no claim, no
// ledger row; counted as tx_uncontended), and the transaction holds the
// row until it ends. With TxHotThreshold 2, a second transaction updating
// the row meanwhile makes it hot: its UPDATE is a claim, whose batch waits
// for the first to commit, and so is the next one's while the row stays
// hot (a second); after that the row is cold again. Rolled back, an
// UPDATE run in the transaction is undone as directly.
func TestTxUncontended(t *testing.T) {
	db := testdb.New(t)
	db.Exec(t, "CREATE TABLE inventory (sku_id BIGINT PRIMARY KEY, stock INT UNSIGNED NOT NULL)", txSchema,
		"INSERT INTO inventory VALUES (1, 100)")
	p, m, meta := startHotProxyWith(t, db, func(mc *merger.Config) { mc.ClaimUncontended, mc.TxHotThreshold = false, 2 })
	direct := db.Open(t)
	pool := open(t, db, p.addr)
	ctx := context.Background()
	const hot = "UPDATE inventory SET stock = stock - ? WHERE sku_id = 1 AND stock >= ?"
	uncontended := func() uint64 { return m.Stats().Unmerged[merger.UnmergedUncontended] }
	claims := func() (n int) {
		t.Helper()
		if err := direct.QueryRow("SELECT COUNT(*) FROM `" + meta + "`.verdicts WHERE verdict = 'confirm'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	deduct := func(tx *sql.Tx, qty int) {
		t.Helper()
		if _, err := tx.Exec("INSERT INTO orders (sku_id, qty) VALUES (1, ?)", qty); err != nil {
			t.Fatal(err)
		}
		r, err := tx.Exec(hot, qty, qty)
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := r.RowsAffected(); n != 1 {
			t.Fatalf("%d rows affected", n)
		}
	}
	a, err := pool.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	deduct(a, 3)
	if n := uncontended(); n != 1 {
		t.Fatalf("tx_uncontended = %d after the first transaction's UPDATE, want 1", n)
	}
	// b's UPDATE is a claim: its batch waits for a's row lock.
	b, err := pool.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	bDone := make(chan struct{})
	go func() {
		defer close(bDone)
		deduct(b, 2)
	}()
	testdb.WaitFor(t, 10*time.Second, "the claim's batch to wait for the row", func() bool {
		var n int
		// The batch's locking read (or a lone claim's, before its UPDATE)
		// or its UPDATE waits.
		_ = direct.QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() AND (INFO LIKE 'UPDATE inventory%' OR INFO LIKE '%FOR UPDATE')").Scan(&n)
		return n > 0
	})
	if err := a.Commit(); err != nil {
		t.Fatal(err)
	}
	<-bDone
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	testdb.WaitFor(t, 10*time.Second, "the claim confirmed", func() bool { return claims() == 1 })
	if n := uncontended(); n != 1 {
		t.Fatalf("tx_uncontended = %d, want still 1 (the second UPDATE was a claim)", n)
	}
	if s := stockOf(t, direct); s != 95 {
		t.Fatalf("stock %d after 3 + 2, want 95", s)
	}
	// Hot for a second: the next transaction's UPDATE is a claim too.
	c, err := pool.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	deduct(c, 1)
	if err := c.Commit(); err != nil {
		t.Fatal(err)
	}
	testdb.WaitFor(t, 10*time.Second, "the claim confirmed", func() bool { return claims() == 2 })
	if n := uncontended(); n != 1 {
		t.Fatalf("tx_uncontended = %d while the row is hot, want still 1", n)
	}
	// Cold again: in the transaction, and a rollback undoes it.
	time.Sleep(1100 * time.Millisecond)
	d, err := pool.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	deduct(d, 4)
	if n := uncontended(); n != 2 {
		t.Fatalf("tx_uncontended = %d once the row cooled down, want 2", n)
	}
	if err := d.Rollback(); err != nil {
		t.Fatal(err)
	}
	if s := stockOf(t, direct); s != 94 {
		t.Fatalf("stock %d after 3 + 2 + 1 and a rollback, want 94", s)
	}
	var orders int
	if err := direct.QueryRow("SELECT COUNT(*) FROM orders").Scan(&orders); err != nil || orders != 3 || claims() != 2 {
		t.Fatalf("%d orders (%v), %d confirmed claims; want 3 and 2", orders, err, claims())
	}
}

// TestTxClaimsIndirect: when another table's foreign key references the
// hot table (its INSERT locks the hot row without naming it), a hot
// UPDATE inside a transaction passes through, counted; in autocommit it
// still merges.
func TestTxClaimsIndirect(t *testing.T) {
	db := testdb.New(t)
	db.Exec(t, "CREATE TABLE inventory (sku_id BIGINT PRIMARY KEY, stock INT UNSIGNED NOT NULL)",
		"CREATE TABLE orders (id BIGINT AUTO_INCREMENT PRIMARY KEY, sku_id BIGINT NOT NULL, qty INT NOT NULL, FOREIGN KEY (sku_id) REFERENCES inventory (sku_id))",
		"INSERT INTO inventory VALUES (1, 100)")
	p, m, _ := startHotProxy(t, db)
	pool := open(t, db, p.addr, func(c *mysql.Config) { c.InterpolateParams = true })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tx, err := pool.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("INSERT INTO orders (sku_id, qty) VALUES (1, 1)"); err != nil {
		t.Fatal(err)
	}
	before := m.Stats()
	if _, err := tx.Exec("UPDATE inventory SET stock = stock - 1 WHERE sku_id = 1 AND stock >= 1"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	after := m.Stats()
	if after.Requests != before.Requests || after.Unmerged[merger.UnmergedIndirect] != before.Unmerged[merger.UnmergedIndirect]+1 {
		t.Fatalf("merged %v, indirect count %d -> %d", after.Requests != before.Requests,
			before.Unmerged[merger.UnmergedIndirect], after.Unmerged[merger.UnmergedIndirect])
	}
	if _, err := pool.Exec("UPDATE inventory SET stock = stock - 1 WHERE sku_id = 1 AND stock >= 1"); err != nil {
		t.Fatal(err)
	}
	if m.Stats().Requests == after.Requests {
		t.Fatal("autocommit UPDATE not merged")
	}
	if s := stockOf(t, db.Open(t)); s != 98 {
		t.Fatalf("stock %d, want 98", s)
	}
}
