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
	s.srv.counters.merged.Add(1)
	if a, ok := s.srv.merger.(aloner); ok {
		if done, ok := a.Alone(req); ok {
			return s.runAlone(done)
		}
	}
	req.Gone = s.clientGone
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

// aloner runs a hot statement with nothing queued or running for its
// table on the session's own connection (*merger.Merger).
type aloner interface {
	Alone(req merger.Request) (done func(merger.Outcome, error), ok bool)
}

// runAlone runs the client's hot statement as a pass-through statement on
// the session's own connection (the command as the client sent it, with
// the parameter types the backend must see) and relays the server's
// answer unchanged; a lost backend gives the client 2013, as direct. The
// merger hears the outcome through done (statistics, and the end of the
// table's busy mark).
func (s *session) runAlone(done func(merger.Outcome, error)) (err error) {
	var out merger.Outcome
	var refused error // the server's error for the statement
	defer func() {
		if err != nil {
			refused = toMySQLError(err) // 2013 for a lost backend
		}
		done(out, refused)
	}()
	pkt := s.cmdBuf // the command being dispatched
	if pkt[0] == gomysql.COM_STMT_EXECUTE {
		pkt = s.stmt(pkt).withBackendTypes(pkt)
	}
	return s.forward(pkt, func() error {
		r, err := s.relay()
		switch {
		case err != nil:
			return err
		case r.header == headerErr && !r.large:
			refused = parseErr(r.payload)
			return nil
		case r.header != headerOK || r.large:
			// Not an UPDATE's answer: the session cannot tell where it ends.
			return fmt.Errorf("backend answered 0x%02x to a hot UPDATE: %w", r.header, gomysql.ErrMalformPacket)
		}
		ok, err := parseOK(r.payload)
		if err != nil {
			return fmt.Errorf("backend OK packet: %w", err)
		}
		s.status = ok.status
		out = merger.UpdateOutcome(ok.affectedRows, okInfoText(r.payload), ok.warnings)
		if ok.status&statusMoreResults != 0 {
			return s.relayResult() // not expected of one UPDATE, but relayed whole
		}
		return nil
	})
}

// okInfoText returns the info text of an OK packet: what follows its
// status and warnings (the proxy never negotiates CLIENT_SESSION_TRACK,
// so it runs to the packet's end), "" when malformed.
func okInfoText(p []byte) string {
	pos := 1
	for range 2 { // affected rows, last insert id
		_, n, ok := lenEncInt(p[min(pos, len(p)):])
		if !ok {
			return ""
		}
		pos += n
	}
	if pos+4 > len(p) {
		return ""
	}
	return string(p[pos+4:])
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
