package binlog

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hotrow/hotrow/merger"
)

// load drives merged deductions (merger.Do) and direct UPDATEs (plain
// connections, autocommit and in transactions) of inv concurrently, and
// returns how many direct statements changed the stock.
type load struct {
	f       *feedFixture
	skus    []string
	initial int64
}

func newLoad(t *testing.T, f *feedFixture, skus int, initial int64) *load {
	t.Helper()
	l := &load{f: f, initial: initial}
	conn := f.db.Open(t)
	for i := range skus {
		sku := "s" + strconv.Itoa(i)
		l.skus = append(l.skus, sku)
		if _, err := conn.Exec("INSERT INTO inv (sku, stock) VALUES (?, ?)", sku, initial); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// run runs merged workers doing n requests each and direct workers doing
// n statements each; it returns the direct changes of the stock.
func (l *load) run(t *testing.T, mergedWorkers, directWorkers, n int) int {
	t.Helper()
	f := l.f
	mcfg := merger.DefaultConfig()
	mcfg.DSN = f.db.DSN()
	mcfg.MetaSchema = f.meta
	mcfg.ResolveTimeout = 30 * time.Second
	m, err := merger.New(context.Background(), mcfg, feedLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	matcher := merger.NewMatcher([]merger.Rule{{Schema: f.db.Name, Table: "inv", Key: "sku", Stock: "stock"}})

	errs := make(chan error, mergedWorkers+directWorkers)
	var direct sync.WaitGroup
	var mu sync.Mutex
	changed := 0
	var wg sync.WaitGroup
	for w := range mergedWorkers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for i := range n {
				sku := l.skus[r.IntN(len(l.skus))]
				var q string
				if i%10 == 9 {
					q = fmt.Sprintf("UPDATE inv SET stock = stock + %d WHERE sku = '%s'", 1+r.IntN(3), sku)
				} else {
					q = fmt.Sprintf("UPDATE inv SET stock = stock - %d WHERE sku = '%s' AND stock >= %[1]d", 1+r.IntN(3), sku)
				}
				st, args, ok := matcher.MatchText(f.db.Name, q)
				if !ok {
					errs <- fmt.Errorf("not mergeable: %s", q)
					return
				}
				if _, err := m.Do(context.Background(), merger.Request{Stmt: st, Args: args, Text: q, ConnID: uint32(1000 + w)}); err != nil {
					errs <- fmt.Errorf("merged %s: %w", q, err)
					return
				}
			}
		})
	}
	for w := range directWorkers {
		direct.Go(func() {
			db, err := sql.Open("mysql", f.db.DSN())
			if err != nil {
				errs <- err
				return
			}
			defer db.Close()
			r := rand.New(rand.NewPCG(uint64(w), 2))
			for i := range n {
				sku := l.skus[r.IntN(len(l.skus))]
				k := 0
				if i%4 == 3 { // a transaction of two changes
					k, err = directTx(db, sku, l.skus[r.IntN(len(l.skus))])
				} else {
					var res sql.Result
					res, err = db.Exec("UPDATE inv SET stock = stock - ? WHERE sku = ? AND stock >= ?", 1+r.IntN(3), sku, 3)
					if err == nil {
						n, _ := res.RowsAffected()
						k = int(n)
					}
				}
				if err != nil {
					errs <- fmt.Errorf("direct: %w", err)
					return
				}
				mu.Lock()
				changed += k
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	direct.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return changed
}

// directTx deducts from one row and restocks another in one transaction
// (in key order, as batches lock, so they cannot deadlock), and returns
// the rows changed.
func directTx(db *sql.DB, a, b string) (int, error) {
	first, second := "UPDATE inv SET stock = stock - 2 WHERE sku = ? AND stock >= 2", "UPDATE inv SET stock = stock + 1 WHERE sku = ?"
	if b < a {
		first, second, a, b = second, first, b, a
	}
	tx, err := db.Begin()
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	changed := 0
	for _, q := range []struct {
		sql string
		sku string
	}{{first, a}, {second, b}} {
		res, err := tx.Exec(q.sql, q.sku)
		if err != nil {
			return 0, err
		}
		n, _ := res.RowsAffected()
		changed += int(n)
	}
	return changed, tx.Commit()
}

// check verifies that evs hold every ledger row once and direct direct
// events, no two events with one id but different contents, and that the
// quantities add up to each row's change.
func (l *load) check(t *testing.T, evs []Event, direct int) {
	t.Helper()
	f := l.f
	conn := f.db.Open(t)
	ledger := map[string]bool{}
	rows, err := conn.Query("SELECT batch_id, seq FROM `" + f.meta + "`.ledger")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var b string
		var s int
		if err := rows.Scan(&b, &s); err != nil {
			t.Fatal(err)
		}
		ledger[b+":"+strconv.Itoa(s)] = true
	}
	rows.Close()
	byID := map[string]Event{}
	for _, ev := range evs {
		if prev, ok := byID[ev.ID]; ok {
			if fmt.Sprint(prev) != fmt.Sprint(ev) {
				t.Errorf("id %s delivered with different contents:\n%+v\n%+v", ev.ID, prev, ev)
			}
			continue
		}
		byID[ev.ID] = ev
	}
	merged, others := 0, 0
	sum := map[string]int64{}
	for id, ev := range byID {
		if ev.Batch != "" {
			merged++
			if !ledger[id] {
				t.Errorf("event %s is not a ledger row", id)
			}
		} else {
			others++
		}
		q, err := strconv.ParseInt(string(ev.Quantity), 10, 64)
		if err != nil {
			t.Fatalf("event %+v: quantity: %v", ev, err)
		}
		if ev.Kind == KindRestock {
			q = -q
		}
		sum[ev.Key] += q
	}
	if merged != len(ledger) || others != direct {
		t.Errorf("got %d merged and %d direct events, want %d ledger rows and %d direct changes", merged, others, len(ledger), direct)
	}
	for _, sku := range l.skus {
		var stock int64
		if err := conn.QueryRow("SELECT stock FROM inv WHERE sku = ?", sku).Scan(&stock); err != nil {
			t.Fatal(err)
		}
		if sum[sku] != l.initial-stock {
			t.Errorf("sku %s: events take %d, stock went from %d to %d", sku, sum[sku], l.initial, stock)
		}
	}
	t.Logf("%d events (%d distinct): %d merged, %d direct", len(evs), len(byID), merged, others)
}

// waitIDs waits until the sink holds n distinct ids.
func (f *feedFixture) waitIDs(t *testing.T, n int) []Event {
	t.Helper()
	var evs []Event
	deadline := time.Now().Add(90 * time.Second)
	for {
		evs = readEvents(t, f.out)
		ids := map[string]bool{}
		for _, ev := range evs {
			ids[ev.ID] = true
		}
		if len(ids) >= n {
			return evs
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out: %d distinct ids of %d", len(ids), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (l *load) ledgerRows(t *testing.T) int {
	t.Helper()
	var n int
	if err := l.f.db.Open(t).QueryRow("SELECT COUNT(*) FROM `" + l.f.meta + "`.ledger").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestMergedAndDirectDeductions(t *testing.T) {
	f := newFeedFixture(t, "INT")
	l := newLoad(t, f, 3, 1_000_000)
	f.start(t)
	direct := l.run(t, 16, 4, 150)
	want := l.ledgerRows(t) + direct
	evs := f.waitIDs(t, want)
	l.check(t, evs, direct)
}

// A merged request whose key equals the row's only under the column's
// collation ('A' for 'a'): the ledger row is the one event.
func TestMergedKeyUnderCollation(t *testing.T) {
	f := newFeedFixture(t, "INT")
	f.db.Exec(t, "INSERT INTO inv VALUES ('a', 10, NULL)")
	f.start(t)
	mcfg := merger.DefaultConfig()
	mcfg.DSN, mcfg.MetaSchema = f.db.DSN(), f.meta
	m, err := merger.New(context.Background(), mcfg, feedLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	matcher := merger.NewMatcher([]merger.Rule{{Schema: f.db.Name, Table: "inv", Key: "sku", Stock: "stock"}})
	q := "UPDATE inv SET stock = stock - 3 WHERE sku = 'A' AND stock >= 3"
	st, args, ok := matcher.MatchText(f.db.Name, q)
	if !ok {
		t.Fatal("not mergeable")
	}
	if out, err := m.Do(context.Background(), merger.Request{Stmt: st, Args: args, Text: q, ConnID: 7}); err != nil || out.Matched != 1 {
		t.Fatalf("Do: %+v %v", out, err)
	}
	f.db.Exec(t, "UPDATE inv SET stock = stock - 1 WHERE sku = 'a'") // a marker event after it
	evs := f.waitEvents(t, 2)
	if len(evs) != 2 || evs[0].Batch == "" || evs[0].Quantity != "3" || evs[0].ConnID != 7 || evs[1].Batch != "" || evs[1].Quantity != "1" {
		t.Fatalf("events %+v", evs)
	}
}
