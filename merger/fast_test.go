package merger

import (
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
)

// serialModel executes requests one by one as MariaDB executes a
// mergeable UPDATE on an integer stock column, in arbitrary precision:
// the expression (stock - e in a guard, stock +/- amount in SET) is
// computed in BIGINT, or BIGINT UNSIGNED on an UNSIGNED column, and
// raises 1690 outside that type's range; the value SET stores must fit
// the column (1264 in strict mode). It knows nothing of planFast.
type serialModel struct {
	lo, hi   *big.Int // the column's range
	exprLo   *big.Int // the expression type's range
	exprHi   *big.Int
	rows     []*big.Int // nil: no row
	changed  []bool
	outs     []Outcome
	after    []*big.Int
	failedAt int // the request that raised an error, -1: none
}

func newSerialModel(col stockColumn, stocks []any) *serialModel {
	m := &serialModel{lo: big.NewInt(col.lo), hi: new(big.Int).SetUint64(col.hi), failedAt: -1}
	if col.unsigned {
		m.exprLo, m.exprHi = big.NewInt(0), new(big.Int).SetUint64(math.MaxUint64)
	} else {
		m.exprLo, m.exprHi = big.NewInt(math.MinInt64), big.NewInt(math.MaxInt64)
	}
	for _, s := range stocks {
		var v *big.Int
		switch s := s.(type) {
		case int64:
			v = big.NewInt(s)
		case uint64:
			v = new(big.Int).SetUint64(s)
		}
		m.rows = append(m.rows, v)
		m.changed = append(m.changed, false)
	}
	return m
}

// operand returns an operand's value as an integer of the model.
func operand(o Operand, args []any) *big.Int {
	switch v := o.Value(args).(type) {
	case int64:
		return big.NewInt(v)
	case uint64:
		return new(big.Int).SetUint64(v)
	}
	panic(fmt.Sprintf("model operand %T", o.Value(args)))
}

func (m *serialModel) inExpr(v *big.Int) bool { return v.Cmp(m.exprLo) >= 0 && v.Cmp(m.exprHi) <= 0 }

// run executes reqs on rows keyOf; it stops at the first error.
func (m *serialModel) run(reqs []Request, keyOf []int) {
	for i := range reqs {
		r := &reqs[i]
		v := m.rows[keyOf[i]]
		m.outs = append(m.outs, Outcome{})
		if v == nil {
			m.after = append(m.after, big.NewInt(0))
			continue
		}
		pass := true
		switch r.Stmt.Guard {
		case GuardAtLeast:
			pass = v.Cmp(operand(r.Stmt.GuardValue, r.Args)) >= 0
		case GuardDiffNonNegative:
			d := new(big.Int).Sub(v, operand(r.Stmt.GuardValue, r.Args))
			if !m.inExpr(d) {
				m.failedAt = i
				return
			}
			pass = d.Sign() >= 0
		case GuardPositive:
			pass = v.Sign() > 0
		}
		if pass {
			a := operand(r.Stmt.Amount, r.Args)
			n := new(big.Int)
			if r.Stmt.Op == Decrement {
				n.Sub(v, a)
			} else {
				n.Add(v, a)
			}
			if !m.inExpr(n) || n.Cmp(m.lo) < 0 || n.Cmp(m.hi) > 0 {
				m.failedAt = i
				return
			}
			m.outs[i] = Outcome{Matched: 1, Changed: b2u(n.Cmp(v) != 0)}
			m.changed[keyOf[i]] = m.changed[keyOf[i]] || n.Cmp(v) != 0
			v = n
			m.rows[keyOf[i]] = v
		}
		m.after = append(m.after, new(big.Int).Set(v))
	}
}

// planValue is a plan's stock value as an integer.
func planValue(v int64, unsigned bool) *big.Int {
	if unsigned {
		return new(big.Int).SetUint64(uint64(v))
	}
	return big.NewInt(v)
}

// randomPlanBatch is one generated batch for planFast.
type randomPlanBatch struct {
	reqs  []Request
	keyOf []int
	// stocks[j] is row j's locked stock, nil for no row.
	stocks []any
	// exact: every request is one the fast path evaluates (integer
	// operands the server computes exactly as planFast; no extra SET).
	exact bool
}

// nearLimit returns a value of [lo, hi] close to a limit, to zero, or
// anywhere.
func nearLimit(rng *rand.Rand, lo *big.Int, hi *big.Int) *big.Int {
	span := new(big.Int).Sub(hi, lo)
	d := big.NewInt(int64(rng.IntN(4)))
	var v *big.Int
	switch rng.IntN(6) {
	case 0:
		v = new(big.Int).Add(lo, d)
	case 1:
		v = new(big.Int).Sub(hi, d)
	case 2:
		v = big.NewInt(int64(rng.IntN(7)) - 3)
	case 3:
		v = big.NewInt(int64(rng.IntN(40)))
	default:
		v = new(big.Int).SetUint64(rng.Uint64())
		v.Mod(v, new(big.Int).Add(span, big.NewInt(1))).Add(v, lo)
	}
	if v.Cmp(lo) < 0 {
		v.Set(lo)
	}
	if v.Cmp(hi) > 0 {
		v.Set(hi)
	}
	return v
}

// planGen generates random batches for planFast. Each batch is calm
// (small operands) or edgy (operands about the range limits), and may be
// odd (holding operands planFast must refuse).
type planGen struct {
	rng       *rand.Rand
	col       stockColumn
	edgy, odd bool
}

// operand returns a non-negative integer operand: zero, small, or in an
// edgy batch about a range limit or anywhere; in an odd batch sometimes
// one planFast must refuse (negative, a float, a uint64 on a signed
// column or beyond int64), and then *exact becomes false.
func (g *planGen) operand(exact *bool) any {
	rng := g.rng
	if g.odd && rng.IntN(6) == 0 {
		switch rng.IntN(4) {
		case 0:
			*exact = false
			return int64(-1 - rng.IntN(3))
		case 1:
			*exact = false
			return float64(rng.IntN(5))
		case 2:
			*exact = *exact && g.col.unsigned // exact on UNSIGNED only
			return uint64(rng.IntN(10))
		default:
			*exact = false
			return uint64(math.MaxInt64) + 1 + uint64(rng.IntN(10))
		}
	}
	switch n := rng.IntN(10); {
	case n == 0:
		return int64(0)
	case g.edgy && n == 1:
		return int64(min(g.col.hi, math.MaxInt64) - uint64(rng.IntN(3)))
	case g.edgy && n == 2:
		return rng.Int64N(math.MaxInt64)
	}
	return int64(rng.IntN(12))
}

// batch makes a random batch: 1-4 rows, some missing, values near the
// column's limits or small, 1-24 requests of every operation and guard
// kind.
func (g *planGen) batch() randomPlanBatch {
	rng := g.rng
	g.edgy, g.odd = rng.IntN(3) == 0, rng.IntN(6) == 0
	lo, hi := big.NewInt(g.col.lo), new(big.Int).SetUint64(g.col.hi)
	b := randomPlanBatch{exact: true}
	rows := 1 + rng.IntN(4)
	for range rows {
		if rng.IntN(6) == 0 {
			b.stocks = append(b.stocks, nil)
			continue
		}
		v := nearLimit(rng, lo, hi)
		if g.col.unsigned {
			b.stocks = append(b.stocks, v.Uint64())
		} else {
			b.stocks = append(b.stocks, v.Int64())
		}
	}
	for range 1 + rng.IntN(24) {
		st := &Statement{Op: Decrement, Key: Operand{Param: 0}, Amount: Operand{Param: 1}, GuardValue: Operand{Param: -1}}
		if rng.IntN(4) == 0 {
			st.Op = Increment
		}
		st.Guard = GuardKind(rng.IntN(4))
		args := []any{"k", g.operand(&b.exact)}
		switch st.Guard {
		case GuardAtLeast, GuardDiffNonNegative:
			st.GuardValue = Operand{Param: 2}
			if rng.IntN(2) == 0 {
				args = append(args, args[1]) // stock >= e with SET stock - e
			} else {
				args = append(args, g.operand(&b.exact))
			}
		}
		if g.odd && rng.IntN(30) == 0 {
			st.Extra = []Assignment{{Column: "note", Value: Operand{Param: -1, Const: "x"}}}
			b.exact = false
		}
		b.reqs = append(b.reqs, Request{Stmt: st, Args: args})
		b.keyOf = append(b.keyOf, rng.IntN(rows))
	}
	return b
}

// TestPlanFastMatchesSerialModel compares planFast with the serial model
// on random batches over every integer column type: a batch the model
// runs without error must be planned with the model's every outcome,
// stock after each request and final row; a batch where any request
// raises an error or leaves the range, or that holds a request outside
// the fast path, must be declined.
func TestPlanFastMatchesSerialModel(t *testing.T) {
	const seedsPerColumn = 1500 // 15,000 seeds in all
	types := []struct {
		name string
		typ  byte
	}{
		{"tinyint", gomysql.MYSQL_TYPE_TINY},
		{"smallint", gomysql.MYSQL_TYPE_SHORT},
		{"mediumint", gomysql.MYSQL_TYPE_INT24},
		{"int", gomysql.MYSQL_TYPE_LONG},
		{"bigint", gomysql.MYSQL_TYPE_LONGLONG},
	}
	var p fastPlan // reused, as the executor reuses its plan
	for _, ty := range types {
		for _, unsigned := range []bool{false, true} {
			name := ty.name
			f := &gomysql.Field{Type: ty.typ}
			if unsigned {
				name += "-unsigned"
				f.Flag = gomysql.UNSIGNED_FLAG
			}
			col, ok := integerColumn(f)
			if !ok {
				t.Fatalf("integerColumn(%s) not an integer", name)
			}
			t.Run(name, func(t *testing.T) {
				var planned, declined int
				for seed := range uint64(seedsPerColumn) {
					rng := rand.New(rand.NewPCG(seed, uint64(ty.typ)<<1|b2u(unsigned)))
					g := (&planGen{rng: rng, col: col}).batch()
					if checkPlan(t, &p, g, col) {
						planned++
					} else {
						declined++
					}
					if t.Failed() {
						t.Fatalf("seed %d: %s", seed, describeBatch(g))
					}
				}
				t.Logf("%d planned, %d declined", planned, declined)
				if planned < seedsPerColumn/4 || declined == 0 {
					t.Errorf("%d planned, %d declined: the generator misses a side", planned, declined)
				}
			})
		}
	}
}

// checkPlan runs planFast and the model on g and reports planFast's ok.
func checkPlan(t *testing.T, p *fastPlan, g randomPlanBatch, col stockColumn) bool {
	t.Helper()
	ok := planFast(p, g.reqs, g.keyOf, g.stocks, col)
	if !g.exact {
		if ok {
			t.Errorf("planned a batch with a request outside the fast path")
		}
		return ok
	}
	m := newSerialModel(col, g.stocks)
	m.run(g.reqs, g.keyOf)
	if m.failedAt >= 0 {
		if ok {
			t.Errorf("planned a batch whose request %d raises an error", m.failedAt)
		}
		return ok
	}
	if !ok {
		t.Errorf("declined a batch the server runs without error")
		return ok
	}
	granted := 0
	for i := range g.reqs {
		if p.outs[i] != m.outs[i] {
			t.Errorf("request %d: outcome %+v, model %+v", i, p.outs[i], m.outs[i])
		}
		if got := planValue(p.after[i], col.unsigned); got.Cmp(m.after[i]) != 0 {
			t.Errorf("request %d: stock after %v, model %v", i, got, m.after[i])
		}
		granted += int(m.outs[i].Matched)
	}
	if p.granted != granted {
		t.Errorf("granted %d, model %d", p.granted, granted)
	}
	for j, v := range m.rows {
		if v == nil {
			v = big.NewInt(0)
		}
		if got := planValue(p.final[j], col.unsigned); got.Cmp(v) != 0 || p.changed[j] != m.changed[j] {
			t.Errorf("row %d: final %v changed %v, model %v changed %v", j, got, p.changed[j], v, m.changed[j])
		}
	}
	return ok
}

func describeBatch(g randomPlanBatch) string {
	var b strings.Builder
	fmt.Fprintf(&b, "rows %v\n", g.stocks)
	for i, r := range g.reqs {
		op := "-"
		if r.Stmt.Op == Increment {
			op = "+"
		}
		fmt.Fprintf(&b, "  #%d row %d: stock %s %v guard %d %v extra %d\n", i, g.keyOf[i], op, r.Args[1], r.Stmt.Guard, r.Args[2:], len(r.Stmt.Extra))
	}
	return b.String()
}

// TestPlanFastDeclines lists batches planFast must leave to the server.
func TestPlanFastDeclines(t *testing.T) {
	dec := func(amount any, guard GuardKind, gv ...any) Request {
		st := &Statement{Op: Decrement, Key: Operand{Param: 0}, Amount: Operand{Param: 1}, Guard: guard, GuardValue: Operand{Param: 2}}
		return Request{Stmt: st, Args: append([]any{"k", amount}, gv...)}
	}
	inc := func(amount any) Request {
		st := &Statement{Op: Increment, Key: Operand{Param: 0}, Amount: Operand{Param: 1}}
		return Request{Stmt: st, Args: []any{"k", amount}}
	}
	unsignedInt, _ := integerColumn(&gomysql.Field{Type: gomysql.MYSQL_TYPE_LONG, Flag: gomysql.UNSIGNED_FLAG})
	tiny, _ := integerColumn(&gomysql.Field{Type: gomysql.MYSQL_TYPE_TINY})
	bigint, _ := integerColumn(&gomysql.Field{Type: gomysql.MYSQL_TYPE_LONGLONG})
	for _, tc := range []struct {
		name  string
		col   stockColumn
		stock any
		reqs  []Request
	}{
		{"unsigned below zero", unsignedInt, uint64(2), []Request{dec(int64(3), GuardNone)}},
		{"unsigned stock - e < 0 in the guard", unsignedInt, uint64(2), []Request{dec(int64(1), GuardDiffNonNegative, int64(3))}},
		{"tinyint above 127", tiny, int64(120), []Request{inc(int64(8))}},
		{"tinyint below -128", tiny, int64(-120), []Request{dec(int64(9), GuardNone)}},
		{"bigint overflow", bigint, int64(math.MaxInt64), []Request{inc(int64(1))}},
		{"bigint underflow in the guard", bigint, int64(math.MinInt64), []Request{dec(int64(0), GuardDiffNonNegative, int64(1))}},
		{"second request overflows", tiny, int64(100), []Request{inc(int64(20)), inc(int64(20))}},
		{"negative amount", bigint, int64(5), []Request{dec(int64(-1), GuardNone)}},
		{"float amount", bigint, int64(5), []Request{dec(1.0, GuardNone)}},
		{"unsigned parameter on a signed column", bigint, int64(5), []Request{dec(uint64(1), GuardNone)}},
		{"signed stock on an unsigned column", unsignedInt, int64(5), []Request{dec(int64(1), GuardNone)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p fastPlan
			keyOf := make([]int, len(tc.reqs))
			if planFast(&p, tc.reqs, keyOf, []any{tc.stock}, tc.col) {
				t.Errorf("planFast planned it: outs %+v final %v", p.outs, p.final)
			}
		})
	}
}
