package schema

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
)

// ErrNoColumn is returned by Load when the table or a rule's column does
// not exist.
var ErrNoColumn = errors.New("no such table or column")

// Table is what hotrow needs to know about a hot table to choose an
// execution path.
type Table struct {
	Schema, Name string
	Key, Stock   string
	// StockType is the stock column's DATA_TYPE (int, bigint, decimal ...).
	StockType string
	// Integer is true for TINYINT, SMALLINT, MEDIUMINT, INT and BIGINT.
	Integer bool
	// Unsigned is true for an UNSIGNED stock column.
	Unsigned bool
	// Min and Max are the stock column's range when Integer (Min is 0 and
	// Max up to 1<<64-1 for UNSIGNED columns).
	Min int64
	Max uint64
	// StockNullable is true when the stock column accepts NULL.
	StockNullable bool
	// KeyType is the key column's DATA_TYPE; KeyInteger is true for the
	// integer types, KeyString for CHAR, VARCHAR and the TEXT types.
	KeyType    string
	KeyInteger bool
	KeyString  bool
	// KeyUnique is true when a PRIMARY or UNIQUE index consists of the key
	// column alone, so key = k finds at most one row.
	KeyUnique bool
	// UpdateTriggers is true when the table has UPDATE triggers (a merged
	// UPDATE would fire them once instead of once per request).
	UpdateTriggers bool
	// Checks is true when the table has CHECK constraints (table or
	// column level): the server evaluates them after every statement, so
	// a batch's total change cannot stand for its requests.
	Checks bool
	// StockGenerated is true when a generated column's expression names
	// the stock column (its value, and errors computing it, follow every
	// statement).
	StockGenerated bool
	// SystemVersioned is true for a system-versioned table (every UPDATE
	// writes a history row).
	SystemVersioned bool
	// Indirect is true when a statement that does not name the table may
	// still lock its rows: a foreign key of another table references it,
	// or a trigger of another table, a stored routine or a view mentions
	// its name (as far as the reading user may see them). Claims (merged
	// UPDATEs inside client transactions) are then not taken: the
	// client's transaction could hold a row lock its claim's batch waits
	// for.
	Indirect bool
}

// Exact reports whether the server would do nothing per statement beyond
// changing the stock column that a batch's one UPDATE to the final value
// would not do too: no UPDATE triggers, CHECK constraints, generated
// columns on the stock column or system versioning. Only such tables may
// take a path that evaluates the requests outside the server.
func (t Table) Exact() bool {
	return !t.UpdateTriggers && !t.Checks && !t.StockGenerated && !t.SystemVersioned
}

// integerBits maps the integer DATA_TYPEs to their width.
var integerBits = map[string]uint{"tinyint": 8, "smallint": 16, "mediumint": 24, "int": 32, "bigint": 64}

// Load reads the metadata of table schema.name for a rule with key column
// key and stock column stock from information_schema.
func Load(ctx context.Context, db *sql.DB, schemaName, name, key, stock string) (Table, error) {
	t := Table{Schema: schemaName, Name: name, Key: key, Stock: stock}
	var colType, nullable string
	err := db.QueryRowContext(ctx, `SELECT DATA_TYPE, COLUMN_TYPE, IS_NULLABLE FROM information_schema.COLUMNS
WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND COLUMN_NAME = ?`, schemaName, name, stock).Scan(&t.StockType, &colType, &nullable)
	if errors.Is(err, sql.ErrNoRows) {
		return t, fmt.Errorf("%w: %s.%s.%s", ErrNoColumn, schemaName, name, stock)
	}
	if err != nil {
		return t, fmt.Errorf("read columns of %s.%s: %w", schemaName, name, err)
	}
	t.StockType = strings.ToLower(t.StockType)
	t.Unsigned = strings.Contains(strings.ToLower(colType), "unsigned")
	t.StockNullable = nullable == "YES"
	if bits, ok := integerBits[t.StockType]; ok {
		t.Integer = true
		switch {
		case t.Unsigned && bits == 64:
			t.Max = 1<<64 - 1
		case t.Unsigned:
			t.Max = 1<<bits - 1
		default:
			t.Min, t.Max = -1<<(bits-1), 1<<(bits-1)-1
		}
	}
	err = db.QueryRowContext(ctx, `SELECT DATA_TYPE FROM information_schema.COLUMNS
WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND COLUMN_NAME = ?`, schemaName, name, key).Scan(&t.KeyType)
	if errors.Is(err, sql.ErrNoRows) {
		return t, fmt.Errorf("%w: %s.%s.%s", ErrNoColumn, schemaName, name, key)
	}
	if err != nil {
		return t, fmt.Errorf("read columns of %s.%s: %w", schemaName, name, err)
	}
	t.KeyType = strings.ToLower(t.KeyType)
	_, t.KeyInteger = integerBits[t.KeyType]
	switch t.KeyType {
	case "char", "varchar", "tinytext", "text", "mediumtext", "longtext":
		t.KeyString = true
	}
	var n int
	err = db.QueryRowContext(ctx, `SELECT COUNT(*) FROM (
  SELECT INDEX_NAME FROM information_schema.STATISTICS
  WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND NON_UNIQUE = 0
  GROUP BY INDEX_NAME HAVING COUNT(*) = 1 AND MAX(COLUMN_NAME) = ?) u`, schemaName, name, key).Scan(&n)
	if err != nil {
		return t, fmt.Errorf("read indexes of %s.%s: %w", schemaName, name, err)
	}
	t.KeyUnique = n > 0
	err = db.QueryRowContext(ctx, `SELECT COUNT(*) FROM information_schema.TRIGGERS
WHERE EVENT_OBJECT_SCHEMA = ? AND EVENT_OBJECT_TABLE = ? AND EVENT_MANIPULATION = 'UPDATE'`, schemaName, name).Scan(&n)
	if err != nil {
		return t, fmt.Errorf("read triggers of %s.%s: %w", schemaName, name, err)
	}
	t.UpdateTriggers = n > 0
	// MariaDB lists table- and column-level CHECKs in TABLE_CONSTRAINTS
	// (and CHECK_CONSTRAINTS); MySQL 8 lists them in TABLE_CONSTRAINTS.
	err = db.QueryRowContext(ctx, `SELECT COUNT(*) FROM information_schema.TABLE_CONSTRAINTS
WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND CONSTRAINT_TYPE = 'CHECK'`, schemaName, name).Scan(&n)
	if err != nil {
		return t, fmt.Errorf("read constraints of %s.%s: %w", schemaName, name, err)
	}
	t.Checks = n > 0
	// The name as a word (not inside a longer identifier), in the
	// definitions of user schemas.
	word := `(^|[^[:alnum:]_$])` + regexpQuote(name) + `([^[:alnum:]_$]|$)`
	err = db.QueryRowContext(ctx, `SELECT
  (SELECT COUNT(*) FROM information_schema.REFERENTIAL_CONSTRAINTS
   WHERE UNIQUE_CONSTRAINT_SCHEMA = ? AND REFERENCED_TABLE_NAME = ?)
+ (SELECT COUNT(*) FROM information_schema.TRIGGERS
   WHERE NOT (EVENT_OBJECT_SCHEMA = ? AND EVENT_OBJECT_TABLE = ?) AND ACTION_STATEMENT REGEXP ?)
+ (SELECT COUNT(*) FROM information_schema.ROUTINES
   WHERE ROUTINE_SCHEMA NOT IN `+systemSchemas+` AND COALESCE(ROUTINE_DEFINITION, '') REGEXP ?)
+ (SELECT COUNT(*) FROM information_schema.VIEWS
   WHERE TABLE_SCHEMA NOT IN `+systemSchemas+` AND VIEW_DEFINITION REGEXP ?)`,
		schemaName, name, schemaName, name, word, word, word).Scan(&n)
	if err != nil {
		return t, fmt.Errorf("read references to %s.%s: %w", schemaName, name, err)
	}
	t.Indirect = n > 0
	rows, err := db.QueryContext(ctx, `SELECT COALESCE(GENERATION_EXPRESSION, '') FROM information_schema.COLUMNS
WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND (EXTRA LIKE '%GENERATED%' OR EXTRA IN ('VIRTUAL', 'PERSISTENT', 'STORED')
  OR COALESCE(GENERATION_EXPRESSION, '') <> '')`, schemaName, name)
	if err != nil {
		return t, fmt.Errorf("read generated columns of %s.%s: %w", schemaName, name, err)
	}
	for rows.Next() {
		var expr string
		if err := rows.Scan(&expr); err != nil {
			rows.Close()
			return t, fmt.Errorf("read generated columns of %s.%s: %w", schemaName, name, err)
		}
		// Conservative: any mention of the column's name (or an
		// expression that could not be read) counts as depending on it.
		if expr == "" || strings.Contains(strings.ToLower(expr), strings.ToLower(stock)) {
			t.StockGenerated = true
		}
	}
	if err := rows.Close(); err != nil {
		return t, fmt.Errorf("read generated columns of %s.%s: %w", schemaName, name, err)
	}
	if err := rows.Err(); err != nil {
		return t, fmt.Errorf("read generated columns of %s.%s: %w", schemaName, name, err)
	}
	var tableType string
	err = db.QueryRowContext(ctx, `SELECT TABLE_TYPE FROM information_schema.TABLES
WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?`, schemaName, name).Scan(&tableType)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return t, fmt.Errorf("read table type of %s.%s: %w", schemaName, name, err)
	}
	t.SystemVersioned = strings.EqualFold(tableType, "SYSTEM VERSIONED")
	return t, nil
}

// Cache keeps the metadata Load read, per table and rule columns.
type Cache struct {
	db *sql.DB

	mu      sync.Mutex
	tables  map[cacheKey]Table     // guarded by mu
	loading map[cacheKey]*loadCall // guarded by mu; the Load in flight per table
}

// loadCall is one Load that concurrent Gets of the same table share.
type loadCall struct {
	done chan struct{}
	t    Table
	err  error
}

type cacheKey struct{ schema, name, key, stock string }

// NewCache returns a cache that loads through db.
func NewCache(db *sql.DB) *Cache {
	return &Cache{db: db, tables: make(map[cacheKey]Table), loading: make(map[cacheKey]*loadCall)}
}

// Get returns the cached metadata, loading it on first use.
func (c *Cache) Get(ctx context.Context, schemaName, name, key, stock string) (Table, error) {
	k := cacheKey{schemaName, name, key, stock}
	c.mu.Lock()
	if t, ok := c.tables[k]; ok {
		c.mu.Unlock()
		return t, nil
	}
	// One Load per table at a time: concurrent Gets wait for it (many
	// sessions' first hot statements arrive together, and a Load scans
	// information_schema).
	call, waiting := c.loading[k]
	if !waiting {
		call = &loadCall{done: make(chan struct{})}
		c.loading[k] = call
	}
	c.mu.Unlock()
	if waiting {
		select {
		case <-call.done:
			return call.t, call.err
		case <-ctx.Done():
			return Table{}, ctx.Err()
		}
	}
	call.t, call.err = Load(ctx, c.db, schemaName, name, key, stock)
	c.mu.Lock()
	if call.err == nil {
		c.tables[k] = call.t
	}
	delete(c.loading, k)
	c.mu.Unlock()
	close(call.done)
	return call.t, call.err
}

// Forget drops the cached metadata of table schema.name (after DDL).
func (c *Cache) Forget(schemaName, name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.tables {
		if k.schema == schemaName && k.name == name {
			delete(c.tables, k)
		}
	}
}

// systemSchemas are the server's own databases, whose routines and views
// do not touch application tables.
const systemSchemas = "('mysql', 'sys', 'information_schema', 'performance_schema')"

// regexpQuote escapes the regular expression metacharacters of s.
func regexpQuote(s string) string {
	var b strings.Builder
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c > 0x7f) {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}
