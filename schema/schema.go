package schema

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/go-sql-driver/mysql"
)

// Version is the version of hotrow's tables this binary writes.
const Version = 1

// Names of hotrow's tables inside the meta schema.
const (
	LedgerTable  = "ledger"
	BatchesTable = "batches"
	VersionTable = "schema_version"
)

// Sizes of the ledger's free-form columns; writers clip values to them.
const (
	MaxBatchID = 96
	MaxKey     = 3072
	MaxDelta   = 255
	MaxDigest  = 64
)

// ErrPrivilege is wrapped by Ensure when the server refused a statement
// for lack of a privilege.
var ErrPrivilege = errors.New("missing privilege")

// ErrNewerVersion is returned by Ensure when the stored tables come from a
// newer hotrow than this binary.
var ErrNewerVersion = errors.New("hotrow tables have a newer version than this binary")

// QuoteIdent quotes a MySQL identifier with backquotes.
func QuoteIdent(name string) string {
	return "`" + strings.ReplaceAll(name, "`", "``") + "`"
}

// migrations[v-1] takes the tables from version v-1 to v. Every statement
// must be safe to run twice (IF NOT EXISTS), since instances race at start.
var migrations = [][]string{
	{ // 1: ledger and batch markers
		`CREATE TABLE IF NOT EXISTS %[1]s.` + LedgerTable + ` (
  batch_id     VARCHAR(96) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  seq          INT UNSIGNED NOT NULL,
  table_schema VARCHAR(64) NOT NULL,
  table_name   VARCHAR(64) NOT NULL,
  key_value    VARBINARY(3072) NOT NULL,
  delta        VARBINARY(255) NOT NULL,
  stock_after  VARBINARY(255) NULL,
  conn_id      INT UNSIGNED NOT NULL,
  digest       VARBINARY(64) NOT NULL,
  created_at   TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (batch_id, seq)
) ENGINE=InnoDB`,
		`CREATE TABLE IF NOT EXISTS %[1]s.` + BatchesTable + ` (
  batch_id    VARCHAR(96) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  instance_id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  requests    INT UNSIGNED NOT NULL,
  granted     INT UNSIGNED NOT NULL,
  created_at  TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (batch_id),
  KEY instance_time (instance_id, created_at)
) ENGINE=InnoDB`,
	},
}

// Ensure creates or migrates hotrow's tables in database meta. It is
// idempotent and safe to run from several instances at once.
func Ensure(ctx context.Context, db *sql.DB, meta string) error {
	q := QuoteIdent(meta)
	exec := func(stmt string) error {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			return privilegeError(meta, err)
		}
		return nil
	}
	if err := exec("CREATE DATABASE IF NOT EXISTS " + q); err != nil {
		return err
	}
	if err := exec("CREATE TABLE IF NOT EXISTS " + q + "." + VersionTable + ` (
  id      TINYINT UNSIGNED NOT NULL PRIMARY KEY,
  version INT UNSIGNED NOT NULL
) ENGINE=InnoDB`); err != nil {
		return err
	}
	var have int
	err := db.QueryRowContext(ctx, "SELECT version FROM "+q+"."+VersionTable+" WHERE id = 1").Scan(&have)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		have = 0
	case err != nil:
		return privilegeError(meta, err)
	}
	if have > Version {
		return fmt.Errorf("%w: `%s` is at version %d, this binary knows %d", ErrNewerVersion, meta, have, Version)
	}
	for v := have + 1; v <= Version; v++ {
		for _, stmt := range migrations[v-1] {
			if err := exec(fmt.Sprintf(stmt, q)); err != nil {
				return err
			}
		}
		if err := exec(fmt.Sprintf("INSERT INTO %s.%s (id, version) VALUES (1, %d) "+
			"ON DUPLICATE KEY UPDATE version = GREATEST(version, VALUES(version))", q, VersionTable, v)); err != nil {
			return err
		}
	}
	return nil
}

// privilegeError names the privilege hotrow lacks when the server refused
// a statement with an access-denied error, and passes other errors on.
func privilegeError(meta string, err error) error {
	var my *mysql.MySQLError
	if errors.As(err, &my) {
		switch my.Number {
		case 1044, 1142, 1143, 1045, 1227:
			return fmt.Errorf("%w: hotrow needs CREATE, SELECT and INSERT on %s.* (GRANT CREATE, SELECT, INSERT ON %s.* TO the merge user): %w",
				ErrPrivilege, QuoteIdent(meta), QuoteIdent(meta), err)
		}
	}
	return fmt.Errorf("schema %s: %w", QuoteIdent(meta), err)
}
