package admin

import (
	"context"
	"fmt"
	"strings"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/pingcap/tidb/pkg/parser/ast"

	"github.com/hotrow/hotrow/merger"
)

// rulesCols are hot_rules' columns, in order.
var rulesCols = []string{"schema_name", "table_name", "key_column", "stock_column", "enabled"}

// rulesTable is memory's hot_rules.
func (s *Server) rulesTable() *table {
	t := &table{cols: rulesCols}
	for _, r := range s.store.snapshot() {
		t.rows = append(t.rows, ruleValues(r))
	}
	return t
}

func ruleValues(r ruleRow) []any {
	return []any{r.Schema, r.Table, r.Key, r.Stock, boolInt(r.Enabled)}
}

// rowRule reads a hot_rules row back, checking its values.
func rowRule(v []any) (ruleRow, error) {
	var r ruleRow
	for i, p := range []*string{&r.Schema, &r.Table, &r.Key, &r.Stock} {
		str, isStr := v[i].(string)
		if !isStr || str == "" {
			return r, gomysql.NewError(gomysql.ER_BAD_NULL_ERROR, fmt.Sprintf("Column '%s' must be a non-empty string", rulesCols[i]))
		}
		*p = str
	}
	switch e, _ := number(v[4]); {
	case v[4] == nil || e != 0 && e != 1:
		return r, gomysql.NewError(gomysql.ER_WRONG_ARGUMENTS, "Column 'enabled' must be 0 or 1")
	default:
		r.Enabled = e == 1
	}
	return r, nil
}

// rulesTarget checks that a DML statement names hot_rules.
func rulesTarget(refs *ast.TableRefsClause) error {
	if refs == nil || refs.TableRefs == nil || refs.TableRefs.Right != nil {
		return gomysql.NewError(gomysql.ER_NOT_SUPPORTED_YET, "hotrow admin: only hot_rules can be changed")
	}
	ts, isSrc := refs.TableRefs.Left.(*ast.TableSource)
	if !isSrc {
		return gomysql.NewError(gomysql.ER_NOT_SUPPORTED_YET, "hotrow admin: only hot_rules can be changed")
	}
	tn, isName := ts.Source.(*ast.TableName)
	if !isName || !strings.EqualFold(tn.Name.O, RulesTable) {
		name := ""
		if isName {
			name = tn.Name.O
		}
		return gomysql.NewError(gomysql.ER_NOT_SUPPORTED_YET, fmt.Sprintf("hotrow admin: table '%s' is read-only; only hot_rules can be changed", name))
	}
	return nil
}

func duplicate(r merger.Rule) error {
	return gomysql.NewDefaultError(gomysql.ER_DUP_ENTRY, r.Schema+"-"+r.Table, "PRIMARY")
}

func colIndex(name string) (int, error) {
	t := table{cols: rulesCols}
	i := t.colIndex(name)
	if i < 0 {
		return 0, gomysql.NewError(gomysql.ER_BAD_FIELD_ERROR, fmt.Sprintf("Unknown column '%s' in 'field list'", name))
	}
	return i, nil
}

// insertRules runs INSERT [or REPLACE] INTO hot_rules on memory. Each new
// rule is validated against the table's metadata first.
func (s *Server) insertRules(ctx context.Context, n *ast.InsertStmt) (*gomysql.Result, error) {
	if err := rulesTarget(n.Table); err != nil {
		return nil, err
	}
	if n.Select != nil || len(n.OnDuplicate) > 0 {
		return nil, gomysql.NewError(gomysql.ER_NOT_SUPPORTED_YET, "hotrow admin: INSERT INTO hot_rules takes VALUES or SET")
	}
	ev := evaluator{clause: "field list"}
	var cols []int
	for _, c := range n.Columns { // INSERT ... SET parses into Columns and Lists too
		i, err := colIndex(c.Name.O)
		if err != nil {
			return nil, err
		}
		cols = append(cols, i)
	}
	if len(cols) == 0 {
		cols = []int{0, 1, 2, 3, 4}
	}
	lists := n.Lists
	var rows []ruleRow
	for _, list := range lists {
		if len(list) != len(cols) {
			return nil, gomysql.NewDefaultError(gomysql.ER_WRONG_VALUE_COUNT_ON_ROW, len(rows)+1)
		}
		v := []any{nil, nil, nil, nil, int64(1)}
		for k, e := range list {
			x, err := ev.eval(e, nil)
			if err != nil {
				return nil, err
			}
			v[cols[k]] = x
		}
		r, err := rowRule(v)
		if err != nil {
			return nil, err
		}
		if err := s.store.validate(ctx, r.Rule); err != nil {
			return nil, err
		}
		rows = append(rows, r)
	}
	var affected uint64
	err := s.store.edit(func(memory []ruleRow) ([]ruleRow, error) {
	next:
		for _, r := range rows {
			for i, have := range memory {
				if have.Schema == r.Schema && have.Table == r.Table {
					if !n.IsReplace {
						return nil, duplicate(r.Rule)
					}
					memory[i] = r
					affected += 2
					continue next
				}
			}
			memory = append(memory, r)
			affected++
		}
		return memory, nil
	})
	if err != nil {
		return nil, err
	}
	return okResult(affected), nil
}

// updateRules runs UPDATE hot_rules SET ... [WHERE ...] on memory. A
// changed rule that is enabled is validated.
func (s *Server) updateRules(ctx context.Context, n *ast.UpdateStmt) (*gomysql.Result, error) {
	if err := rulesTarget(n.TableRefs); err != nil {
		return nil, err
	}
	if n.Order != nil || n.Limit != nil || n.MultipleTable {
		return nil, gomysql.NewError(gomysql.ER_NOT_SUPPORTED_YET, "hotrow admin: UPDATE hot_rules takes SET and WHERE only")
	}
	var cols []int
	for _, a := range n.List {
		i, err := colIndex(a.Column.Name.O)
		if err != nil {
			return nil, err
		}
		cols = append(cols, i)
	}
	t := &table{cols: rulesCols}
	if err := (evaluator{t: t, clause: "where clause"}).checkColumns(n.Where); err != nil {
		return nil, err
	}
	var affected, matched uint64
	err := s.store.edit(func(memory []ruleRow) ([]ruleRow, error) {
		for i, r := range memory {
			row := ruleValues(r)
			ev := evaluator{t: t, clause: "where clause"}
			if n.Where != nil {
				v, err := ev.eval(n.Where, row)
				if err != nil {
					return nil, err
				}
				if v == nil || !truth(v) {
					continue
				}
			}
			matched++
			next := append([]any(nil), row...)
			ev.clause = "field list"
			for k, a := range n.List {
				v, err := ev.eval(a.Expr, row)
				if err != nil {
					return nil, err
				}
				next[cols[k]] = v
			}
			nr, err := rowRule(next)
			if err != nil {
				return nil, err
			}
			if nr == r {
				continue
			}
			for j, have := range memory {
				if j != i && have.Schema == nr.Schema && have.Table == nr.Table {
					return nil, duplicate(nr.Rule)
				}
			}
			if nr.Enabled && nr.Rule != r.Rule || nr.Enabled && !r.Enabled {
				if err := s.store.validate(ctx, nr.Rule); err != nil {
					return nil, err
				}
			}
			memory[i] = nr
			affected++
		}
		return memory, nil
	})
	if err != nil {
		return nil, err
	}
	res := okResult(affected)
	res.StatusMessage = fmt.Sprintf("Rows matched: %d  Changed: %d  Warnings: 0", matched, affected)
	return res, nil
}

// deleteRules runs DELETE FROM hot_rules [WHERE ...] on memory.
func (s *Server) deleteRules(n *ast.DeleteStmt) (*gomysql.Result, error) {
	if err := rulesTarget(n.TableRefs); err != nil {
		return nil, err
	}
	if n.Order != nil || n.Limit != nil || n.IsMultiTable {
		return nil, gomysql.NewError(gomysql.ER_NOT_SUPPORTED_YET, "hotrow admin: DELETE FROM hot_rules takes WHERE only")
	}
	t := &table{cols: rulesCols}
	ev := evaluator{t: t, clause: "where clause"}
	if err := ev.checkColumns(n.Where); err != nil {
		return nil, err
	}
	var affected uint64
	err := s.store.edit(func(memory []ruleRow) ([]ruleRow, error) {
		kept := memory[:0]
		for _, r := range memory {
			if n.Where != nil {
				v, err := ev.eval(n.Where, ruleValues(r))
				if err != nil {
					return nil, err
				}
				if v == nil || !truth(v) {
					kept = append(kept, r)
					continue
				}
			}
			affected++
		}
		return kept, nil
	})
	if err != nil {
		return nil, err
	}
	return okResult(affected), nil
}
