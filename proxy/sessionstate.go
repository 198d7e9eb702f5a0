package proxy

import "bytes"

// stateTracker follows the session state that decides whether a session's
// hot statements may be merged. Merged batches run on the merger's own
// connections, with the server's defaults and the merge user's view of the
// tables, so a session that changed what a hot UPDATE does stops merging:
// a SET other than autocommit, the character set or user variables (e.g.
// sql_mode, which decides errors and clipping; SET TRANSACTION READ ONLY;
// statement time limits), a temporary table that may shadow the hot table,
// LOCK TABLES or a global read lock. Statements are noted as text, whether
// they run as queries or are prepared (a prepared SET may run at any time).
// In doubt it stops merging: a false positive only sends that session's
// statements through.
//
// The autocommit and in-transaction flags, which the server reports in
// every OK and EOF packet, are followed by the session (session.status).
type stateTracker struct {
	// eligible: the session's user is the merge user; fixed at login.
	eligible bool
	// mergeable: eligible, and no statement since login or the last
	// COM_RESET_CONNECTION changed state merged batches cannot follow.
	mergeable bool
	// txTouched: a pass-through statement of the open transaction (or the
	// last statement, outside one) mentioned a hot table, so the
	// transaction's hot UPDATEs pass through (txmerge.go).
	txTouched bool
	// txClaims are the claims the open transaction confirmed, or may
	// have: settled when it ends.
	txClaims []string
	// txHolds release the rows the open transaction updated on its own
	// connection, uncontended (claimable): called when it ends.
	txHolds []func()
	// unmerged says why the current command's hot UPDATE passed through
	// when the merger declined it (unmergedBy); "" otherwise. Reset per
	// command.
	unmerged string
}

func newStateTracker(eligible bool) stateTracker {
	return stateTracker{eligible: eligible, mergeable: eligible}
}

// note follows a statement's text, before it runs as a pass-through query
// or is prepared.
func (t *stateTracker) note(q []byte) {
	if t.mergeable && changesMergeSemantics(q) {
		t.mergeable = false
	}
}

// reset follows a successful COM_RESET_CONNECTION: the server restored
// the session's defaults and dropped its temporary tables and locks.
func (t *stateTracker) reset() { t.mergeable = t.eligible }

// changesMergeSemantics reports whether q may change session state that
// decides what a hot UPDATE does: sql_mode (errors, clipping), a temporary
// table shadowing the hot table, table locks, read-only transactions,
// statement time limits, XA transactions. It errs towards true: a false positive only stops
// merging for that session. Reading such state (SELECT @@sql_mode) and SETs
// of autocommit, the character set and user variables keep merging.
func changesMergeSemantics(q []byte) bool {
	// An XA transaction's end (XA PREPARE, XA COMMIT) is not what a claim's
	// settling follows: a session that uses XA stops merging.
	for _, w := range []string{"temporary", "lock tables", "read lock", "xa start", "xa begin"} {
		if containsFold(q, w) {
			return true
		}
	}
	// Every statement of a multi-statement query; a ';' inside a string
	// only adds a harmless false positive.
	for _, stmt := range bytes.Split(q, []byte(";")) {
		stmt = bytes.TrimLeft(stmt, " \t\r\n")
		if len(stmt) < 4 || !containsFold(stmt[:4], "set ") {
			continue
		}
		for _, assignment := range bytes.Split(stmt[4:], []byte(",")) {
			if !harmlessSetting(assignment) {
				return true
			}
		}
	}
	return false
}

// harmlessSetting reports whether one SET assignment leaves merged
// statements' semantics alone.
func harmlessSetting(a []byte) bool {
	a = bytes.ToLower(bytes.TrimSpace(a))
	for _, prefix := range []string{"session ", "local ", "@@session.", "@@local.", "@@"} {
		a = bytes.TrimPrefix(a, []byte(prefix))
	}
	if bytes.HasPrefix(a, []byte("@")) { // a user variable
		return true
	}
	for _, name := range []string{"autocommit", "names ", "character set ", "charset ", "character_set_client",
		"character_set_connection", "character_set_results", "collation_connection"} {
		if bytes.HasPrefix(a, []byte(name)) {
			return true
		}
	}
	return false
}
