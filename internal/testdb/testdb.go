// Package testdb gives every hotrow test a real MariaDB/MySQL server.
//
// HOTROW_TEST_DSN (a go-sql-driver/mysql DSN of a superuser, e.g.
// "root:pw@tcp(127.0.0.1:3306)/") selects an existing server. Otherwise the
// first call starts a local mariadbd through localdb, once per test binary;
// Main stops it and removes its data directory when the tests end.
//
// Without any server a test skips with the reason, except under CI=true,
// where a missing database is a failure.
//
// Usage, once per package:
//
//	func TestMain(m *testing.M) { testdb.Main(m) }
//
// and in a test:
//
//	db := testdb.New(t)            // a fresh database, dropped at cleanup
//	conn := db.Open(t)             // *sql.DB on it
package testdb

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/hotrow/hotrow/internal/localdb"
)

// Server is the shared server of this test binary.
type Server struct {
	// Addr is host:port of the server.
	Addr string
	// User and Password are a superuser's credentials.
	User, Password string
	// Local is the local instance, nil when HOTROW_TEST_DSN is used
	// (tests that restart the server skip then).
	Local *localdb.Instance
}

var (
	once    sync.Once
	shared  *Server
	initErr error
)

// Main runs the tests of a package and stops the local server afterwards.
func Main(m *testing.M) {
	code := m.Run()
	if shared != nil && shared.Local != nil {
		shared.Local.Stop()
	}
	os.Exit(code)
}

// Shared returns the server of this test binary, starting it on first use.
func Shared(t testing.TB) *Server {
	t.Helper()
	once.Do(func() { shared, initErr = start() })
	if initErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("testdb: no database in CI: %v", initErr)
		}
		t.Skipf("testdb: no database (set HOTROW_TEST_DSN or install mariadb-server): %v", initErr)
	}
	return shared
}

func start() (*Server, error) {
	if dsn := os.Getenv("HOTROW_TEST_DSN"); dsn != "" {
		cfg, err := mysql.ParseDSN(dsn)
		if err != nil {
			return nil, fmt.Errorf("HOTROW_TEST_DSN: %w", err)
		}
		return &Server{Addr: cfg.Addr, User: cfg.User, Password: cfg.Passwd}, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	inst, err := localdb.Start(ctx, localdb.Options{})
	if err != nil {
		return nil, err
	}
	return &Server{Addr: inst.Addr, User: localdb.User, Password: localdb.Password, Local: inst}, nil
}

// DSN returns a DSN for the superuser on database name (empty: none).
func (s *Server) DSN(name string) string {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd = s.User, s.Password
	cfg.Net, cfg.Addr, cfg.DBName = "tcp", s.Addr, name
	cfg.Timeout = 5 * time.Second
	return cfg.FormatDSN()
}

// Host and Port split Addr, for command-line clients.
func (s *Server) Host() string { h, _, _ := net.SplitHostPort(s.Addr); return h }

// Port is the TCP port of Addr.
func (s *Server) Port() string { _, p, _ := net.SplitHostPort(s.Addr); return p }

// Root opens a connection pool for the superuser with no default database.
func (s *Server) Root(t testing.TB) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", s.DSN(""))
	if err != nil {
		t.Fatalf("testdb: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// DB is a database created for one test and dropped at its cleanup.
type DB struct {
	*Server
	// Name is the database (schema) name.
	Name string
}

// New creates an empty database with a unique name for t.
func New(t testing.TB) *DB {
	t.Helper()
	s := Shared(t)
	name := "t_" + randomHex(6)
	root := s.Root(t)
	if _, err := root.Exec("CREATE DATABASE `" + name + "`"); err != nil {
		t.Fatalf("testdb: create database: %v", err)
	}
	d := &DB{Server: s, Name: name}
	d.dropAtCleanup(t, name)
	return d
}

// Sibling returns the name of this database with suffix appended (e.g. a
// meta schema for hotrow's tables), dropped at cleanup if it was created.
func (d *DB) Sibling(t testing.TB, suffix string) string {
	name := d.Name + suffix
	d.dropAtCleanup(t, name)
	return name
}

// dropAtCleanup drops database name, if it exists, when t ends.
func (d *DB) dropAtCleanup(t testing.TB, name string) {
	t.Cleanup(func() {
		db, err := sql.Open("mysql", d.Server.DSN(""))
		if err != nil {
			return
		}
		defer db.Close()
		_, _ = db.Exec("DROP DATABASE IF EXISTS `" + name + "`")
	})
}

// DSN returns a superuser DSN whose default database is this one.
func (d *DB) DSN() string { return d.Server.DSN(d.Name) }

// Open returns a pool on this database, closed at cleanup.
func (d *DB) Open(t testing.TB) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", d.DSN())
	if err != nil {
		t.Fatalf("testdb: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// Exec runs statements on this database and fails the test on error.
func (d *DB) Exec(t testing.TB, stmts ...string) {
	t.Helper()
	db := d.Open(t)
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("testdb: %s: %v", s, err)
		}
	}
}

// WaitFor polls cond every 10ms until it is true or timeout passes, and
// fails the test with what when it never becomes true.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	WaitEvery(t, timeout, 10*time.Millisecond, what, cond)
}

// WaitEvery is WaitFor polling every interval: for a cond that reads
// information_schema.INNODB_TRX, whose cache the server refreshes only
// when it was last read more than 100 ms ago (polled faster, it shows
// the same transactions for ever).
func WaitEvery(t testing.TB, timeout, interval time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(interval)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
