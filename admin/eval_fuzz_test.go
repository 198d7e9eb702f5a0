package admin

import (
	"testing"

	"github.com/pingcap/tidb/pkg/parser"
	"github.com/pingcap/tidb/pkg/parser/ast"
)

// FuzzAdminWhere: any statement the admin port's parser accepts, when it
// is a SELECT, UPDATE or DELETE with a WHERE clause, is evaluated over a
// table of mixed values (integers, floats, text, NULL) without panicking;
// an expression the evaluator does not support is an error, and a row
// kept is one the clause is true for. Seeds: the queries below and
// testdata/fuzz/FuzzAdminWhere.
func FuzzAdminWhere(f *testing.F) {
	for _, q := range []string{
		"SELECT * FROM stats_hot_keys WHERE table_name LIKE 'inv%' AND requests > 3",
		"SELECT * FROM t WHERE a IN (1, 2.5, 'x') OR b IS NULL",
		"SELECT * FROM t WHERE NOT (a BETWEEN 1 AND 2) AND c <> 'y'",
		"DELETE FROM hot_rules WHERE schema_name LIKE 't\\_%' ESCAPE '\\\\'",
		"UPDATE hot_rules SET enabled = 0 WHERE a = b AND c >= -9223372036854775808",
		"SELECT * FROM t WHERE a / 0 = 1 OR a % 2 = 1 OR -a < 'z'",
	} {
		f.Add(q)
	}
	t0 := &table{cols: []string{"a", "b", "c"}, rows: [][]any{
		{int64(1), "x", nil},
		{2.5, "", int64(-3)},
		{int64(-9223372036854775808), "LIKE%_\\", "y"},
		{nil, nil, 1e308},
	}}
	f.Fuzz(func(t *testing.T, q string) {
		stmt, err := parser.New().ParseOneStmt(q, "", "")
		if err != nil {
			return
		}
		var where ast.ExprNode
		switch n := stmt.(type) {
		case *ast.SelectStmt:
			where = n.Where
		case *ast.UpdateStmt:
			where = n.Where
		case *ast.DeleteStmt:
			where = n.Where
		}
		if where == nil {
			return
		}
		ev := evaluator{t: t0, clause: "where clause"}
		if ev.checkColumns(where) != nil {
			return
		}
		kept, err := ev.filter(t0.rows, where)
		if err != nil {
			return
		}
		for _, row := range kept {
			if v, err := ev.eval(where, row); err != nil || v == nil || !truth(v) {
				t.Fatalf("%q kept row %v: the clause is %v, %v", q, row, v, err)
			}
		}
	})
}
