package merger

import (
	"math"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
)

// fastOperands returns the amount and guard value of a request the fast
// path can evaluate exactly: no extra assignments, non-negative integer
// operands of a type that keeps the server's arithmetic signed on signed
// columns (a uint64 parameter makes it unsigned).
func fastOperands(r *Request, unsigned bool) (amount, guard int64, ok bool) {
	st := r.Stmt
	if len(st.Extra) > 0 || (st.Op != Decrement && st.Op != Increment) {
		return 0, 0, false
	}
	if amount, ok = fastInt(st.Amount.Value(r.Args), unsigned); !ok {
		return 0, 0, false
	}
	switch st.Guard {
	case GuardNone, GuardPositive:
	case GuardAtLeast, GuardDiffNonNegative:
		if guard, ok = fastInt(st.GuardValue.Value(r.Args), unsigned); !ok {
			return 0, 0, false
		}
	default:
		return 0, 0, false
	}
	return amount, guard, true
}

// fastInt returns an operand the fast path computes with exactly: a
// non-negative int64, or a uint64 up to MaxInt64 on an UNSIGNED column.
func fastInt(v any, unsigned bool) (int64, bool) {
	switch v := v.(type) {
	case int64:
		return v, v >= 0
	case uint64:
		return int64(v), unsigned && v <= math.MaxInt64
	}
	return 0, false
}

// stockColumn is the type of the stock column as the fast path needs
// it: the range of its values and whether the server computes on it in
// BIGINT UNSIGNED arithmetic.
type stockColumn struct {
	lo       int64
	hi       uint64
	unsigned bool
}

// integerColumn returns the stock column's type from the locking read's
// result field; ok is false for a column that is not an integer.
func integerColumn(f *gomysql.Field) (col stockColumn, ok bool) {
	var bits uint
	switch f.Type {
	case gomysql.MYSQL_TYPE_TINY:
		bits = 8
	case gomysql.MYSQL_TYPE_SHORT:
		bits = 16
	case gomysql.MYSQL_TYPE_INT24:
		bits = 24
	case gomysql.MYSQL_TYPE_LONG:
		bits = 32
	case gomysql.MYSQL_TYPE_LONGLONG:
		bits = 64
	default:
		return stockColumn{}, false
	}
	if f.Flag&gomysql.UNSIGNED_FLAG != 0 {
		if bits == 64 {
			return stockColumn{hi: math.MaxUint64, unsigned: true}, true
		}
		return stockColumn{hi: 1<<bits - 1, unsigned: true}, true
	}
	return stockColumn{lo: -1 << (bits - 1), hi: 1<<(bits-1) - 1}, true
}

// fastPlan is the fast path's evaluation of one batch: what executing its
// requests one by one would report and leave behind. Stock values are
// int64, holding the bits of a uint64 on an UNSIGNED column. The
// executor owns one and reuses its slices; planFast resets it.
type fastPlan struct {
	// outs[i] is request i's outcome; zero when it matched nothing.
	outs []Outcome
	// after[i] is the stock of request i's row after it (0 when the row
	// does not exist).
	after []int64
	// final[j] is row j's stock after the batch, changed[j] whether a
	// granted request changed it.
	final   []int64
	changed []bool
	// granted counts the requests that matched their row.
	granted int
	// unsigned: the stock column is UNSIGNED (how to print stock values).
	unsigned bool
}

// reset sizes p for n requests on rows rows.
func (p *fastPlan) reset(n, rows int, unsigned bool) {
	p.outs = append(p.outs[:0], make([]Outcome, n)...)
	p.after = append(p.after[:0], make([]int64, n)...)
	p.final = append(p.final[:0], make([]int64, rows)...)
	p.changed = append(p.changed[:0], make([]bool, rows)...)
	p.granted, p.unsigned = 0, unsigned
}

// planFast evaluates reqs in arrival order as the server would execute
// them one by one, each on its own row: keyOf[i] is request i's row,
// stocks[j] row j's locked stock (int64 on a signed column, uint64 on an
// UNSIGNED one; nil: no such row, its requests match nothing) and col the
// stock column's type. It fills p and returns true; it returns false, p
// then meaningless, when the server must evaluate the batch: a request
// the fast path cannot evaluate exactly (see fastOperands), a stock value
// of another type than the column's, or any request that would raise an
// error or leave the column's range. It depends on nothing but its
// arguments and writes nothing but p.
func planFast(p *fastPlan, reqs []Request, keyOf []int, stocks []any, col stockColumn) bool {
	p.reset(len(reqs), len(stocks), col.unsigned)
	for j, s := range stocks {
		switch s := s.(type) {
		case nil:
		case int64:
			if col.unsigned {
				return false
			}
			p.final[j] = s
		case uint64:
			if !col.unsigned {
				return false
			}
			p.final[j] = int64(s)
		default:
			return false
		}
	}
	if col.unsigned {
		return planIn(p, reqs, keyOf, stocks, uint64(0), col.hi)
	}
	return planIn(p, reqs, keyOf, stocks, col.lo, int64(col.hi))
}

// planIn runs planFast's evaluation in the server's BIGINT (int64) or
// BIGINT UNSIGNED (uint64) arithmetic on a column of range [lo, hi].
// Operands are non-negative, so a subtraction wrapped iff its result
// exceeds v, where the server raises 1690 (out of range); an addition
// wrapped iff its result is below v.
func planIn[T int64 | uint64](p *fastPlan, reqs []Request, keyOf []int, stocks []any, lo, hi T) bool {
	for i := range reqs {
		r := &reqs[i]
		a64, g64, ok := fastOperands(r, p.unsigned)
		if !ok {
			return false
		}
		j := keyOf[i]
		if stocks[j] == nil {
			continue // no row: matched nothing
		}
		v := T(p.final[j])
		a, g := T(a64), T(g64)
		pass := true
		switch r.Stmt.Guard {
		case GuardAtLeast:
			pass = v >= g
		case GuardDiffNonNegative:
			d := v - g
			if d > v {
				return false // stock - e out of range: the server raises 1690
			}
			pass = d >= 0
		case GuardPositive:
			pass = v > 0
		}
		if pass {
			if r.Stmt.Op == Decrement {
				n := v - a
				if n > v || n < lo {
					return false
				}
				v = n
			} else {
				n := v + a
				if n < v || n > hi {
					return false
				}
				v = n
			}
			p.outs[i] = Outcome{Matched: 1, Changed: b2u(a != 0)}
			p.changed[j] = p.changed[j] || a != 0
			p.granted++
		}
		p.final[j] = int64(v)
		p.after[i] = int64(v)
	}
	return true
}

// b2u is 1 for true, 0 for false.
func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}
