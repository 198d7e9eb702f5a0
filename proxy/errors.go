package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
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

// toMySQLError turns any error into the *gomysql.MyError the client
// receives, unwrapped, so that its code, SQL state and message survive.
// This is the one place errors become protocol errors. Errors that carry
// a *MyError (the server's own, as go-mysql's client reports them, or the
// merger's sentinels) keep it; lost backends become 2013; an ended
// context is 1317 (query interrupted); anything else is 1105 (unknown
// error).
func toMySQLError(err error) *gomysql.MyError {
	err = pingcap.Cause(err)
	var my *gomysql.MyError
	if errors.As(err, &my) {
		return my
	}
	var be *backendError
	if errors.As(err, &be) || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		return gomysql.NewError(crServerLost, "Lost connection to MySQL server during query (hotrow: backend connection failed)")
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return gomysql.NewDefaultError(gomysql.ER_QUERY_INTERRUPTED)
	}
	return gomysql.NewError(gomysql.ER_UNKNOWN_ERROR, fmt.Sprintf("hotrow: %v", err))
}
