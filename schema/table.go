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
	return t, nil
}

// Cache keeps the metadata Load read, per table and rule columns.
type Cache struct {
	db *sql.DB

	mu     sync.Mutex
	tables map[cacheKey]Table // guarded by mu
}

type cacheKey struct{ schema, name, key, stock string }

// NewCache returns a cache that loads through db.
func NewCache(db *sql.DB) *Cache {
	return &Cache{db: db, tables: make(map[cacheKey]Table)}
}

// Get returns the cached metadata, loading it on first use.
func (c *Cache) Get(ctx context.Context, schemaName, name, key, stock string) (Table, error) {
	k := cacheKey{schemaName, name, key, stock}
	c.mu.Lock()
	t, ok := c.tables[k]
	c.mu.Unlock()
	if ok {
		return t, nil
	}
	t, err := Load(ctx, c.db, schemaName, name, key, stock)
	if err != nil {
		return t, err
	}
	c.mu.Lock()
	c.tables[k] = t
	c.mu.Unlock()
	return t, nil
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
