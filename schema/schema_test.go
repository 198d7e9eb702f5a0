package schema_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hotrow/hotrow/internal/testdb"
	"github.com/hotrow/hotrow/schema"
)

func TestMain(m *testing.M) { testdb.Main(m) }

func TestEnsureIsIdempotent(t *testing.T) {
	db := testdb.New(t)
	conn := db.Open(t)
	meta := db.Name + "_meta"
	t.Cleanup(func() { _, _ = conn.Exec("DROP DATABASE IF EXISTS " + schema.QuoteIdent(meta)) })
	ctx := context.Background()
	for i := range 3 {
		if err := schema.Ensure(ctx, conn, meta); err != nil {
			t.Fatalf("Ensure #%d: %v", i, err)
		}
	}
	var v int
	if err := conn.QueryRow("SELECT version FROM " + schema.QuoteIdent(meta) + ".schema_version").Scan(&v); err != nil || v != schema.Version {
		t.Fatalf("version = %d, %v; want %d", v, err, schema.Version)
	}
	for _, tbl := range []string{schema.LedgerTable, schema.BatchesTable, schema.ClaimsTable, schema.VerdictsTable} {
		if _, err := conn.Exec("SELECT * FROM " + schema.QuoteIdent(meta) + "." + tbl + " LIMIT 0"); err != nil {
			t.Errorf("table %s: %v", tbl, err)
		}
	}
	// From version 2 (no claims): the v3 migration adds them, twice over.
	for i := range 2 {
		for _, q := range []string{"DROP TABLE IF EXISTS " + schema.QuoteIdent(meta) + ".claims",
			"DROP TABLE IF EXISTS " + schema.QuoteIdent(meta) + ".verdicts",
			"UPDATE " + schema.QuoteIdent(meta) + ".schema_version SET version = 2"} {
			if _, err := conn.Exec(q); err != nil {
				t.Fatal(err)
			}
		}
		if err := schema.Ensure(ctx, conn, meta); err != nil {
			t.Fatalf("Ensure from v2 #%d: %v", i, err)
		}
		if _, err := conn.Exec("SELECT " + schema.ClaimColumns + " FROM " + schema.QuoteIdent(meta) + ".claims LIMIT 0"); err != nil {
			t.Fatalf("claims after v3: %v", err)
		}
	}
	if _, err := conn.Exec("UPDATE " + schema.QuoteIdent(meta) + ".schema_version SET version = 99"); err != nil {
		t.Fatal(err)
	}
	if err := schema.Ensure(ctx, conn, meta); !errors.Is(err, schema.ErrNewerVersion) {
		t.Fatalf("Ensure on newer tables = %v, want ErrNewerVersion", err)
	}
}

func TestEnsureNamesMissingPrivilege(t *testing.T) {
	db := testdb.New(t)
	root := db.Open(t)
	user := "lim_" + db.Name[2:]
	for _, s := range []string{
		"CREATE USER '" + user + "'@'%' IDENTIFIED BY 'pw'",
		"GRANT SELECT ON `" + db.Name + "`.* TO '" + user + "'@'%'",
	} {
		if _, err := root.Exec(s); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { _, _ = root.Exec("DROP USER '" + user + "'@'%'") })
	limited, err := sql.Open("mysql", user+":pw@tcp("+db.Addr+")/")
	if err != nil {
		t.Fatal(err)
	}
	defer limited.Close()
	err = schema.Ensure(context.Background(), limited, db.Name+"_nope")
	if !errors.Is(err, schema.ErrPrivilege) || !strings.Contains(err.Error(), "hotrow needs CREATE") {
		t.Fatalf("Ensure without privileges = %v, want ErrPrivilege naming CREATE", err)
	}
}

func TestLoad(t *testing.T) {
	db := testdb.New(t)
	db.Exec(t,
		"CREATE TABLE a (sku VARCHAR(20) PRIMARY KEY, stock INT UNSIGNED NOT NULL)",
		"CREATE TABLE b (id INT, sku INT, stock BIGINT, UNIQUE KEY (id, sku))",
		"CREATE TABLE c (sku INT PRIMARY KEY, stock DECIMAL(10,2))",
		"CREATE TABLE d (sku INT PRIMARY KEY, stock TINYINT, n INT)",
		"CREATE TRIGGER d_upd BEFORE UPDATE ON d FOR EACH ROW SET NEW.n = 1",
		"CREATE TABLE e (sku INT PRIMARY KEY, stock INT NOT NULL, CONSTRAINT cap CHECK (stock <= 100))",
		"CREATE TABLE f (sku INT PRIMARY KEY, stock INT NOT NULL CHECK (stock <= 100))",
		"CREATE TABLE g (sku INT PRIMARY KEY, stock INT NOT NULL, left_pct TINYINT AS (stock * 100 DIV 50) PERSISTENT)",
		"CREATE TABLE h (sku INT PRIMARY KEY, stock INT NOT NULL, other INT AS (sku + 1) VIRTUAL)",
		"CREATE TABLE i (sku INT PRIMARY KEY, stock INT NOT NULL) WITH SYSTEM VERSIONING",
		"CREATE TABLE fk_parent (sku INT PRIMARY KEY, stock INT NOT NULL)",
		"CREATE TABLE fk_child (id INT PRIMARY KEY, sku INT, FOREIGN KEY (sku) REFERENCES fk_parent (sku))",
		"CREATE TABLE in_proc (sku INT PRIMARY KEY, stock INT NOT NULL)",
		"CREATE PROCEDURE buy() UPDATE in_proc SET stock = stock - 1 WHERE sku = 1",
	)
	conn := db.Open(t)
	cache := schema.NewCache(conn)
	ctx := context.Background()
	tests := []struct {
		table string
		want  schema.Table
	}{
		{"a", schema.Table{StockType: "int", Integer: true, Unsigned: true, Max: 1<<32 - 1, KeyType: "varchar", KeyString: true, KeyUnique: true}},
		{"b", schema.Table{StockType: "bigint", Integer: true, Min: -1 << 63, Max: 1<<63 - 1, StockNullable: true, KeyType: "int", KeyInteger: true}},
		{"c", schema.Table{StockType: "decimal", StockNullable: true, KeyType: "int", KeyInteger: true, KeyUnique: true}},
		{"d", schema.Table{StockType: "tinyint", Integer: true, Min: -128, Max: 127, StockNullable: true, KeyType: "int", KeyInteger: true, KeyUnique: true, UpdateTriggers: true}},
		{"e", schema.Table{StockType: "int", Integer: true, Min: -1 << 31, Max: 1<<31 - 1, KeyType: "int", KeyInteger: true, KeyUnique: true, Checks: true}},
		{"f", schema.Table{StockType: "int", Integer: true, Min: -1 << 31, Max: 1<<31 - 1, KeyType: "int", KeyInteger: true, KeyUnique: true, Checks: true}},
		{"g", schema.Table{StockType: "int", Integer: true, Min: -1 << 31, Max: 1<<31 - 1, KeyType: "int", KeyInteger: true, KeyUnique: true, StockGenerated: true}},
		{"h", schema.Table{StockType: "int", Integer: true, Min: -1 << 31, Max: 1<<31 - 1, KeyType: "int", KeyInteger: true, KeyUnique: true}},
		{"i", schema.Table{StockType: "int", Integer: true, Min: -1 << 31, Max: 1<<31 - 1, KeyType: "int", KeyInteger: true, KeyUnique: true, SystemVersioned: true}},
		{"fk_parent", schema.Table{StockType: "int", Integer: true, Min: -1 << 31, Max: 1<<31 - 1, KeyType: "int", KeyInteger: true, KeyUnique: true, Indirect: true}},
		{"in_proc", schema.Table{StockType: "int", Integer: true, Min: -1 << 31, Max: 1<<31 - 1, KeyType: "int", KeyInteger: true, KeyUnique: true, Indirect: true}},
	}
	for _, tc := range tests {
		t.Run(tc.table, func(t *testing.T) {
			got, err := cache.Get(ctx, db.Name, tc.table, "sku", "stock")
			if err != nil {
				t.Fatal(err)
			}
			tc.want.Schema, tc.want.Name, tc.want.Key, tc.want.Stock = db.Name, tc.table, "sku", "stock"
			if got.Exact() != (!tc.want.UpdateTriggers && !tc.want.Checks && !tc.want.StockGenerated && !tc.want.SystemVersioned) {
				t.Errorf("Exact() = %v for %+v", got.Exact(), got)
			}
			if got != tc.want {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
	if _, err := cache.Get(ctx, db.Name, "a", "sku", "nope"); !errors.Is(err, schema.ErrNoColumn) {
		t.Fatalf("missing column: %v", err)
	}
}

// TestEnsureGivesUpBehindOpenTransactions: a migration (v4's indexes on
// verdicts) behind an open transaction that wrote a confirmation gives up
// after its metadata lock wait with an error that says why, instead of
// waiting for the server's lock_wait_timeout and stalling every new
// confirmation behind it; once the transaction ended, it succeeds.
func TestEnsureGivesUpBehindOpenTransactions(t *testing.T) {
	db := testdb.New(t)
	conn := db.Open(t)
	meta := db.Name + "_meta"
	q := schema.QuoteIdent(meta)
	t.Cleanup(func() { _, _ = conn.Exec("DROP DATABASE IF EXISTS " + q) })
	ctx := context.Background()
	if err := schema.Ensure(ctx, conn, meta); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"ALTER TABLE " + q + ".verdicts DROP KEY created", "ALTER TABLE " + q + ".claims DROP KEY created",
		"UPDATE " + q + ".schema_version SET version = 3"} {
		if _, err := conn.Exec(s); err != nil {
			t.Fatal(err)
		}
	}
	tx, err := conn.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("INSERT INTO " + q + ".verdicts (claim_id, verdict) VALUES ('c1', 'confirm')"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	bounded, cancel := context.WithTimeout(ctx, 60*time.Second) // without the fix, it waits a day
	defer cancel()
	err = schema.Ensure(bounded, conn, meta)
	if err == nil || !strings.Contains(err.Error(), "open transactions") {
		t.Fatalf("Ensure behind an open transaction = %v, want it to give up", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("gave up after %v", d)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := schema.Ensure(ctx, conn, meta); err != nil {
		t.Fatalf("Ensure once the transaction ended: %v", err)
	}
}
