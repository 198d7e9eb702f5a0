package merger

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sync"
	"testing"

	"github.com/go-mysql-org/go-mysql/client"
	gomysql "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/hotrow/hotrow/internal/testdb"
)

// diffSKUs are the keys random requests use: a hot row, several cold
// ones, two keys without a row, and 'A', which equals 'a' under the
// table's case-insensitive collation.
var diffSKUs = []string{"a", "a", "a", "a", "b", "b", "c", "d", "e", "zz", "y", "A"}

// genRequest makes a random mergeable statement on inv: decrements with
// each guard kind, restocks, zero and oversized quantities, several rows,
// missing keys, extra assignments and decimal amounts (mixed only), as
// text or prepared.
func genRequest(t *testing.T, f *fixture, rng *rand.Rand, id uint32, mixed bool) Request {
	sku := diffSKUs[rng.IntN(len(diffSKUs))]
	n := int64(rng.IntN(8))
	if rng.IntN(10) == 0 {
		n = int64(20 + rng.IntN(30)) // more than the stock
	}
	guards := []string{"", " AND stock >= %d", " AND stock - %d >= 0", " AND stock > 0"}
	guard := guards[rng.IntN(len(guards))]
	if !mixed && guard == "" {
		guard = guards[1+rng.IntN(len(guards)-1)] // unguarded could underflow UNSIGNED
	}
	op, extra := "-", ""
	switch r := rng.IntN(20); {
	case r < 3:
		op = "+"
	case mixed && r < 6:
		extra = fmt.Sprintf(", note = 'n%d'", id)
	}
	amount := fmt.Sprint(n)
	if mixed && rng.IntN(12) == 0 {
		amount = fmt.Sprintf("%d.5", n)
	}
	if rng.IntN(3) == 0 && amount == fmt.Sprint(n) {
		// prepared: ? for the amount, key and guard value
		q := "UPDATE inv SET stock = stock " + op + " ?" + extra + " WHERE sku = ?"
		args := []any{n, sku}
		switch guard {
		case guards[1]:
			q += " AND stock >= ?"
			args = append(args, n)
		case guards[2]:
			q += " AND stock - ? >= 0"
			args = append(args, n)
		case guards[3]:
			q += guard
		}
		return f.prepared(t, q, id, args...)
	}
	q := "UPDATE inv SET stock = stock " + op + " " + amount + extra + " WHERE sku = '" + sku + "'"
	if guard != "" && guard != guards[3] {
		q += fmt.Sprintf(guard, n)
	} else {
		q += guard
	}
	return f.text(t, q, id)
}

// runDirect executes r on c the way its client would: the text over
// COM_QUERY, a prepared statement with its arguments.
func runDirect(c *client.Conn, r Request) (Outcome, error) {
	var res *gomysql.Result
	var err error
	if r.Text != "" {
		res, err = c.Execute(r.Text)
	} else {
		res, err = c.Execute(r.Stmt.SQL, r.Args...)
	}
	if err != nil {
		return Outcome{}, err
	}
	return statementOutcome(res), nil
}

func tableRows(t *testing.T, c *client.Conn) [][]any {
	t.Helper()
	res, err := c.Execute("SELECT sku, stock, sold, note FROM inv ORDER BY sku")
	if err != nil {
		t.Fatal(err)
	}
	rows := make([][]any, res.RowNumber())
	for i := range rows {
		for j := range 4 {
			v, _ := res.GetValue(i, j)
			if b, ok := v.([]byte); ok {
				v = string(b)
			}
			rows[i] = append(rows[i], v)
		}
	}
	return rows
}

// TestDifferential submits seeded random requests concurrently, replays
// them directly in the order the merger executed them on a copy of the
// table, and requires every outcome, error and the final rows to match.
func TestDifferential(t *testing.T) {
	for _, tc := range []struct {
		name, stockType string
		mixed           bool
		// checked: a CHECK constraint on the stock, which the fast path
		// cannot evaluate: it must never run.
		checked bool
	}{
		{"check-unsigned", "INT UNSIGNED NOT NULL CHECK (stock <= 45), pad INT DEFAULT 0", false, true},
		{"check-mixed", "INT NOT NULL, CONSTRAINT cap CHECK (stock BETWEEN 0 AND 45), pad INT DEFAULT 0", true, true},
		{"unsigned-fast", "INT UNSIGNED", false, false},
		{"signed-fast", "INT", false, false},
		{"unsigned-mixed", "INT UNSIGNED", true, false},
		{"signed-mixed", "BIGINT", true, false},
		{"tinyint-mixed", "TINYINT", true, false},
		{"decimal-mixed", "DECIMAL(10,2)", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var fast, multi uint64
			for seed := range uint64(10) {
				t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
					s, m := differential(t, tc.stockType, tc.mixed, seed)
					fast += s.FastPath
					multi += m
				})
			}
			if tc.checked && fast > 0 {
				t.Errorf("%d fast-path batches on a table with a CHECK constraint", fast)
			}
			if !tc.mixed && !tc.checked && fast == 0 {
				t.Errorf("fast-only sequences never took the fast path")
			}
			if multi == 0 {
				t.Errorf("no batch spanned several rows")
			}
		})
	}
}

// differential runs one seeded sequence and returns the merger's stats
// and how many batches touched several rows.
func differential(t *testing.T, stockType string, mixed bool, seed uint64) (Stats, uint64) {
	return differentialClaims(t, stockType, mixed, false, seed)
}

// differentialClaims is differential; with claims, about half the
// requests that may be claims are (their outcomes must not differ), and
// after the comparison checkClaims confirms or cancels each granted one.
func differentialClaims(t *testing.T, stockType string, mixed, claims bool, seed uint64) (Stats, uint64) {
	rng := rand.New(rand.NewPCG(seed, uint64(len(stockType))))
	rows := map[string]int64{"a": int64(rng.IntN(40)), "b": int64(rng.IntN(10)),
		"c": int64(rng.IntN(10)), "d": int64(rng.IntN(30)), "e": int64(rng.IntN(5))}
	f := newFixture(t, stockType, rows, func(c *Config) { c.MaxBatch = 1 + rng.IntN(64) })
	replay := testdb.New(t)
	replay.Exec(t, fmt.Sprintf(invDDL, stockType))
	for sku, v := range rows {
		replay.Exec(t, fmt.Sprintf("INSERT INTO inv (sku, stock) VALUES ('%s', %d)", sku, v))
	}

	const goroutines, perG = 16, 10
	reqs := make([]Request, goroutines*perG)
	for i := range reqs {
		reqs[i] = genRequest(t, f, rng, uint32(i+1), mixed)
		if claims && ClaimAllowed(reqs[i].Stmt, reqs[i].Args) && rng.IntN(2) == 0 {
			reqs[i].Claim = &Owner{ConnID: uint32(i + 1)}
		}
	}
	got := make([]result, len(reqs))
	outs := make([]Outcome, len(reqs))
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := g; i < len(reqs); i += goroutines {
				out, err := f.m.Do(context.Background(), reqs[i])
				got[i], outs[i] = toResult(out, err, f.db.Name), out
			}
		})
	}
	wg.Wait()

	type ledgerRow struct{ key, delta, after string }
	ledger := map[uint32]ledgerRow{}
	lrows, err := f.conn.Query("SELECT conn_id, key_value, delta, stock_after FROM `" + f.meta + "`.ledger")
	if err != nil {
		t.Fatal(err)
	}
	for lrows.Next() {
		var id uint32
		var r ledgerRow
		if err := lrows.Scan(&id, &r.key, &r.delta, &r.after); err != nil {
			t.Fatal(err)
		}
		if _, dup := ledger[id]; dup {
			t.Fatalf("two ledger rows for request %d", id-1)
		}
		ledger[id] = r
	}
	lrows.Close()

	c := direct(t, f.db, replay.Name)
	seen := make([]bool, len(reqs))
	f.mu.Lock()
	order := f.order
	f.mu.Unlock()
	var multi uint64
	for _, b := range order {
		keys := map[string]bool{}
		for _, r := range b.Requests {
			keys[fmt.Sprint(r.Stmt.Key.Value(r.Args))] = true
		}
		if len(keys) > 1 {
			multi++
		}
		for k, r := range b.Requests {
			i := int(r.ConnID) - 1
			if seen[i] {
				t.Fatalf("request %d executed twice", i)
			}
			seen[i] = true
			out, err := runDirect(c, r)
			want := toResult(out, err, replay.Name)
			if got[i] != want {
				t.Errorf("request %d (%s batch %s #%d) %q %v:\n merged %+v\n direct %+v",
					i, b.Path, b.BatchID, k, r.Text, r.Args, got[i], want)
			}
			row, inLedger := ledger[r.ConnID]
			if granted := err == nil && out.Matched > 0; granted != inLedger {
				t.Errorf("request %d: granted %v, ledger row %v", i, granted, inLedger)
			} else if granted {
				sku := fmt.Sprint(r.Stmt.Key.Value(r.Args))
				res, qerr := c.Execute("SELECT stock FROM inv WHERE sku = '" + sku + "'")
				if qerr != nil {
					t.Fatal(qerr)
				}
				after, _ := res.GetString(0, 0)
				if row.key != sku || row.after != after {
					t.Errorf("request %d: ledger row %+v, want key %s stock after %s", i, row, sku, after)
				}
			}
			if hook := toResult(b.Outcomes[k], b.Errs[k], f.db.Name); hook != got[i] {
				t.Errorf("request %d: hook saw %+v, client %+v", i, hook, got[i])
			}
		}
	}
	for i, s := range seen {
		if !s {
			t.Fatalf("request %d never executed (result %+v)", i, got[i])
		}
	}
	merged := tableRows(t, direct(t, f.db, f.db.Name))
	if want := tableRows(t, c); !reflect.DeepEqual(merged, want) {
		t.Fatalf("final rows differ:\n merged %v\n direct %v", merged, want)
	}
	if claims {
		checkClaims(t, f, rng, reqs, outs, got)
	}
	s := f.m.Stats()
	t.Logf("batches %d (lone %d fast %d general %d, %d on several rows) retries %d", s.Batches, s.LonePath, s.FastPath, s.GeneralPath, multi, s.Retries)
	return s, multi
}
