package schema

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/go-sql-driver/mysql"
)

// Version is the version of hotrow's tables this binary writes.
const Version = 4

// Names of hotrow's tables inside the meta schema.
const (
	LedgerTable      = "ledger"
	BatchesTable     = "batches"
	CheckpointsTable = "checkpoints"
	VersionTable     = "schema_version"
	ClaimsTable      = "claims"
	VerdictsTable    = "verdicts"
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

// varchar and varbinary are column types of width n.
func varchar(n int) string   { return "VARCHAR(" + strconv.Itoa(n) + ")" }
func varbinary(n int) string { return "VARBINARY(" + strconv.Itoa(n) + ")" }

// migrations[v-1] takes the tables from version v-1 to v; %[1]s is the
// quoted meta schema. Every statement must be safe to run twice (IF NOT
// EXISTS, or an index whose duplicate is ignored), since instances race
// at start.
var migrations = [][]string{
	{ // 1: ledger and batch markers
		`CREATE TABLE IF NOT EXISTS %[1]s.` + LedgerTable + ` (
  batch_id     ` + varchar(MaxBatchID) + ` CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  seq          INT UNSIGNED NOT NULL,
  table_schema ` + varchar(MaxSchemaName) + ` NOT NULL,
  table_name   ` + varchar(MaxTableName) + ` NOT NULL,
  key_value    ` + varbinary(MaxKey) + ` NOT NULL,
  delta        ` + varbinary(MaxDelta) + ` NOT NULL,
  stock_after  ` + varbinary(MaxDelta) + ` NULL,
  conn_id      INT UNSIGNED NOT NULL,
  digest       ` + varbinary(MaxDigest) + ` NOT NULL,
  created_at   TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (batch_id, seq)
) ENGINE=InnoDB`,
		`CREATE TABLE IF NOT EXISTS %[1]s.` + BatchesTable + ` (
  batch_id    ` + varchar(MaxBatchID) + ` CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  instance_id ` + varchar(MaxInstanceID) + ` CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  requests    INT UNSIGNED NOT NULL,
  granted     INT UNSIGNED NOT NULL,
  created_at  TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (batch_id),
  KEY instance_time (instance_id, created_at)
) ENGINE=InnoDB`,
	},
	{ // 2: order feed checkpoints; time indexes for pruning markers of any
		// instance and ledger rows behind every consumer.
		`CREATE TABLE IF NOT EXISTS %[1]s.` + CheckpointsTable + ` (
  consumer   ` + varchar(MaxConsumer) + ` CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  gtid       TEXT CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  file       VARCHAR(255) NOT NULL,
  pos        BIGINT UNSIGNED NOT NULL,
  updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  PRIMARY KEY (consumer)
) ENGINE=InnoDB`,
		`ALTER TABLE %[1]s.` + BatchesTable + ` ADD KEY created (created_at)`,
		`ALTER TABLE %[1]s.` + LedgerTable + ` ADD KEY created (created_at)`,
	},
	{ // 3: claims of merged UPDATEs inside client transactions, and their
		// verdicts (confirm or cancel) under the claim's unique id.
		`CREATE TABLE IF NOT EXISTS %[1]s.` + ClaimsTable + ` (
  claim_id     ` + varchar(MaxClaimID) + ` CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  instance_id  ` + varchar(MaxInstanceID) + ` CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  owner_conn   INT UNSIGNED NOT NULL,
  server_start BIGINT NOT NULL,
  table_schema ` + varchar(MaxSchemaName) + ` NOT NULL,
  table_name   ` + varchar(MaxTableName) + ` NOT NULL,
  key_column   ` + varchar(MaxColumnName) + ` NOT NULL,
  stock_column ` + varchar(MaxColumnName) + ` NOT NULL,
  key_value    ` + varbinary(MaxKey) + ` NOT NULL,
  amount       BIGINT UNSIGNED NOT NULL,
  created_at   TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (claim_id),
  KEY instance_time (instance_id, created_at)
) ENGINE=InnoDB`,
		// A confirmation copies the claim's ledger row (LedgerColumns), so
		// that the order feed emits the claim's event from it.
		`CREATE TABLE IF NOT EXISTS %[1]s.` + VerdictsTable + ` (
  claim_id     ` + varchar(MaxClaimID) + ` CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  verdict      ENUM('confirm','cancel') NOT NULL,
  batch_id     ` + varchar(MaxBatchID) + ` CHARACTER SET ascii COLLATE ascii_bin NULL,
  seq          INT UNSIGNED NULL,
  table_schema ` + varchar(MaxSchemaName) + ` NULL,
  table_name   ` + varchar(MaxTableName) + ` NULL,
  key_value    ` + varbinary(MaxKey) + ` NULL,
  delta        ` + varbinary(MaxDelta) + ` NULL,
  stock_after  ` + varbinary(MaxDelta) + ` NULL,
  conn_id      INT UNSIGNED NULL,
  digest       ` + varbinary(MaxDigest) + ` NULL,
  created_at   TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (claim_id)
) ENGINE=InnoDB`,
	},
	{ // 4: indexes for the retention of settled claims and their verdicts.
		`ALTER TABLE %[1]s.` + ClaimsTable + ` ADD KEY created (created_at)`,
		`ALTER TABLE %[1]s.` + VerdictsTable + ` ADD KEY created (created_at)`,
	},
}

// ddlLockWait is how long, in seconds, a migration statement of Ensure
// waits for its table's metadata lock.
const ddlLockWait = 10

// Ensure creates or migrates hotrow's tables in database meta. It is
// idempotent and safe to run from several instances at once.
func Ensure(ctx context.Context, db *sql.DB, meta string) error {
	q := QuoteIdent(meta)
	conn, err := db.Conn(ctx)
	if err != nil {
		return privilegeError(meta, err)
	}
	defer conn.Close()
	// A migration's ALTER waits for the metadata lock behind open
	// transactions on the table (clients' confirmations), and new ones
	// wait behind it: give up after ddlLockWait rather than stall them
	// for the server's lock_wait_timeout (a day by default).
	if _, err := conn.ExecContext(ctx, "SET SESSION lock_wait_timeout = "+strconv.Itoa(ddlLockWait)); err != nil {
		return privilegeError(meta, err)
	}
	exec := func(stmt string) error {
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			var my *mysql.MySQLError
			if errors.As(err, &my) && my.Number == 1205 {
				return fmt.Errorf("schema %s: open transactions held %s's tables for %d s (a sale running?); start again when it is quieter: %w",
					QuoteIdent(meta), meta, ddlLockWait, err)
			}
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
	err = conn.QueryRowContext(ctx, "SELECT version FROM "+q+"."+VersionTable+" WHERE id = 1").Scan(&have)
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
			if err := exec(fmt.Sprintf(stmt, q)); err != nil && !duplicateKey(err) {
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

// duplicateKey reports the server's 1061 (duplicate key name): an index a
// concurrent or earlier run of the same migration already added.
func duplicateKey(err error) bool {
	var my *mysql.MySQLError
	return errors.As(err, &my) && my.Number == 1061
}

// Privileges is what the merge user needs on the meta schema: CREATE for
// Ensure, SELECT and INSERT for batches, claims and their verdicts (a
// confirmation is written on the client's own connection, as the merge
// user), DELETE for the marker janitor and ledger retention, UPDATE for
// order feed checkpoints.
const Privileges = "CREATE, ALTER, SELECT, INSERT, UPDATE, DELETE"

// privilegeError names the privilege hotrow lacks when the server refused
// a statement with an access-denied error, and passes other errors on.
func privilegeError(meta string, err error) error {
	var my *mysql.MySQLError
	if errors.As(err, &my) {
		switch my.Number {
		case 1044, 1142, 1143, 1045, 1227:
			return fmt.Errorf("%w: hotrow needs %s on %s.* (GRANT %s ON %s.* TO the merge user): %w",
				ErrPrivilege, Privileges, QuoteIdent(meta), Privileges, QuoteIdent(meta), err)
		}
	}
	return fmt.Errorf("schema %s: %w", QuoteIdent(meta), err)
}
