package proxy

import (
	"sort"
	"sync/atomic"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/hotrow/hotrow/merger"
)

// Observer sees the text queries that pass through (*admin.Observer):
// PassThrough runs before the query is forwarded, the returned end once
// its response has been relayed. query is only valid during the call.
// notMerged says why the session could not merge a hot statement ("" when
// it could: then the statement itself was not mergeable). PassThrough
// must be cheap: it runs on the proxy's hot path.
type Observer interface {
	PassThrough(defaultDB string, query []byte, notMerged string) (end func())
}

// ruleActive reports whether rule r is still in force, for a prepared
// statement matched earlier, when the Matcher can tell (*merger.RuleSet);
// a fixed Matcher's rules always are.
func (s *Server) ruleActive(r merger.Rule) bool {
	rc, ok := s.matcher.(interface{ Active(merger.Rule) bool })
	return !ok || rc.Active(r)
}

// knownDB is the session's default database when known without asking
// the backend, else "".
func (s *session) knownDB() string {
	if s.dbKnown {
		return s.db
	}
	return ""
}

// notMergedReason says why the session's hot statements cannot be merged
// now, "" when they can.
func (s *session) notMergedReason() string {
	if s.unmerged != "" {
		return s.unmerged
	}
	return reason(s.srv.merger != nil, s.eligible, s.mergeable, s.status)
}

func reason(merger, eligible, mergeable bool, status uint16) string {
	switch {
	case !merger:
		return "no merger"
	case !eligible:
		return "not the merge user"
	case !mergeable:
		return "session state changed (SET, temporary table or lock)"
	case status&gomysql.SERVER_STATUS_AUTOCOMMIT == 0:
		return "autocommit off"
	case status&gomysql.SERVER_STATUS_IN_TRANS != 0:
		return "in a transaction"
	}
	return ""
}

// counters are the server's statistics, counted without locks.
type counters struct {
	// statements counts COM_QUERY and COM_STMT_EXECUTE commands; merged
	// those handed to the merger. The others passed through.
	statements, merged atomic.Uint64
	// logins counts sessions that logged in.
	logins atomic.Uint64
}

// Counters is a snapshot of the server's statistics.
type Counters struct {
	// Statements counts text queries and prepared executions, Merged
	// those of them handed to the merger, PassThrough the others.
	Statements, Merged, PassThrough uint64
	// Sessions is the number of client sessions now, Logins since start.
	Sessions int
	Logins   uint64
}

// Counters returns the server's statistics.
func (s *Server) Counters() Counters {
	c := Counters{Statements: s.counters.statements.Load(), Merged: s.counters.merged.Load(),
		Logins: s.counters.logins.Load()}
	c.PassThrough = c.Statements - min(c.Merged, c.Statements)
	c.Sessions = s.sessionCount()
	return c
}

// SessionInfo describes one client session (the admin port's
// stats_sessions).
type SessionInfo struct {
	// ConnID is the session's id, also its backend connection's thread id.
	ConnID uint32
	User   string
	Client string // the client's address
	// Busy: a command is running.
	Busy bool
	// Mergeable reports whether its next hot statement may be merged;
	// Reason says why not when false. Both as of its last finished
	// command.
	Mergeable bool
	Reason    string
}

// snapshot is what a session's last finished command left, for
// Sessions; guarded by session.mu.
type snapshot struct {
	mergeable bool
	status    uint16
}

// Sessions describes the client sessions, ordered by ConnID.
func (s *Server) Sessions() []SessionInfo {
	s.mu.Lock()
	out := make([]SessionInfo, 0, len(s.sessions))
	for sess := range s.sessions {
		sess.mu.Lock()
		info := SessionInfo{ConnID: sess.connID, User: sess.user.Name, Client: sess.conn.RemoteAddr().String(),
			Busy: sess.state == stateBusy}
		snap := sess.snap
		sess.mu.Unlock()
		info.Reason = reason(s.merger != nil, sess.eligible, snap.mergeable, snap.status)
		info.Mergeable = info.Reason == ""
		out = append(out, info)
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ConnID < out[j].ConnID })
	return out
}

// KillSession closes the session with the given id (its client and
// backend connections), as KILL does on the server; a merged statement
// already in a batch is still applied. It reports whether the session
// existed.
func (s *Server) KillSession(id uint32) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for sess := range s.sessions {
		if sess.connID == id {
			sess.close()
			return true
		}
	}
	return false
}
