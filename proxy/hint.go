package proxy

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"strings"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/hotrow/hotrow/merger"
)

// AliSQL's Inventory Hint errors.
const (
	erInventoryAutocommit = 7531
	erInventoryMismatch   = 7532
)

var (
	errInventoryAutocommit = &gomysql.MyError{Code: erInventoryAutocommit, State: "HY000",
		Message: "Inventory transactional hints didn't allowed in autocommit mode"}
	errInventoryMismatch = &gomysql.MyError{Code: erInventoryMismatch, State: "HY000",
		Message: "Inventory conditional hints didn't match with result"}
)

// inventoryHint is AliSQL's Inventory Hint on an UPDATE:
// UPDATE /*+ COMMIT_ON_SUCCESS ROLLBACK_ON_FAIL TARGET_AFFECT_ROW(n) */ ...
type inventoryHint struct {
	commitOnSuccess, rollbackOnFail bool
	// target is the affected-rows count the UPDATE must have; -1: any.
	target int64
}

// parseInventoryHint recognises an UPDATE whose first comment, right
// after the keyword, is an optimizer hint naming at least one inventory
// hint. stripped is the statement without that comment.
func parseInventoryHint(q string) (h inventoryHint, stripped string, ok bool) {
	t := strings.TrimLeft(q, " \t\r\n")
	if len(t) < 7 || !strings.EqualFold(t[:6], "update") {
		return h, "", false
	}
	rest := strings.TrimRight(strings.TrimLeft(t[6:], " \t\r\n"), " \t\r\n;")
	if !strings.HasPrefix(rest, "/*+") || strings.Contains(rest, ";") {
		// Not a hint, or several statements (whose results the proxy
		// could not follow): the server runs it, ignoring the comment.
		return h, "", false
	}
	end := strings.Index(rest, "*/")
	if end < 0 {
		return h, "", false
	}
	h.target = -1
	fields := strings.Fields(strings.ToUpper(rest[3:end]))
	for _, f := range fields {
		switch {
		case f == "COMMIT_ON_SUCCESS":
			h.commitOnSuccess = true
		case f == "ROLLBACK_ON_FAIL":
			h.rollbackOnFail = true
		case strings.HasPrefix(f, "TARGET_AFFECT_ROW(") && strings.HasSuffix(f, ")"):
			n, err := strconv.ParseInt(f[len("TARGET_AFFECT_ROW("):len(f)-1], 10, 64)
			if err != nil || n < 0 {
				return h, "", false
			}
			h.target = n
		default:
			return h, "", false // another hint: not ours to interpret
		}
	}
	if !h.commitOnSuccess && !h.rollbackOnFail && h.target < 0 {
		return h, "", false
	}
	return h, "UPDATE " + rest[end+2:], true
}

// hinted runs a COM_QUERY carrying an Inventory Hint as AliSQL does;
// handled is false for any other query. In autocommit mode the hint is
// refused with 7531. Inside a transaction the UPDATE runs (merged as a
// claim on a hot table when it may be, else on the session's
// connection); when it succeeds with TARGET_AFFECT_ROW's count, a
// COMMIT_ON_SUCCESS commits the transaction before the client hears OK;
// when it fails or affects another count, ROLLBACK_ON_FAIL rolls the
// transaction back, and the client gets 7532 (or the statement's own
// error without ROLLBACK_ON_FAIL).
func (s *session) hinted(ctx context.Context, query string) (handled bool, err error) {
	h, stripped, ok := parseInventoryHint(query)
	if !ok {
		return false, nil
	}
	if !s.inTx() {
		if h.commitOnSuccess || h.rollbackOnFail {
			return true, s.writeErr(errInventoryAutocommit)
		}
		return false, nil
	}
	// Without ROLLBACK_ON_FAIL, a count other than the target fails the
	// statement alone: a savepoint lets it be undone.
	undo := h.target >= 0 && !h.rollbackOnFail
	if undo {
		if _, refused, err := s.backendOK(append([]byte{gomysql.COM_QUERY}, "SAVEPOINT hotrow_hint"...)); err != nil {
			return true, err
		} else if refused != nil {
			return true, s.writeErr(refused)
		}
	}
	claims := len(s.txClaims)
	out, status, failed, err := s.hintedUpdate(ctx, stripped)
	if err != nil {
		return true, err
	}
	if failed == nil && h.target >= 0 && s.affected(out) != uint64(h.target) {
		failed = errInventoryMismatch
		if undo {
			if _, refused, err := s.backendOK(append([]byte{gomysql.COM_QUERY}, "ROLLBACK TO SAVEPOINT hotrow_hint"...)); err != nil {
				return true, err
			} else if refused != nil {
				return true, s.writeErr(refused)
			}
			// A claim confirmed by the statement is unconfirmed again.
			if c := s.claimer(); c != nil {
				for _, id := range s.txClaims[claims:] {
					c.CancelLater(id)
				}
			}
			s.txClaims = s.txClaims[:claims]
		}
	}
	if failed != nil {
		if !h.rollbackOnFail {
			return true, s.writeErr(failed)
		}
		if _, refused, err := s.backendOK(append([]byte{gomysql.COM_QUERY}, "ROLLBACK"...)); err != nil {
			return true, err
		} else if refused != nil {
			return true, s.writeErr(refused)
		}
		return true, s.writeErr(errInventoryMismatch)
	}
	if h.commitOnSuccess {
		ok, refused, err := s.backendOK(append([]byte{gomysql.COM_QUERY}, "COMMIT"...))
		if err != nil {
			return true, err
		}
		if refused != nil {
			return true, s.writeErr(refused)
		}
		status = ok.status
	}
	return true, s.writeUpdateOK(out, status)
}

// hintedUpdate runs a hinted UPDATE (without its hint) inside the
// session's transaction: as a claim when it may merge, else on the
// session's connection. failed is the error the statement got.
func (s *session) hintedUpdate(ctx context.Context, stripped string) (out merger.Outcome, status uint16, failed *gomysql.MyError, err error) {
	if c := s.claimer(); c != nil && s.mergeable && !s.txTouched {
		db, err := s.currentDB()
		if err != nil {
			var be *backendError
			if errors.As(err, &be) {
				return out, 0, nil, err // the client has heard 2013
			}
			return out, 0, toMySQLError(err), nil
		}
		if st, args, ok := s.srv.matcher.MatchText(db, stripped); ok && s.claimable(ctx, c, st, args) {
			return s.runClaim(ctx, merger.Request{Stmt: st, Args: args, Text: stripped, ConnID: s.connID}, c)
		}
	}
	s.noteQuery([]byte(stripped))
	s.noteTx([]byte(stripped))
	ok, refused, err := s.backendOK(append([]byte{gomysql.COM_QUERY}, stripped...))
	if err != nil || refused != nil {
		return out, 0, refused, err
	}
	out.Matched, out.Changed, out.Warnings = ok.affectedRows, ok.affectedRows, ok.warnings
	return out, ok.status, nil, nil
}

// hasOptimizerHint is the cheap test before parseInventoryHint.
func hasOptimizerHint(q []byte) bool { return bytes.Contains(q, []byte("/*+")) }
