package binlog

import (
	"errors"
	"fmt"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-sql-driver/mysql"

	"github.com/hotrow/hotrow/schema"
)

// Privileges is what the binlog user needs on the server, besides
// schema.Privileges on the meta schema for checkpoints.
const Privileges = "REPLICATION SLAVE, BINLOG MONITOR (MariaDB) or REPLICATION CLIENT (MySQL), SELECT"

// Errors Run returns; each is wrapped with the details.
var (
	// ErrPurged: the checkpoint's position is no longer in the server's
	// binlogs (purged, or the server was reset).
	ErrPurged = errors.New("binlog: the checkpoint's position is no longer in the server's binlogs")
	// ErrServerSetting: a server variable the feed depends on is wrong.
	ErrServerSetting = errors.New("binlog: server setting")
	// ErrPrivilege: the server refused the binlog user.
	ErrPrivilege = errors.New("binlog: missing privilege")
)

// purgedError explains what to do when the checkpoint's position is gone.
func purgedError(meta, name string, pos Position, err error) error {
	return fmt.Errorf(`%w (consumer %q at gtid %q, %s:%d): %w.
Merged deductions since then are still in the ledger; catch up from it, then restart
with --reset-checkpoint to go on from the server's current position:
  SELECT batch_id, seq, table_schema, table_name, key_value, delta, stock_after, conn_id, created_at
  FROM %s.%s WHERE created_at >= (SELECT updated_at - INTERVAL 1 SECOND FROM %s.%s WHERE consumer = '%s')
  ORDER BY created_at, batch_id, seq;
(event id = batch_id:seq; direct stock changes of that period cannot be recovered)`,
		ErrPurged, name, pos.GTID, pos.File, pos.Pos, err,
		schema.QuoteIdent(meta), schema.LedgerTable, schema.QuoteIdent(meta), schema.CheckpointsTable, name)
}

// privilegeError names the privileges the binlog user lacks when the
// server refused it, and passes other errors on.
func privilegeError(what string, err error) error {
	code := 0
	var my *mysql.MySQLError
	var gm *gomysql.MyError
	switch {
	case errors.As(err, &my):
		code = int(my.Number)
	case errors.As(err, &gm):
		code = int(gm.Code)
	}
	switch code {
	case 1044, 1045, 1142, 1143, 1227, 1262:
		return fmt.Errorf("%w: %s: the binlog user needs %s, and %s on the meta schema: %w",
			ErrPrivilege, what, Privileges, schema.Privileges, err)
	}
	return fmt.Errorf("binlog: %s: %w", what, err)
}
