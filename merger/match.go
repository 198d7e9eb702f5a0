package merger

import (
	"slices"
	"strings"
	"sync"

	"github.com/pingcap/tidb/pkg/parser"
	"github.com/pingcap/tidb/pkg/parser/ast"
	parsermysql "github.com/pingcap/tidb/pkg/parser/mysql"
	"github.com/pingcap/tidb/pkg/parser/opcode"
	driver "github.com/pingcap/tidb/pkg/parser/test_driver"
)

const (
	// matchCacheSize bounds each of the two cache generations.
	matchCacheSize = 4096
	// maxMatchLen bounds the statements the Matcher looks at: mergeable
	// UPDATEs are short, and it bounds the cache's memory.
	maxMatchLen = 2048
)

// Literal kinds of a text query's parameter slots. They are part of the
// cache key, because whether a slot may hold a string or a decimal depends on
// where it sits in the statement.
const (
	kindInt     = 'i' // integer that fits int64
	kindUint    = 'u' // integer above int64 that fits uint64
	kindDecimal = 'd' // decimal (or an integer beyond uint64, a DECIMAL in MySQL)
	kindString  = 's' // single-quoted string
)

// Matcher decides whether SQL is a mergeable hot-row UPDATE. Safe for
// concurrent use; its rules are fixed, so build a new Matcher to change them.
//
// A statement is mergeable when, parsed by the TiDB parser, it is exactly
//
//	UPDATE t SET c = c - e [, col = v ...] WHERE key = k [AND guard]
//
// or the same with c = c + e (Increment), where t is a rule's table (names
// compare case-sensitively; an unqualified t takes defaultDB, and none with an
// empty defaultDB), c its stock column and key its key column (column names
// compare case-insensitively; unqualified, backquotes allowed), k = key is
// accepted for key = k, and guard is one of c >= e, e <= c, c - e >= 0 or
// c > 0. e is an integer or decimal, k and v an integer or a non-empty string,
// each a literal or a ? marker; the 0 of the last two guards is the literal 0.
// The extra columns are neither key nor stock and are distinct.
//
// Anything else is not mergeable, in particular: more than one statement,
// ORDER BY, LIMIT, IGNORE, LOW_PRIORITY, hints, aliases, joins, subqueries,
// functions, parentheses, OR, NOT, NULL, TRUE/FALSE, DEFAULT, unary signs
// (so negative numbers), qualified columns, variables, guards before the key
// and extra assignments before the stock. Before any parsing, a one-pass
// scanner refuses comments of any kind (so hints and executable comments),
// double quotes (identifiers under ANSI_QUOTES), backslashes (escapes depend
// on NO_BACKSLASH_ESCAPES), empty strings (NULL under EMPTY_STRING_IS_NULL),
// non-ASCII bytes (their meaning depends on the connection charset), hex and
// bit literals, charset introducers, exponent floats, decimals ending in a
// dot, and a literal right after a word other than WHERE and AND (DATE '...',
// INTERVAL 1 ..., LIMIT 1). So what is accepted parses the same whatever the
// session's sql_mode.
//
// Both methods cache their result, negative ones included, by the scanner's
// normalized text (white space collapsed; for MatchText the literals replaced
// by ?) and defaultDB in a bounded two-generation cache, so the parser runs
// once per shape. Statements returned are shared and must not be modified.
type Matcher struct {
	rules []Rule

	mu  sync.RWMutex
	cur map[string]*Statement // guarded by mu; nil value: not mergeable
	old map[string]*Statement // guarded by mu; the previous generation
}

// NewMatcher returns a Matcher for the given hot rules.
func NewMatcher(rules []Rule) *Matcher {
	return &Matcher{
		rules: slices.Clone(rules),
		cur:   make(map[string]*Statement),
		old:   make(map[string]*Statement),
	}
}

// MatchText matches a COM_QUERY text. Its literals become parameter slots,
// returned as args in slot order: int64 for an integer that fits, uint64
// above, and string for a decimal (its SQL text, "1.50", .5 as "0.5") or
// a string literal. A decimal is only accepted where a string is not (amount,
// guard value), so the two never share a slot. The integer literal 0 stays in
// st.SQL as the constant it is, because c > 0 and c - e >= 0 are told apart
// from c > e by it. ok=false means pass the query through.
func (m *Matcher) MatchText(defaultDB, query string) (st *Statement, args []any, ok bool) {
	if len(m.rules) == 0 {
		return nil, nil, false
	}
	sc := scannerPool.Get().(*scanner)
	defer scannerPool.Put(sc)
	if !sc.scan(query, false) {
		return nil, nil, false
	}
	sc.key = append(sc.key[:0], 'T')
	for _, s := range sc.slots {
		sc.key = append(sc.key, s.kind)
	}
	st, found := m.lookup(sc.buildKey(defaultDB))
	if !found {
		kinds := sc.key[1 : 1+len(sc.slots)]
		st = m.analyze(defaultDB, string(sc.buf), kinds)
		m.store(string(sc.key), st)
	}
	if st == nil {
		return nil, nil, false
	}
	return st, sc.args(query), true
}

// MatchPrepared matches a COM_STMT_PREPARE text: each ? marker is a
// parameter slot, literals stay Operand.Const (int64, uint64, string, or a
// decimal's text as string). ok=false means pass the statement through.
func (m *Matcher) MatchPrepared(defaultDB, query string) (st *Statement, ok bool) {
	if len(m.rules) == 0 {
		return nil, false
	}
	sc := scannerPool.Get().(*scanner)
	defer scannerPool.Put(sc)
	if !sc.scan(query, true) {
		return nil, false
	}
	sc.key = append(sc.key[:0], 'P')
	st, found := m.lookup(sc.buildKey(defaultDB))
	if !found {
		st = m.analyze(defaultDB, string(sc.buf), nil)
		m.store(string(sc.key), st)
	}
	return st, st != nil
}

// lookup finds key in the cache, moving an entry of the old generation to
// the current one so that shapes in use survive the next flip.
func (m *Matcher) lookup(key []byte) (st *Statement, found bool) {
	m.mu.RLock()
	st, found = m.cur[string(key)]
	promote := false
	if !found {
		st, found = m.old[string(key)]
		promote = found
	}
	m.mu.RUnlock()
	if promote {
		m.store(string(key), st)
	}
	return st, found
}

// store caches st (nil: not mergeable) under key.
func (m *Matcher) store(key string, st *Statement) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.cur) >= matchCacheSize {
		m.old = m.cur
		m.cur = make(map[string]*Statement, matchCacheSize)
	}
	m.cur[key] = st
}

var parserPool = sync.Pool{New: func() any { return parser.New() }}

// analyze parses normalized SQL and returns its Statement, or nil when it is
// not mergeable. kinds, for a text query, holds the literal kind of each
// parameter slot; nil for a prepared statement, whose slots take any value.
func (m *Matcher) analyze(defaultDB, sql string, kinds []byte) *Statement {
	u, ok := parseUpdate(sql)
	if !ok || u.With != nil || u.Order != nil || u.Limit != nil || u.Priority != parsermysql.NoPriority ||
		u.IgnoreErr || u.MultipleTable || len(u.TableHints) > 0 || u.TableRefs == nil || len(u.List) == 0 {
		return nil
	}
	tn := singleTable(u.TableRefs.TableRefs)
	if tn == nil {
		return nil
	}
	schema := tn.Schema.O
	if schema == "" {
		schema = defaultDB
	}
	if schema == "" {
		return nil
	}
	params := paramOrder(u)
	if kinds != nil && len(params) != len(kinds) {
		return nil
	}
	a := analysis{params: params, kinds: kinds}
	for _, r := range m.rules {
		if r.Schema != schema || r.Table != tn.Name.O || strings.EqualFold(r.Key, r.Stock) {
			continue
		}
		if st := a.match(r, u); st != nil {
			_, digest := parser.NormalizeDigest(sql)
			st.SQL, st.Digest, st.NumParams = sql, digest.String(), len(params)
			return st
		}
	}
	return nil
}

// singleTable returns the table of a plain single-table reference: no alias,
// index hints, partitions or sampling.
func singleTable(j *ast.Join) *ast.TableName {
	if j == nil || j.Right != nil {
		return nil
	}
	ts, ok := j.Left.(*ast.TableSource)
	if !ok || ts.AsName.O != "" {
		return nil
	}
	tn, ok := ts.Source.(*ast.TableName)
	if !ok || len(tn.IndexHints) > 0 || len(tn.PartitionNames) > 0 || tn.TableSample != nil || tn.AsOf != nil {
		return nil
	}
	return tn
}

// paramOrder numbers the statement's ? markers in text order; the parser
// leaves ParamMarkerExpr.Order for the caller to set.
func paramOrder(n ast.Node) map[*driver.ParamMarkerExpr]int {
	var c markerCollector
	n.Accept(&c)
	slices.SortFunc(c.markers, func(a, b *driver.ParamMarkerExpr) int { return a.Offset - b.Offset })
	order := make(map[*driver.ParamMarkerExpr]int, len(c.markers))
	for i, pm := range c.markers {
		order[pm] = i
	}
	return order
}

// markerCollector collects the ? markers of a statement (paramOrder
// sorts them into text order).
type markerCollector struct{ markers []*driver.ParamMarkerExpr }

func (c *markerCollector) Enter(n ast.Node) (ast.Node, bool) {
	if pm, ok := n.(*driver.ParamMarkerExpr); ok {
		c.markers = append(c.markers, pm)
	}
	return n, false
}

func (c *markerCollector) Leave(n ast.Node) (ast.Node, bool) { return n, true }

// role is where an operand sits, which decides the values it may take.
type role int

const (
	roleNumber role = iota // amount and guard value: integer or decimal
	roleValue              // key and extra values: integer or string
)

// analysis is what match needs besides the parsed statement: the slot
// index of each ? marker (paramOrder) and, for a text query, the literal
// kind of each slot (nil for a prepared statement).
type analysis struct {
	params map[*driver.ParamMarkerExpr]int
	kinds  []byte
}

// match returns the Statement u forms under rule r, without SQL, Digest and
// NumParams, or nil.
func (a *analysis) match(r Rule, u *ast.UpdateStmt) *Statement {
	st := &Statement{Rule: r}
	set := u.List[0]
	if !isColumn(set.Column, r.Stock) {
		return nil
	}
	b, ok := set.Expr.(*ast.BinaryOperationExpr)
	if !ok || !isColumnExpr(b.L, r.Stock) {
		return nil
	}
	switch b.Op {
	case opcode.Minus:
		st.Op = Decrement
	case opcode.Plus:
		st.Op = Increment
	default:
		return nil
	}
	if st.Amount, ok = a.operand(b.R, roleNumber); !ok {
		return nil
	}
	for i, as := range u.List[1:] {
		c := as.Column
		if c.Schema.O != "" || c.Table.O != "" || strings.EqualFold(c.Name.O, r.Key) || strings.EqualFold(c.Name.O, r.Stock) {
			return nil
		}
		for _, prev := range u.List[1 : 1+i] {
			if prev.Column.Name.L == c.Name.L {
				return nil
			}
		}
		v, ok := a.operand(as.Expr, roleValue)
		if !ok {
			return nil
		}
		st.Extra = append(st.Extra, Assignment{Column: c.Name.O, Value: v})
	}
	keyEq := u.Where
	if and, ok := u.Where.(*ast.BinaryOperationExpr); ok && and.Op == opcode.LogicAnd {
		if !a.guard(st, and.R, r.Stock) {
			return nil
		}
		keyEq = and.L
	}
	if st.Key, ok = a.keyEq(keyEq, r.Key); !ok {
		return nil
	}
	return st
}

// keyEq matches key = k or k = key.
func (a *analysis) keyEq(e ast.ExprNode, key string) (Operand, bool) {
	eq, ok := e.(*ast.BinaryOperationExpr)
	if !ok || eq.Op != opcode.EQ {
		return Operand{}, false
	}
	if isColumnExpr(eq.L, key) {
		return a.operand(eq.R, roleValue)
	}
	if isColumnExpr(eq.R, key) {
		return a.operand(eq.L, roleValue)
	}
	return Operand{}, false
}

// guard matches c >= e, e <= c, c - e >= 0 and c > 0 into st.
func (a *analysis) guard(st *Statement, e ast.ExprNode, stock string) bool {
	g, ok := e.(*ast.BinaryOperationExpr)
	if !ok {
		return false
	}
	switch {
	case g.Op == opcode.GE && isColumnExpr(g.L, stock):
		st.Guard = GuardAtLeast
		st.GuardValue, ok = a.operand(g.R, roleNumber)
		return ok
	case g.Op == opcode.LE && isColumnExpr(g.R, stock):
		st.Guard = GuardAtLeast
		st.GuardValue, ok = a.operand(g.L, roleNumber)
		return ok
	case g.Op == opcode.GE && isZero(g.R):
		diff, ok := g.L.(*ast.BinaryOperationExpr)
		if !ok || diff.Op != opcode.Minus || !isColumnExpr(diff.L, stock) {
			return false
		}
		st.Guard = GuardDiffNonNegative
		st.GuardValue, ok = a.operand(diff.R, roleNumber)
		return ok
	case g.Op == opcode.GT && isColumnExpr(g.L, stock) && isZero(g.R):
		st.Guard = GuardPositive
		return true
	}
	return false
}

// operand accepts a ? marker or a literal whose kind suits the role.
func (a *analysis) operand(e ast.ExprNode, r role) (Operand, bool) {
	switch x := e.(type) {
	case *driver.ParamMarkerExpr:
		i, ok := a.params[x]
		if !ok {
			return Operand{}, false
		}
		if a.kinds != nil {
			switch a.kinds[i] {
			case kindDecimal:
				ok = r == roleNumber
			case kindString:
				ok = r == roleValue
			}
		}
		return Operand{Param: i}, ok
	case *driver.ValueExpr:
		switch x.Kind() {
		case driver.KindInt64:
			return Operand{Param: -1, Const: x.GetInt64()}, true
		case driver.KindUint64:
			return Operand{Param: -1, Const: x.GetUint64()}, true
		case driver.KindMysqlDecimal:
			return Operand{Param: -1, Const: x.GetMysqlDecimal().String()}, r == roleNumber
		case driver.KindString:
			return Operand{Param: -1, Const: x.GetString()}, r == roleValue
		}
	}
	return Operand{}, false
}

func isZero(e ast.ExprNode) bool {
	v, ok := e.(*driver.ValueExpr)
	return ok && v.Kind() == driver.KindInt64 && v.GetInt64() == 0
}

func isColumn(c *ast.ColumnName, name string) bool {
	return c.Schema.O == "" && c.Table.O == "" && strings.EqualFold(c.Name.O, name)
}

func isColumnExpr(e ast.ExprNode, name string) bool {
	c, ok := e.(*ast.ColumnNameExpr)
	return ok && isColumn(c.Name, name)
}

// MentionsHot reports whether q mentions the name of a hot table (ASCII
// case-insensitively, anywhere, as a substring): a statement that may
// read or lock a hot table. It errs towards true.
func (m *Matcher) MentionsHot(q []byte) bool {
	for i := range m.rules {
		if containsFoldASCII(q, m.rules[i].Table) {
			return true
		}
	}
	return false
}

// containsFoldASCII reports whether s contains sub, ignoring the case of
// ASCII letters.
func containsFoldASCII(s []byte, sub string) bool {
	n := len(sub)
outer:
	for i := 0; i+n <= len(s); i++ {
		for j := 0; j < n; j++ {
			a, b := s[i+j], sub[j]
			if 'A' <= a && a <= 'Z' {
				a += 'a' - 'A'
			}
			if 'A' <= b && b <= 'Z' {
				b += 'a' - 'A'
			}
			if a != b {
				continue outer
			}
		}
		return true
	}
	return false
}

// parseUpdate parses sql as one statement; ok is false unless it is an
// UPDATE.
func parseUpdate(sql string) (u *ast.UpdateStmt, ok bool) {
	p := parserPool.Get().(*parser.Parser)
	node, err := p.ParseOneStmt(sql, "", "")
	parserPool.Put(p)
	if err != nil {
		return nil, false
	}
	u, ok = node.(*ast.UpdateStmt)
	return u, ok
}
