package admin

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/hotrow/hotrow/internal/testdb"
	"github.com/hotrow/hotrow/merger"
	"github.com/hotrow/hotrow/proxy"
	"github.com/hotrow/hotrow/schema"
)

func TestMain(m *testing.M) { testdb.Main(m) }

const adminPassword = "admin-pw"

// fixture is a test database with a hot table inventory, a merger, a
// proxy in front of the server and an admin port, all on loopback.
type fixture struct {
	db     *testdb.DB
	conn   *sql.DB // direct, superuser
	meta   string
	m      *merger.Merger
	rules  *merger.RuleSet
	det    *merger.HotKeys
	obs    *Observer
	px     *proxy.Server
	pxAddr string
	adm    *Server
	addr   string // admin port
	feed   Feed   // given to admin ports started after it is set
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) { w.t.Logf("%s", p); return len(p), nil }

// newFixture starts everything; seed are the rules that seed hot_rules.
func newFixture(t *testing.T, seed ...string) *fixture {
	t.Helper()
	db := testdb.New(t)
	db.Exec(t, "CREATE TABLE inventory (sku_id BIGINT PRIMARY KEY, stock INT NOT NULL, note VARCHAR(16))",
		"INSERT INTO inventory VALUES (1, 1000, NULL), (2, 1000, NULL)",
		"CREATE TABLE nokey (sku_id BIGINT, stock INT NOT NULL)",
		"CREATE TABLE textstock (sku_id BIGINT PRIMARY KEY, stock VARCHAR(10))")
	f := &fixture{db: db, conn: db.Open(t), meta: db.Sibling(t, "_meta")}
	mc := merger.DefaultConfig()
	mc.DSN, mc.MetaSchema = db.Server.DSN(""), f.meta
	m, err := merger.New(context.Background(), mc, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	f.m = m
	f.rules = merger.NewRuleSet(nil)
	f.det = merger.NewHotKeys(f.rules, testLogger(t))
	f.obs = NewObserver(f.rules, f.det)
	pcfg := proxy.DefaultConfig()
	pcfg.Backend = db.Addr
	pcfg.Users = []proxy.User{{Name: db.User, Password: db.Password}}
	pcfg.HotRules = seed
	f.px, err = proxy.New(pcfg, testLogger(t), &proxy.HotPath{Matcher: f.rules, Executor: m, Observer: f.obs})
	if err != nil {
		t.Fatal(err)
	}
	ln := listen(t)
	f.pxAddr = ln.Addr().String()
	done := make(chan error, 1)
	go func() { done <- f.px.Serve(context.Background(), ln) }()
	t.Cleanup(func() {
		f.px.Close()
		<-done
	})
	var rules []merger.Rule
	for _, s := range seed {
		r, err := schema.ParseRule(s)
		if err != nil {
			t.Fatal(err)
		}
		rules = append(rules, r)
	}
	f.adm, f.addr = f.startAdmin(t, f.rules, rules)
	return f
}

func listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// startAdmin starts an admin port over rules on f's merger and proxy,
// closed at cleanup.
func (f *fixture) startAdmin(t *testing.T, rules *merger.RuleSet, seed []merger.Rule) (*Server, string) {
	t.Helper()
	ln := listen(t)
	cfg := DefaultConfig()
	cfg.Listen, cfg.Password = ln.Addr().String(), adminPassword
	cfg.MetaDSN, cfg.MetaSchema = f.db.Server.DSN(""), f.meta
	cfg.PollInterval = 100 * time.Millisecond
	cfg.Seed = seed
	cfg.InstanceID = "test"
	cfg.Feed = f.feed
	adm, err := New(context.Background(), cfg, testLogger(t), rules, f.m, f.px, f.obs)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- adm.Serve(ln) }()
	t.Cleanup(func() {
		adm.Close()
		<-done
	})
	return adm, ln.Addr().String()
}

// admin opens a pool on an admin port.
func admin(t testing.TB, addr, user, password string) *sql.DB {
	t.Helper()
	c := mysql.NewConfig()
	c.User, c.Passwd, c.Net, c.Addr = user, password, "tcp", addr
	c.Timeout = 5 * time.Second
	db, err := sql.Open("mysql", c.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// app opens a pool through the proxy on f's database.
func (f *fixture) app(t testing.TB) *sql.DB {
	t.Helper()
	c := mysql.NewConfig()
	c.User, c.Passwd, c.Net, c.Addr, c.DBName = f.db.User, f.db.Password, "tcp", f.pxAddr, f.db.Name
	db, err := sql.Open("mysql", c.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// code is the MySQL error number of err, 0 when none.
func code(err error) uint16 {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number
	}
	return 0
}

// rows reads a query's rows as strings (NULL as "NULL").
func rows(t testing.TB, db *sql.DB, q string) [][]string {
	t.Helper()
	r, err := db.Query(q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer r.Close()
	cols, _ := r.Columns()
	var out [][]string
	for r.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := r.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		row := make([]string, len(cols))
		for i, v := range vals {
			row[i] = "NULL"
			if v.Valid {
				row[i] = v.String
			}
		}
		out = append(out, row)
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func mustExec(t testing.TB, db *sql.DB, q string) sql.Result {
	t.Helper()
	res, err := db.Exec(q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return res
}
