package binlog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/go-sql-driver/mysql"
)

// server is what the consumer learnt about the source at start.
type server struct {
	mariadb bool
}

// checkServer checks that the binlog is on with the settings the feed
// needs, and tells MariaDB from MySQL.
func checkServer(ctx context.Context, db *sql.DB) (server, error) {
	var version string
	if err := db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
		return server{}, privilegeError("connect to source", err)
	}
	s := server{mariadb: strings.Contains(strings.ToLower(version), "mariadb")}
	want := []struct{ name, value string }{
		{"log_bin", "1"},
		{"binlog_format", "ROW"},
		{"binlog_row_image", "FULL"},
		{"binlog_row_metadata", "FULL"},
	}
	for _, w := range want {
		var v sql.NullString
		if err := db.QueryRowContext(ctx, "SELECT @@GLOBAL."+w.name).Scan(&v); err != nil {
			return s, fmt.Errorf("%w: cannot read %s (MariaDB >= 10.5 or MySQL >= 8.0.1 needed): %w", ErrServerSetting, w.name, err)
		}
		got := strings.ToUpper(v.String)
		if w.name == "log_bin" && got == "ON" {
			got = "1"
		}
		if got != w.value {
			return s, fmt.Errorf("%w: %s is %q, the order feed needs %s=%s (set it in the server's configuration)",
				ErrServerSetting, w.name, v.String, w.name, w.value)
		}
	}
	return s, nil
}

// current returns the server's current binlog position.
func (s server) current(ctx context.Context, db *sql.DB) (Position, error) {
	var pos Position
	gtidVar := "@@GLOBAL.gtid_binlog_pos"
	if !s.mariadb {
		gtidVar = "IF(@@GLOBAL.gtid_mode = 'ON', @@GLOBAL.gtid_executed, '')"
	}
	if err := db.QueryRowContext(ctx, "SELECT "+gtidVar).Scan(&pos.GTID); err != nil {
		return pos, privilegeError("read the server's GTID position", err)
	}
	file, p, err := masterStatus(ctx, db)
	if err != nil {
		return pos, err
	}
	pos.File, pos.Pos = file, p
	return pos, nil
}

// first returns the start of the oldest binlog on the server.
func (s server) first(ctx context.Context, db *sql.DB) (Position, error) {
	rows, err := db.QueryContext(ctx, "SHOW BINARY LOGS")
	if err != nil {
		return Position{}, privilegeError("SHOW BINARY LOGS", err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	if !rows.Next() {
		return Position{}, fmt.Errorf("binlog: the server lists no binary logs: %w", rows.Err())
	}
	dest := make([]any, len(cols))
	var file string
	dest[0] = &file
	for i := 1; i < len(dest); i++ {
		dest[i] = new(sql.RawBytes)
	}
	if err := rows.Scan(dest...); err != nil {
		return Position{}, err
	}
	return Position{File: file, Pos: 4}, nil
}

func masterStatus(ctx context.Context, db *sql.DB) (string, uint32, error) {
	rows, err := db.QueryContext(ctx, "SHOW MASTER STATUS")
	var my *mysql.MySQLError
	if errors.As(err, &my) && my.Number == 1064 {
		rows, err = db.QueryContext(ctx, "SHOW BINARY LOG STATUS") // MySQL >= 8.4
	}
	if err != nil {
		return "", 0, privilegeError("SHOW MASTER STATUS", err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	if !rows.Next() {
		return "", 0, fmt.Errorf("%w: SHOW MASTER STATUS is empty: the binary log is off", ErrServerSetting)
	}
	var file string
	var pos uint64
	dest := make([]any, len(cols))
	dest[0], dest[1] = &file, &pos
	for i := 2; i < len(dest); i++ {
		dest[i] = new(sql.RawBytes)
	}
	if err := rows.Scan(dest...); err != nil {
		return "", 0, err
	}
	return file, uint32(pos), rows.Err()
}
