package merger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hotrow/hotrow/internal/localdb"
	"github.com/hotrow/hotrow/internal/testdb"
)

// load runs goroutines x perG requests "take one if any is left" on row
// hot and returns the outcomes and errors the clients saw.
type loadResult struct {
	granted, unknown, notApplied int
	other                        []error
}

// general makes every request carry an extra assignment, which only the
// general path executes. skus are the rows the requests take turns on
// (nil: the one row hot).
func runLoad(t *testing.T, f *fixture, goroutines, perG int, general bool, skus ...string) loadResult {
	if len(skus) == 0 {
		skus = []string{"hot"}
	}
	t.Helper()
	var mu sync.Mutex
	var res loadResult
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range perG {
				id := f.idBase + uint32(g*perG+i+1)
				extra := ""
				if general {
					extra = fmt.Sprintf(", note = 'c%d'", id)
				}
				var r Request
				sku := skus[int(id)%len(skus)]
				if i%2 == 0 {
					r = f.text(t, "UPDATE inv SET stock = stock - 1"+extra+" WHERE sku = '"+sku+"' AND stock >= 1", id)
				} else {
					r = f.prepared(t, "UPDATE inv SET stock = stock - ?"+extra+" WHERE sku = ? AND stock >= ?", id, int64(1), sku, int64(1))
				}
				out, err := f.m.Do(context.Background(), r)
				mu.Lock()
				switch {
				case err == nil:
					res.granted += int(out.Matched)
				case errors.Is(err, ErrOutcomeUnknown):
					res.unknown++
				case errors.Is(err, ErrNotApplied):
					res.notApplied++
				default:
					res.other = append(res.other, err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return res
}

// checkLedger verifies no oversell, no lost grant and no double apply:
// every grant a client saw is in the ledger and the stock, each request
// has at most one ledger row, and only requests with an unknown outcome
// may have a ledger row their client did not see. initial is the stock
// of all rows together; per row, the ledger must account for the stock
// it lost.
func checkLedger(t *testing.T, f *fixture, initial map[string]int64, res loadResult) {
	t.Helper()
	for _, err := range res.other {
		t.Errorf("unexpected error: %v", err)
	}
	var final int64
	if err := f.conn.QueryRow("SELECT SUM(stock) FROM inv").Scan(&final); err != nil {
		t.Fatal(err)
	}
	for sku, v := range initial {
		var n int64
		if err := f.conn.QueryRow("SELECT COUNT(*) FROM `"+f.meta+"`.ledger WHERE key_value = ?", sku).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if got := f.stock(t, sku); got+n != v {
			t.Errorf("row %s: stock %d + ledger rows %d != initial %d", sku, got, n, v)
		}
	}
	var total int64
	for _, v := range initial {
		total += v
	}
	ledger := f.ledgerRows(t)
	var dup int
	if err := f.conn.QueryRow("SELECT COUNT(*) FROM (SELECT conn_id FROM `" + f.meta + "`.ledger GROUP BY conn_id HAVING COUNT(*) > 1) d").Scan(&dup); err != nil {
		t.Fatal(err)
	}
	t.Logf("initial %d final %d ledger %d client-granted %d unknown %d not-applied %d", total, final, ledger, res.granted, res.unknown, res.notApplied)
	switch {
	case final < 0:
		t.Errorf("oversold: stock %d", final)
	case dup > 0:
		t.Errorf("%d requests applied twice", dup)
	case int64(ledger) != total-final:
		t.Errorf("ledger has %d rows, stock moved by %d", ledger, total-final)
	case ledger < res.granted || ledger > res.granted+res.unknown:
		t.Errorf("ledger %d rows, clients saw %d grants and %d unknown outcomes", ledger, res.granted, res.unknown)
	}
}

// TestConcurrentManyRowsTwoInstances: two mergers (two instances) take
// turns on several rows of one table, so that their batches span rows and
// compete for the same row locks; per row stock + granted = initial, and
// every client hears what the ledger records.
func TestConcurrentManyRowsTwoInstances(t *testing.T) {
	const stock, goroutines, perG = 40, 48, 20
	skus := []string{"r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7"}
	rows := map[string]int64{}
	for _, s := range skus {
		rows[s] = stock
	}
	f := newFixture(t, "INT UNSIGNED", rows, nil)
	cfg := f.m.cfg
	cfg.InstanceID += "-2"
	cfg.hooks.executed = nil
	m2, err := New(context.Background(), cfg, f.m.log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m2.Close() })
	f2 := &fixture{db: f.db, conn: f.conn, m: m2, rule: f.rule, matcher: f.matcher, meta: f.meta, idBase: 1 << 20}
	results := make(chan loadResult, 2)
	go func() { results <- runLoad(t, f, goroutines/2, perG, false, skus...) }()
	go func() { results <- runLoad(t, f2, goroutines/2, perG, false, append(skus[3:], "nope", "r0")...) }()
	a, b := <-results, <-results
	res := loadResult{granted: a.granted + b.granted, other: append(a.other, b.other...)}
	if want := min(stock*len(skus), goroutines*perG); res.granted > want {
		t.Errorf("granted %d, at most %d", res.granted, want)
	}
	checkLedger(t, f, rows, res)
	s1, s2 := f.m.Stats(), m2.Stats()
	t.Logf("stats: %+v\n%+v", s1, s2)
	if s1.FastPath+s2.FastPath == 0 {
		t.Errorf("no fast-path batch under contention")
	}
}

func TestConcurrentGrantsEqualMinOfStockAndDemand(t *testing.T) {
	const stock, goroutines, perG = 500, 64, 20
	f := newFixture(t, "INT UNSIGNED", map[string]int64{"hot": stock}, nil)
	res := runLoad(t, f, goroutines, perG, false)
	if res.granted != min(stock, goroutines*perG) {
		t.Errorf("granted %d, want %d", res.granted, min(stock, goroutines*perG))
	}
	checkLedger(t, f, map[string]int64{"hot": stock}, res)
	s := f.m.Stats()
	t.Logf("stats: %+v", s)
	if s.FastPath == 0 {
		t.Errorf("no fast-path batch under contention")
	}
}

// TestKillBackend kills the batch's backend connection from another
// session at each step: synchronously before it, or racing with it.
func TestKillBackend(t *testing.T) {
	for _, step := range []batchStep{stepBegin, stepUpdate, stepCommit} {
		for _, v := range []struct{ racing, general bool }{{false, false}, {true, false}, {false, true}, {true, true}} {
			racing := v.racing
			t.Run(fmt.Sprintf("%s/racing=%v/general=%v", step, racing, v.general), func(t *testing.T) {
				const stock = 150
				var killer atomic.Pointer[sql.DB]
				var kills, calls atomic.Int32
				rng := rand.New(rand.NewPCG(uint64(step), 7))
				var rngMu sync.Mutex
				skus := []string{"hot", "hot", "cold1", "hot", "cold2", "nope"}
				f := newFixture(t, "INT UNSIGNED", map[string]int64{"hot": stock, "cold1": 20, "cold2": 20}, func(c *Config) {
					c.hooks.before = func(s batchStep, connID uint32) {
						if s != step || calls.Add(1)%3 != 0 || kills.Load() >= 12 {
							return
						}
						kills.Add(1)
						kill := func() { _, _ = killer.Load().Exec(fmt.Sprintf("KILL CONNECTION %d", connID)) }
						if !racing {
							kill()
							return
						}
						rngMu.Lock()
						d := time.Duration(rng.IntN(1500)) * time.Microsecond
						rngMu.Unlock()
						go func() { time.Sleep(d); kill() }()
					}
				})
				killer.Store(f.conn)
				res := runLoad(t, f, 24, 8, v.general, skus...)
				checkLedger(t, f, map[string]int64{"hot": stock, "cold1": 20, "cold2": 20}, res)
				if kills.Load() == 0 {
					t.Fatal("no connection was killed")
				}
				t.Logf("kills %d, stats %+v", kills.Load(), f.m.Stats())
			})
		}
	}
}

// TestServerCrash kills the server (SIGKILL) in the middle of a run and
// restarts it: every request still ends with an outcome or an error, and
// the ledger, the stock and what clients heard agree. It crashes a server
// of its own: killing the package's shared server would break whatever
// else uses it, and if the restart failed (its port taken meanwhile by
// another process), every later test would fail or hang.
func TestServerCrash(t *testing.T) {
	if testdb.Shared(t).Local == nil || !localdb.Installed() {
		t.Skip("HOTROW_TEST_DSN server: no local server to crash")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	inst, err := localdb.Start(ctx, localdb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(inst.Stop)
	srv := &testdb.Server{Addr: inst.Addr, User: localdb.User, Password: localdb.Password, Local: inst}
	db := &testdb.DB{Server: srv, Name: "crash"}
	root := srv.Root(t)
	if _, err := root.Exec("CREATE DATABASE crash"); err != nil {
		t.Fatal(err)
	}
	const stock = 400
	f := newFixtureOn(t, db, "INT UNSIGNED", map[string]int64{"hot": stock}, nil)
	done := make(chan loadResult)
	go func() { done <- runLoad(t, f, 32, 15, false) }()
	testdb.WaitFor(t, 30*time.Second, "requests flowing", func() bool { return f.m.Stats().Requests > 60 })
	inst.Kill()
	if err := inst.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	var res loadResult
	select {
	case res = <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("requests still running 2 minutes after the restart")
	}
	checkLedger(t, f, map[string]int64{"hot": stock}, res)
	t.Logf("stats %+v", f.m.Stats())
}
