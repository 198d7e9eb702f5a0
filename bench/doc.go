// Package bench measures hotrow the way its users judge it: the same
// workload run directly against MySQL/MariaDB, through a plain TCP relay and
// through the proxy, in one run, interleaved, on the same server, and
// compared as ratios.
//
// A Run is a list of cells (scenario × client count). Each cell runs its
// sides — direct, relay and proxy, or those Config.Sides names — one after
// the other (which goes first rotates from cell to cell), and every side:
//
//   - resets the scenario's tables over the direct connection,
//   - opens one *sql.DB with MaxOpenConns = clients and drives it with a
//     closed loop of that many goroutines (each waits for its reply before
//     sending the next statement), for a warm-up and then a measured window,
//   - records every statement's latency in a log-bucketed Histogram,
//     errors by MySQL error code, and CPU of the process in the middle (the
//     proxy or the relay: percent of a core and µs per operation), the
//     database server and the load generator from /proc when they are local
//     processes, and for the proxy how its merger batched (requests per
//     batch, batches per second) from its /metrics when it has a metrics
//     URL (the proxy child started by StartProxy does),
//   - checks the scenario's invariant against the final table contents:
//     for every SKU, stock = initial + the net change the clients were told
//     about (no oversell, no lost or phantom grant), stock never negative,
//     and for flash-sale exactly the initial stock granted.
//
// Statements in flight when a run ends are never cancelled (a cancelled
// statement has an unknown outcome); a side stops by letting each client
// finish its current statement.
//
// Where the database comes from is the caller's choice: a DSN, a local
// throw-away MariaDB (internal/localdb) or a container (StartContainer,
// testcontainers-go). StartProxy runs the proxy as a child process of a
// hotrow binary so that its CPU can be read from /proc. StartRelay runs the
// relay side's relay: HAProxy in TCP mode with one thread as a child process
// (its CPU read from /proc), or a built-in io.Copy relay inside the bench
// process (its CPU is then part of the bench's and not reported alone). On a
// small machine any hop costs throughput, so the relay, not direct, is the
// fair anchor for pass-through traffic.
//
// Reports print as a table (WriteTable), serialise as JSON, and draw as a
// chart (WriteChart): throughput and p99 against clients for a concurrency
// sweep, throughput and units sold over time for a single client count.
package bench
