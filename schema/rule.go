package schema

import (
	"fmt"
	"strings"
)

// Rule names a hot table: which column identifies a row and which column
// holds the stock that concurrent statements change. The proxy merges
// statements on it; the order feed reports its stock changes.
type Rule struct {
	Schema string // database the table lives in
	Table  string
	Key    string // key column (one column, compared with =)
	Stock  string // stock column
}

// String formats the rule as ParseRule reads it: DB.TABLE:KEYCOL:STOCKCOL.
func (r Rule) String() string {
	return r.Schema + "." + r.Table + ":" + r.Key + ":" + r.Stock
}

// ParseRule reads a rule written as DB.TABLE:KEYCOL:STOCKCOL.
func ParseRule(s string) (Rule, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return Rule{}, fmt.Errorf("hot rule %q: want DB.TABLE:KEYCOL:STOCKCOL", s)
	}
	db, table, ok := strings.Cut(parts[0], ".")
	r := Rule{Schema: db, Table: table, Key: parts[1], Stock: parts[2]}
	if !ok || r.Schema == "" || r.Table == "" || r.Key == "" || r.Stock == "" || strings.Contains(table, ".") {
		return Rule{}, fmt.Errorf("hot rule %q: want DB.TABLE:KEYCOL:STOCKCOL", s)
	}
	return r, nil
}
