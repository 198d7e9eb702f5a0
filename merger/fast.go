package merger

import (
	"math"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/hotrow/hotrow/schema"
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

func fastInt(v any, unsigned bool) (int64, bool) {
	switch v := v.(type) {
	case int64:
		return v, v >= 0
	case uint64:
		return int64(v), unsigned && v <= math.MaxInt64
	}
	return 0, false
}

// integerRange is the range of an integer column from its result field.
func integerRange(f *gomysql.Field) (lo int64, hi uint64, unsigned, ok bool) {
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
		return 0, 0, false, false
	}
	if f.Flag&gomysql.UNSIGNED_FLAG != 0 {
		if bits == 64 {
			return 0, math.MaxUint64, true, true
		}
		return 0, 1<<bits - 1, true, true
	}
	return -1 << (bits - 1), 1<<(bits-1) - 1, false, true
}

// simulate evaluates the batch's requests in arrival order on the locked
// stock values, each on its own row's value, filling x.outs, x.after,
// x.final and x.changed. It returns false when any request would raise
// an error or leave the column's range (the server must then evaluate it:
// general path).
func (x *executor) simulate(batch []*waiter, t schema.Table, f *gomysql.Field) bool {
	if f == nil {
		// No row locked: every request matches nothing.
		x.after = append(x.after[:0], make([]int64, len(batch))...)
		x.final, x.changed = x.final[:0], x.changed[:0]
		for range x.keys {
			x.final, x.changed = append(x.final, 0), append(x.changed, false)
		}
		return true
	}
	lo, hi, unsigned, ok := integerRange(f)
	if !ok || unsigned != t.Unsigned {
		x.m.tables.Forget(t.Schema, t.Name)
		return false
	}
	x.after = x.after[:0]
	x.final, x.changed = x.final[:0], x.changed[:0]
	for j := range x.keys {
		var v int64
		if r := x.rowOf[j]; r >= 0 {
			switch s := x.locked[r].stock.(type) {
			case uint64:
				if !unsigned {
					return false
				}
				v = int64(s)
			case int64:
				if unsigned {
					return false
				}
				v = s
			default:
				return false
			}
		}
		x.final, x.changed = append(x.final, v), append(x.changed, false)
	}
	if unsigned {
		return simulateIn(x, batch, uint64(0), hi)
	}
	return simulateIn(x, batch, lo, int64(hi))
}

// simulateIn runs the batch in the server's BIGINT (int64) or BIGINT
// UNSIGNED (uint64) arithmetic on a column of range [lo, hi], each
// request on x.final of its key. Operands are non-negative, so a
// subtraction wrapped iff its result exceeds v, where the server raises
// 1690 (out of range) and the fast path gives up.
func simulateIn[T int64 | uint64](x *executor, batch []*waiter, lo, hi T) bool {
	for i, w := range batch {
		j := x.keyOf[i]
		if x.rowOf[j] < 0 {
			x.after = append(x.after, 0) // no row: matched nothing
			continue
		}
		v := T(x.final[j])
		a64, g64, _ := fastOperands(&w.req, true)
		a, g := T(a64), T(g64)
		pass := true
		switch w.req.Stmt.Guard {
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
			if w.req.Stmt.Op == Decrement {
				r := v - a
				if r > v || r < lo {
					return false
				}
				v = r
			} else {
				r := v + a
				if r < v || r > hi {
					return false
				}
				v = r
			}
			x.outs[i] = Outcome{Matched: 1, Changed: b2u(a != 0)}
			x.changed[j] = x.changed[j] || a != 0
		}
		x.final[j] = int64(v)
		x.after = append(x.after, int64(v))
	}
	return true
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}
