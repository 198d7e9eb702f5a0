package merger

import (
	"errors"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-sql-driver/mysql"
)

// The merger's own errors. Each is a *mysql.MySQLError carrying what the
// client must see; errors.Is matches them by number.
var (
	// ErrQueueFull: the table's queue or the merger's global queue is at its
	// bound. The server's wording of 1637 (too many transactions).
	ErrQueueFull = &mysql.MySQLError{Number: 1637, SQLState: state("HY000"),
		Message: "Too many active concurrent transactions"}
	// ErrLockWaitTimeout: the request waited in its queue longer than the
	// queue timeout (innodb_lock_wait_timeout by default), exactly as the
	// server reports a row lock wait that long.
	ErrLockWaitTimeout = &mysql.MySQLError{Number: 1205, SQLState: state("HY000"),
		Message: "Lock wait timeout exceeded; try restarting transaction"}
	// ErrOutcomeUnknown: the batch's COMMIT was interrupted and its marker
	// could not be read before the resolve timeout; the request may or may
	// not have been applied, as after a connection lost during COMMIT.
	ErrOutcomeUnknown = &mysql.MySQLError{Number: 2013, SQLState: state("HY000"),
		Message: "Lost connection to server during query (hotrow: commit outcome unknown)"}
	// ErrNotApplied: the backend stayed unreachable for the resolve timeout;
	// the request was not applied.
	ErrNotApplied = &mysql.MySQLError{Number: 2013, SQLState: state("HY000"),
		Message: "Lost connection to server during query (hotrow: statement not applied)"}
	// ErrBadRequest: the request carries fewer arguments than its
	// statement has parameter slots (the server's wording for a prepared
	// statement executed with wrong arguments).
	ErrBadRequest = &mysql.MySQLError{Number: 1210, SQLState: state("HY000"),
		Message: "Incorrect arguments to mysqld_stmt_execute"}
	// ErrClosed: the merger is closed.
	ErrClosed = &mysql.MySQLError{Number: 1053, SQLState: state("08S01"),
		Message: "Server shutdown in progress"}
)

func state(s string) (b [5]byte) {
	copy(b[:], s)
	return b
}

// serverError returns the server's error as a *mysql.MySQLError when err
// carries one (go-mysql's *MyError is converted), else nil: err is then a
// connection or protocol failure.
func serverError(err error) *mysql.MySQLError {
	var drv *mysql.MySQLError
	if errors.As(err, &drv) {
		return drv
	}
	var my *gomysql.MyError
	if errors.As(err, &my) {
		e := &mysql.MySQLError{Number: my.Code, Message: my.Message}
		copy(e.SQLState[:], my.State)
		return e
	}
	return nil
}

// batchLevel reports whether a server error belongs to the batch's
// transaction rather than to one request: the transaction may be rolled
// back or the session interrupted, so the batch is retried.
func batchLevel(e *mysql.MySQLError) bool {
	switch e.Number {
	case 1205, // lock wait timeout (may roll back the transaction)
		1213,       // deadlock: transaction rolled back
		1317,       // query interrupted (KILL QUERY)
		1053,       // server shutdown in progress
		1927,       // connection was killed
		1290,       // read-only (e.g. during failover)
		1792,       // read-only transaction
		1180, 1181: // commit/rollback errors
		return true
	}
	return false
}
