package merger

import "strconv"

// batchStep is a point in a batch's life where hooks.before runs.
type batchStep int

// The steps of a batch, in order.
const (
	// stepBegin: before the transaction starts (and the fast path's lock).
	stepBegin batchStep = iota + 1
	// stepUpdate: before the statements that change the row.
	stepUpdate
	// stepCommit: before the round trip that carries COMMIT.
	stepCommit
)

func (s batchStep) String() string {
	switch s {
	case stepBegin:
		return "begin"
	case stepUpdate:
		return "update"
	case stepCommit:
		return "commit"
	}
	return "step(" + strconv.Itoa(int(s)) + ")"
}

// execPath is how a batch was executed.
type execPath int

// The execution paths.
const (
	// pathLone: one request, one multi-statement round trip.
	pathLone execPath = iota + 1
	// pathFast: lock read, guards evaluated in Go, one UPDATE per changed
	// row to its final stock.
	pathFast
	// pathGeneral: a savepoint and the statement itself per request.
	pathGeneral
)

func (p execPath) String() string {
	switch p {
	case pathLone:
		return "lone"
	case pathFast:
		return "fast"
	case pathGeneral:
		return "general"
	}
	return "path(" + strconv.Itoa(int(p)) + ")"
}

// hooks are test-only observation and fault-injection points. They run on
// the batch's goroutine; nil hooks cost nothing.
type hooks struct {
	// before runs before each step of every attempt with the backend
	// connection's id (CONNECTION_ID()). It may kill that connection,
	// also concurrently with the step, to inject a failure there.
	before func(step batchStep, connID uint32)
	// executed runs once per batch whose outcomes are final (committed, or
	// changing nothing), before they are delivered, in execution order per
	// table. Its slices are only valid during the call.
	executed func(b executed)
}

// executed describes a batch that reached its final outcomes.
type executed struct {
	BatchID  string
	Path     execPath
	Requests []Request
	Outcomes []Outcome
	// Errs[i] is the server error request i got, nil when it succeeded.
	Errs []error
}
