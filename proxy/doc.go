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
//     client with the OK packet the server would have sent, or, when the
//     merger has nothing queued for its table (merger.Merger.Alone),
//     running it on the session's own connection, the server's answer
//     relayed.
//   - txmerge.go: a hot UPDATE inside a client's transaction as a claim:
//     its confirmation written on the session's own connection before
//     the OK, the claims settled when the transaction ends, and the
//     pass-through marks that keep a transaction that touched a hot
//     table on pass-through (README, "Merged transactions").
//   - hint.go: AliSQL's Inventory Hint on UPDATE (7531, 7532).
//   - handshake.go, backend.go: the client and backend handshakes.
//   - preauth.go: what clients cost before they authenticate (below).
//   - idlewatch.go: noticing that the server closed an idle session.
//   - infile.go: which of the server's requests for a client file
//     (LOAD DATA LOCAL INFILE) reach the client.
//   - packetio.go, protocol.go: packets on the wire, and the few the proxy
//     reads or builds.
//   - sockio.go: a TCP socket read and written with raw system calls, which
//     spares the scheduler's syscall bookkeeping on every packet exchange;
//     a request to the server is written inside the wait for its reply.
//   - errors.go, side.go: errors, and the side of the connection (client
//     or backend) an I/O error came from.
//   - tls.go: TLS towards clients (after their SSLRequest) and towards the
//     backend.
//   - config.go: Config, from flags or a TOML file.
//   - registry.go: what the admin port sees and does: Sessions,
//     KillSession, Counters, and the Observer of pass-through queries.
//
// # Before authentication
//
// A client is greeted with the server's own version, capabilities and
// thread id, so that CONNECTION_ID() and KILL mean the same through hotrow
// as on the server: the proxy dials a backend connection, shows the client
// that connection's greeting (with a salt of its own: it verifies the
// password itself), and after the login hands the same connection to the
// session. That costs a server connection per client still in its
// handshake, so the proxy bounds it (preauth.go):
//
//   - Config.HandshakeTimeout (like the server's connect_timeout) closes a
//     client that has not authenticated in time;
//   - Config.MaxConnections refuses clients beyond it with ERROR 1040, as
//     the server does beyond max_connections;
//   - Config.MaxHandshakes bounds the clients in their handshake: beyond it
//     the one that has waited longest is closed;
//   - Config.HandshakeBackends bounds the backend connections held for
//     clients in their handshake. When they are all taken, a newcomer waits
//     for one, taking the one of the client that has held it longest once
//     that one has held it for a second (far longer than a real client
//     takes to answer). A newcomer stops waiting after 250 ms when no
//     client has completed its login for as long (the slots are held by
//     clients that do not answer), and after a second in any case; it is
//     then greeted with the greeting of a backend connection the proxy has
//     already closed. No client keeps its backend connection longer than
//     ConnectTimeout without answering. Backend connections given up are
//     logged in and quit (never just closed), so the server counts no
//     aborted connect against the proxy.
//
// A client that authenticates after its backend connection was taken, or
// that was greeted without one, gets a new one: its CONNECTION_ID() and
// the KILL of it stay right (they are the server's), only the thread id
// of its greeting is stale, and that one names a thread that has ended
// (the server does not reuse thread ids), so a KILL of it fails with 1094
// and never hits another session. This happens only under a flood of
// handshakes that do not answer, or a burst of logins that keeps a
// newcomer waiting over a second. The alternative, greeting every client
// with the proxy's own greeting and dialling only after the login, holds
// no server connection at all before authentication but shows every
// client a thread id that is not its session's; the bounded set of held
// connections keeps the real one for every client but those.
//
// # Invariants
//
//   - Pass-through is byte-exact: every packet of the backend's response
//     reaches the client unchanged (sequence numbers included), and
//     commands reach the backend unchanged, except that parameter types a
//     merged execution bound are put back into the next forwarded one.
//     One exception: a server's request for a client file reaches the
//     client only in answer to a COM_QUERY whose statement is LOAD DATA
//     LOCAL INFILE of that very file (localInfileAllowed); otherwise the
//     server gets an empty file and the client error 1148.
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
//   - A session whose backend connection the server closes while it is
//     idle (wait_timeout, KILL, restart) closes its client connection
//     within idleWatchDelay (idlewatch.go), as the server's close reaches
//     a direct client: drivers see a dead pooled connection before they
//     use it, not a 2013 after.
//   - Every session goroutine belongs to the Server: Shutdown and Close
//     wait for them. Sessions' contexts derive from Serve's; after the
//     drain deadline it is cancelled, which interrupts statements still
//     queued in the merger, and every connection is closed.
package proxy
