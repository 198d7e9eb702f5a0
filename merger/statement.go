package merger

import "github.com/hotrow/hotrow/schema"

// Rule names a hot table: which column identifies a row and which column
// holds the stock that concurrent statements decrement (an integer column
// for the fast path).
type Rule = schema.Rule

// Op is the change a mergeable statement makes to the stock column.
type Op int

const (
	// Decrement is SET stock = stock - amount.
	Decrement Op = iota + 1
	// Increment is SET stock = stock + amount (a restock).
	Increment
)

// GuardKind is the condition besides key = k in a mergeable WHERE clause.
type GuardKind int

const (
	// GuardNone: WHERE key = k.
	GuardNone GuardKind = iota
	// GuardAtLeast: AND stock >= value.
	GuardAtLeast
	// GuardDiffNonNegative: AND stock - value >= 0. Unlike GuardAtLeast it
	// raises 1690 on an UNSIGNED stock column when value > stock.
	GuardDiffNonNegative
	// GuardPositive: AND stock > 0.
	GuardPositive
)

// Operand is a value in a statement: a parameter slot or a constant.
type Operand struct {
	// Param is the index into the request's Args, or -1 for Const.
	Param int
	// Const is the constant's value when Param is -1: int64, uint64,
	// float64, string or nil (SQL NULL).
	Const any
}

// Value returns the operand's value for one execution.
func (o Operand) Value(args []any) any {
	if o.Param < 0 {
		return o.Const
	}
	return args[o.Param]
}

// Assignment is an extra `col = value` in the SET list besides the stock.
type Assignment struct {
	Column string
	Value  Operand
}

// Statement is the parsed shape of a mergeable UPDATE: everything but the
// values of its parameter slots. One Statement serves every execution of the
// same shape (a prepared statement, or text queries that differ only in
// literals), so it is immutable once the Matcher returns it.
type Statement struct {
	Rule Rule
	// SQL is the statement with a ? for every parameter slot, as the general
	// (savepoint) path may execute it with Args.
	SQL string
	// Digest identifies the shape (literals stripped), for the ledger.
	Digest string
	// NumParams is how many Args an execution carries.
	NumParams int

	Key    Operand // compared with Rule.Key
	Op     Op
	Amount Operand // the amount SET adds or subtracts
	Guard  GuardKind
	// GuardValue is e in GuardAtLeast (stock >= e) and GuardDiffNonNegative
	// (stock - e >= 0); e there need not be the same slot as Amount.
	GuardValue Operand
	// Extra lists further SET assignments, in statement order.
	Extra []Assignment
}

// Request is one client's execution of a mergeable statement.
type Request struct {
	Stmt *Statement
	// Args are the values of the parameter slots: int64, uint64, float64,
	// string, []byte or nil.
	Args []any
	// Text, when set, is the exact text the client sent (COM_QUERY). The
	// general path runs it verbatim, so literals keep their SQL types.
	Text string
	// ConnID is the client's connection id, recorded in the ledger.
	ConnID uint32
	// Claim, when set, makes the request a claim: a deduction made inside
	// the client's explicit transaction. Its batch writes a claims row
	// beside its ledger row, and the deduction stands only once the
	// client's own transaction commits the claim's confirmation (see
	// claim.go). Only Claimable statements may claim.
	Claim *Owner
	// Gone, when set, reports whether the client has gone away. The merger
	// asks it when the request's batch forms, if the request has waited
	// for 20 ms (goneCheckAge), and drops a request whose client is gone
	// (Do returns context.Canceled); once in a batch, a request is applied
	// whatever happens to its client.
	Gone func() bool
}

// Outcome is what a serial execution would have reported to the client.
type Outcome struct {
	Matched  uint64 // rows the WHERE clause found (affected rows under CLIENT_FOUND_ROWS)
	Changed  uint64 // rows actually changed (affected rows otherwise)
	Warnings uint16
	// ClaimID is set for a claim (Request.Claim) that was granted: the id
	// its confirmation or cancel is written under. It is also set when a
	// claim failed with ErrOutcomeUnknown (it may have been granted): the
	// caller then cancels it.
	ClaimID string
}
