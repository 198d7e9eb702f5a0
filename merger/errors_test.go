package merger

import (
	"errors"
	"fmt"
	"testing"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
)

// errCode is the MySQL error code err carries, 0 when none.
func errCode(err error) uint16 {
	if se := serverError(err); se != nil {
		return se.Code
	}
	return 0
}

// TestErrorsWhatClientsSee: each sentinel carries the code, SQL state and
// message a client hears, and errors.Is tells every one apart from the
// others (ErrNotApplied and ErrOutcomeUnknown share 2013), also wrapped.
func TestErrorsWhatClientsSee(t *testing.T) {
	sentinels := []struct {
		name          string
		err           *gomysql.MyError
		code          uint16
		state, prefix string
	}{
		{"ErrQueueFull", ErrQueueFull, 1637, "HY000", "Too many active concurrent transactions"},
		{"ErrLockWaitTimeout", ErrLockWaitTimeout, 1205, "HY000", "Lock wait timeout exceeded; try restarting transaction"},
		{"ErrOutcomeUnknown", ErrOutcomeUnknown, 2013, "HY000", "Lost connection to server during query (hotrow: commit outcome unknown)"},
		{"ErrNotApplied", ErrNotApplied, 2013, "HY000", "Lost connection to server during query (hotrow: statement not applied)"},
		{"ErrBadRequest", ErrBadRequest, 1210, "HY000", "Incorrect arguments to mysqld_stmt_execute"},
		{"ErrClosed", ErrClosed, 1053, "08S01", "Server shutdown in progress"},
	}
	for _, tc := range sentinels {
		t.Run(tc.name, func(t *testing.T) {
			if tc.err.Code != tc.code || tc.err.State != tc.state || tc.err.Message != tc.prefix {
				t.Errorf("%s = %d (%s) %q, want %d (%s) %q", tc.name, tc.err.Code, tc.err.State, tc.err.Message, tc.code, tc.state, tc.prefix)
			}
			wrapped := fmt.Errorf("batch: %w", tc.err)
			for _, other := range sentinels {
				if got, want := errors.Is(wrapped, other.err), other.name == tc.name; got != want {
					t.Errorf("errors.Is(wrapped %s, %s) = %v, want %v", tc.name, other.name, got, want)
				}
			}
			if errCode(wrapped) != tc.code {
				t.Errorf("serverError(wrapped %s) code %d, want %d", tc.name, errCode(wrapped), tc.code)
			}
		})
	}
}

func TestBatchLevel(t *testing.T) {
	for _, tc := range []struct {
		code uint16
		want bool
	}{
		{gomysql.ER_LOCK_WAIT_TIMEOUT, true},
		{gomysql.ER_LOCK_DEADLOCK, true},
		{erConnectionKilled, true},
		{gomysql.ER_ERROR_DURING_COMMIT, true},
		{gomysql.ER_DATA_OUT_OF_RANGE, false},
		{gomysql.ER_DUP_ENTRY, false},
	} {
		t.Run(fmt.Sprint(tc.code), func(t *testing.T) {
			if got := batchLevel(gomysql.NewDefaultError(tc.code)); got != tc.want {
				t.Errorf("batchLevel(%d) = %v, want %v", tc.code, got, tc.want)
			}
		})
	}
}
