package proxy

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
)

// session is one client connection and its pinned backend connection.
// Commands run one at a time on the session's goroutine: a command is read
// from the client, forwarded to the backend (or merged), and the backend's
// packets are relayed back unchanged while the proxy follows the response's
// structure to know where it ends.
type session struct {
	srv    *Server
	log    *slog.Logger
	conn   net.Conn // client connection
	client *packetIO
	be     *backendConn

	user       User
	capability uint32 // negotiated with the client (and asked of the backend)
	connID     uint32 // the backend's thread id, shown to the client

	// status holds the server status flags of the last OK/EOF the backend
	// sent (autocommit, in transaction): merging needs autocommit and no
	// open transaction.
	status uint16
	// db is the session's default database; dbKnown is false after a
	// statement that may have changed it (USE inside a query).
	db      string
	dbKnown bool
	// stateTracker decides whether the session's hot statements may be
	// merged (its mergeable field).
	stateTracker
	stmts map[uint32]*preparedStmt

	// infileQuery is the text of the COM_QUERY being relayed, until the
	// server asks for a local file (localInfileAllowed); nil otherwise.
	infileQuery []byte
	// holdInfile tells relay that the next packet starts a result, where
	// a request for a local file (0xFB) is held back for relayResult.
	holdInfile bool

	cmdBuf []byte // client command, reused
	rawBuf []byte // relayed packet, reused
	conBuf []byte // continuation of a relayed packet, reused
	outBuf []byte // packets the proxy builds, reused

	// watch closes the client connection when the server closes the
	// backend connection while the session is idle.
	watch idleWatch

	mu    sync.Mutex // guards state and snap
	state sessionState
	snap  snapshot // as of the last finished command (registry.go)
}

type sessionState int

const (
	stateIdle    sessionState = iota // waiting for the client's next command
	stateBusy                        // running a command
	stateClosing                     // closed by shutdown, or finished
)

// run serves commands until the client quits, an I/O error, or shutdown.
func (s *session) run(ctx context.Context) error {
	defer s.settleClaims() // the transaction ends with the session
	for {
		s.client.resetSeq()
		if s.be.r.Buffered() == 0 {
			s.watch.arm()
		}
		pkt, err := s.client.readPacket(s.cmdBuf, s.srv.cfg.MaxPacketSize)
		if s.watch.disarm() {
			// The client connection is closed already: nothing to answer.
			return backendSide.tag(errBackendClosedIdle)
		}
		if err != nil {
			s.quitBackend()
			if errors.Is(err, errPacketTooLarge) {
				_ = s.writeErr(gomysql.NewDefaultError(gomysql.ER_NET_PACKET_TOO_LARGE))
			}
			return err
		}
		s.cmdBuf = pkt
		if len(pkt) == 0 {
			s.quitBackend()
			return fmt.Errorf("empty command packet: %w", gomysql.ErrMalformPacket)
		}
		if !s.begin() {
			s.quitBackend()
			_ = s.writeErr(gomysql.NewDefaultError(gomysql.ER_SERVER_SHUTDOWN))
			return nil
		}
		err = s.dispatch(ctx, pkt)
		s.afterCommand()
		if !s.end() && err == nil {
			s.quitBackend()
			return nil // shutdown arrived during the command
		}
		if err != nil {
			return err
		}
	}
}

// begin marks the session busy unless shutdown closed it.
func (s *session) begin() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state == stateClosing {
		return false
	}
	s.state = stateBusy
	return true
}

// end marks the session idle and reports whether it may go on.
func (s *session) end() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state == stateClosing {
		return false
	}
	s.state = stateIdle
	s.snap = snapshot{mergeable: s.mergeable, status: s.status}
	return true
}

// closeIfIdle closes an idle session's client connection (unblocking its
// read) and marks a busy one to stop after its command. Used by shutdown.
func (s *session) closeIfIdle() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state == stateIdle {
		s.conn.Close()
	}
	s.state = stateClosing
}

func (s *session) close() {
	s.mu.Lock()
	s.state = stateClosing
	s.mu.Unlock()
	s.conn.Close()
	if s.be != nil {
		s.be.conn.Close()
	}
}

func (s *session) dispatch(ctx context.Context, pkt []byte) error {
	s.infileQuery, s.unmerged = nil, ""
	if pkt[0] == gomysql.COM_QUERY || pkt[0] == gomysql.COM_STMT_EXECUTE {
		s.srv.counters.statements.Add(1)
	}
	switch cmd := pkt[0]; cmd {
	case gomysql.COM_QUIT:
		s.quitBackend()
		return errQuit
	case gomysql.COM_QUERY:
		// A single SELECT, the most common pass-through, is neither hinted
		// nor merged and changes no state the session follows: it skips
		// the scans of the query's text. Only inside a transaction may it
		// mark the transaction as touching a hot table (noteTx); outside
		// one the mark would be cleared when it ends.
		sel := isSingleSelect(pkt[1:])
		if !sel && hasOptimizerHint(pkt[1:]) {
			if handled, err := s.hinted(ctx, string(pkt[1:])); handled || err != nil {
				return err
			}
		}
		if !sel && s.canMerge() && startsWithKeyword(pkt[1:], "update") { // spares other queries the string copy
			if handled, err := s.mergeText(ctx, string(pkt[1:])); handled || err != nil {
				return err
			}
		}
		if s.srv.obs != nil {
			defer s.srv.obs.PassThrough(s.knownDB(), pkt[1:], s.notMergedReason())()
		}
		// Before forwarding: a LOCAL INFILE exchange reuses pkt's buffer.
		if !sel {
			s.noteQuery(pkt[1:])
		}
		s.infileQuery = pkt[1:]
		if !sel || s.inTx() {
			s.noteTx(pkt[1:])
		}
		return s.forward(pkt, s.relayResult)
	case gomysql.COM_INIT_DB:
		return s.forward(pkt, func() error {
			ok, err := s.relayReply()
			if ok {
				s.db, s.dbKnown = string(pkt[1:]), true
			}
			return err
		})
	case gomysql.COM_PING, gomysql.COM_STATISTICS, gomysql.COM_PROCESS_KILL, gomysql.COM_DEBUG,
		gomysql.COM_REFRESH, gomysql.COM_SET_OPTION:
		return s.forward(pkt, s.relayReplyOnly)
	case gomysql.COM_RESET_CONNECTION:
		return s.forward(pkt, func() error {
			ok, err := s.relayReply()
			if ok {
				s.resetState()
			}
			return err
		})
	case gomysql.COM_FIELD_LIST:
		return s.forward(pkt, s.relayUntilEOF)
	case gomysql.COM_PROCESS_INFO:
		return s.forward(pkt, s.relayResult)
	case gomysql.COM_STMT_PREPARE:
		return s.prepare(pkt)
	case gomysql.COM_STMT_EXECUTE:
		return s.execute(ctx, pkt)
	case gomysql.COM_STMT_FETCH:
		return s.forward(pkt, s.relayUntilEOF)
	case gomysql.COM_STMT_SEND_LONG_DATA:
		if st := s.stmt(pkt); st != nil {
			st.longData = true
		}
		return s.forward(pkt, nil)
	case gomysql.COM_STMT_CLOSE:
		if len(pkt) >= 5 {
			delete(s.stmts, binary.LittleEndian.Uint32(pkt[1:]))
		}
		return s.forward(pkt, nil)
	case gomysql.COM_STMT_RESET:
		if st := s.stmt(pkt); st != nil {
			st.longData = false
		}
		return s.forward(pkt, s.relayReplyOnly)
	case gomysql.COM_CHANGE_USER:
		// Re-authenticating both sides mid-session is not supported; the
		// server closes a connection whose COM_CHANGE_USER fails, and so do we.
		_ = s.writeErr(gomysql.NewError(gomysql.ER_NOT_SUPPORTED_YET,
			"hotrow does not support COM_CHANGE_USER; open a new connection for another user"))
		return errQuit
	case gomysql.COM_BINLOG_DUMP, gomysql.COM_BINLOG_DUMP_GTID, gomysql.COM_REGISTER_SLAVE,
		gomysql.COM_TABLE_DUMP:
		return s.writeErr(gomysql.NewError(gomysql.ER_NOT_SUPPORTED_YET,
			fmt.Sprintf("hotrow does not proxy replication commands (command 0x%02x); connect to the server directly", cmd)))
	default:
		return s.writeErr(gomysql.NewDefaultError(gomysql.ER_UNKNOWN_COM_ERROR))
	}
}

// quitBackend sends COM_QUIT on the backend connection, idle between
// commands, before the session closes it: the server then ends the
// session cleanly instead of counting an aborted connection and logging
// a warning. Errors do not matter, the connection is closed next.
func (s *session) quitBackend() {
	s.be.resetSeq()
	if s.be.writePacket([]byte{gomysql.COM_QUIT}) == nil {
		_ = s.be.flush()
	}
}

// resetState follows a successful COM_RESET_CONNECTION: the server dropped
// prepared statements and session variables.
func (s *session) resetState() {
	s.stmts = map[uint32]*preparedStmt{}
	s.stateTracker.reset()
}

// noteQuery updates what the proxy knows of the session before a
// pass-through query (or a prepared statement's text) runs: the default
// database may change (USE), and so may session state that merged batches,
// which run on the merger's own connections, cannot follow.
func (s *session) noteQuery(q []byte) {
	if containsFold(q, "use") {
		s.dbKnown = false
	}
	s.stateTracker.note(q)
}

// writeErr sends an ERR packet and flushes.
func (s *session) writeErr(e *gomysql.MyError) error {
	s.outBuf = appendErr(s.outBuf[:0], e)
	if err := s.client.writePacket(s.outBuf); err != nil {
		return err
	}
	return s.flushClient()
}

// startsWithKeyword reports whether q's first word, after white space,
// starts with kw (lower-case ASCII), ignoring case.
func startsWithKeyword(q []byte, kw string) bool {
	q = bytes.TrimLeft(q, " \t\r\n")
	return len(q) > len(kw) && containsFold(q[:len(kw)], kw)
}

// isSingleSelect reports whether q is one SELECT statement (no ';', so no
// second statement): it reads, and cannot change the default database or
// the session state stateTracker follows.
func isSingleSelect(q []byte) bool {
	return startsWithKeyword(q, "select") && bytes.IndexByte(q, ';') < 0
}

// containsFold reports whether s contains sub (lower-case ASCII), ignoring
// the case of ASCII letters; it errs towards true.
func containsFold(s []byte, sub string) bool {
	n := len(sub)
outer:
	for i := 0; i+n <= len(s); i++ {
		for j := 0; j < n; j++ {
			c := s[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != sub[j] {
				continue outer
			}
		}
		return true
	}
	return false
}
