package merger

import (
	"errors"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
)

// Error codes go-mysql does not name.
const (
	// crServerLost is the client-side code 2013 (CR_SERVER_LOST, "Lost
	// connection to server during query") that a client's own driver
	// raises when its connection breaks during a statement.
	crServerLost uint16 = 2013
	// erConnectionKilled is MariaDB's 1927 (ER_CONNECTION_KILLED).
	erConnectionKilled uint16 = 1927
)

// The merger's own errors. Each is a distinct *gomysql.MyError carrying
// the code, SQL state and message the client must see; errors.Is tells
// them apart by identity (MyError has no Is method), never by code:
// ErrNotApplied and ErrOutcomeUnknown share 2013 and differ in what the
// caller may do.
//
// As go-sql-driver separates ErrBadConn (nothing sent: safe to retry)
// from ErrInvalidConn (may have run), ErrNotApplied means the request was
// certainly not applied and may be retried, ErrOutcomeUnknown that it
// may or may not have been applied and must not be retried blindly.
var (
	// ErrQueueFull: the table's queue or the merger's global queue is at its
	// bound. The server's wording of 1637 (too many transactions).
	ErrQueueFull = gomysql.NewDefaultError(gomysql.ER_TOO_MANY_CONCURRENT_TRXS)
	// ErrLockWaitTimeout: the request waited in its queue longer than the
	// queue timeout (innodb_lock_wait_timeout by default), exactly as the
	// server reports a row lock wait that long (1205). A lock wait timeout
	// the server raised is passed on as the server's own error.
	ErrLockWaitTimeout = gomysql.NewDefaultError(gomysql.ER_LOCK_WAIT_TIMEOUT)
	// ErrOutcomeUnknown: the batch's COMMIT was interrupted and its marker
	// could not be read before the resolve timeout (or before Close); the
	// request may or may not have been applied, as after a connection lost
	// during COMMIT. Not safe to retry blindly.
	ErrOutcomeUnknown = gomysql.NewError(crServerLost,
		"Lost connection to server during query (hotrow: commit outcome unknown)")
	// ErrNotApplied: the backend stayed unreachable for the resolve timeout,
	// or the merger closed while the request was being retried; the
	// request was certainly not applied and is safe to retry.
	ErrNotApplied = gomysql.NewError(crServerLost,
		"Lost connection to server during query (hotrow: statement not applied)")
	// ErrBadRequest: the request carries fewer arguments than its
	// statement has parameter slots (the server's wording for a prepared
	// statement executed with wrong arguments).
	ErrBadRequest = gomysql.NewDefaultError(gomysql.ER_WRONG_ARGUMENTS, "mysqld_stmt_execute")
	// ErrClosed: the merger is closed.
	ErrClosed = gomysql.NewDefaultError(gomysql.ER_SERVER_SHUTDOWN)
)

// serverError returns the server's error when err carries one, else nil:
// err is then a connection or protocol failure.
func serverError(err error) *gomysql.MyError {
	var my *gomysql.MyError
	if errors.As(err, &my) {
		return my
	}
	return nil
}

// batchLevel reports whether a server error belongs to the batch's
// transaction rather than to one request: the transaction may be rolled
// back or the session interrupted, so the batch is retried.
func batchLevel(e *gomysql.MyError) bool {
	switch e.Code {
	case gomysql.ER_LOCK_WAIT_TIMEOUT, // may roll back the transaction
		gomysql.ER_LOCK_DEADLOCK,                         // transaction rolled back
		gomysql.ER_QUERY_INTERRUPTED,                     // KILL QUERY
		gomysql.ER_SERVER_SHUTDOWN,                       // shutdown in progress
		erConnectionKilled,                               // KILL CONNECTION
		gomysql.ER_OPTION_PREVENTS_STATEMENT,             // read-only (e.g. during failover)
		gomysql.ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION, // read-only transaction
		gomysql.ER_ERROR_DURING_COMMIT,
		gomysql.ER_ERROR_DURING_ROLLBACK:
		return true
	}
	return false
}
