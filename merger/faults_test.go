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

	"github.com/hotrow/hotrow/internal/testdb"
)

// load runs goroutines x perG requests "take one if any is left" on row
// hot and returns the outcomes and errors the clients saw.
type loadResult struct {
	granted, unknown, notApplied int
	other                        []error
}

// general makes every request carry an extra assignment, which only the
// general path executes.
func runLoad(t *testing.T, f *fixture, goroutines, perG int, general bool) loadResult {
	t.Helper()
	var mu sync.Mutex
	var res loadResult
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range perG {
				id := uint32(g*perG + i + 1)
				extra := ""
				if general {
					extra = fmt.Sprintf(", note = 'c%d'", id)
				}
				var r Request
				if i%2 == 0 {
					r = f.text(t, "UPDATE inv SET stock = stock - 1"+extra+" WHERE sku = 'hot' AND stock >= 1", id)
				} else {
					r = f.prepared(t, "UPDATE inv SET stock = stock - ?"+extra+" WHERE sku = ? AND stock >= ?", id, int64(1), "hot", int64(1))
				}
				out, err := f.m.Do(context.Background(), r)
				mu.Lock()
				switch {
				case err == nil:
					res.granted += int(out.Matched)
				case errors.Is(err, ErrOutcomeUnknown) && err.Error() == ErrOutcomeUnknown.Error():
					res.unknown++
				case errors.Is(err, ErrNotApplied) && err.Error() == ErrNotApplied.Error():
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
// may have a ledger row their client did not see.
func checkLedger(t *testing.T, f *fixture, initial int64, res loadResult) {
	t.Helper()
	for _, err := range res.other {
		t.Errorf("unexpected error: %v", err)
	}
	final := f.stock(t, "hot")
	ledger := f.ledgerRows(t)
	var dup int
	if err := f.conn.QueryRow("SELECT COUNT(*) FROM (SELECT conn_id FROM `" + f.meta + "`.ledger GROUP BY conn_id HAVING COUNT(*) > 1) d").Scan(&dup); err != nil {
		t.Fatal(err)
	}
	t.Logf("initial %d final %d ledger %d client-granted %d unknown %d not-applied %d", initial, final, ledger, res.granted, res.unknown, res.notApplied)
	switch {
	case final < 0:
		t.Errorf("oversold: stock %d", final)
	case dup > 0:
		t.Errorf("%d requests applied twice", dup)
	case int64(ledger) != initial-final:
		t.Errorf("ledger has %d rows, stock moved by %d", ledger, initial-final)
	case ledger < res.granted || ledger > res.granted+res.unknown:
		t.Errorf("ledger %d rows, clients saw %d grants and %d unknown outcomes", ledger, res.granted, res.unknown)
	}
}

func TestConcurrentGrantsEqualMinOfStockAndDemand(t *testing.T) {
	const stock, goroutines, perG = 500, 64, 20
	f := newFixture(t, "INT UNSIGNED", map[string]int64{"hot": stock}, nil)
	res := runLoad(t, f, goroutines, perG, false)
	if res.granted != min(stock, goroutines*perG) {
		t.Errorf("granted %d, want %d", res.granted, min(stock, goroutines*perG))
	}
	checkLedger(t, f, stock, res)
	s := f.m.Stats()
	t.Logf("stats: %+v", s)
	if s.FastPath == 0 {
		t.Errorf("no fast-path batch under contention")
	}
}

// TestKillBackend kills the batch's backend connection from another
// session at each step: synchronously before it, or racing with it.
func TestKillBackend(t *testing.T) {
	for _, step := range []Step{StepBegin, StepUpdate, StepCommit} {
		for _, v := range []struct{ racing, general bool }{{false, false}, {true, false}, {false, true}, {true, true}} {
			racing := v.racing
			t.Run(fmt.Sprintf("%s/racing=%v/general=%v", step, racing, v.general), func(t *testing.T) {
				const stock = 150
				var killer atomic.Pointer[sql.DB]
				var kills, calls atomic.Int32
				rng := rand.New(rand.NewPCG(uint64(step), 7))
				var rngMu sync.Mutex
				f := newFixture(t, "INT UNSIGNED", map[string]int64{"hot": stock}, func(c *Config) {
					c.Hooks.Before = func(s Step, connID uint32) {
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
				res := runLoad(t, f, 24, 8, v.general)
				checkLedger(t, f, stock, res)
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
// the ledger, the stock and what clients heard agree.
func TestServerCrash(t *testing.T) {
	srv := testdb.Shared(t)
	if srv.Local == nil {
		t.Skip("HOTROW_TEST_DSN server: cannot crash it")
	}
	const stock = 400
	f := newFixture(t, "INT UNSIGNED", map[string]int64{"hot": stock}, nil)
	done := make(chan loadResult)
	go func() { done <- runLoad(t, f, 32, 15, false) }()
	testdb.WaitFor(t, 30*time.Second, "requests flowing", func() bool { return f.m.Stats().Requests > 60 })
	srv.Local.Kill()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := srv.Local.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	res := <-done
	checkLedger(t, f, stock, res)
	t.Logf("stats %+v", f.m.Stats())
}
