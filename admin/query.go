package admin

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/server"
	"github.com/pingcap/tidb/pkg/parser"
	"github.com/pingcap/tidb/pkg/parser/ast"
	driver "github.com/pingcap/tidb/pkg/parser/test_driver"

	"github.com/hotrow/hotrow/merger"
)

// supported is named in the error for a statement the admin port does
// not understand.
const supported = "SELECT ... FROM hot_rules | runtime_hot_rules | stats_hot_keys | stats_hot_tables | stats_batches | stats_sessions" +
	" | stats_hot_candidates | stats_not_merged | stats_pass_through" +
	" [WHERE] [ORDER BY] [LIMIT]; INSERT INTO / UPDATE / DELETE FROM hot_rules; LOAD HOT RULES TO RUNTIME | FROM DISK;" +
	" SAVE HOT RULES TO DISK; SHOW HOTROW STATUS | VARIABLES; SHOW TABLES; SET hotrow.<variable> = <value>;" +
	" PAUSE MERGE FOR 'db.table'; RESUME MERGE FOR 'db.table'; KILL SESSION <id>"

// queryTimeout bounds one admin statement's work on the database.
const queryTimeout = 30 * time.Second

// handler serves one admin connection's commands (go-mysql's
// server.Handler). Prepared statements are not supported.
type handler struct {
	server.EmptyHandler
	s *Server
}

// UseDB accepts any database: the admin tables have none.
func (h *handler) UseDB(string) error { return nil }

// HandleQuery runs one admin statement. Errors are *gomysql.MyError.
func (h *handler) HandleQuery(query string) (*gomysql.Result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
	defer cancel()
	res, err := h.s.query(ctx, query)
	if err == nil && changes(query) {
		h.s.log.Info("admin statement", "query", query)
	}
	if err != nil {
		var my *gomysql.MyError
		if errors.As(err, &my) {
			return nil, my
		}
		return nil, gomysql.NewError(gomysql.ER_UNKNOWN_ERROR, err.Error())
	}
	return res, nil
}

// HandleStmtPrepare refuses prepared statements.
func (h *handler) HandleStmtPrepare(string) (int, int, any, error) {
	return 0, 0, nil, gomysql.NewError(gomysql.ER_UNSUPPORTED_PS, "hotrow admin: prepared statements are not supported; use text queries")
}

// reChange matches the statements that change something, which are
// logged.
var reChange = regexp.MustCompile(`(?i)^\s*(INSERT|REPLACE|UPDATE|DELETE|LOAD|SAVE|PAUSE|RESUME|KILL|SET\s+(GLOBAL\s+)?hotrow\.)`)

func changes(q string) bool { return reChange.MatchString(q) }

var (
	reLoad   = regexp.MustCompile(`(?i)^LOAD\s+HOT\s+RULES\s+(TO\s+RUNTIME|FROM\s+DISK|TO\s+MEMORY|FROM\s+MEMORY)$`)
	reSave   = regexp.MustCompile(`(?i)^SAVE\s+HOT\s+RULES\s+(TO\s+DISK|FROM\s+MEMORY)$`)
	reShow   = regexp.MustCompile(`(?i)^SHOW\s+HOTROW\s+(STATUS|VARIABLES)$`)
	reTables = regexp.MustCompile(`(?i)^SHOW\s+(FULL\s+)?TABLES$`)
	reSet    = regexp.MustCompile(`(?i)^SET\s+(?:GLOBAL\s+)?hotrow\.(\w+)\s*=\s*(.+)$`)
	rePause  = regexp.MustCompile(`(?i)^(PAUSE|RESUME)\s+MERGE\s+FOR\s+'([^'.]+)\.([^']+)'$`)
	reKill   = regexp.MustCompile(`(?i)^KILL\s+SESSION\s+(\d+)$`)
)

// okResult is an OK packet's result with affected rows.
func okResult(affected uint64) *gomysql.Result {
	return &gomysql.Result{AffectedRows: affected, Status: gomysql.SERVER_STATUS_AUTOCOMMIT}
}

// resultset is a text result set of t.
func resultset(t *table) (*gomysql.Result, error) {
	rs, err := gomysql.BuildSimpleTextResultset(t.cols, t.rows)
	if err != nil {
		return nil, err
	}
	return &gomysql.Result{Status: gomysql.SERVER_STATUS_AUTOCOMMIT, Resultset: rs}, nil
}

// query runs one admin statement.
func (s *Server) query(ctx context.Context, q string) (*gomysql.Result, error) {
	q = strings.TrimSpace(q)
	q = strings.TrimSpace(strings.TrimRight(q, "; \t\r\n"))
	switch {
	case reLoad.MatchString(q):
		if strings.HasPrefix(strings.ToUpper(reLoad.FindStringSubmatch(q)[1]), "TO R") {
			return okResult(0), s.store.loadToRuntime(ctx)
		}
		return okResult(0), s.store.loadFromDisk(ctx)
	case reSave.MatchString(q):
		return okResult(0), s.store.saveToDisk(ctx)
	case reShow.MatchString(q):
		if strings.EqualFold(reShow.FindStringSubmatch(q)[1], "STATUS") {
			return resultset(s.statusTable())
		}
		return resultset(s.variablesTable())
	case reTables.MatchString(q):
		t := &table{cols: []string{"Tables_in_hotrow_admin"}}
		for _, name := range tableNames {
			t.rows = append(t.rows, []any{name})
		}
		return resultset(t)
	case reSet.MatchString(q):
		m := reSet.FindStringSubmatch(q)
		return okResult(0), s.setVariable(strings.ToLower(m[1]), strings.Trim(strings.TrimSpace(m[2]), "'\""))
	case rePause.MatchString(q):
		m := rePause.FindStringSubmatch(q)
		return okResult(0), s.pause(strings.EqualFold(m[1], "PAUSE"), merger.TableName{Schema: m[2], Table: m[3]})
	case reKill.MatchString(q):
		id, err := strconv.ParseUint(reKill.FindStringSubmatch(q)[1], 10, 32)
		if err != nil || s.px == nil || !s.px.KillSession(uint32(id)) {
			return nil, gomysql.NewDefaultError(gomysql.ER_NO_SUCH_THREAD, id)
		}
		s.log.Info("session killed from the admin port", "conn_id", id)
		return okResult(0), nil
	}
	p := parser.New()
	node, err := p.ParseOneStmt(q, "", "")
	if err != nil {
		return nil, unsupported(q)
	}
	switch n := node.(type) {
	case *ast.SelectStmt:
		return s.selectStmt(n)
	case *ast.InsertStmt:
		return s.insertRules(ctx, n)
	case *ast.UpdateStmt:
		return s.updateRules(ctx, n)
	case *ast.DeleteStmt:
		return s.deleteRules(n)
	case *ast.SetStmt:
		// Clients set session variables (names, autocommit) on connect.
		return okResult(0), nil
	case *ast.BeginStmt, *ast.CommitStmt, *ast.RollbackStmt:
		return okResult(0), nil
	}
	return nil, unsupported(q)
}

func unsupported(q string) error {
	near := q
	if len(near) > 40 {
		near = near[:40]
	}
	return gomysql.NewError(gomysql.ER_PARSE_ERROR, fmt.Sprintf(
		"hotrow admin: statement not supported near '%s'; supported: %s", near, supported))
}

// pause pauses or resumes merging for a table that has a rule in force.
func (s *Server) pause(pause bool, t merger.TableName) error {
	found := false
	for _, r := range s.rules.Rules() {
		if r.Schema == t.Schema && r.Table == t.Table {
			found = true
		}
	}
	if !found {
		return gomysql.NewError(gomysql.ER_WRONG_ARGUMENTS, fmt.Sprintf("hotrow admin: no hot rule in runtime for '%s'", t))
	}
	if pause {
		s.rules.Pause(t)
		s.log.Info("merging paused: statements pass through", "table", t.String())
	} else {
		s.rules.Resume(t)
		s.log.Info("merging resumed", "table", t.String())
	}
	return nil
}

// tableNames are the admin tables, in SHOW TABLES order.
var tableNames = []string{"hot_rules", "runtime_hot_rules", "stats_batches", "stats_hot_candidates", "stats_hot_keys",
	"stats_hot_tables", "stats_not_merged", "stats_pass_through", "stats_sessions"}

// virtualTable builds the named admin table, or fails with 1146.
func (s *Server) virtualTable(name string) (*table, error) {
	switch strings.ToLower(name) {
	case "hot_rules":
		return s.rulesTable(), nil
	case "runtime_hot_rules":
		return s.runtimeRulesTable(), nil
	case "stats_hot_keys":
		return s.hotKeysTable(), nil
	case "stats_hot_tables":
		return s.hotTablesTable(), nil
	case "stats_batches":
		return s.batchesTable(), nil
	case "stats_sessions":
		return s.sessionsTable(), nil
	case "stats_hot_candidates":
		return s.candidatesTable(), nil
	case "stats_not_merged":
		if s.obs == nil {
			return &table{cols: []string{"schema_name", "table_name", "reason", "statements"}}, nil
		}
		return s.obs.notMergedTable(), nil
	case "stats_pass_through":
		if s.obs == nil {
			return &table{cols: []string{"digest", "digest_text", "count", "avg_ms", "max_ms", "total_ms"}}, nil
		}
		return s.obs.passThroughTable(), nil
	}
	return nil, gomysql.NewError(gomysql.ER_NO_SUCH_TABLE, fmt.Sprintf(
		"Table '%s' doesn't exist; the admin tables are %s", name, strings.Join(tableNames, ", ")))
}

// selectStmt answers SELECT over one admin table (or without FROM).
func (s *Server) selectStmt(n *ast.SelectStmt) (*gomysql.Result, error) {
	if n.From == nil {
		return s.selectConstants(n)
	}
	j := n.From.TableRefs
	ts, isSrc := j.Left.(*ast.TableSource)
	if j.Right != nil || !isSrc || n.GroupBy != nil || n.Having != nil {
		return nil, gomysql.NewError(gomysql.ER_NOT_SUPPORTED_YET, "hotrow admin: SELECT reads one admin table, without joins or GROUP BY")
	}
	tn, isName := ts.Source.(*ast.TableName)
	if !isName {
		return nil, gomysql.NewError(gomysql.ER_NOT_SUPPORTED_YET, "hotrow admin: SELECT reads one admin table")
	}
	t, err := s.virtualTable(tn.Name.O)
	if err != nil {
		return nil, err
	}
	ev := evaluator{t: t, clause: "where clause"}
	if err := ev.checkColumns(n.Where); err != nil {
		return nil, err
	}
	rows, err := ev.filter(t.rows, n.Where)
	if err != nil {
		return nil, err
	}
	// The select list: *, columns, or COUNT(*) alone.
	var names []string
	var idx []int
	for _, f := range n.Fields.Fields {
		switch {
		case f.WildCard != nil:
			for i, c := range t.cols {
				names, idx = append(names, c), append(idx, i)
			}
		case isCountStar(f.Expr):
			if len(n.Fields.Fields) != 1 {
				return nil, gomysql.NewError(gomysql.ER_NOT_SUPPORTED_YET, "hotrow admin: COUNT(*) only alone in the select list")
			}
			name := "COUNT(*)"
			if f.AsName.O != "" {
				name = f.AsName.O
			}
			return resultset(&table{cols: []string{name}, rows: [][]any{{int64(len(rows))}}})
		default:
			c, isCol := f.Expr.(*ast.ColumnNameExpr)
			if !isCol {
				return nil, gomysql.NewError(gomysql.ER_NOT_SUPPORTED_YET, "hotrow admin: the select list takes *, column names or COUNT(*)")
			}
			i := t.colIndex(c.Name.Name.O)
			if i < 0 {
				return nil, gomysql.NewError(gomysql.ER_BAD_FIELD_ERROR, fmt.Sprintf("Unknown column '%s' in 'field list'", c.Name.Name.O))
			}
			name := t.cols[i]
			if f.AsName.O != "" {
				name = f.AsName.O
			}
			names, idx = append(names, name), append(idx, i)
		}
	}
	ev.clause = "order clause"
	if err := ev.order(rows, n.OrderBy, idx); err != nil {
		return nil, err
	}
	if rows, err = ev.limit(rows, n.Limit); err != nil {
		return nil, err
	}
	out := &table{cols: names, rows: make([][]any, len(rows))}
	for r, row := range rows {
		vals := make([]any, len(idx))
		for k, i := range idx {
			vals[k] = row[i]
		}
		out.rows[r] = vals
	}
	return resultset(out)
}

func isCountStar(e ast.ExprNode) bool {
	a, isAgg := e.(*ast.AggregateFuncExpr)
	if !isAgg || !strings.EqualFold(a.F, ast.AggFuncCount) || len(a.Args) != 1 {
		return false
	}
	v, isVal := a.Args[0].(*driver.ValueExpr)
	return isVal && v.Kind() == driver.KindInt64 && v.GetInt64() == 1
}

// selectConstants answers SELECT without FROM: literals and a few
// variables clients ask for on connect (@@version_comment).
func (s *Server) selectConstants(n *ast.SelectStmt) (*gomysql.Result, error) {
	t := &table{rows: [][]any{{}}}
	ev := evaluator{clause: "field list"}
	for _, f := range n.Fields.Fields {
		if f.WildCard != nil {
			return nil, gomysql.NewError(gomysql.ER_NO_TABLES_USED, "No tables used")
		}
		var v any
		name := f.AsName.O
		switch x := f.Expr.(type) {
		case *ast.VariableExpr:
			if name == "" {
				name = "@@" + x.Name
			}
			switch strings.ToLower(x.Name) {
			case "version_comment":
				v = "hotrow admin"
			case "version":
				v = "8.0.11-hotrow-admin"
			case "max_allowed_packet":
				v = int64(64 << 20)
			}
		default:
			var err error
			if v, err = ev.eval(f.Expr, nil); err != nil {
				return nil, err
			}
			if name == "" {
				name = text(v)
			}
		}
		t.cols = append(t.cols, name)
		t.rows[0] = append(t.rows[0], v)
	}
	rows, err := ev.limit(t.rows, n.Limit)
	if err != nil {
		return nil, err
	}
	t.rows = rows
	return resultset(t)
}
