package admin

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/server"
	"github.com/go-sql-driver/mysql"

	"github.com/hotrow/hotrow/binlog"
	"github.com/hotrow/hotrow/merger"
	"github.com/hotrow/hotrow/proxy"
	"github.com/hotrow/hotrow/schema"
)

// Config configures the admin port. Start from DefaultConfig.
type Config struct {
	// Listen is the admin port's address, e.g. 127.0.0.1:6032.
	Listen string
	// User and Password are the only account the admin port accepts.
	// An empty password is refused on a non-loopback address.
	User, Password string
	// MetaDSN is the go-sql-driver/mysql DSN hot_rules and table metadata
	// are read with (the merge user's; its database part is ignored).
	MetaDSN string
	// MetaSchema is the database of hotrow's own tables.
	MetaSchema string
	// PollInterval is how often hot_rules is read for changes saved by
	// other instances.
	PollInterval time.Duration
	// Seed are the rules that fill an empty hot_rules table at start
	// (from --hot-rule flags or the config file).
	Seed []merger.Rule
	// InstanceID is shown by SHOW HOTROW STATUS; empty: the merger's.
	InstanceID string
	// Feed is the order feed running beside the proxy, shown by SHOW
	// HOTROW STATUS (feed_* rows); nil: none.
	Feed Feed
}

// Feed is what the admin port and the metrics read from the order feed
// (*binlog.Consumer).
type Feed interface {
	Stats() binlog.Stats
}

// DefaultConfig returns the defaults: user admin, poll every 2 s, meta
// schema hotrow.
func DefaultConfig() Config {
	return Config{User: "admin", MetaSchema: merger.DefaultConfig().MetaSchema, PollInterval: 2 * time.Second}
}

// ParseAccount reads NAME:PASSWORD (the password may be empty).
func ParseAccount(s string) (user, password string, err error) {
	user, password, _ = cutColon(s)
	if user == "" {
		return "", "", fmt.Errorf("admin account %q: want NAME:PASSWORD", s)
	}
	return user, password, nil
}

func cutColon(s string) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == ':' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// Validate reports the first setting that cannot work, including an
// admin port reachable from other hosts without a password.
func (c Config) Validate() error {
	host, _, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return fmt.Errorf("admin: listen address %q: %w", c.Listen, err)
	}
	if c.User == "" {
		return errors.New("admin: empty admin user")
	}
	if c.Password == "" && !loopback(host) {
		return fmt.Errorf("admin: listen address %q is not loopback: set a password (--admin-user NAME:PASSWORD)", c.Listen)
	}
	if _, err := mysql.ParseDSN(c.MetaDSN); err != nil {
		return fmt.Errorf("admin: meta DSN: %w", err)
	}
	if c.MetaSchema == "" {
		return errors.New("admin: empty meta schema")
	}
	if c.PollInterval <= 0 {
		return fmt.Errorf("admin: poll interval %v <= 0", c.PollInterval)
	}
	return nil
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Proxy is what the admin port reads from and acts on in the proxy
// (*proxy.Server).
type Proxy interface {
	Sessions() []proxy.SessionInfo
	KillSession(id uint32) bool
	Counters() proxy.Counters
}

// Server is the admin port: a MySQL-protocol server (go-mysql's
// server.Handler) for one admin account, over the merger's rules, limits
// and statistics and the proxy's sessions. It owns the goroutine that
// polls hot_rules and one goroutine per admin connection; Close waits
// for them.
type Server struct {
	cfg     Config
	log     *slog.Logger
	rules   *merger.RuleSet
	m       *merger.Merger
	px      Proxy // nil: no proxy (sessions empty)
	store   *ruleStore
	db      *sql.DB
	conf    *server.Server
	auth    *accounts
	started time.Time
	det     *merger.HotKeys // nil: no hot-key detection
	obs     *Observer       // nil: pass-through statements not observed

	mu     sync.Mutex
	ln     net.Listener          // guarded by mu
	conns  map[net.Conn]struct{} // guarded by mu
	closed bool                  // guarded by mu

	stop context.CancelFunc
	wg   sync.WaitGroup
}

// New opens the meta connection, creates hot_rules if needed (seeding an
// empty one with cfg.Seed), puts its enabled rules in force in rules, and
// starts polling it. px and obs may be nil; the hot-key detector of obs
// is set to accept unique keys and integer stock columns only.
func New(ctx context.Context, cfg Config, log *slog.Logger, rules *merger.RuleSet, m *merger.Merger, px Proxy, obs *Observer) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	dsn, _ := mysql.ParseDSN(cfg.MetaDSN)
	dsn.DBName = ""
	db, err := sql.Open("mysql", dsn.FormatDSN())
	if err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	db.SetMaxOpenConns(4)
	s := &Server{cfg: cfg, log: log, rules: rules, m: m, px: px, db: db, obs: obs,
		conns: map[net.Conn]struct{}{}, started: time.Now()}
	s.store = &ruleStore{db: db, table: schema.QuoteIdent(cfg.MetaSchema) + "." + RulesTable, log: log, runtime: rules}
	if err := s.store.ensure(ctx, cfg.MetaSchema, cfg.Seed); err != nil {
		db.Close()
		return nil, err
	}
	if s.cfg.InstanceID == "" {
		s.cfg.InstanceID = m.InstanceID()
	}
	if obs != nil {
		s.det = obs.det
	}
	if s.det != nil {
		s.det.SetCheck(s.checkAuto)
	}
	s.auth = &accounts{user: cfg.User, password: cfg.Password, decoy: hex.EncodeToString(gomysql.RandomBuf(16))}
	s.conf = server.NewServer("8.0.11-hotrow-admin", gomysql.DEFAULT_COLLATION_ID, gomysql.AUTH_NATIVE_PASSWORD, nil, nil)
	var life context.Context
	life, s.stop = context.WithCancel(context.Background())
	s.wg.Add(1)
	go s.poll(life)
	return s, nil
}

// poll reads hot_rules every PollInterval for changes other instances
// saved.
func (s *Server) poll(ctx context.Context) {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := s.store.poll(pctx); err != nil && ctx.Err() == nil {
			s.log.Warn("polling hot rules", "err", err)
		}
		cancel()
	}
}

// Serve accepts admin connections on ln until Close.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return net.ErrClosed
	}
	s.ln = ln
	s.mu.Unlock()
	s.log.Info("admin listening", "listen", ln.Addr().String())
	for {
		conn, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			return err
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			conn.Close()
			return nil
		}
		s.conns[conn] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serveConn(conn)
	}
}

// serveConn runs one admin connection: handshake, then commands.
func (s *Server) serveConn(conn net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, conn)
		s.mu.Unlock()
		conn.Close()
	}()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	c, err := s.conf.NewCustomizedConn(conn, s.auth, &handler{s: s})
	if err != nil {
		s.log.Info("admin login failed", "client", conn.RemoteAddr().String(), "err", err)
		return
	}
	_ = conn.SetDeadline(time.Time{})
	for !c.Closed() {
		if err := c.HandleCommand(); err != nil {
			return
		}
	}
}

// Close stops accepting, closes every admin connection and the poller,
// and waits for them. It is idempotent.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	if s.ln != nil {
		s.ln.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.stop()
	s.wg.Wait()
	return s.db.Close()
}

// accounts knows the one admin account. Any other user name gets a
// credential no client can know, so that it fails like a wrong password
// (1045), as on the server, instead of go-mysql's 1449 for an unknown
// user.
type accounts struct {
	user, password string
	decoy          string // random, never told
}

func (a *accounts) GetCredential(user string) (server.Credential, bool, error) {
	pw := a.decoy
	if user == a.user {
		pw = a.password
	}
	return server.Credential{Passwords: []string{pw}, AuthPluginName: gomysql.AUTH_NATIVE_PASSWORD}, true, nil
}

func (a *accounts) OnAuthSuccess(*server.Conn) error { return nil }

func (a *accounts) OnAuthFailure(*server.Conn, error) {}

// AutoCheck returns the check merger.HotKeys.SetCheck wants, for when no
// admin port runs (New sets its own): a valid rule (unique key, numeric
// stock, see hot_rules) whose stock column is an integer, checked with db.
func AutoCheck(db *sql.DB) func(merger.Rule) error {
	return func(r merger.Rule) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return vetAuto(ctx, db, r)
	}
}

func vetAuto(ctx context.Context, db *sql.DB, r merger.Rule) error {
	if err := validateRule(ctx, db, r); err != nil {
		return err
	}
	t, err := schema.Load(ctx, db, r.Schema, r.Table, r.Key, r.Stock)
	if err != nil {
		return err
	}
	if !t.Integer {
		return fmt.Errorf("stock column %s is %s, not an integer", r.Stock, t.StockType)
	}
	return nil
}

// checkAuto vets a hot-key candidate for automatic merging (vetAuto), for
// a table hot_rules does not name (a rule a DBA disabled stays disabled).
// An accepted rule is also added to hot_rules (memory, enabled), so that
// LOAD HOT RULES TO RUNTIME keeps it and SAVE HOT RULES TO DISK saves it.
func (s *Server) checkAuto(r merger.Rule) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := vetAuto(ctx, s.db, r); err != nil {
		return err
	}
	return s.store.edit(func(memory []ruleRow) ([]ruleRow, error) {
		for _, have := range memory {
			if have.Schema == r.Schema && have.Table == r.Table {
				return nil, fmt.Errorf("hot_rules has a rule for %s.%s (enabled %v): it decides", r.Schema, r.Table, have.Enabled)
			}
		}
		return append(memory, ruleRow{Rule: r, Enabled: true}), nil
	})
}
