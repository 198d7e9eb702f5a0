// Package merger turns concurrent hot-row stock UPDATEs into group-committed
// batch transactions whose every outcome equals a serial execution.
//
// A Matcher (match.go) recognises mergeable statements and returns their
// shape as a *Statement; the proxy wraps each execution in a Request and
// calls Merger.Do, which returns the Outcome (matched, changed, warnings)
// or the error the client would have got from the server directly.
//
//	m, err := merger.New(ctx, cfg, log)
//	out, err := m.Do(ctx, merger.Request{Stmt: st, Args: args, Text: query, ConnID: id})
//	if errors.Is(err, merger.ErrNotApplied) { /* certainly not applied: may retry */ }
//
// # Files
//
// One job each:
//
//   - merger.go: Merger, its per-table queues and workers, Do, Close.
//   - config.go, hooks.go: Config and its validation; test-only hooks
//     and the execution path and step names they report.
//   - match.go, scan.go, statement.go: the Matcher (TiDB parser
//     analysis), the scanner that turns literals into parameter slots
//     and caches by shape, the Statement/Request/Outcome types.
//   - execute.go: the executor of one table's batches and its fallbacks
//     (a failed batch per row, then one by one), results and delivery.
//   - keys.go: grouping a batch's requests by row (keySet), mapping keys
//     to locked rows and collation safety (mayCollateEqual, keyFits).
//   - fast.go: the fast path's arithmetic, planFast, a pure function.
//   - batchsql.go, sqltext.go: the SQL of every round trip (locking read,
//     UPDATEs, ledger, marker, lookup); literal quoting.
//   - batch.go, lone.go: the multi-request paths (locking read, fast
//     commit, general) and the lone paths (Alone on the client's
//     connection, runLone on the merger's).
//   - resolve.go: uncertain-commit resolution (resolve, lookupMarker).
//   - conn.go: backend connections and their pool.
//   - janitor.go: pruning old batch markers.
//   - claim.go, cancel.go: claims (requests made inside a client's
//     transaction), their cancel, settle and sweep (see Claims).
//   - contention.go: which rows are hot for transactions (HoldIfIdle).
//   - errors.go, stats.go: the error sentinels; counters.
//   - rules.go: RuleSet, the rules in force, swapped at run time (a new
//     Matcher per change), and paused tables.
//   - observe.go: per-table statistics and recent batches, recorded once
//     per batch; queue limits set at run time (SetLimits).
//   - hotkeys.go: HotKeys, hot-key detection on tables without a rule.
//
// # Queues
//
// Requests queue per hot table (per Rule), whatever row they touch. A
// request for a table with nothing in flight runs alone on its client's
// connection (Alone), or, through Do, starts a worker goroutine at once (a
// lone request waits for nothing); while either runs, arrivals queue in
// an explicit FIFO; when it ends, everything queued (up to MaxBatch)
// forms the next batch, which may span many rows. Two refinements keep
// clients that come back together in one batch (gather.go): the next
// batch waits a little (Config.GatherWait, at most a quarter of the last
// batch's time) for the clients of the last two batches to come back,
// and requests that queue while a batch's locking read runs join it when
// it locked their row (executor.join). The worker exits when its queue
// is empty (after that short wait); one table never has two batches (or a batch and a
// statement run alone) in flight in one Merger. Queues are bounded per table (MaxQueue) and globally
// (MaxQueueTotal): beyond, ErrQueueFull. A request
// whose ctx ends while queued is dropped (Do returns ctx.Err(); when its
// batch forms, at the latest), so is one whose client went away
// (Request.Gone, asked once it waited 20 ms); one that
// waited longer than QueueTimeout fails with ErrLockWaitTimeout (checked
// when its batch forms); one already in a batch is applied and recorded.
//
// # Execution paths
//
//   - Alone (a request with nothing queued or running for its table, not a
//     claim; Config.LonePassThrough, on by default): Merger.Alone tells the
//     caller to run the statement itself, as the client sent it, on the
//     client's own backend connection: a plain autocommit statement, which
//     costs what it costs directly (no transaction of hotrow's, no ledger
//     row, no marker). The client hears the server's own answer; a
//     connection lost during it is the client's 2013, as directly, with no
//     outcome to resolve. Its deduction is an ordinary row change, which
//     the order feed (package binlog) turns into the deduction's event, as
//     for a client that bypasses hotrow, so it carries no batch id or
//     connection id. The table is busy while it runs: arrivals queue, and
//     their batch starts when the caller reports the outcome (done), as
//     after a batch of one; it could start at once and wait for the row
//     lock in the server, but would hold a pooled connection and an open
//     transaction on that wait, and split the arrivals into two batches.
//     Serial equivalence holds because the statement is the server's own
//     execution, ordered with the batches by the row lock. The statistics
//     count it as a lone batch of one (Stats.Alone, AloneGranted).
//   - Lone (batch of one on the merger's connection: a claim alone, a
//     request of a failed batch run again, a batch of one formed from the
//     queue, or every lone request with LonePassThrough off): one
//     multi-statement round trip: START TRANSACTION; SELECT SUM(stock)
//     INTO @hotrow_before ... FOR UPDATE; the statement (the client's text
//     verbatim, or the prepared statement with its arguments as
//     literals); the ledger row as INSERT ... SELECT ... WHERE
//     ROW_COUNT() > 0 OR the stock's SUM moved; COMMIT. No marker: the
//     ledger row (batch id, seq 0) exists exactly when the request
//     matched, so it proves the commit of a grant, and a request that
//     matched nothing changed nothing, whether or not its COMMIT ran. The
//     stock test is for a lost connection: the server runs the rest of
//     the round trip without its client, with ROW_COUNT() at -1.
//   - Fast: START TRANSACTION + SELECT key, stock ... WHERE key IN (the
//     batch's keys) ORDER BY key FOR UPDATE, which locks the rows in key
//     order (so hotrow batches cannot deadlock one another); then
//     planFast evaluates guards and changes in Go, per row in arrival
//     order (requests on different rows are independent; a key without a
//     row matches nothing), into a fastPlan: every request's outcome and
//     stock after, every row's final value and whether it changed. It is
//     a pure function of the requests, the locked stocks and the
//     column's type, tested against a serial model of the server. The
//     SQL builders take the plan: one UPDATE to the final value per
//     changed row, one multi-row ledger INSERT, the marker and COMMIT in
//     one round trip.
//     Only for integer stock columns with a unique key on tables the
//     server does nothing more for per statement (no UPDATE triggers, no
//     CHECK constraints, no generated column on the stock column, not
//     system-versioned: schema.Table.Exact), keys of the key column's
//     kind (integer or string),
//     requests without extra assignments whose operands are non-negative
//     integers, and only when no request would raise an error or leave the
//     column's range, and every key either equals a locked row's key byte
//     for byte or certainly equals none under the column's collation.
//   - General: after the same locking read, per request (in arrival
//     order) a SAVEPOINT, the statement itself and a read of its row's
//     stock, pipelined in one round trip; outcomes come from the server's
//     "Rows matched: N  Changed: M" info. A request that fails gets the
//     server's error, is rolled back to its savepoint, and the batch goes
//     on. Then the ledger, the marker, COMMIT.
//
// # Invariants
//
//   - Serial equivalence: outcomes and the final row equal executing the
//     batch's requests one by one in arrival order.
//   - Nothing before COMMIT: outcomes are delivered only after the batch's
//     COMMIT returned (or when the batch changed nothing).
//   - A batch that fails before COMMIT (a deadlock or lock wait timeout
//     on its locking read included) is rolled back and its requests run
//     again: one batch per row when it spanned several rows, then one by
//     one (lone), so one bad request or one row held elsewhere cannot
//     fail the others; a lock wait timeout of a one-row batch's locking
//     read fails its requests with 1205, as each would have waited as
//     long directly;
//     lone requests retry with backoff while the server is unreachable, up
//     to ResolveTimeout after the batch's oldest request arrived (so
//     batches queued behind one another share the bound; past it a batch
//     makes one connection attempt), then fail with ErrNotApplied.
//   - An uncertain COMMIT (connection lost while COMMIT may have run) is
//     resolved on a new connection: KILL the old connection if it still
//     exists, then a locking read of the batch's marker (a lone request's
//     ledger row), which waits for the old transaction to end. Present:
//     outcomes are delivered; absent: the requests run again (a lone
//     request whose statement is known to have matched nothing gets that
//     outcome without a lookup). Never applied twice; success is reported
//     only for durable changes. If the lookup fails until ResolveTimeout,
//     ErrOutcomeUnknown.
//   - One ledger row per request that matched its row (granted) in a
//     batch, in the batch's transaction; (batch id, seq) is its
//     idempotency key. Batch ids embed the instance id and the process
//     start time. A request run alone has none: its order event is its
//     row change.
//   - Concurrency: Merger.mu guards the queues; each table's worker owns
//     its executor and backend; Close waits for every worker.
//   - The hot path does not log and allocates little: batch SQL is built
//     in buffers reused per backend; the executor owns its plan, results
//     and key buffers and resets them per batch, and passes them to each
//     step explicitly.
//
// # Errors
//
// Every error Do returns is a *gomysql.MyError (go-mysql's, the type the
// proxy's protocol layer sends) with the code, SQL state and message the
// client must see, or ctx.Err() for a dropped request. Server errors are
// passed on as the server sent them. The merger's own are the sentinels
// of errors.go, told apart with errors.Is (by identity: ErrNotApplied
// and ErrOutcomeUnknown both carry 2013): ErrNotApplied means the
// request certainly was not applied and may be retried, ErrOutcomeUnknown
// that it may have been. A backend connection found dead before anything
// was sent on it (an idle connection the server closed) counts as not
// sent, as go-sql-driver's connection check does.
//
// # Cancellation
//
// The Merger has a lifetime context that Close cancels. Every wait of a
// worker selects on it: retry backoff, dialling, uncertain-commit lookup,
// table metadata reads, and the janitor's rounds. After Close nothing is
// retried: a request whose attempt failed without being applied fails
// with ErrNotApplied; queued requests still run on a backend their
// worker holds, and fail so when they would need a new connection. A
// batch whose COMMIT was in flight is still looked up once (bounded by
// the dial timeout), then delivered or failed with ErrOutcomeUnknown;
// never reported as a success it did not have. Statements already sent
// run to their end (bounded by the server's lock wait timeout).
//
// # Claims
//
// A Request with Claim set is a deduction made inside a client's explicit
// transaction (only Claimable statements with an integer amount,
// ClaimAllowed; CanClaim also refuses tables whose rows other statements
// may lock without naming them, schema.Table.Indirect). It runs in the
// batches like any request, with the same outcome, and when granted its
// batch writes, beside its ledger row, a claims row: claim id (batch id
// ":" seq, the ledger row's key), owner (instance id, the client's
// backend connection id, the server's start time) and what a cancel
// restores (table, key and stock columns, key, amount). The lone path
// writes it as INSERT ... SELECT of its ledger row, so it exists exactly
// when the ledger row does. Outcome.ClaimID names it (also on
// ErrOutcomeUnknown, when it may exist).
//
// Claims are for hot rows: HoldIfIdle tells the caller to run a
// transaction's UPDATE of a row that is not hot in the transaction itself
// (one commit instead of a batch commit and the client's), holding the
// row until the transaction ends; a row is hot for a second after two
// requests of Do/Alone on it at once or Config.TxHotThreshold holding
// transactions.
//
// The caller (the proxy) confirms a granted claim inside the client's
// transaction (ConfirmSQL: the verdict 'confirm' under the claim id, a
// copy of its ledger row); when that transaction ended, SettleLater
// cancels the claims it did not confirm. Cancel inserts the verdict
// 'cancel' under the claim id with INSERT IGNORE ... SELECT from the
// claims row (a locking read that waits for the batch, and for a
// confirmation still being committed) and, only if that inserted a row,
// adds the amount back and deletes the claims row, in one transaction:
// confirm and cancel exclude each other by the verdicts' primary key,
// and a cancel is idempotent. Settling deletes the claims rows of
// claims it found with a verdict, so the sweep's scan stays small.
// The cancel worker (CancelLater, SettleLater) retries for
// ResolveTimeout; what it could not do is left to the sweep, which at
// start and every ClaimSweepEvery cancels this instance's claims older
// than ClaimSweepAge without a verdict whose owner is gone: claims of an
// earlier process (killing a live owner connection first), and claims
// whose owner connection is not in the processlist or ran on a server
// that restarted since. Invariants: never oversold (a claim is a guarded
// deduction); a claim's stock comes back exactly when it gets the verdict
// 'cancel'; stock = initial - confirmed claims - pending claims -
// granted autocommit requests + restocks.
//
// # Markers
//
// The janitor deletes markers of every instance older than
// MarkerRetention, in chunks found by a range of their creation time.
// MarkerRetention must outlast any lookup of a marker (the backend read
// timeout plus ResolveTimeout): Validate and New enforce a margin.
package merger
