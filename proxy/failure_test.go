package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-sql-driver/mysql"

	"github.com/hotrow/hotrow/internal/testdb"
)

// mysqlErr returns the *mysql.MySQLError in err, failing the test when
// there is none.
func mysqlErr(t testing.TB, err error) *mysql.MySQLError {
	t.Helper()
	var my *mysql.MySQLError
	if !errors.As(err, &my) {
		t.Fatalf("got %v (%T), want a MySQL error", err, err)
	}
	return my
}

// TestAuthErrors compares login failures directly and through the proxy:
// same code, SQL state and message.
func TestAuthErrors(t *testing.T) {
	t.Parallel()
	direct, proxied, _ := targets(t)
	sha2 := startProxy(t, proxied.db, func(c *Config) { c.AuthPlugin = gomysql.AUTH_CACHING_SHA2_PASSWORD })
	tests := []struct {
		name   string
		mutate func(*mysql.Config)
		want   uint16
	}{
		{"wrong password", func(c *mysql.Config) { c.Passwd = "wrong" }, gomysql.ER_ACCESS_DENIED_ERROR},
		{"no password", func(c *mysql.Config) { c.Passwd = "" }, gomysql.ER_ACCESS_DENIED_ERROR},
		{"unknown user", func(c *mysql.Config) { c.User = "nobody" }, gomysql.ER_ACCESS_DENIED_ERROR},
		{"unknown database", func(c *mysql.Config) { c.DBName = "nosuchdb" }, gomysql.ER_BAD_DB_ERROR},
		{"good login", func(*mysql.Config) {}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var msgs []string
			for _, tg := range []target{direct, proxied, {name: "proxy (caching_sha2_password)", db: proxied.db, addr: sha2.addr}} {
				err := open(t, tg.db, tg.addr, tt.mutate).Ping()
				if tt.want == 0 {
					if err != nil {
						t.Fatalf("%s: %v", tg.name, err)
					}
					continue
				}
				my := mysqlErr(t, err)
				if my.Number != tt.want {
					t.Fatalf("%s: got %v, want error %d", tg.name, my, tt.want)
				}
				msgs = append(msgs, tg.normalize(describeErr(my)))
			}
			for i := 1; i < len(msgs); i++ {
				if msgs[i] != msgs[0] {
					t.Errorf("direct: %s\nproxy:  %s", msgs[0], msgs[i])
				}
			}
		})
	}
}

// TestAuthSwitch: a client that answers with a plugin the proxy does not
// verify is asked to switch to mysql_native_password, as the server does.
func TestAuthSwitch(t *testing.T) {
	t.Parallel()
	direct, proxied, _ := targets(t)
	for _, plugin := range []string{"client_ed25519", gomysql.AUTH_SHA256_PASSWORD} {
		t.Run(plugin, func(t *testing.T) {
			var logs [2][]string
			for i, tg := range []target{direct, proxied} {
				for _, pw := range []string{tg.db.Password, "wrong"} {
					c, reply := dialRawWith(t, tg.addr, tg.db.User, pw, tg.db.Name, plugin, 0)
					if pw == tg.db.Password && reply[0] != headerOK {
						t.Fatalf("%s: login: %v", tg.name, parseErr(reply))
					}
					logs[i] = append(logs[i], fmt.Sprintf("right password %v: %x", pw == tg.db.Password, reply))
					c.conn.Close()
				}
			}
			compareLines(t, logs[0], logs[1])
		})
	}
}

// TestBackendUserRejected: a user the proxy knows but the server refuses
// gets the server's own error.
func TestBackendUserRejected(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	p := startProxy(t, db, func(c *Config) { c.Users = append(c.Users, User{Name: "ghost", Password: "boo"}) })
	err := open(t, db, p.addr, func(c *mysql.Config) { c.User, c.Passwd = "ghost", "boo" }).Ping()
	if my := mysqlErr(t, err); my.Number != gomysql.ER_ACCESS_DENIED_ERROR {
		t.Fatalf("got %v, want 1045", my)
	}
}

// TestBackendKilledMidQuery kills the backend thread of a running query
// from another connection, directly and through the proxy: the client
// sees the same error, and the proxy serves new sessions.
func TestBackendKilledMidQuery(t *testing.T) {
	t.Parallel()
	direct, proxied, _ := targets(t)
	root := testdb.Shared(t).Root(t)
	for _, kill := range []string{"KILL QUERY", "KILL"} {
		t.Run(kill, func(t *testing.T) {
			var got [2]string
			for i, tg := range []target{direct, proxied} {
				c := tg.conn(t)
				var id int64
				if err := c.QueryRowContext(context.Background(), "SELECT CONNECTION_ID()").Scan(&id); err != nil {
					t.Fatal(err)
				}
				res := make(chan string, 1)
				go func() {
					var v int
					err := c.QueryRowContext(context.Background(), "SELECT SLEEP(5)").Scan(&v)
					var my *mysql.MySQLError
					switch {
					case errors.Is(err, mysql.ErrInvalidConn) || errors.As(err, &my) && my.Number == crServerLost:
						// The driver's own words for a connection lost
						// directly, and the proxy's 2013 error.
						res <- "lost connection"
						return
					case err != nil:
						res <- describeErr(err)
						return
					}
					res <- fmt.Sprintf("result %d", v)
				}()
				testdb.WaitFor(t, 5*time.Second, "the query to run", func() bool {
					var n int
					_ = root.QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ? AND INFO LIKE 'SELECT SLEEP%'", id).Scan(&n)
					return n == 1
				})
				if _, err := root.Exec(fmt.Sprintf("%s %d", kill, id)); err != nil {
					t.Fatal(err)
				}
				select {
				case got[i] = <-res:
				case <-time.After(10 * time.Second):
					t.Fatalf("%s: no answer after %s", tg.name, kill)
				}
				t.Logf("%s: %s", tg.name, got[i])
				if err := open(t, tg.db, tg.addr).Ping(); err != nil {
					t.Fatalf("%s: new session after %s: %v", tg.name, kill, err)
				}
			}
			if got[0] != got[1] {
				t.Errorf("direct: %s\nproxy:  %s", got[0], got[1])
			}
		})
	}
}

// TestClientDisconnectMidQuery: a client that goes away during a query
// leaves no backend connection behind.
func TestClientDisconnectMidQuery(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	p := startProxy(t, db)
	root := testdb.Shared(t).Root(t)
	c, _ := dialRaw(t, p.addr, db.User, db.Password, db.Name)
	c.command(comQuery("SELECT SLEEP(2)"))
	testdb.WaitFor(t, 5*time.Second, "the query to run", func() bool {
		var n int
		_ = root.QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = ? AND INFO LIKE 'SELECT SLEEP%'", db.Name).Scan(&n)
		return n == 1
	})
	c.conn.Close()
	testdb.WaitFor(t, 15*time.Second, "the backend connection to close", func() bool {
		return processCount(t, root, db.User, db.Name) == 0
	})
	if err := open(t, db, p.addr).Ping(); err != nil {
		t.Fatalf("new session: %v", err)
	}
}

// TestShutdown: Shutdown lets a running statement finish and return its
// result, closes idle sessions, and refuses new connections.
func TestShutdown(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	p := startProxy(t, db)
	root := testdb.Shared(t).Root(t)

	idle, login := dialRaw(t, p.addr, db.User, db.Password, db.Name)
	if login[0] != headerOK {
		t.Fatalf("login: %x", login)
	}
	busy := open(t, db, p.addr)
	res := make(chan string, 1)
	go func() {
		var v int
		if err := busy.QueryRow("SELECT SLEEP(1)").Scan(&v); err != nil {
			res <- describeErr(err)
			return
		}
		res <- fmt.Sprintf("result %d", v)
	}()
	testdb.WaitFor(t, 5*time.Second, "the query to run", func() bool {
		var n int
		_ = root.QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = ? AND INFO LIKE 'SELECT SLEEP%'", db.Name).Scan(&n)
		return n == 1
	})
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- p.Shutdown(ctx)
	}()
	if !idle.isClosed() {
		t.Error("idle session still open during shutdown")
	}
	testdb.WaitFor(t, 5*time.Second, "the listener to close", func() bool {
		conn, err := net.DialTimeout("tcp", p.addr, time.Second)
		if err == nil {
			conn.Close()
		}
		return err != nil
	})
	select {
	case r := <-res:
		if r != "result 0" {
			t.Errorf("running statement: %s, want its result", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("running statement never answered")
	}
	if err := <-done; err != nil {
		t.Errorf("shutdown: %v", err)
	}
	if err := busy.Ping(); err == nil {
		t.Error("new connection accepted after shutdown")
	}
	testdb.WaitFor(t, 10*time.Second, "backend connections to close", func() bool {
		return processCount(t, root, db.User, db.Name) == 0
	})
}

// TestShutdownDrainTimeout: a statement running past the drain deadline
// is cut off and Shutdown reports it.
func TestShutdownDrainTimeout(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	p := startProxy(t, db)
	root := testdb.Shared(t).Root(t)
	client := open(t, db, p.addr)
	res := make(chan error, 1)
	go func() { _, err := client.Exec("DO SLEEP(3)"); res <- err }()
	testdb.WaitFor(t, 5*time.Second, "the query to run", func() bool {
		var n int
		_ = root.QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = ? AND INFO LIKE 'DO SLEEP%'", db.Name).Scan(&n)
		return n == 1
	})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := p.Shutdown(ctx); err == nil {
		t.Error("shutdown reported no error with a statement still running")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("shutdown took %v past a 200ms drain deadline", d)
	}
	select {
	case err := <-res:
		if err == nil {
			t.Error("cut-off statement reported success")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("cut-off statement never answered")
	}
}

// TestBackendRestart stops the shared server, so it runs alone (it is not
// parallel: parallel tests wait for the sequential ones). The server is
// killed during a query, then down, then back: clients get 2013 and 2003,
// the proxy stays up, and new sessions succeed once the server is back.
func TestBackendRestart(t *testing.T) {
	db := testdb.New(t)
	if db.Local == nil {
		t.Skip("HOTROW_TEST_DSN names an external server: cannot restart it")
	}
	p := startProxy(t, db, func(c *Config) { c.ConnectTimeout.Duration = 2 * time.Second })
	ctx := context.Background()
	restart := func() {
		t.Helper()
		rctx, cancel := context.WithTimeout(ctx, 90*time.Second)
		defer cancel()
		if err := db.Local.Restart(rctx); err != nil {
			t.Fatalf("restart: %v", err)
		}
	}
	for _, stop := range []struct {
		name string
		stop func()
	}{
		{"killed", db.Local.Kill},
		{"shut down", db.Local.Shutdown},
	} {
		t.Run(stop.name, func(t *testing.T) {
			pool := open(t, db, p.addr)
			idle, err := pool.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer idle.Close()
			if err := idle.PingContext(ctx); err != nil {
				t.Fatal(err)
			}
			busy, err := pool.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer busy.Close()
			res := make(chan error, 1)
			go func() { _, err := busy.ExecContext(ctx, "DO SLEEP(30)"); res <- err }()
			root := db.Root(t)
			testdb.WaitFor(t, 5*time.Second, "the query to run", func() bool {
				var n int
				_ = root.QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = ? AND INFO LIKE 'DO SLEEP%'", db.Name).Scan(&n)
				return n == 1
			})
			root.Close()

			stop.stop()
			t.Cleanup(func() {
				// Leave the server running for the tests after this one.
				if open(t, db, db.Addr).Ping() != nil {
					restart()
				}
			})
			select {
			case err := <-res:
				if my := mysqlErr(t, err); my.Number != crServerLost {
					t.Errorf("running query: got %v, want 2013", my)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("running query never answered")
			}
			// The idle session hears 2013 at its next statement (or the
			// driver's own lost-connection error, when its write fails).
			if _, err := idle.ExecContext(ctx, "DO 1"); err == nil {
				t.Error("idle session: statement succeeded with the server down")
			} else {
				t.Logf("idle session: %v", err)
			}
			// New sessions get 2003 while the server is down...
			err = open(t, db, p.addr).Ping()
			if my := mysqlErr(t, err); my.Number != crConnHostError {
				t.Errorf("connect while down: got %v, want 2003", my)
			} else {
				t.Logf("connect while down: %v", my)
			}
			// ...and work again once it is back.
			restart()
			fresh := open(t, db, p.addr)
			var one int
			if err := fresh.QueryRow("SELECT 1").Scan(&one); err != nil {
				t.Fatalf("after restart: %v", err)
			}
		})
	}
}
