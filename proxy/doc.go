// Package proxy is hotrow's MySQL protocol server: it accepts client
// connections, authenticates them against the configured users, pins one
// backend connection per client session, relays the server's packets
// unchanged, and hands mergeable hot-row UPDATEs to the merger.
//
//	srv, err := proxy.New(cfg, log, &proxy.HotPath{Matcher: matcher, Executor: m})
//	go srv.Serve(ctx, ln)
//	...
//	err = srv.Shutdown(drainCtx) // then close the merger
//
// # Files
//
//   - server.go: Server, the accept loop, handshake and shutdown.
//   - session.go: a session's command loop and dispatch.
//   - relay.go: relaying the server's response to a command (OK/ERR,
//     result sets, several results, LOCAL INFILE) while following its
//     structure to know where it ends.
//   - sessionstate.go: the session state that decides whether its hot
//     statements may be merged.
//   - stmt.go: prepared statements: what the proxy remembers of them and
//     the decoding of mergeable executions' parameters.
//   - merge.go: handing a hot statement to the merger and answering the
//     client with the OK packet the server would have sent.
//   - txmerge.go: a hot UPDATE inside a client's transaction as a claim:
//     its confirmation written on the session's own connection before
//     the OK, the claims settled when the transaction ends, and the
//     pass-through marks that keep a transaction that touched a hot
//     table on pass-through (README, "Merged transactions").
//   - hint.go: AliSQL's Inventory Hint on UPDATE (7531, 7532).
//   - handshake.go, backend.go: the client and backend handshakes.
//   - packetio.go, protocol.go: packets on the wire, and the few the proxy
//     reads or builds.
//   - errors.go, side.go: errors, and the side of the connection (client
//     or backend) an I/O error came from.
//   - config.go: Config, from flags or a TOML file.
//
// # Invariants
//
//   - Pass-through is byte-exact: every packet of the backend's response
//     reaches the client unchanged (sequence numbers included), and
//     commands reach the backend unchanged, except that parameter types a
//     merged execution bound are put back into the next forwarded one.
//   - A session runs one command at a time on its own goroutine; the
//     backend connection is idle between commands.
//   - A session's hot statement is merged only when the session is the
//     merge user's, in autocommit mode outside a transaction, and has not
//     changed session state the merged batches (which run on the merger's
//     own connections) cannot follow; in doubt it passes through.
//   - The client hears a merged statement's result only after its batch's
//     COMMIT, as the merger delivers it.
//   - Every I/O error is tagged once, where the connection's packet stream
//     is made, with the side it came from (*backendError, *clientError). A
//     lost backend ends the session; a client that has heard nothing of
//     the current response gets 2013, as from a direct connection.
//   - Every session goroutine belongs to the Server: Shutdown and Close
//     wait for them. Sessions' contexts derive from Serve's; after the
//     drain deadline it is cancelled, which interrupts statements still
//     queued in the merger, and every connection is closed.
package proxy
