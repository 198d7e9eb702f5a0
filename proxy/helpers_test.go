package proxy

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/hotrow/hotrow/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// testProxy is a proxy on a loopback port in front of the test database.
type testProxy struct {
	*Server
	addr string // client-facing host:port
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
	go func() { done <- srv.Serve(context.Background(), ln) }()
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
	return &testProxy{Server: srv, addr: cfg.Listen, db: db}
}

// testWriter sends log lines to t.Logf.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) { w.t.Logf("%s", p); return len(p), nil }

// dsn returns a go-sql-driver DSN for addr with the test superuser.
func dsn(db *testdb.DB, addr string, mutate ...func(*mysql.Config)) string {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = db.User, db.Password, "tcp", addr, db.Name
	cfg.Timeout = 5 * time.Second
	for _, m := range mutate {
		m(cfg)
	}
	return cfg.FormatDSN()
}

// open returns a pool through addr, closed at cleanup.
func open(t testing.TB, db *testdb.DB, addr string, mutate ...func(*mysql.Config)) *sql.DB {
	t.Helper()
	conn, err := sql.Open("mysql", dsn(db, addr, mutate...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// target is one way to reach the test server: directly or through the
// proxy. Each target has its own database so that the same statements can
// run on both; the two names have the same length, so transcripts compare
// after swapping one for the other.
type target struct {
	name string
	db   *testdb.DB
	addr string
}

// targets returns a direct target and one through a fresh proxy.
func targets(t testing.TB, mutate ...func(*Config)) (direct, proxied target, p *testProxy) {
	t.Helper()
	dd, pd := testdb.New(t), testdb.New(t)
	p = startProxy(t, pd, mutate...)
	return target{name: "direct", db: dd, addr: dd.Addr}, target{name: "proxy", db: pd, addr: p.addr}, p
}

// normalize replaces the target's database name by a placeholder.
func (tg target) normalize(s string) string { return strings.ReplaceAll(s, tg.db.Name, "<db>") }

// compareLines fails the test at the first line where got (through the
// proxy) differs from want (direct).
func compareLines(t testing.TB, want, got []string) {
	t.Helper()
	for i := range max(len(want), len(got)) {
		var w, g string
		if i < len(want) {
			w = want[i]
		}
		if i < len(got) {
			g = got[i]
		}
		if w != g {
			t.Fatalf("line %d differs\ndirect: %s\nproxy:  %s", i, w, g)
		}
	}
}

// describeErr formats an error with the fields a client sees.
func describeErr(err error) string {
	var my *mysql.MySQLError
	if errors.As(err, &my) {
		return fmt.Sprintf("ERR %d %s %s", my.Number, string(my.SQLState[:]), my.Message)
	}
	return "ERR " + err.Error()
}

// queryer is what *sql.DB, *sql.Conn and *sql.Tx have in common.
type queryer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// describeExec runs an Exec and describes its result.
func describeExec(ctx context.Context, q queryer, query string, args ...any) string {
	res, err := q.ExecContext(ctx, query, args...)
	if err != nil {
		return "exec: " + describeErr(err)
	}
	n, err1 := res.RowsAffected()
	id, err2 := res.LastInsertId()
	return fmt.Sprintf("exec: affected=%d last_insert_id=%d %v %v", n, id, err1, err2)
}

// describeQuery runs a Query and describes every result set: column
// metadata as database/sql reports it, then every row.
func describeQuery(ctx context.Context, q queryer, query string, args ...any) []string {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return []string{"query: " + describeErr(err)}
	}
	defer rows.Close()
	var out []string
	for set := 0; ; set++ {
		types, err := rows.ColumnTypes()
		if err != nil {
			return append(out, "columns: "+describeErr(err))
		}
		for _, ct := range types {
			nullable, nok := ct.Nullable()
			prec, scale, dok := ct.DecimalSize()
			length, lok := ct.Length()
			out = append(out, fmt.Sprintf("set %d column %s %s nullable=%v/%v decimal=%d,%d/%v length=%d/%v scan=%v",
				set, ct.Name(), ct.DatabaseTypeName(), nullable, nok, prec, scale, dok, length, lok, ct.ScanType()))
		}
		vals := make([]sql.RawBytes, len(types))
		ptrs := make([]any, len(vals))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				return append(out, "scan: "+describeErr(err))
			}
			row := make([]string, len(vals))
			for i, v := range vals {
				if v == nil {
					row[i] = "NULL"
				} else {
					row[i] = fmt.Sprintf("%q", v)
				}
			}
			out = append(out, fmt.Sprintf("set %d row %s", set, strings.Join(row, " ")))
		}
		if err := rows.Err(); err != nil {
			return append(out, "rows: "+describeErr(err))
		}
		if !rows.NextResultSet() {
			if err := rows.Err(); err != nil {
				out = append(out, "next result: "+describeErr(err))
			}
			return out
		}
	}
}

// step is one statement of a scenario: an Exec, or a Query when query is
// set, with its arguments.
type step struct {
	sql   string
	args  []any
	query bool
}

func execStep(sql string, args ...any) step  { return step{sql: sql, args: args} }
func queryStep(sql string, args ...any) step { return step{sql: sql, args: args, query: true} }

// runSteps runs steps in order on one connection and returns the
// normalized transcript.
func runSteps(t testing.TB, tg target, q queryer, steps []step) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []string
	for _, s := range steps {
		out = append(out, "> "+s.sql)
		if s.query {
			out = append(out, describeQuery(ctx, q, s.sql, s.args...)...)
		} else {
			out = append(out, describeExec(ctx, q, s.sql, s.args...))
		}
	}
	for i := range out {
		out[i] = tg.normalize(out[i])
	}
	return out
}

// conn returns one connection of a pool on tg, for session-scoped steps.
func (tg target) conn(t testing.TB, mutate ...func(*mysql.Config)) *sql.Conn {
	t.Helper()
	pool := open(t, tg.db, tg.addr, mutate...)
	c, err := pool.Conn(context.Background())
	if err != nil {
		t.Fatalf("%s: %v", tg.name, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// driverModes are the go-sql-driver/mysql configurations every scenario
// runs in: text protocol with client-side interpolation, and server-side
// prepared statements (binary protocol).
var driverModes = []struct {
	name   string
	mutate func(*mysql.Config)
}{
	{"text", func(c *mysql.Config) { c.InterpolateParams = true }},
	{"prepared", func(c *mysql.Config) { c.InterpolateParams = false }},
}

// processCount counts the server threads of user whose database is db.
func processCount(t testing.TB, root *sql.DB, user, db string) int {
	t.Helper()
	var n int
	err := root.QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = ? AND DB = ?", user, db).Scan(&n)
	if err != nil {
		t.Fatalf("processlist: %v", err)
	}
	return n
}

// serveFakeBackend runs serve for every connection to a new loopback
// listener, in its own goroutine, with connection ids from firstID on; at
// cleanup it closes the listener and waits for every serve to return.
func serveFakeBackend(t *testing.T, firstID uint32, serve func(conn net.Conn, id uint32)) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for id := firstID; ; id++ {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { serve(conn, id) })
		}
	})
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln
}
