package proxy

import (
	"context"
	"errors"
	"fmt"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/hotrow/hotrow/merger"
)

// claimer is the part of the executor (*merger.Merger) that merges hot
// UPDATEs inside a client's transaction as claims. An Executor without
// it leaves such statements on pass-through.
type claimer interface {
	// ConfirmSQL appends the INSERT of a claim's confirmation.
	ConfirmSQL(b []byte, id string) []byte
	// CancelLater cancels a claim its owner will never confirm.
	CancelLater(id string)
	// SettleLater cancels, of claims whose owner transaction ended, those
	// it did not commit a confirmation for.
	SettleLater(ids []string)
	// CanClaim tells whether an execution may be a claim, else why not.
	CanClaim(ctx context.Context, st *merger.Statement, args []any) (bool, merger.Unmerged)
	// HoldIfIdle holds the execution's row for the transaction when
	// nothing else uses it (it then runs in the transaction, not as a
	// claim); release once the transaction ends.
	HoldIfIdle(st *merger.Statement, args []any) (release func(), ok bool)
	CountUnmerged(merger.Unmerged)
}

// hotNamer tells whether a statement mentions a hot table (*merger.Matcher).
type hotNamer interface {
	MentionsHot(q []byte) bool
}

// claimer returns the session's claimer, nil if its executor takes none.
func (s *session) claimer() claimer {
	c, _ := s.srv.merger.(claimer)
	return c
}

// inTx reports whether the session's next statement runs inside a
// transaction: one is open, or autocommit is off (the statement opens one).
func (s *session) inTx() bool {
	return s.status&statusInTrans != 0 || s.status&statusAutocommit == 0
}

// noteTx follows a pass-through query: one that mentions a hot table may
// read, lock or write it, so the transaction it runs in keeps its later
// hot UPDATEs on pass-through (a claim's batch could wait for the row
// lock the client's own transaction holds).
func (s *session) noteTx(q []byte) {
	if s.txTouched || s.srv.matcher == nil {
		return
	}
	if hn, ok := s.srv.matcher.(hotNamer); ok && hn.MentionsHot(q) {
		s.txTouched = true
	}
}

// afterCommand follows the end of a transaction, seen in the status of the
// command's last OK or EOF: the pass-through marks are cleared, and the
// claims the transaction confirmed are settled (cancelled unless their
// confirmation committed).
func (s *session) afterCommand() {
	if s.status&statusInTrans != 0 || !s.txTouched && len(s.txClaims) == 0 && len(s.txHolds) == 0 {
		return
	}
	s.txTouched = false
	s.settleClaims()
}

// settleClaims releases the rows the session's transaction held and hands
// its claims to the merger to be settled. The transaction that could
// confirm them has ended (or, at the session's end, ends with its
// connection: the cancel waits for its row lock).
func (s *session) settleClaims() {
	for _, release := range s.txHolds {
		release()
	}
	clear(s.txHolds)
	s.txHolds = s.txHolds[:0]
	if len(s.txClaims) == 0 {
		return
	}
	if c := s.claimer(); c != nil {
		c.SettleLater(s.txClaims)
	}
	s.txClaims = nil
}

// unmergedBy counts a hot UPDATE passed through for reason why, and keeps
// the reason for the admin port's stats_not_merged.
func (s *session) unmergedBy(c claimer, why merger.Unmerged) {
	c.CountUnmerged(why)
	s.unmerged = why.String()
}

// mergeRequest merges a hot statement: in autocommit mode through Do,
// inside a transaction as a claim. handled is false when it must pass
// through instead (the reason is counted).
func (s *session) mergeRequest(ctx context.Context, req merger.Request) (handled bool, err error) {
	if !s.inTx() {
		return true, s.merge(ctx, req)
	}
	c := s.claimer()
	switch {
	case c == nil:
		return false, nil
	case s.txTouched:
		s.unmergedBy(c, merger.UnmergedTouched)
		return false, nil
	}
	if !s.claimable(ctx, c, req.Stmt, req.Args) {
		return false, nil
	}
	return true, s.claim(ctx, req, c)
}

// claimable tells whether a hot UPDATE of the open transaction runs as a
// claim; if not, the reason is counted and it passes through. One whose
// row nothing else uses runs in the client's own transaction, as
// directly (a claim would add a batch commit before the client's own),
// and the transaction holds the row until it ends (HoldIfIdle).
func (s *session) claimable(ctx context.Context, c claimer, st *merger.Statement, args []any) bool {
	if ok, why := c.CanClaim(ctx, st, args); !ok {
		s.unmergedBy(c, why)
		return false
	}
	if release, idle := c.HoldIfIdle(st, args); idle {
		s.txHolds = append(s.txHolds, release)
		s.unmergedBy(c, merger.UnmergedUncontended)
		return false
	}
	return true
}

// claim runs a hot UPDATE of an open transaction as a claim: merged into
// a batch that commits the deduction with a claims row; when granted, the
// claim's confirmation is written on the session's own connection, inside
// its transaction, before the client hears the OK the server would have
// sent. The client's COMMIT then commits the confirmation with its own
// rows; if the transaction ends otherwise, the claim is cancelled
// (settleClaims). A refused claim gets the OK of an UPDATE that matched
// nothing.
func (s *session) claim(ctx context.Context, req merger.Request, c claimer) error {
	out, status, refused, err := s.runClaim(ctx, req, c)
	switch {
	case err != nil:
		return err
	case refused != nil:
		return s.writeErr(refused)
	}
	return s.writeUpdateOK(out, status)
}

// writeUpdateOK answers an UPDATE with the OK packet the server would
// have sent for outcome out, with status flags status.
func (s *session) writeUpdateOK(out merger.Outcome, status uint16) error {
	s.outBuf = appendOK(s.outBuf[:0], s.affected(out), 0, status, out.Warnings,
		rowsInfo(out.Matched, out.Changed, out.Warnings))
	if err := s.client.writePacket(s.outBuf); err != nil {
		return err
	}
	return s.flushClient()
}

// affected is the affected-rows count the client sees for out.
func (s *session) affected(out merger.Outcome) uint64 {
	if s.capability&gomysql.CLIENT_FOUND_ROWS != 0 {
		return out.Matched
	}
	return out.Changed
}

// runClaim runs req as a claim and, granted, writes its confirmation. It
// returns the outcome and the status flags of the server's OK, or the
// error the client gets (refused), or err when the session must end.
func (s *session) runClaim(ctx context.Context, req merger.Request, c claimer) (out merger.Outcome, status uint16, refused *gomysql.MyError, err error) {
	req.Claim = &merger.Owner{ConnID: s.connID}
	req.Gone = s.clientGone
	out, err = s.srv.merger.Do(ctx, req)
	if out.ClaimID != "" {
		// Settled when the transaction ends, whatever happens below.
		s.txClaims = append(s.txClaims, out.ClaimID)
	}
	if err != nil {
		if errors.Is(err, context.Canceled) && ctx.Err() == nil {
			return out, 0, nil, errClientGone
		}
		return out, 0, toMySQLError(err), nil
	}
	// The server's OK of an UPDATE inside a transaction flags it.
	status = s.status&statusAutocommit | statusInTrans
	if out.ClaimID != "" {
		s.outBuf = c.ConfirmSQL(append(s.outBuf[:0], gomysql.COM_QUERY), out.ClaimID)
		ok, refused, err := s.backendOK(s.outBuf)
		if err != nil {
			return out, 0, nil, err // the client heard 2013; the session ends and settles
		}
		if refused == nil && ok.affectedRows != 1 {
			// The claim's ledger row is gone: never confirm it.
			refused = gomysql.NewError(gomysql.ER_UNKNOWN_ERROR, "hotrow: the claim's ledger row is missing; the UPDATE was not applied")
		}
		if refused != nil {
			// Not confirmed (e.g. a READ ONLY transaction): the client gets
			// the server's error, and the claim is cancelled.
			s.txClaims = s.txClaims[:len(s.txClaims)-1]
			c.CancelLater(out.ClaimID)
			return out, 0, refused, nil
		}
		s.status, status = ok.status, ok.status
	}
	return out, status, nil, nil
}

// backendOK runs one command (pkt, a COM_QUERY whose answer is OK or
// ERR) on the backend connection between the client's commands, without
// relaying anything, and returns its OK, or the server's error. A lost
// connection has told the client 2013 and ends the session.
func (s *session) backendOK(pkt []byte) (ok okInfo, refused *gomysql.MyError, err error) {
	s.be.resetSeq()
	if err := s.be.writePacket(pkt); err != nil {
		return ok, nil, s.lostBackend(err)
	}
	if err := s.be.flush(); err != nil {
		return ok, nil, s.lostBackend(err)
	}
	p, err := s.be.readPacket(s.rawBuf, 0)
	if err != nil {
		return ok, nil, s.lostBackend(err)
	}
	s.rawBuf = p
	switch {
	case len(p) > 0 && p[0] == headerErr:
		return ok, parseErr(p), nil
	case len(p) > 0 && p[0] == headerOK:
		if ok, err = parseOK(p); err != nil {
			return ok, nil, s.lostBackend(fmt.Errorf("backend OK packet: %w", err))
		}
		s.status = ok.status
		return ok, nil, nil
	}
	// A result set (the statement was not what the proxy took it for):
	// the session cannot tell where it ends.
	return ok, nil, s.lostBackend(fmt.Errorf("backend answered 0x%02x where OK or ERR was expected: %w", p[0], gomysql.ErrMalformPacket))
}
