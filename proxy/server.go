package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/hotrow/hotrow/merger"
)

// Server accepts client connections and runs a session for each.
type Server struct {
	cfg     Config
	log     *slog.Logger
	users   map[string]User
	merger  Executor // nil: no merging
	matcher Matcher  // nil: no merging
	obs     Observer // nil: pass-through statements are not observed

	// gate bounds what clients cost before they authenticate.
	gate *preauth
	// clientTLS is offered to clients (nil: no TLS); backendTLS is used
	// towards the server when it offers TLS (nil: never).
	clientTLS, backendTLS *tls.Config

	mu       sync.Mutex // guards the fields below
	sessions map[*session]struct{}
	conns    int // client connections being served, authenticated or not
	ln       net.Listener
	draining bool
	// cancelSessions cancels the context of every session Serve started;
	// nil before Serve.
	cancelSessions context.CancelFunc

	wg sync.WaitGroup // one per session goroutine

	counters counters // statistics (registry.go)
}

// Matcher recognises mergeable statements (*merger.Matcher).
type Matcher interface {
	MatchText(defaultDB, query string) (*merger.Statement, []any, bool)
	MatchPrepared(defaultDB, query string) (*merger.Statement, bool)
}

// Executor runs merged requests (*merger.Merger).
type Executor interface {
	Do(ctx context.Context, req merger.Request) (merger.Outcome, error)
}

// HotPath is what the proxy hands mergeable statements to. Its owner
// closes the executor after the proxy's Shutdown.
type HotPath struct {
	Matcher  Matcher
	Executor Executor
	// Observer, when set, sees every pass-through text query (hot-key
	// detection, statistics: *admin.Observer).
	Observer Observer
}

// New validates cfg. With hot nil every statement passes through.
func New(cfg Config, log *slog.Logger, hot *HotPath) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: log, users: map[string]User{}, sessions: map[*session]struct{}{}}
	s.gate = newPreauth(cfg, s.abandonBackend, &s.wg)
	var err error
	if s.clientTLS, s.backendTLS, err = tlsConfigs(cfg); err != nil {
		return nil, err
	}
	for _, u := range cfg.Users {
		s.users[u.Name] = u
	}
	if hot != nil {
		s.matcher, s.merger, s.obs = hot.Matcher, hot.Executor, hot.Observer
		u, _ := cfg.MergeAccount()
		s.cfg.MergeUser = u.Name
	}
	return s, nil
}

// mergesFor reports whether sessions of user may be merged: only the merge
// user's, whose privileges the merged batches run with.
func (s *Server) mergesFor(user string) bool {
	return s.merger != nil && user == s.cfg.MergeUser
}

// Serve accepts connections on ln until Shutdown or Close. Every session's
// context derives from ctx: cancelling it fails the merged statements
// waiting in a queue, and any later ones, but ends no session. Shutdown
// cancels it once its drain deadline has passed.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	s.mu.Lock()
	if s.draining {
		s.mu.Unlock()
		cancel()
		return net.ErrClosed
	}
	s.ln, s.cancelSessions = ln, cancel
	s.mu.Unlock()
	s.log.Info("proxy listening", "listen", ln.Addr().String(), "backend", s.cfg.Backend,
		"hot_rules", len(s.cfg.HotRules))
	var delay time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			if s.isDraining() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) {
				// Out of file descriptors: back off instead of spinning.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed, backing off", "err", err, "delay", delay)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		switch started, full := s.startSession(ctx, conn); {
		case full:
			refuseTooMany(conn)
			conn.Close()
		case !started:
			conn.Close()
		}
	}
}

func (s *Server) isDraining() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.draining
}

// startSession serves conn on a new goroutine unless the server is
// draining or has MaxConnections clients already (full).
func (s *Server) startSession(ctx context.Context, conn net.Conn) (started, full bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		return false, false
	}
	if s.conns >= s.cfg.MaxConnections {
		return false, true
	}
	s.conns++
	s.wg.Add(1)
	go s.serveConn(ctx, conn)
	return true, false
}

// refuseTooMany answers a client beyond MaxConnections as the server does
// beyond max_connections: an error packet instead of the greeting, in the
// pre-4.1 layout (no SQL state: the client's capabilities are unknown).
func refuseTooMany(conn net.Conn) {
	_ = conn.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = conn.Write(tooManyConnectionsPacket)
}

// tooManyConnectionsPacket is ERROR 1040 as MariaDB and MySQL send it to a
// client beyond max_connections, header included.
var tooManyConnectionsPacket = func() []byte {
	msg := "Too many connections"
	p := []byte{byte(3 + len(msg)), 0, 0, 0, headerErr, byte(gomysql.ER_CON_COUNT_ERROR & 0xff), byte(gomysql.ER_CON_COUNT_ERROR >> 8)}
	return append(p, msg...)
}()

// serveConn runs one client connection from handshake to close.
func (s *Server) serveConn(ctx context.Context, conn net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		s.conns--
		s.mu.Unlock()
	}()
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	sess := &session{srv: s, conn: conn, client: newPacketIO(conn, clientSide), stmts: map[uint32]*preparedStmt{}}
	log := s.log.With("client", conn.RemoteAddr().String())
	if err := s.handshake(ctx, sess); err != nil {
		log.Info("handshake failed", "err", err)
		sess.close()
		return
	}
	sess.log = log.With("conn_id", sess.connID, "user", sess.user.Name)
	sess.watch = idleWatch{be: sess.be.conn, onLost: func() { sess.conn.Close() }}
	if !s.register(sess) {
		sess.close()
		return
	}
	defer s.unregister(sess)
	defer func() {
		// A bug in one session must not take the proxy and every other
		// session down with it.
		if r := recover(); r != nil {
			sess.log.Error("session panicked; closing it", "panic", r, "stack", string(debug.Stack()))
			sess.close()
		}
	}()
	err := sess.run(ctx)
	sess.close()
	switch {
	case err == nil, errors.Is(err, errQuit), errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		sess.log.Debug("session closed")
	default:
		var be *backendError
		if errors.As(err, &be) {
			sess.log.Warn("backend connection lost; session closed", "err", err)
		} else {
			sess.log.Info("session closed", "err", err)
		}
	}
}

func (s *Server) register(sess *session) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		return false
	}
	sess.snap = snapshot{mergeable: sess.mergeable, status: sess.status}
	s.sessions[sess] = struct{}{}
	s.counters.logins.Add(1)
	return true
}

func (s *Server) unregister(sess *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.sessions, sess)
}

// handshake greets the client with the backend's version and thread id,
// authenticates it against the configured users, then logs in to the
// backend with the same credentials. The whole handshake is bounded by
// HandshakeTimeout; the backend connection the client is greeted for is
// held under the rules of s.gate (see the package doc).
func (s *Server) handshake(ctx context.Context, sess *session) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.HandshakeTimeout.Duration)
	defer cancel()
	deadline, _ := ctx.Deadline()
	_ = sess.conn.SetDeadline(deadline)
	defer sess.conn.SetDeadline(noDeadline)

	h, ok := s.gate.enter(sess.conn)
	if !ok {
		_ = sess.writeErr(gomysql.NewDefaultError(gomysql.ER_SERVER_SHUTDOWN))
		return net.ErrClosed
	}
	defer s.gate.leave(h) // abandons the backend connection unless claimed
	g, err := s.gate.acquire(ctx, h, s.dialBackend)
	if err != nil {
		_ = sess.writeErr(s.connectError(err))
		return fmt.Errorf("backend: %w", err)
	}

	beTLS, err := s.backendTLSFor(g)
	if err != nil {
		_ = sess.writeErr(s.connectError(err))
		return fmt.Errorf("backend: %w", err)
	}
	if beTLS != nil {
		// go-mysql's TLS login sends no MariaDB extended capabilities
		// (collationConn cannot rewrite the encrypted response): offer
		// the client none either.
		g.extCapability = 0
	}
	salt := gomysql.RandomBuf(20)
	offered := g.capability & proxyCapabilities
	if s.clientTLS != nil {
		offered |= gomysql.CLIENT_SSL
	}
	sess.outBuf = appendGreeting(sess.outBuf[:0], g, offered, salt, s.cfg.AuthPlugin)
	if err := sess.client.writePacket(sess.outBuf); err != nil {
		return err
	}
	if err := sess.client.flush(); err != nil {
		return err
	}
	pkt, err := sess.client.readPacket(nil, 64<<10)
	if err != nil {
		return err
	}
	secure := false
	if s.clientTLS != nil && isSSLRequest(pkt) {
		tc, p, err := upgradeClient(sess.conn, sess.client, s.clientTLS)
		if err != nil {
			return err
		}
		sess.conn, sess.client, secure = tc, p, true
		if pkt, err = sess.client.readPacket(nil, 64<<10); err != nil {
			return err
		}
	}
	resp, err := parseHandshakeResponse(pkt, offered)
	if errors.Is(err, errSSLRequested) && len(pkt) == 32 { // a genuine SSLRequest packet
		_ = sess.writeErr(gomysql.NewError(gomysql.ER_HANDSHAKE_ERROR, "Bad handshake: hotrow does not offer TLS; connect without SSL (e.g. --ssl-mode=DISABLED, tls=false)"))
		return err
	}
	if err == nil && resp.capability&gomysql.CLIENT_SSL != 0 && !secure {
		err = errors.New("client set CLIENT_SSL without an SSLRequest")
	}
	if err == nil && s.cfg.RequireTLS && !secure {
		host, _, _ := net.SplitHostPort(sess.conn.RemoteAddr().String())
		_ = sess.writeErr(insecureTransportError(g, resp.user, host, len(resp.authData) > 0))
		return errInsecureTransport
	}
	if err != nil {
		_ = sess.writeErr(gomysql.NewDefaultError(gomysql.ER_HANDSHAKE_ERROR))
		return err
	}
	user, known := s.users[resp.user]
	plugin := resp.plugin
	if plugin == "" {
		plugin = gomysql.AUTH_NATIVE_PASSWORD
	}
	if !supportedPlugin(plugin) {
		// Ask the client to answer again with the plugin we verify.
		plugin = s.cfg.AuthPlugin
		sess.outBuf = append(append(append(sess.outBuf[:0], headerEOF), plugin...), 0)
		sess.outBuf = append(append(sess.outBuf, salt...), 0)
		if err := sess.client.writePacket(sess.outBuf); err != nil {
			return err
		}
		if err := sess.client.flush(); err != nil {
			return err
		}
		if resp.authData, err = sess.client.readPacket(nil, 4096); err != nil {
			return err
		}
	}
	if !known || !checkAuth(plugin, resp.authData, salt, user.Password) {
		host, _, _ := net.SplitHostPort(sess.conn.RemoteAddr().String())
		using := "YES"
		if len(resp.authData) == 0 {
			using = "NO"
		}
		_ = sess.writeErr(gomysql.NewDefaultError(gomysql.ER_ACCESS_DENIED_ERROR, resp.user, host, using))
		return fmt.Errorf("access denied for user %q", resp.user)
	}
	if plugin == gomysql.AUTH_CACHING_SHA2_PASSWORD && user.Password != "" {
		// caching_sha2_password: "fast auth succeeded", then the OK.
		if err := sess.client.writePacket([]byte{0x01, 0x03}); err != nil {
			return err
		}
	}
	okSeq := sess.client.seq

	beConn, bg, claimed := s.gate.claim(h)
	if !claimed {
		// The connection the client was greeted for was taken while it
		// took its time; it gets a new one (and a new thread id).
		if beConn, bg, err = s.dialBackend(ctx); err != nil {
			sess.client.seq = okSeq
			_ = sess.writeErr(s.connectError(err))
			return fmt.Errorf("backend: %w", err)
		}
		s.log.Debug("client greeted with a backend connection it no longer holds; dialled anew",
			"greeted_conn_id", g.connID, "conn_id", bg.connID)
	}
	if !claimed {
		if beTLS, err = s.backendTLSFor(bg); err != nil {
			s.wg.Add(1)
			go func() { defer s.wg.Done(); s.abandonBackend(beConn, bg) }()
			sess.client.seq = okSeq
			_ = sess.writeErr(s.connectError(err))
			return fmt.Errorf("backend: %w", err)
		}
	}
	// Not cut short by the client's deadline either: a login interrupted
	// mid-way counts as an aborted connect on the server.
	actx, acancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ConnectTimeout.Duration)
	be, err := authBackend(actx, beConn, bg, beTLS, user, resp) // closes beConn on failure
	acancel()
	if err != nil {
		sess.client.seq = okSeq
		_ = sess.writeErr(s.connectError(err))
		return fmt.Errorf("backend login: %w", err)
	}
	sess.be, sess.user, sess.connID = be, user, be.connID
	sess.capability = resp.capability
	sess.status = be.status
	sess.db, sess.dbKnown = resp.db, true
	if sess.db == "" {
		sess.db = user.DefaultSchema
	}
	sess.stateTracker = newStateTracker(s.mergesFor(user.Name))
	sess.client.seq = okSeq
	sess.outBuf = appendOK(sess.outBuf[:0], 0, 0, sess.status, 0, "")
	if err := sess.client.writePacket(sess.outBuf); err != nil {
		return err
	}
	return sess.client.flush()
}

// dialBackend opens a backend connection and reads its greeting within
// ConnectTimeout. The client's deadline does not cut it short: a
// connection closed while the server greets it counts as an aborted
// connect on the server (see abandonBackend).
func (s *Server) dialBackend(ctx context.Context) (net.Conn, greeting, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ConnectTimeout.Duration)
	defer cancel()
	return dialBackend(ctx, s.cfg.Backend, s.cfg.BackendDeadAfter.Duration)
}

// connectError is what a client hears when the backend connection of its
// handshake fails: the server's own error, or 2003 as from a direct
// connection.
func (s *Server) connectError(err error) *gomysql.MyError {
	var my *gomysql.MyError
	var cve *tls.CertificateVerificationError
	var rhe tls.RecordHeaderError
	switch {
	case errors.As(err, &my):
	case errors.As(err, &cve), errors.As(err, &rhe):
		my = gomysql.NewError(crSSLConnectionError, fmt.Sprintf("SSL connection error: %v (hotrow: backend %s)", err, s.cfg.Backend))
	default:
		my = gomysql.NewError(crConnHostError, fmt.Sprintf("Can't connect to MySQL server on '%s' (hotrow: %v)", s.cfg.Backend, err))
	}
	return my
}

// abandonBackend finishes the login of a backend connection whose client
// failed its handshake or was greeted with it and never answered, with
// the first configured account, and quits: an abandoned handshake would
// count against the server's max_connect_errors and get the proxy's host
// blocked.
func (s *Server) abandonBackend(conn net.Conn, g greeting) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ConnectTimeout.Duration)
	defer cancel()
	beTLS, _ := s.backendTLSFor(g)
	be, err := authBackend(ctx, conn, g, beTLS, s.cfg.Users[0], handshakeResponse{capability: gomysql.CLIENT_PROTOCOL_41, collation: g.charset})
	if err != nil {
		return // authBackend closed it
	}
	be.resetSeq()
	if be.writePacket([]byte{gomysql.COM_QUIT}) == nil {
		_ = be.flush()
	}
	be.conn.Close()
}

// Shutdown stops accepting, lets running statements finish, and closes
// every session. After ctx ends it cancels the sessions' contexts, which
// fails the statements still queued in the merger, closes every
// connection, and waits for the session goroutines; a statement whose
// merged batch is already running keeps its session until the batch ends
// (its outcome is recorded either way).
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.draining = true
	if s.ln != nil {
		s.ln.Close()
	}
	s.gate.close()
	for sess := range s.sessions {
		sess.closeIfIdle()
	}
	s.mu.Unlock()

	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("drain: %w; closing %d sessions", ctx.Err(), s.sessionCount())
		s.mu.Lock()
		s.cancelSessionsLocked()
		for sess := range s.sessions {
			sess.close()
		}
		s.mu.Unlock()
		<-done
	}
	s.mu.Lock()
	s.cancelSessionsLocked() // every session has ended: release the context
	s.mu.Unlock()
	return err
}

func (s *Server) cancelSessionsLocked() {
	if s.cancelSessions != nil {
		s.cancelSessions()
	}
}

// Close shuts down without waiting for running statements.
func (s *Server) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return s.Shutdown(ctx)
}

func (s *Server) sessionCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}
