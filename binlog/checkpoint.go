package binlog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/hotrow/hotrow/schema"
)

// checkpoints reads and writes the consumer's row of the checkpoints
// table. updated_at holds the commit time of the transaction the
// checkpoint ends with (or the write time when unknown), so ledger
// retention never passes what a consumer has delivered.
type checkpoints struct {
	db    *sql.DB
	table string // quoted meta.checkpoints
	name  string
}

func newCheckpoints(db *sql.DB, meta, name string) *checkpoints {
	return &checkpoints{db: db, table: schema.QuoteIdent(meta) + "." + schema.CheckpointsTable, name: name}
}

// load returns the stored checkpoint; ok is false when there is none.
func (c *checkpoints) load(ctx context.Context) (pos Position, ok bool, err error) {
	var p uint64
	err = c.db.QueryRowContext(ctx, "SELECT gtid, file, pos, updated_at FROM "+c.table+" WHERE consumer = ?", c.name).
		Scan(&pos.GTID, &pos.File, &p, &pos.Committed)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return Position{}, false, nil
	case err != nil:
		return Position{}, false, privilegeError("read checkpoint", err)
	}
	pos.Pos = uint32(p)
	return pos, true, nil
}

// save stores pos as the checkpoint.
func (c *checkpoints) save(ctx context.Context, pos Position) error {
	at := pos.Committed
	if at.IsZero() {
		at = time.Now()
	}
	_, err := c.db.ExecContext(ctx, "INSERT INTO "+c.table+" (consumer, gtid, file, pos, updated_at) "+
		"VALUES (?, ?, ?, ?, FROM_UNIXTIME(?)) ON DUPLICATE KEY UPDATE gtid = VALUES(gtid), "+
		"file = VALUES(file), pos = VALUES(pos), updated_at = VALUES(updated_at)",
		c.name, pos.GTID, pos.File, pos.Pos, fmt.Sprintf("%d.%06d", at.Unix(), at.Nanosecond()/1000))
	if err != nil {
		return privilegeError("write checkpoint", err)
	}
	return nil
}

// reset deletes the checkpoint.
func (c *checkpoints) reset(ctx context.Context) error {
	if _, err := c.db.ExecContext(ctx, "DELETE FROM "+c.table+" WHERE consumer = ?", c.name); err != nil {
		return privilegeError("reset checkpoint", err)
	}
	return nil
}
