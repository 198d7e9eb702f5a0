package proxy

import (
	"context"
	"errors"
	"fmt"
	"syscall"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/hotrow/hotrow/merger"
)

// errClientGone: the client disconnected while its merged request waited.
var errClientGone = errors.New("client disconnected while its statement was queued")

// canMerge reports whether the session's next hot statement may be merged:
// a merger runs, the session is eligible, and it is in autocommit mode
// outside any transaction, or inside one when the merger takes claims
// (mergeRequest decides).
func (s *session) canMerge() bool {
	return s.srv.merger != nil && s.mergeable &&
		(s.status&statusAutocommit != 0 && s.status&statusInTrans == 0 || s.claimer() != nil)
}

// mergeCandidate is the cheap test before matching: an UPDATE on a
// session that may merge.
func (s *session) mergeCandidate(query string) bool {
	return s.srv.merger != nil && s.mergeable && startsWithUpdate(query)
}

func startsWithUpdate(q string) bool {
	i := 0
	for i < len(q) && (q[i] == ' ' || q[i] == '\t' || q[i] == '\n' || q[i] == '\r') {
		i++
	}
	return len(q)-i > 6 && containsFold([]byte(q[i:i+6]), "update")
}

// mergeText merges a COM_QUERY that is a hot statement; handled is false
// when the query must pass through. The caller has checked canMerge.
func (s *session) mergeText(ctx context.Context, query string) (handled bool, err error) {
	if !startsWithUpdate(query) {
		return false, nil
	}
	db, err := s.currentDB()
	if err != nil {
		var be *backendError
		if errors.As(err, &be) {
			return true, err // the client has heard 2013
		}
		return true, s.writeErr(toMySQLError(err))
	}
	st, args, ok := s.srv.matcher.MatchText(db, query)
	if !ok {
		return false, nil
	}
	return s.mergeRequest(ctx, merger.Request{Stmt: st, Args: args, Text: query, ConnID: s.connID})
}

// merge runs a request through the merger and answers the client with the
// OK packet the server would have sent, or the error it would have raised.
//
// The merger drops the request if its client has disconnected by the time
// its batch forms (it applies requests already in a batch); the session
// then ends.
func (s *session) merge(ctx context.Context, req merger.Request) error {
	req.Gone = s.clientGone
	s.srv.counters.merged.Add(1)
	out, err := s.srv.merger.Do(ctx, req)
	if err != nil {
		if errors.Is(err, context.Canceled) && ctx.Err() == nil {
			return errClientGone
		}
		return s.writeErr(toMySQLError(err))
	}
	affected := out.Changed
	if s.capability&gomysql.CLIENT_FOUND_ROWS != 0 {
		affected = out.Matched
	}
	// The server's OK after an autocommit UPDATE carries only the
	// autocommit flag; flags of earlier commands (cursors) do not belong.
	s.outBuf = appendOK(s.outBuf[:0], affected, 0, s.status&statusAutocommit, out.Warnings,
		rowsInfo(out.Matched, out.Changed, out.Warnings))
	if err := s.client.writePacket(s.outBuf); err != nil {
		return err
	}
	return s.flushClient()
}

// clientGone peeks at the client socket without blocking or consuming:
// end of stream or a reset means the client went away. A single
// non-blocking system call, cheap enough to ask for every merged request.
func (s *session) clientGone() bool {
	sc, ok := s.conn.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	gone := false
	var b [1]byte
	err = raw.Read(func(fd uintptr) bool {
		n, _, rerr := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		gone = n == 0 && rerr == nil || rerr != nil && rerr != syscall.EAGAIN && rerr != syscall.EINTR
		return true
	})
	return gone || err != nil
}

// currentDB returns the session's default database, asking the backend
// when a statement may have changed it.
func (s *session) currentDB() (string, error) {
	if s.dbKnown {
		return s.db, nil
	}
	db, err := s.queryDatabase()
	if err != nil {
		return "", err
	}
	s.db, s.dbKnown = db, true
	return db, nil
}

// queryDatabase runs SELECT DATABASE() on the backend connection, between
// the client's commands, without relaying anything to the client.
func (s *session) queryDatabase() (string, error) {
	s.be.resetSeq()
	if err := s.be.writePacket(append([]byte{gomysql.COM_QUERY}, "SELECT DATABASE()"...)); err != nil {
		return "", s.lostBackend(err)
	}
	if err := s.be.flush(); err != nil {
		return "", s.lostBackend(err)
	}
	var db string
	for i := 0; ; i++ {
		p, err := s.be.readPacket(s.rawBuf, 0)
		if err != nil {
			return "", s.lostBackend(err)
		}
		s.rawBuf = p
		switch {
		case len(p) > 0 && p[0] == headerErr:
			return "", parseErr(p)
		case i == 3: // column count, column, EOF, then the row
			if p[0] != 0xFB { // NULL: no database
				v, _, _, err := gomysql.LengthEncodedString(p)
				if err != nil {
					return "", err
				}
				db = string(v)
			}
		case i > 3 && isEOF(p):
			s.status = eofStatus(p)
			return db, nil
		case i > 4:
			return "", fmt.Errorf("SELECT DATABASE(): %w", gomysql.ErrMalformPacket)
		}
	}
}
