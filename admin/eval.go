package admin

import (
	"cmp"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/pingcap/tidb/pkg/parser/ast"
	"github.com/pingcap/tidb/pkg/parser/opcode"
	driver "github.com/pingcap/tidb/pkg/parser/test_driver"
)

// table is a virtual table: column names and rows of int64, uint64,
// float64, string or nil values.
type table struct {
	cols []string
	rows [][]any
}

// colIndex returns the index of column name (case-insensitive).
func (t *table) colIndex(name string) int {
	for i, c := range t.cols {
		if strings.EqualFold(c, name) {
			return i
		}
	}
	return -1
}

// evaluator evaluates the simple expressions the admin port supports
// against one row of a table (nil for constants).
type evaluator struct {
	t      *table
	clause string // for errors: "where clause", "field list" ...
}

func (ev evaluator) eval(e ast.ExprNode, row []any) (any, error) {
	switch x := e.(type) {
	case *driver.ValueExpr:
		return literal(x), nil
	case *ast.ColumnNameExpr:
		i := -1
		if ev.t != nil {
			i = ev.t.colIndex(x.Name.Name.O)
		}
		if i < 0 || row == nil {
			return nil, gomysql.NewError(gomysql.ER_BAD_FIELD_ERROR, fmt.Sprintf("Unknown column '%s' in '%s'", x.Name.Name.O, ev.clause))
		}
		return row[i], nil
	case *ast.ParenthesesExpr:
		return ev.eval(x.Expr, row)
	case *ast.UnaryOperationExpr:
		v, err := ev.eval(x.V, row)
		if err != nil || v == nil {
			return nil, err
		}
		switch x.Op {
		case opcode.Not, opcode.Not2:
			return boolInt(!truth(v)), nil
		case opcode.Minus:
			f, ok := number(v)
			if !ok {
				return nil, nil
			}
			if i, isInt := v.(int64); isInt {
				return -i, nil
			}
			return -f, nil
		}
	case *ast.BinaryOperationExpr:
		return ev.binary(x, row)
	case *ast.IsNullExpr:
		v, err := ev.eval(x.Expr, row)
		if err != nil {
			return nil, err
		}
		return boolInt((v == nil) != x.Not), nil
	case *ast.PatternInExpr:
		if x.Sel != nil {
			break
		}
		v, err := ev.eval(x.Expr, row)
		if err != nil || v == nil {
			return nil, err
		}
		in := false
		for _, item := range x.List {
			w, err := ev.eval(item, row)
			if err != nil {
				return nil, err
			}
			if w != nil && compare(v, w) == 0 {
				in = true
				break
			}
		}
		return boolInt(in != x.Not), nil
	case *ast.PatternLikeOrIlikeExpr:
		v, err := ev.eval(x.Expr, row)
		if err != nil || v == nil {
			return nil, err
		}
		p, err := ev.eval(x.Pattern, row)
		if err != nil || p == nil {
			return nil, err
		}
		re, err := likeRegexp(text(p))
		if err != nil {
			return nil, err
		}
		return boolInt(re.MatchString(text(v)) != x.Not), nil
	case *ast.BetweenExpr:
		v, err := ev.eval(x.Expr, row)
		if err != nil || v == nil {
			return nil, err
		}
		lo, err := ev.eval(x.Left, row)
		if err != nil {
			return nil, err
		}
		hi, err := ev.eval(x.Right, row)
		if err != nil {
			return nil, err
		}
		if lo == nil || hi == nil {
			return nil, nil
		}
		return boolInt((compare(v, lo) >= 0 && compare(v, hi) <= 0) != x.Not), nil
	}
	return nil, gomysql.NewError(gomysql.ER_NOT_SUPPORTED_YET, fmt.Sprintf(
		"hotrow admin: unsupported expression in %s (supported: columns, literals, = <> < <= > >=, AND, OR, NOT, IN, LIKE, BETWEEN, IS NULL)", ev.clause))
}

func (ev evaluator) binary(x *ast.BinaryOperationExpr, row []any) (any, error) {
	l, err := ev.eval(x.L, row)
	if err != nil {
		return nil, err
	}
	r, err := ev.eval(x.R, row)
	if err != nil {
		return nil, err
	}
	switch x.Op {
	case opcode.LogicAnd:
		if l != nil && !truth(l) || r != nil && !truth(r) {
			return int64(0), nil
		}
		if l == nil || r == nil {
			return nil, nil
		}
		return int64(1), nil
	case opcode.LogicOr:
		if l != nil && truth(l) || r != nil && truth(r) {
			return int64(1), nil
		}
		if l == nil || r == nil {
			return nil, nil
		}
		return int64(0), nil
	case opcode.NullEQ:
		if l == nil || r == nil {
			return boolInt(l == nil && r == nil), nil
		}
		return boolInt(compare(l, r) == 0), nil
	}
	if l == nil || r == nil {
		return nil, nil
	}
	c := compare(l, r)
	switch x.Op {
	case opcode.EQ:
		return boolInt(c == 0), nil
	case opcode.NE:
		return boolInt(c != 0), nil
	case opcode.LT:
		return boolInt(c < 0), nil
	case opcode.LE:
		return boolInt(c <= 0), nil
	case opcode.GT:
		return boolInt(c > 0), nil
	case opcode.GE:
		return boolInt(c >= 0), nil
	case opcode.Plus, opcode.Minus, opcode.Mul:
		a, okA := number(l)
		b, okB := number(r)
		if !okA || !okB {
			return nil, nil
		}
		ai, intA := l.(int64)
		bi, intB := r.(int64)
		switch {
		case x.Op == opcode.Plus && intA && intB:
			return ai + bi, nil
		case x.Op == opcode.Minus && intA && intB:
			return ai - bi, nil
		case x.Op == opcode.Mul && intA && intB:
			return ai * bi, nil
		case x.Op == opcode.Plus:
			return a + b, nil
		case x.Op == opcode.Minus:
			return a - b, nil
		default:
			return a * b, nil
		}
	}
	return nil, gomysql.NewError(gomysql.ER_NOT_SUPPORTED_YET, fmt.Sprintf("hotrow admin: unsupported operator %s in %s", x.Op, ev.clause))
}

// literal converts a parsed literal to int64, uint64, float64, string or nil.
func literal(x *driver.ValueExpr) any {
	switch x.Kind() {
	case driver.KindNull:
		return nil
	case driver.KindInt64:
		return x.GetInt64()
	case driver.KindUint64:
		return x.GetUint64()
	case driver.KindFloat32, driver.KindFloat64:
		return x.GetFloat64()
	case driver.KindMysqlDecimal:
		f, _ := strconv.ParseFloat(x.GetMysqlDecimal().String(), 64)
		return f
	case driver.KindString, driver.KindBytes:
		return x.GetString()
	}
	return fmt.Sprint(x.GetValue())
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// number returns v as a float64 when it is a number or a numeric string.
func number(v any) (float64, bool) {
	switch n := v.(type) {
	case int64:
		return float64(n), true
	case uint64:
		return float64(n), true
	case float64:
		return n, true
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(n), 64)
		return f, err == nil
	}
	return 0, false
}

func truth(v any) bool {
	f, ok := number(v)
	return ok && f != 0
}

func text(v any) string {
	switch s := v.(type) {
	case string:
		return s
	case nil:
		return ""
	case float64:
		return strconv.FormatFloat(s, 'f', -1, 64)
	}
	return fmt.Sprint(v)
}

// compare orders two non-NULL values: numerically when either is a
// number and both read as numbers, else as strings, case-insensitively
// (as MySQL's default collations).
func compare(a, b any) int {
	_, aStr := a.(string)
	_, bStr := b.(string)
	if !aStr || !bStr {
		x, okA := number(a)
		y, okB := number(b)
		if okA && okB {
			return cmp.Compare(x, y)
		}
	}
	return strings.Compare(strings.ToLower(text(a)), strings.ToLower(text(b)))
}

// likeRegexp turns a LIKE pattern (% _ and \ escapes) into a regexp.
func likeRegexp(p string) (*regexp.Regexp, error) {
	var b strings.Builder
	b.WriteString("(?is)^")
	for i := 0; i < len(p); i++ {
		switch c := p[i]; c {
		case '%':
			b.WriteString(".*")
		case '_':
			b.WriteString(".")
		case '\\':
			if i+1 < len(p) {
				i++
				b.WriteString(regexp.QuoteMeta(p[i : i+1]))
			}
		default:
			b.WriteString(regexp.QuoteMeta(p[i : i+1]))
		}
	}
	b.WriteString("$")
	return regexp.Compile(b.String())
}

// filter returns the rows where is true (all when where is nil).
func (ev evaluator) filter(rows [][]any, where ast.ExprNode) ([][]any, error) {
	if where == nil {
		return rows, nil
	}
	var out [][]any
	for _, row := range rows {
		v, err := ev.eval(where, row)
		if err != nil {
			return nil, err
		}
		if v != nil && truth(v) {
			out = append(out, row)
		}
	}
	return out, nil
}

// order sorts rows by ORDER BY items (columns, or positions 1..n of the
// select list's columns idx).
func (ev evaluator) order(rows [][]any, by *ast.OrderByClause, idx []int) error {
	if by == nil {
		return nil
	}
	type key struct {
		col  int
		desc bool
	}
	var keys []key
	for _, item := range by.Items {
		switch e := item.Expr.(type) {
		case *ast.ColumnNameExpr:
			i := ev.t.colIndex(e.Name.Name.O)
			if i < 0 {
				return gomysql.NewError(gomysql.ER_BAD_FIELD_ERROR, fmt.Sprintf("Unknown column '%s' in 'order clause'", e.Name.Name.O))
			}
			keys = append(keys, key{i, item.Desc})
		case *ast.PositionExpr:
			if e.N < 1 || e.N > len(idx) {
				return gomysql.NewError(gomysql.ER_BAD_FIELD_ERROR, fmt.Sprintf("Unknown column '%d' in 'order clause'", e.N))
			}
			keys = append(keys, key{idx[e.N-1], item.Desc})
		default:
			return gomysql.NewError(gomysql.ER_NOT_SUPPORTED_YET, "hotrow admin: ORDER BY takes column names or positions")
		}
	}
	slices.SortStableFunc(rows, func(a, b []any) int {
		for _, k := range keys {
			x, y := a[k.col], b[k.col]
			var c int
			switch {
			case x == nil && y == nil:
			case x == nil:
				c = -1
			case y == nil:
				c = 1
			default:
				c = compare(x, y)
			}
			if k.desc {
				c = -c
			}
			if c != 0 {
				return c
			}
		}
		return 0
	})
	return nil
}

// limit applies LIMIT [offset,] count.
func (ev evaluator) limit(rows [][]any, l *ast.Limit) ([][]any, error) {
	if l == nil {
		return rows, nil
	}
	n := func(e ast.ExprNode) (int, error) {
		if e == nil {
			return 0, nil
		}
		v, err := evaluator{clause: "limit clause"}.eval(e, nil)
		if err != nil {
			return 0, err
		}
		f, ok := number(v)
		if !ok || f < 0 {
			return 0, gomysql.NewError(gomysql.ER_WRONG_ARGUMENTS, "hotrow admin: LIMIT takes non-negative integers")
		}
		return int(min(f, math.MaxInt32)), nil
	}
	off, err := n(l.Offset)
	if err != nil {
		return nil, err
	}
	cnt, err := n(l.Count)
	if err != nil {
		return nil, err
	}
	off = min(off, len(rows))
	return rows[off:min(off+cnt, len(rows))], nil
}

// checkColumns fails with 1054 when e names a column t does not have,
// whether or not any row is evaluated.
func (ev evaluator) checkColumns(e ast.ExprNode) error {
	if e == nil {
		return nil
	}
	c := columnChecker{t: ev.t}
	e.Accept(&c)
	if c.missing != "" {
		return gomysql.NewError(gomysql.ER_BAD_FIELD_ERROR, fmt.Sprintf("Unknown column '%s' in '%s'", c.missing, ev.clause))
	}
	return nil
}

// columnChecker finds the first column name its table lacks.
type columnChecker struct {
	t       *table
	missing string
}

func (c *columnChecker) Enter(n ast.Node) (ast.Node, bool) {
	if col, ok := n.(*ast.ColumnNameExpr); ok && c.missing == "" && c.t.colIndex(col.Name.Name.O) < 0 {
		c.missing = col.Name.Name.O
	}
	return n, false
}

func (c *columnChecker) Leave(n ast.Node) (ast.Node, bool) { return n, true }
