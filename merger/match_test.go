package merger

import (
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/pingcap/tidb/pkg/parser"
)

var (
	itemsRule = Rule{Schema: "shop", Table: "items", Key: "sku", Stock: "stock"}
	wideRule  = Rule{Schema: "shop", Table: "Wide", Key: "id", Stock: "qty"}
	// A second rule on the same table with other columns.
	wideRule2 = Rule{Schema: "shop", Table: "Wide", Key: "code", Stock: "reserve"}
)

func testMatcher() *Matcher {
	return NewMatcher([]Rule{itemsRule, wideRule, wideRule2})
}

func param(i int) Operand                  { return Operand{Param: i} }
func konst(v any) Operand                  { return Operand{Param: -1, Const: v} }
func extra(c string, v Operand) Assignment { return Assignment{Column: c, Value: v} }

// withDigest fills the fields every expected Statement derives from SQL.
func withDigest(st Statement) *Statement {
	_, d := parser.NormalizeDigest(st.SQL)
	st.Digest = d.String()
	return &st
}

type acceptCase struct {
	name  string
	db    string
	query string
	want  Statement // Digest is filled from SQL
	args  []any     // text only
}

var textAccepted = []acceptCase{
	{
		name: "decrement", db: "shop",
		query: "UPDATE items SET stock = stock - 1 WHERE sku = 'A1'",
		want: Statement{Rule: itemsRule, SQL: "UPDATE items SET stock = stock - ? WHERE sku = ?", NumParams: 2,
			Key: param(1), Op: Decrement, Amount: param(0)},
		args: []any{int64(1), "A1"},
	},
	{
		name: "guard at least", db: "shop",
		query: "UPDATE items SET stock = stock - 2 WHERE sku = 'A1' AND stock >= 2",
		want: Statement{Rule: itemsRule, SQL: "UPDATE items SET stock = stock - ? WHERE sku = ? AND stock >= ?", NumParams: 3,
			Key: param(1), Op: Decrement, Amount: param(0), Guard: GuardAtLeast, GuardValue: param(2)},
		args: []any{int64(2), "A1", int64(2)},
	},
	{
		name: "guard at least reversed", db: "shop",
		query: "UPDATE items SET stock = stock - 2 WHERE sku = 'A1' AND 5 <= stock",
		want: Statement{Rule: itemsRule, SQL: "UPDATE items SET stock = stock - ? WHERE sku = ? AND ? <= stock", NumParams: 3,
			Key: param(1), Op: Decrement, Amount: param(0), Guard: GuardAtLeast, GuardValue: param(2)},
		args: []any{int64(2), "A1", int64(5)},
	},
	{
		name: "guard at least zero", db: "shop",
		query: "UPDATE items SET stock = stock - 2 WHERE sku = 'A1' AND stock >= 0",
		want: Statement{Rule: itemsRule, SQL: "UPDATE items SET stock = stock - ? WHERE sku = ? AND stock >= 0", NumParams: 2,
			Key: param(1), Op: Decrement, Amount: param(0), Guard: GuardAtLeast, GuardValue: konst(int64(0))},
		args: []any{int64(2), "A1"},
	},
	{
		name: "guard difference", db: "shop",
		query: "UPDATE items SET stock = stock - 3 WHERE sku = 'A1' AND stock - 3 >= 0",
		want: Statement{Rule: itemsRule, SQL: "UPDATE items SET stock = stock - ? WHERE sku = ? AND stock - ? >= 0", NumParams: 3,
			Key: param(1), Op: Decrement, Amount: param(0), Guard: GuardDiffNonNegative, GuardValue: param(2)},
		args: []any{int64(3), "A1", int64(3)},
	},
	{
		name: "guard positive", db: "shop",
		query: "UPDATE items SET stock = stock - 1 WHERE sku = 'A1' AND stock > 0",
		want: Statement{Rule: itemsRule, SQL: "UPDATE items SET stock = stock - ? WHERE sku = ? AND stock > 0", NumParams: 2,
			Key: param(1), Op: Decrement, Amount: param(0), Guard: GuardPositive},
		args: []any{int64(1), "A1"},
	},
	{
		name: "increment with integer key", db: "shop",
		query: "UPDATE items SET stock = stock + 300 WHERE sku = 1234",
		want: Statement{Rule: itemsRule, SQL: "UPDATE items SET stock = stock + ? WHERE sku = ?", NumParams: 2,
			Key: param(1), Op: Increment, Amount: param(0)},
		args: []any{int64(300), int64(1234)},
	},
	{
		name: "extra assignments", db: "shop",
		query: "UPDATE items SET stock = stock - 1, Updated_By = 'web', version = 7 WHERE sku = 'A1' AND stock >= 1",
		want: Statement{Rule: itemsRule, SQL: "UPDATE items SET stock = stock - ?, Updated_By = ?, version = ? WHERE sku = ? AND stock >= ?", NumParams: 5,
			Key: param(3), Op: Decrement, Amount: param(0), Guard: GuardAtLeast, GuardValue: param(4),
			Extra: []Assignment{extra("Updated_By", param(1)), extra("version", param(2))}},
		args: []any{int64(1), "web", int64(7), "A1", int64(1)},
	},
	{
		name: "qualified without default db", db: "",
		query: "UPDATE shop.items SET stock = stock - 1 WHERE sku = 'A1'",
		want: Statement{Rule: itemsRule, SQL: "UPDATE shop.items SET stock = stock - ? WHERE sku = ?", NumParams: 2,
			Key: param(1), Op: Decrement, Amount: param(0)},
		args: []any{int64(1), "A1"},
	},
	{
		name: "qualified with other default db", db: "other",
		query: "UPDATE shop.items SET stock = stock - 1 WHERE sku = 'A1'",
		want: Statement{Rule: itemsRule, SQL: "UPDATE shop.items SET stock = stock - ? WHERE sku = ?", NumParams: 2,
			Key: param(1), Op: Decrement, Amount: param(0)},
		args: []any{int64(1), "A1"},
	},
	{
		name: "backquotes and column case", db: "",
		query: "UPDATE `shop`.`items` SET `Stock` = `STOCK` - 1 WHERE `SKU` = 'A1' AND `stock` >= 1",
		want: Statement{Rule: itemsRule, SQL: "UPDATE `shop`.`items` SET `Stock` = `STOCK` - ? WHERE `SKU` = ? AND `stock` >= ?", NumParams: 3,
			Key: param(1), Op: Decrement, Amount: param(0), Guard: GuardAtLeast, GuardValue: param(2)},
		args: []any{int64(1), "A1", int64(1)},
	},
	{
		name: "key on the right", db: "shop",
		query: "UPDATE items SET stock = stock - 1 WHERE 'A1' = sku",
		want: Statement{Rule: itemsRule, SQL: "UPDATE items SET stock = stock - ? WHERE ? = sku", NumParams: 2,
			Key: param(1), Op: Decrement, Amount: param(0)},
		args: []any{int64(1), "A1"},
	},
	{
		name: "lower case, white space, semicolon", db: "shop",
		query: "  update items\n\tset stock=stock-1\r\n where sku='A1' ;  \n",
		want: Statement{Rule: itemsRule, SQL: "update items set stock=stock-? where sku=?", NumParams: 2,
			Key: param(1), Op: Decrement, Amount: param(0)},
		args: []any{int64(1), "A1"},
	},
	{
		name: "decimal amount and guard", db: "shop",
		query: "UPDATE items SET stock = stock - 1.50 WHERE sku = 'A1' AND stock - 5.25 >= 0",
		want: Statement{Rule: itemsRule, SQL: "UPDATE items SET stock = stock - ? WHERE sku = ? AND stock - ? >= 0", NumParams: 3,
			Key: param(1), Op: Decrement, Amount: param(0), Guard: GuardDiffNonNegative, GuardValue: param(2)},
		args: []any{"1.50", "A1", "5.25"},
	},
	{
		name: "decimal without integer part", db: "shop",
		query: "UPDATE items SET stock = stock + .5 WHERE sku = 'A1'",
		want: Statement{Rule: itemsRule, SQL: "UPDATE items SET stock = stock + ? WHERE sku = ?", NumParams: 2,
			Key: param(1), Op: Increment, Amount: param(0)},
		args: []any{"0.5", "A1"},
	},
	{
		name: "unsigned and beyond", db: "shop",
		query: "UPDATE items SET stock = stock - 18446744073709551616 WHERE sku = 18446744073709551615 AND stock >= 9223372036854775807",
		want: Statement{Rule: itemsRule, SQL: "UPDATE items SET stock = stock - ? WHERE sku = ? AND stock >= ?", NumParams: 3,
			Key: param(1), Op: Decrement, Amount: param(0), Guard: GuardAtLeast, GuardValue: param(2)},
		args: []any{"18446744073709551616", uint64(18446744073709551615), int64(9223372036854775807)},
	},
	{
		name: "doubled quote", db: "shop",
		query: "UPDATE items SET stock = stock - 1, note = 'it''s' WHERE sku = 'a''''b'",
		want: Statement{Rule: itemsRule, SQL: "UPDATE items SET stock = stock - ?, note = ? WHERE sku = ?", NumParams: 3,
			Key: param(2), Op: Decrement, Amount: param(0), Extra: []Assignment{extra("note", param(1))}},
		args: []any{int64(1), "it's", "a''b"},
	},
	{
		name: "zero key stays constant", db: "shop",
		query: "UPDATE items SET stock = stock - 1 WHERE sku = 0",
		want: Statement{Rule: itemsRule, SQL: "UPDATE items SET stock = stock - ? WHERE sku = 0", NumParams: 1,
			Key: konst(int64(0)), Op: Decrement, Amount: param(0)},
		args: []any{int64(1)},
	},
	{
		name: "leading zeros are a slot", db: "shop",
		query: "UPDATE items SET stock = stock - 007 WHERE sku = 00",
		want: Statement{Rule: itemsRule, SQL: "UPDATE items SET stock = stock - ? WHERE sku = ?", NumParams: 2,
			Key: param(1), Op: Decrement, Amount: param(0)},
		args: []any{int64(7), int64(0)},
	},
	{
		name: "table with two rules, second", db: "shop",
		query: "UPDATE Wide SET reserve = reserve - 2 WHERE code = 'X' AND reserve > 0",
		want: Statement{Rule: wideRule2, SQL: "UPDATE Wide SET reserve = reserve - ? WHERE code = ? AND reserve > 0", NumParams: 2,
			Key: param(1), Op: Decrement, Amount: param(0), Guard: GuardPositive},
		args: []any{int64(2), "X"},
	},
	{
		name: "table with two rules, first", db: "shop",
		query: "UPDATE Wide SET qty = qty - 2, reserve = 1 WHERE id = 9",
		want: Statement{Rule: wideRule, SQL: "UPDATE Wide SET qty = qty - ?, reserve = ? WHERE id = ?", NumParams: 3,
			Key: param(2), Op: Decrement, Amount: param(0), Extra: []Assignment{extra("reserve", param(1))}},
		args: []any{int64(2), int64(1), int64(9)},
	},
}

var preparedAccepted = []acceptCase{
	{
		name: "all markers", db: "shop",
		query: "UPDATE items SET stock = stock - ? WHERE sku = ? AND stock >= ?",
		want: Statement{Rule: itemsRule, SQL: "UPDATE items SET stock = stock - ? WHERE sku = ? AND stock >= ?", NumParams: 3,
			Key: param(1), Op: Decrement, Amount: param(0), Guard: GuardAtLeast, GuardValue: param(2)},
	},
	{
		name: "constants stay", db: "shop",
		query: "UPDATE items SET stock = stock - 1 WHERE sku = ? AND 1 <= stock",
		want: Statement{Rule: itemsRule, SQL: "UPDATE items SET stock = stock - 1 WHERE sku = ? AND 1 <= stock", NumParams: 1,
			Key: param(0), Op: Decrement, Amount: konst(int64(1)), Guard: GuardAtLeast, GuardValue: konst(int64(1))},
	},
	{
		name: "difference guard", db: "shop",
		query: "UPDATE items SET stock = stock - ? WHERE ? = sku AND stock - ? >= 0",
		want: Statement{Rule: itemsRule, SQL: "UPDATE items SET stock = stock - ? WHERE ? = sku AND stock - ? >= 0", NumParams: 3,
			Key: param(1), Op: Decrement, Amount: param(0), Guard: GuardDiffNonNegative, GuardValue: param(2)},
	},
	{
		name: "string key, decimal and unsigned constants", db: "",
		query: "update shop.items set stock = stock + 2.50, batch = 18446744073709551615 where sku = 'A''1' and stock > 0;",
		want: Statement{Rule: itemsRule, SQL: "update shop.items set stock = stock + 2.50, batch = 18446744073709551615 where sku = 'A''1' and stock > 0", NumParams: 0,
			Key: konst("A'1"), Op: Increment, Amount: konst("2.50"), Guard: GuardPositive,
			Extra: []Assignment{extra("batch", konst(uint64(18446744073709551615)))}},
	},
	{
		name: "extras mixing markers and constants", db: "shop",
		query: "UPDATE items SET stock = stock - ?, a = ?, b = 'x' WHERE sku = ?",
		want: Statement{Rule: itemsRule, SQL: "UPDATE items SET stock = stock - ?, a = ?, b = 'x' WHERE sku = ?", NumParams: 3,
			Key: param(2), Op: Decrement, Amount: param(0),
			Extra: []Assignment{extra("a", param(1)), extra("b", konst("x"))}},
	},
}

func TestMatchTextAccepts(t *testing.T) {
	m := testMatcher()
	for _, tc := range textAccepted {
		t.Run(tc.name, func(t *testing.T) {
			want := withDigest(tc.want)
			// The second round is served from the cache.
			for round := range 2 {
				st, args, ok := m.MatchText(tc.db, tc.query)
				if !ok {
					t.Fatalf("round %d: not matched", round)
				}
				if !reflect.DeepEqual(st, want) {
					t.Fatalf("round %d: statement\n got %+v\nwant %+v", round, st, want)
				}
				if !reflect.DeepEqual(args, tc.args) {
					t.Fatalf("round %d: args got %#v, want %#v", round, args, tc.args)
				}
			}
			// Its SQL prepares to the same shape.
			st, ok := m.MatchPrepared(tc.db, want.SQL)
			if !ok || !reflect.DeepEqual(st, want) {
				t.Fatalf("MatchPrepared(SQL) = %+v, %v; want %+v", st, ok, want)
			}
		})
	}
}

func TestMatchPreparedAccepts(t *testing.T) {
	m := testMatcher()
	for _, tc := range preparedAccepted {
		t.Run(tc.name, func(t *testing.T) {
			want := withDigest(tc.want)
			for round := range 2 {
				st, ok := m.MatchPrepared(tc.db, tc.query)
				if !ok {
					t.Fatalf("round %d: not matched", round)
				}
				if !reflect.DeepEqual(st, want) {
					t.Fatalf("round %d: statement\n got %+v\nwant %+v", round, st, want)
				}
			}
		})
	}
}

type rejectCase struct {
	name     string
	db       string
	query    string
	textOnly bool // MatchPrepared accepts it
}

const upd = "UPDATE items SET stock = stock - 1 "

var rejected = []rejectCase{
	{name: "select", db: "shop", query: "SELECT stock FROM items WHERE sku = 'A1'"},
	{name: "insert", db: "shop", query: "INSERT INTO items (sku, stock) VALUES ('A1', 1)"},
	{name: "empty", db: "shop", query: ""},
	{name: "only space", db: "shop", query: "  ;"},
	{name: "two updates", db: "shop", query: upd + "WHERE sku = 'A1'; " + upd + "WHERE sku = 'A2'"},
	{name: "update then select", db: "shop", query: upd + "WHERE sku = 'A1'; SELECT 1"},
	{name: "double semicolon", db: "shop", query: upd + "WHERE sku = 'A1';;"},
	{name: "order by", db: "shop", query: upd + "WHERE sku = 'A1' ORDER BY sku"},
	{name: "limit", db: "shop", query: upd + "WHERE sku = 'A1' LIMIT 1"},
	{name: "ignore", db: "shop", query: "UPDATE IGNORE items SET stock = stock - 1 WHERE sku = 'A1'"},
	{name: "low priority", db: "shop", query: "UPDATE LOW_PRIORITY items SET stock = stock - 1 WHERE sku = 'A1'"},
	{name: "optimizer hint", db: "shop", query: "UPDATE /*+ NO_INDEX_MERGE() */ items SET stock = stock - 1 WHERE sku = 'A1'"},
	{name: "block comment", db: "shop", query: upd + "/* x */ WHERE sku = 'A1'"},
	{name: "executable comment", db: "shop", query: upd + "WHERE sku = 'A1' /*! AND stock >= 5 */"},
	{name: "dash comment", db: "shop", query: upd + "WHERE sku = 'A1' -- x\n"},
	{name: "hash comment", db: "shop", query: upd + "WHERE sku = 'A1' # x"},
	{name: "double dash without space", db: "shop", query: "UPDATE items SET stock = stock --1 WHERE sku = 'A1'"},
	{name: "multi-table", db: "shop", query: "UPDATE items, other SET stock = stock - 1 WHERE sku = 'A1'"},
	{name: "join", db: "shop", query: "UPDATE items JOIN other ON items.sku = other.sku SET stock = stock - 1 WHERE sku = 'A1'"},
	{name: "alias", db: "shop", query: "UPDATE items AS i SET stock = stock - 1 WHERE sku = 'A1'"},
	{name: "alias without as", db: "shop", query: "UPDATE items i SET stock = stock - 1 WHERE sku = 'A1'"},
	{name: "index hint", db: "shop", query: "UPDATE items USE INDEX (PRIMARY) SET stock = stock - 1 WHERE sku = 'A1'"},
	{name: "partition", db: "shop", query: "UPDATE items PARTITION (p0) SET stock = stock - 1 WHERE sku = 'A1'"},
	{name: "with", db: "shop", query: "WITH x AS (SELECT 1) " + upd + "WHERE sku = 'A1'"},
	{name: "subquery", db: "shop", query: upd + "WHERE sku = (SELECT sku FROM other)"},
	{name: "in list", db: "shop", query: upd + "WHERE sku IN ('A1')"},
	{name: "function in extra", db: "shop", query: "UPDATE items SET stock = stock - 1, updated = NOW() WHERE sku = 'A1'"},
	{name: "function amount", db: "shop", query: "UPDATE items SET stock = stock - ABS(1) WHERE sku = 'A1'"},
	{name: "parentheses", db: "shop", query: "UPDATE items SET stock = (stock - 1) WHERE sku = 'A1'"},
	{name: "or", db: "shop", query: upd + "WHERE sku = 'A1' OR sku = 'A2'"},
	{name: "or guard", db: "shop", query: upd + "WHERE sku = 'A1' OR stock >= 1"},
	{name: "xor", db: "shop", query: upd + "WHERE sku = 'A1' XOR stock >= 1"},
	{name: "and and", db: "shop", query: upd + "WHERE sku = 'A1' && stock >= 1"},
	{name: "not", db: "shop", query: upd + "WHERE sku = 'A1' AND NOT stock < 1"},
	{name: "two guards", db: "shop", query: upd + "WHERE sku = 'A1' AND stock >= 1 AND stock > 0"},
	{name: "guard first", db: "shop", query: upd + "WHERE stock >= 1 AND sku = 'A1'"},
	{name: "null key", db: "shop", query: upd + "WHERE sku = NULL"},
	{name: "null amount", db: "shop", query: "UPDATE items SET stock = stock - NULL WHERE sku = 'A1'"},
	{name: "null extra", db: "shop", query: "UPDATE items SET stock = stock - 1, note = NULL WHERE sku = 'A1'"},
	{name: "null-safe equal", db: "shop", query: upd + "WHERE sku <=> 'A1'"},
	{name: "key in extra", db: "shop", query: "UPDATE items SET stock = stock - 1, SKU = 'B' WHERE sku = 'A1'"},
	{name: "stock in extra", db: "shop", query: "UPDATE items SET stock = stock - 1, stock = 5 WHERE sku = 'A1'"},
	{name: "same column twice", db: "shop", query: "UPDATE items SET stock = stock - 1, note = 'a', NOTE = 'b' WHERE sku = 'A1'"},
	{name: "extra before stock", db: "shop", query: "UPDATE items SET note = 'a', stock = stock - 1 WHERE sku = 'A1'"},
	{name: "other column minus", db: "shop", query: "UPDATE items SET stock = qty - 1 WHERE sku = 'A1'"},
	{name: "constant minus stock", db: "shop", query: "UPDATE items SET stock = 1 - stock WHERE sku = 'A1'"},
	{name: "constant plus stock", db: "shop", query: "UPDATE items SET stock = 1 + stock WHERE sku = 'A1'"},
	{name: "multiply", db: "shop", query: "UPDATE items SET stock = stock * 2 WHERE sku = 'A1'"},
	{name: "two subtractions", db: "shop", query: "UPDATE items SET stock = stock - 1 - 1 WHERE sku = 'A1'"},
	{name: "set constant", db: "shop", query: "UPDATE items SET stock = 5 WHERE sku = 'A1'"},
	{name: "unary minus amount", db: "shop", query: "UPDATE items SET stock = stock - -1 WHERE sku = 'A1'"},
	{name: "unary plus amount", db: "shop", query: "UPDATE items SET stock = stock - +1 WHERE sku = 'A1'"},
	{name: "negative key", db: "shop", query: upd + "WHERE sku = -1"},
	{name: "negative guard", db: "shop", query: upd + "WHERE sku = 'A1' AND stock >= -1"},
	{name: "user variable", db: "shop", query: "UPDATE items SET stock = stock - @n WHERE sku = 'A1'"},
	{name: "system variable", db: "shop", query: "UPDATE items SET stock = stock - @@max_connections WHERE sku = 'A1'"},
	{name: "hex number", db: "shop", query: "UPDATE items SET stock = stock - 0x1F WHERE sku = 'A1'"},
	{name: "hex string", db: "shop", query: upd + "WHERE sku = x'4131'"},
	{name: "bit number", db: "shop", query: "UPDATE items SET stock = stock - 0b1 WHERE sku = 'A1'"},
	{name: "bit string", db: "shop", query: upd + "WHERE sku = B'1'"},
	{name: "introducer", db: "shop", query: upd + "WHERE sku = _utf8mb4'A1'"},
	{name: "introducer with space", db: "shop", query: upd + "WHERE sku = _utf8mb4 'A1'"},
	{name: "national string", db: "shop", query: upd + "WHERE sku = N'A1'"},
	{name: "collate", db: "shop", query: upd + "WHERE sku = 'A1' COLLATE utf8mb4_bin"},
	{name: "binary", db: "shop", query: upd + "WHERE sku = BINARY 'A1'"},
	{name: "date literal", db: "shop", query: "UPDATE items SET stock = stock - 1, d = DATE '2026-01-01' WHERE sku = 'A1'"},
	{name: "string amount", db: "shop", query: "UPDATE items SET stock = stock - '1' WHERE sku = 'A1'"},
	{name: "string guard", db: "shop", query: upd + "WHERE sku = 'A1' AND stock >= '1'"},
	{name: "string guard difference", db: "shop", query: upd + "WHERE sku = 'A1' AND stock - '1' >= 0"},
	{name: "decimal key", db: "shop", query: upd + "WHERE sku = 1.5"},
	{name: "decimal extra", db: "shop", query: "UPDATE items SET stock = stock - 1, price = 9.99 WHERE sku = 'A1'"},
	{name: "exponent", db: "shop", query: "UPDATE items SET stock = stock - 1e3 WHERE sku = 'A1'"},
	{name: "number glued to word", db: "shop", query: upd + "WHERE sku = 1abc"},
	{name: "decimal with trailing dot", db: "shop", query: "UPDATE items SET stock = stock - 5. WHERE sku = 'A1'"},
	{name: "two dots", db: "shop", query: "UPDATE items SET stock = stock - 1.2.3 WHERE sku = 'A1'"},
	{name: "default", db: "shop", query: "UPDATE items SET stock = stock - 1, note = DEFAULT WHERE sku = 'A1'"},
	{name: "true", db: "shop", query: "UPDATE items SET stock = stock - TRUE WHERE sku = 'A1'"},
	{name: "false", db: "shop", query: upd + "WHERE sku = 'A1' AND stock > FALSE"},
	{name: "double quotes", db: "shop", query: upd + `WHERE sku = "A1"`},
	{name: "backslash", db: "shop", query: upd + `WHERE sku = 'A\'1'`},
	{name: "empty string", db: "shop", query: upd + "WHERE sku = ''"},
	{name: "non-ascii string", db: "shop", query: upd + "WHERE sku = 'é'"},
	{name: "non-ascii identifier", db: "shop", query: "UPDATE items SET stock = stock - 1, noté = 'x' WHERE sku = 'A1'"},
	{name: "control character", db: "shop", query: upd + "WHERE sku = 'A1'\v"},
	{name: "adjacent strings", db: "shop", query: upd + "WHERE sku = 'A' '1'"},
	{name: "unterminated string", db: "shop", query: upd + "WHERE sku = 'A1"},
	{name: "unterminated backquote", db: "shop", query: "UPDATE `items SET stock = stock - 1 WHERE sku = 'A1'"},
	{name: "unknown table", db: "shop", query: "UPDATE other SET stock = stock - 1 WHERE sku = 'A1'"},
	{name: "table case differs", db: "shop", query: "UPDATE Items SET stock = stock - 1 WHERE sku = 'A1'"},
	{name: "schema case differs", db: "", query: "UPDATE SHOP.items SET stock = stock - 1 WHERE sku = 'A1'"},
	{name: "other default db", db: "other", query: upd + "WHERE sku = 'A1'"},
	{name: "no default db", db: "", query: upd + "WHERE sku = 'A1'"},
	{name: "qualified column", db: "shop", query: "UPDATE items SET items.stock = items.stock - 1 WHERE sku = 'A1'"},
	{name: "qualified key", db: "shop", query: upd + "WHERE items.sku = 'A1'"},
	{name: "not the key column", db: "shop", query: upd + "WHERE note = 'A1'"},
	{name: "key against column", db: "shop", query: upd + "WHERE sku = note"},
	{name: "no where", db: "shop", query: "UPDATE items SET stock = stock - 1"},
	{name: "guard greater", db: "shop", query: upd + "WHERE sku = 'A1' AND stock > 1"},
	{name: "guard zero first", db: "shop", query: upd + "WHERE sku = 'A1' AND 0 < stock"},
	{name: "guard difference against one", db: "shop", query: upd + "WHERE sku = 'A1' AND stock - 1 >= 1"},
	{name: "guard difference greater", db: "shop", query: upd + "WHERE sku = 'A1' AND stock - 1 > 0"},
	{name: "guard on other column", db: "shop", query: upd + "WHERE sku = 'A1' AND qty >= 1"},
	{name: "guard not equal", db: "shop", query: upd + "WHERE sku = 'A1' AND stock <> 0"},
	{name: "marker in text", db: "shop", query: upd + "WHERE sku = ?", textOnly: true},
	{name: "marker after word", db: "shop", query: upd + "WHERE sku = ? LIMIT ?"},
	{name: "unary minus marker", db: "shop", query: upd + "WHERE sku = -?"},
	{name: "too long", db: "shop", query: upd + "WHERE sku = '" + strings.Repeat("x", maxMatchLen) + "'"},
}

func TestMatchRejects(t *testing.T) {
	m := testMatcher()
	for _, tc := range rejected {
		t.Run(tc.name, func(t *testing.T) {
			for round := range 2 {
				if st, args, ok := m.MatchText(tc.db, tc.query); ok {
					t.Fatalf("round %d: MatchText accepted %q as %+v, args %v", round, tc.query, st, args)
				}
				if tc.textOnly {
					continue
				}
				if st, ok := m.MatchPrepared(tc.db, tc.query); ok {
					t.Fatalf("round %d: MatchPrepared accepted %q as %+v", round, tc.query, st)
				}
			}
		})
	}
}

func TestMatchWithoutRules(t *testing.T) {
	m := NewMatcher(nil)
	if _, _, ok := m.MatchText("shop", upd+"WHERE sku = 'A1'"); ok {
		t.Fatal("MatchText matched without rules")
	}
	if _, ok := m.MatchPrepared("shop", upd+"WHERE sku = ?"); ok {
		t.Fatal("MatchPrepared matched without rules")
	}
}

func TestMatchTextSharesShape(t *testing.T) {
	m := testMatcher()
	a, argsA, okA := m.MatchText("shop", "UPDATE items SET stock = stock - 1 WHERE sku = 'A1' AND stock >= 1")
	b, argsB, okB := m.MatchText("shop", "UPDATE items SET stock = stock - 25 WHERE sku = 'Z9' AND stock >= 30")
	if !okA || !okB {
		t.Fatalf("not matched: %v %v", okA, okB)
	}
	if a != b {
		t.Fatalf("same shape gave two statements: %p %p", a, b)
	}
	if want := []any{int64(25), "Z9", int64(30)}; !reflect.DeepEqual(argsB, want) {
		t.Fatalf("args got %#v, want %#v", argsB, want)
	}
	if reflect.DeepEqual(argsA, argsB) {
		t.Fatal("args of different literals are equal")
	}
	// The same shape with a string amount is a different cache entry.
	if _, _, ok := m.MatchText("shop", "UPDATE items SET stock = stock - '1' WHERE sku = 'A1' AND stock >= 1"); ok {
		t.Fatal("string amount matched through the cache")
	}
	// An unqualified table resolves per default database.
	if _, _, ok := m.MatchText("other", "UPDATE items SET stock = stock - 1 WHERE sku = 'A1' AND stock >= 1"); ok {
		t.Fatal("default database ignored by the cache")
	}
}

func TestMatchCacheBounded(t *testing.T) {
	m := testMatcher()
	hot := "UPDATE items SET stock = stock - 1 WHERE sku = 'A1'"
	first, _, _ := m.MatchText("shop", hot)
	for i := range 3 * matchCacheSize {
		q := fmt.Sprintf("UPDATE items SET stock = stock - 1, c%d = 1 WHERE sku = 'A1'", i)
		if _, _, ok := m.MatchText("shop", q); !ok {
			t.Fatalf("%q not matched", q)
		}
		if i%100 == 0 {
			// A shape in use survives generation flips.
			if st, _, ok := m.MatchText("shop", hot); !ok || st != first {
				t.Fatalf("hot shape lost after %d shapes", i)
			}
		}
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if len(m.cur) > matchCacheSize || len(m.old) > matchCacheSize {
		t.Fatalf("cache holds %d + %d entries, bound %d each", len(m.cur), len(m.old), matchCacheSize)
	}
}

func TestMatchConcurrent(t *testing.T) {
	type result struct {
		st   *Statement
		args []any
		ok   bool
	}
	type query struct {
		db, sql  string
		prepared bool
	}
	var queries []query
	for _, tc := range textAccepted {
		queries = append(queries, query{tc.db, tc.query, false})
	}
	for _, tc := range preparedAccepted {
		queries = append(queries, query{tc.db, tc.query, true})
	}
	for _, tc := range rejected {
		queries = append(queries, query{tc.db, tc.query, false}, query{tc.db, tc.query, true})
	}
	// Expected results from a Matcher of its own, one query at a time.
	ref := testMatcher()
	wants := make([]result, len(queries))
	for i, q := range queries {
		if q.prepared {
			wants[i].st, wants[i].ok = ref.MatchPrepared(q.db, q.sql)
		} else {
			wants[i].st, wants[i].args, wants[i].ok = ref.MatchText(q.db, q.sql)
		}
	}

	m := testMatcher()
	const workers, rounds = 16, 200
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				// Shapes of their own keep the cache flipping generations.
				unique := fmt.Sprintf("UPDATE items SET stock = stock - 1, w%d_%d = 2 WHERE sku = 'A1'", w, r)
				if _, _, ok := m.MatchText("shop", unique); !ok {
					errs <- fmt.Errorf("%q not matched", unique)
					return
				}
				for i := range queries {
					q, want := queries[(i+w)%len(queries)], wants[(i+w)%len(queries)]
					var got result
					if q.prepared {
						got.st, got.ok = m.MatchPrepared(q.db, q.sql)
					} else {
						got.st, got.args, got.ok = m.MatchText(q.db, q.sql)
					}
					if !reflect.DeepEqual(got, want) {
						errs <- fmt.Errorf("%q (prepared %v): got %+v, want %+v", q.sql, q.prepared, got, want)
						return
					}
				}
			}
			errs <- nil
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func BenchmarkMatchText(b *testing.B) {
	queries := []string{
		"UPDATE items SET stock = stock - 1 WHERE sku = 'A1' AND stock >= 1",
		"UPDATE items SET stock = stock - 3 WHERE sku = 'B22' AND stock - 3 >= 0",
		"UPDATE items SET stock = stock + 100 WHERE sku = 'C333'",
		"UPDATE shop.items SET stock = stock - 2, updated_by = 'web' WHERE sku = 12345 AND stock > 0",
	}
	run := func(b *testing.B, queries []string, wantOK bool) {
		m := testMatcher()
		for _, q := range queries {
			if _, _, ok := m.MatchText("shop", q); ok != wantOK {
				b.Fatalf("%q: ok = %v", q, ok)
			}
		}
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				m.MatchText("shop", queries[i%len(queries)])
				i++
			}
		})
	}
	b.Run("hit", func(b *testing.B) { run(b, queries, true) })
	b.Run("pass-through", func(b *testing.B) {
		run(b, []string{"SELECT stock FROM items WHERE sku = 'A1'", "UPDATE items SET stock = stock - 1 WHERE sku = 'A1' LIMIT 1"}, false)
	})
	b.Run("miss", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			// A fresh Matcher each time: every call parses.
			m := testMatcher()
			m.MatchText("shop", queries[i%len(queries)])
		}
	})
}
