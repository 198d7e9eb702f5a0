package proxy

import (
	"context"
	"database/sql"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	driver "github.com/go-sql-driver/mysql"

	"github.com/hotrow/hotrow/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// testProxy is a proxy on a loopback port in front of the test database.
type testProxy struct {
	*Server
	Addr string
	db   *testdb.DB
}

// startProxy starts a pass-through proxy for db's server with the
// superuser configured, stopped at cleanup.
func startProxy(t testing.TB, db *testdb.DB, mutate ...func(*Config)) *testProxy {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Backend = db.Addr
	cfg.Users = []User{{Name: db.User, Password: db.Password}}
	for _, m := range mutate {
		m(&cfg)
	}
	return serveProxy(t, cfg, db, nil)
}

func serveProxy(t testing.TB, cfg Config, db *testdb.DB, hot *HotPath) *testProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listen = ln.Addr().String()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	srv, err := New(cfg, log, hot)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return &testProxy{Server: srv, Addr: cfg.Listen, db: db}
}

// testWriter sends log lines to t.Logf.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) { w.t.Logf("%s", p); return len(p), nil }

// dsn returns a go-sql-driver DSN for addr with the test superuser.
func dsn(db *testdb.DB, addr string, mutate ...func(*driver.Config)) string {
	cfg := driver.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = db.User, db.Password, "tcp", addr, db.Name
	cfg.Timeout = 5 * time.Second
	for _, m := range mutate {
		m(cfg)
	}
	return cfg.FormatDSN()
}

// open returns a pool through addr, closed at cleanup.
func open(t testing.TB, db *testdb.DB, addr string, mutate ...func(*driver.Config)) *sql.DB {
	t.Helper()
	conn, err := sql.Open("mysql", dsn(db, addr, mutate...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}
