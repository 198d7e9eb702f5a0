package merger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hotrow/hotrow/internal/testdb"
)

// TestClaimDifferential runs the differential sequences with claims mixed
// in: their outcomes and the rows after the batches equal direct
// execution; then every granted claim is confirmed, confirmed and rolled
// back, or cancelled (checkClaims).
func TestClaimDifferential(t *testing.T) {
	for _, tc := range []struct {
		name, stockType string
		mixed           bool
	}{
		{"unsigned-fast", "INT UNSIGNED", false},
		{"signed-mixed", "BIGINT", true},
		{"decimal-mixed", "DECIMAL(10,2)", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for seed := range uint64(6) {
				t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
					differentialClaims(t, tc.stockType, tc.mixed, true, seed)
				})
			}
		})
	}
}

// checkClaims checks the claims rows of a differential run (one per
// granted claim, with its id, owner and amount; none for anything else),
// then settles every granted claim concurrently as a client would: its
// confirmation committed in a transaction, or written and rolled back,
// then cancelled, or cancelled directly; a second cancel and a cancel of a
// confirmed claim change nothing. Afterwards every claim has a verdict
// and each row's stock is its stock after the batches plus the amounts
// of the cancelled claims.
func checkClaims(t *testing.T, f *fixture, rng *rand.Rand, reqs []Request, outs []Outcome, got []result) {
	t.Helper()
	type claimRow struct {
		owner  uint32
		key    string
		amount uint64
	}
	rows := map[string]claimRow{}
	q, err := f.conn.Query("SELECT claim_id, owner_conn, key_value, amount FROM `" + f.meta + "`.claims")
	if err != nil {
		t.Fatal(err)
	}
	for q.Next() {
		var id string
		var r claimRow
		if err := q.Scan(&id, &r.owner, &r.key, &r.amount); err != nil {
			t.Fatal(err)
		}
		rows[id] = r
	}
	q.Close()
	before := map[string]float64{}
	for _, sku := range []string{"a", "b", "c", "d", "e"} {
		before[sku] = f.stockFloat(t, sku)
	}
	type settle struct {
		id     string
		sku    string
		amount uint64
		how    int // 0 confirm, 1 confirm then roll back, then cancel, 2 cancel
	}
	var todo []settle
	for i, r := range reqs {
		granted := got[i].Code == 0 && got[i].Matched > 0
		if r.Claim == nil || !granted {
			if outs[i].ClaimID != "" {
				t.Errorf("request %d (claim %v, %+v) has claim id %s", i, r.Claim != nil, got[i], outs[i].ClaimID)
			}
			continue
		}
		row, ok := rows[outs[i].ClaimID]
		amount, _ := claimAmount(&reqs[i])
		sku := fmt.Sprint(keyValue(&reqs[i]))
		if !ok || row.owner != r.Claim.ConnID || row.amount != amount || row.key != sku {
			t.Fatalf("request %d: claim %q row %+v (found %v), want owner %d amount %d key %s", i, outs[i].ClaimID, row, ok, r.Claim.ConnID, amount, sku)
		}
		delete(rows, outs[i].ClaimID)
		// 'A' names row 'a' under the table's collation.
		todo = append(todo, settle{id: outs[i].ClaimID, sku: strings.ToLower(sku), amount: amount, how: rng.IntN(3)})
	}
	if len(rows) > 0 {
		t.Fatalf("claims rows of no granted claim: %v", rows)
	}
	ctx := context.Background()
	restored := make([]bool, len(todo))
	var wg sync.WaitGroup
	for i, s := range todo {
		wg.Go(func() {
			if s.how < 2 {
				tx, err := f.conn.BeginTx(ctx, nil)
				if err != nil {
					t.Error(err)
					return
				}
				if r, err := tx.Exec(string(f.m.ConfirmSQL(nil, s.id))); err != nil {
					t.Error(err)
				} else if n, _ := r.RowsAffected(); n != 1 {
					t.Errorf("confirmation of %s: %d rows", s.id, n)
				}
				if s.how == 0 {
					err = tx.Commit()
				} else {
					err = tx.Rollback()
				}
				if err != nil {
					t.Error(err)
				}
			}
			ok, err := f.m.Cancel(ctx, s.id)
			if err != nil || ok != (s.how > 0) {
				t.Errorf("claim %s (settled %d): Cancel = %v, %v", s.id, s.how, ok, err)
			}
			restored[i] = ok
			if ok, err := f.m.Cancel(ctx, s.id); ok || err != nil {
				t.Errorf("claim %s: second Cancel = %v, %v", s.id, ok, err)
			}
		})
	}
	wg.Wait()
	for i, s := range todo {
		if restored[i] {
			before[s.sku] += float64(s.amount)
		}
	}
	for sku, want := range before {
		if got := f.stockFloat(t, sku); got != want {
			t.Errorf("sku %s: stock %v, want %v (after batches plus cancelled claims)", sku, got, want)
		}
	}
	var open int
	if err := f.conn.QueryRow("SELECT COUNT(*) FROM `" + f.meta + "`.claims c LEFT JOIN `" + f.meta + "`.verdicts v USING (claim_id) WHERE v.claim_id IS NULL").Scan(&open); err != nil || open != 0 {
		t.Errorf("%d claims without a verdict (%v)", open, err)
	}
	if n, err := f.m.SweepClaims(ctx); n != 0 || err != nil {
		t.Errorf("sweep after every verdict = %d, %v", n, err)
	}
	t.Logf("%d claims settled", len(todo))
}

// stockFloat reads a row's stock whatever the column's type.
func (f *fixture) stockFloat(t testing.TB, sku string) float64 {
	t.Helper()
	var v float64
	if err := f.conn.QueryRow("SELECT stock FROM inv WHERE sku = ?", sku).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestSweepClaims: the sweep cancels a claim whose owner connection is
// gone, leaves alone a claim of this process whose owner is alive and a
// confirmed one; after a restart (a new Merger with the same instance id)
// the sweep at start kills the live owner of the earlier process's claim
// and cancels it. Stock and verdicts end as if only the confirmed claim
// had been made.
func TestSweepClaims(t *testing.T) {
	f := newFixture(t, "INT", map[string]int64{"a": 100}, func(c *Config) {
		c.InstanceID = "sweep-" + fmt.Sprint(rand.Uint32())
		c.ClaimSweepAge = 0
		c.ClaimSweepEvery = time.Hour
	})
	ctx := context.Background()
	owner, err := f.conn.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer owner.Close()
	var ownerID uint32
	if err := owner.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&ownerID); err != nil {
		t.Fatal(err)
	}
	claim := func(conn uint32, n int) string {
		t.Helper()
		r := f.text(t, fmt.Sprintf("UPDATE inv SET stock = stock - %d WHERE sku = 'a' AND stock >= %d", n, n), conn)
		r.Claim = &Owner{ConnID: conn}
		out, err := f.m.Do(ctx, r)
		if err != nil || out.Matched != 1 || out.ClaimID == "" {
			t.Fatalf("claim: %+v, %v", out, err)
		}
		return out.ClaimID
	}
	verdict := func(id string) string {
		t.Helper()
		var v string
		err := f.conn.QueryRow("SELECT verdict FROM `"+f.meta+"`.verdicts WHERE claim_id = ?", id).Scan(&v)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			t.Fatal(err)
		}
		return v
	}
	live := claim(ownerID, 1)
	gone := claim(4000000000, 2)
	confirmed := claim(ownerID, 4)
	if _, err := owner.ExecContext(ctx, "INSERT INTO `"+f.meta+"`.verdicts (claim_id, verdict) VALUES (?, 'confirm')", confirmed); err != nil {
		t.Fatal(err)
	}
	if _, err := f.m.SweepClaims(ctx); err != nil {
		t.Fatal(err)
	}
	if v := verdict(gone); v != "cancel" {
		t.Errorf("claim of a gone owner: verdict %q", v)
	}
	if v := verdict(live); v != "" {
		t.Errorf("claim of a live owner of this process: verdict %q", v)
	}
	if got := f.stock(t, "a"); got != 100-1-4 {
		t.Errorf("stock %d after the first sweep, want %d", got, 100-1-4)
	}

	// Restart: the new process's sweep at start kills the owner and
	// cancels its claim.
	f.m.Close()
	m2, err := New(ctx, f.m.cfg, f.m.log)
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	testdb.WaitFor(t, 10*time.Second, "the sweep cancels the earlier process's claim", func() bool { return verdict(live) == "cancel" })
	if err := owner.PingContext(ctx); err == nil {
		if _, err := owner.ExecContext(ctx, "SELECT 1"); err == nil {
			t.Errorf("owner connection %d still usable after the sweep", ownerID)
		}
	}
	if v := verdict(confirmed); v != "confirm" {
		t.Errorf("confirmed claim: verdict %q", v)
	}
	if got := f.stock(t, "a"); got != 100-4 {
		t.Errorf("stock %d, want %d (initial - confirmed)", got, 100-4)
	}
	if n, err := m2.SweepClaims(ctx); n != 0 || err != nil {
		t.Errorf("second sweep = %d, %v", n, err)
	}
}
