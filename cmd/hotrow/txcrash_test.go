package main

import (
	"database/sql"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/hotrow/hotrow/internal/testdb"
)

// orderProxy starts `hotrow proxy args...` (bin, on a free loopback port)
// and returns a client pool on it and a kill -9.
func orderProxy(t *testing.T, bin string, db *testdb.DB, args []string) (*sql.DB, func()) {
	t.Helper()
	addr := freeAddr(t)
	child := startChild(t, bin, addr, db, args...)
	pool, err := sql.Open("mysql", clientDSN(db, addr))
	if err != nil {
		t.Fatal(err)
	}
	pool.SetMaxIdleConns(64)
	t.Cleanup(func() { pool.Close() })
	return pool, child.kill
}

// TestKill9DuringOrderTransactions: clients run order transactions (an
// order row, a hot UPDATE merged as a claim, COMMIT or ROLLBACK) through
// a proxy process that is killed with SIGKILL at a random moment, three
// times, so that kills land in every window (before and after a batch's
// commit, after a confirmation, during a client's COMMIT). After a
// restart and its sweep: no claim without a verdict, an order exists iff
// its claim is confirmed (counts and units match), and stock + confirmed
// = initial.
func TestKill9DuringOrderTransactions(t *testing.T) {
	db := testdb.New(t)
	direct := db.Open(t)
	const initial = 1_000_000
	db.Exec(t, "CREATE TABLE inventory (sku_id INT PRIMARY KEY, stock INT NOT NULL)",
		"CREATE TABLE orders (id BIGINT AUTO_INCREMENT PRIMARY KEY, sku_id INT NOT NULL, qty INT NOT NULL)",
		fmt.Sprintf("INSERT INTO inventory VALUES (1, %d)", initial))
	meta := db.Name + "_meta"
	t.Cleanup(func() { _, _ = direct.Exec("DROP DATABASE IF EXISTS `" + meta + "`") })
	bin := buildHotrow(t)
	// Every order transaction's UPDATE a claim, the subject of the test
	// (an uncontended one would run in the transaction, without a claim).
	args := []string{"--hot-rule", db.Name + ".inventory:sku_id:stock", "--meta-schema", meta, "--instance-id", "crash-" + db.Name[2:10],
		"--claim-uncontended"}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	committed := 0
	for round := range 3 {
		pool, kill := orderProxy(t, bin, db, args)
		var wg sync.WaitGroup
		var mu sync.Mutex
		stop := make(chan struct{})
		for c := range 24 {
			wg.Go(func() {
				crng := rand.New(rand.NewPCG(uint64(round), uint64(c)))
				for {
					select {
					case <-stop:
						return
					default:
					}
					qty := 1 + crng.IntN(3)
					tx, err := pool.Begin()
					if err != nil {
						continue // the proxy is gone: wait for stop
					}
					if _, err := tx.Exec("INSERT INTO orders (sku_id, qty) VALUES (1, ?)", qty); err != nil {
						_ = tx.Rollback()
						continue
					}
					r, err := tx.Exec("UPDATE inventory SET stock = stock - ? WHERE sku_id = 1 AND stock >= ?", qty, qty)
					if err != nil {
						_ = tx.Rollback()
						continue
					}
					if n, _ := r.RowsAffected(); n != 1 || crng.IntN(5) == 0 {
						_ = tx.Rollback()
						continue
					}
					if tx.Commit() == nil {
						mu.Lock()
						committed++
						mu.Unlock()
					}
				}
			})
		}
		// Kill once the round made progress (on a loaded machine the first
		// transactions may take long), at a random moment after.
		mu.Lock()
		start := committed
		mu.Unlock()
		testdb.WaitFor(t, 60*time.Second, "order transactions to commit", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return committed >= start+5
		})
		time.Sleep(time.Duration(rng.IntN(500)) * time.Millisecond)
		kill()
		close(stop)
		wg.Wait()
		pool.Close()
	}
	// Claims younger than the sweep's age bound (5 s) wait for the next
	// sweep: let them age, then restart.
	time.Sleep(6 * time.Second)
	orderProxy(t, bin, db, args) // its sweep at start settles the claims
	unsettled := func() int {
		var n int
		if err := direct.QueryRow("SELECT COUNT(*) FROM `" + meta + "`.claims c LEFT JOIN `" + meta + "`.verdicts v USING (claim_id) WHERE v.claim_id IS NULL").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	testdb.WaitFor(t, 30*time.Second, "the sweep to settle every claim", func() bool { return unsettled() == 0 })
	var orders, orderQty, confirmed, confirmedQty, cancelled, stock int
	if err := direct.QueryRow("SELECT COUNT(*), COALESCE(SUM(qty), 0) FROM orders").Scan(&orders, &orderQty); err != nil {
		t.Fatal(err)
	}
	if err := direct.QueryRow("SELECT COUNT(*), COALESCE(SUM(-CAST(delta AS SIGNED)), 0) FROM `"+meta+"`.verdicts WHERE verdict = 'confirm'").Scan(&confirmed, &confirmedQty); err != nil {
		t.Fatal(err)
	}
	if err := direct.QueryRow("SELECT COUNT(*) FROM `" + meta + "`.verdicts WHERE verdict = 'cancel'").Scan(&cancelled); err != nil {
		t.Fatal(err)
	}
	if err := direct.QueryRow("SELECT stock FROM inventory WHERE sku_id = 1").Scan(&stock); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d orders (%d units), %d confirmed claims (%d units), %d cancelled, %d COMMITs answered OK, stock %d",
		orders, orderQty, confirmed, confirmedQty, cancelled, committed, stock)
	if orders != confirmed || orderQty != confirmedQty {
		t.Errorf("%d orders of %d units, but %d confirmed claims of %d units", orders, orderQty, confirmed, confirmedQty)
	}
	if stock+confirmedQty != initial {
		t.Errorf("stock %d + confirmed %d != initial %d", stock, confirmedQty, initial)
	}
	if committed > orders {
		t.Errorf("%d COMMITs answered OK, only %d orders", committed, orders)
	}
	if confirmed == 0 || cancelled == 0 {
		t.Errorf("want both confirmed (%d) and cancelled (%d) claims", confirmed, cancelled)
	}
}
