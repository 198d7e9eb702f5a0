package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/go-mysql-org/go-mysql/mysql"
	driver "github.com/go-sql-driver/mysql"
	pingcap "github.com/pingcap/errors"
)

// Client-side error codes (CR_*) the proxy raises on the server's behalf:
// the codes a client would see from its own driver when talking directly.
const (
	crConnHostError = 2003 // can't connect to the server
	crServerLost    = 2013 // lost connection during query
)

// errQuit ends a session on COM_QUIT.
var errQuit = errors.New("client quit")

// backendError marks an I/O failure on the backend connection, as opposed
// to one on the client connection: the client then hears 2013.
type backendError struct{ err error }

func (e *backendError) Error() string { return "backend: " + e.err.Error() }
func (e *backendError) Unwrap() error { return e.err }

// toMySQLError turns any error into the *mysql.MyError the client receives,
// unwrapped, so that its code, SQL state and message survive. Errors that
// carry a MySQL error (the server's own, or the merger's coded ones) keep
// it; lost backends become 2013; anything else is 1105 (unknown error).
func toMySQLError(err error) *mysql.MyError {
	err = pingcap.Cause(err)
	var my *mysql.MyError
	if errors.As(err, &my) {
		return my
	}
	var drv *driver.MySQLError
	if errors.As(err, &drv) {
		state := string(drv.SQLState[:])
		if drv.SQLState == [5]byte{} {
			state = mysql.DEFAULT_MYSQL_STATE
		}
		return &mysql.MyError{Code: drv.Number, State: state, Message: drv.Message}
	}
	var be *backendError
	if errors.As(err, &be) || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		return &mysql.MyError{Code: crServerLost, State: mysql.DEFAULT_MYSQL_STATE,
			Message: "Lost connection to MySQL server during query (hotrow: backend connection failed)"}
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return mysql.NewError(mysql.ER_QUERY_INTERRUPTED, "Query execution was interrupted")
	}
	return mysql.NewError(mysql.ER_UNKNOWN_ERROR, fmt.Sprintf("hotrow: %v", err))
}
