package proxy

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-sql-driver/mysql"

	"github.com/hotrow/hotrow/internal/testdb"
)

// globalStatus reads one of the server's global status counters.
func globalStatus(t testing.TB, root *sql.DB, name string) int {
	t.Helper()
	var n int
	var got string
	if err := root.QueryRow("SHOW GLOBAL STATUS LIKE '"+name+"'").Scan(&got, &n); err != nil {
		t.Fatalf("status %s: %v", name, err)
	}
	return n
}

// dialSilent opens a TCP connection to addr that never sends a byte.
func dialSilent(t testing.TB, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// waitClosed reads from c, discarding the greeting, until the proxy closes
// it, and returns how long that took; it fails the test past limit.
func waitClosed(t testing.TB, c net.Conn, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	_ = c.SetReadDeadline(start.Add(limit))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after %v", limit)
	}
	return time.Since(start)
}

// realLogin logs in through addr with go-mysql's client and checks that the
// thread id of the greeting is the session's CONNECTION_ID() on the server,
// or, when deadOK, one of a thread that has ended (KILL of it fails with
// 1094 and hits no other session).
func realLogin(t testing.TB, db *testdb.DB, addr string, deadOK bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.ConnectWithContext(ctx, addr, db.User, db.Password, db.Name, 5*time.Second)
	if err != nil {
		t.Fatalf("real client: %v", err)
	}
	defer c.Close()
	r, err := c.Execute("SELECT CONNECTION_ID()")
	if err != nil {
		t.Fatalf("real client: %v", err)
	}
	id, _ := r.GetUint(0, 0)
	if uint32(id) == c.GetConnectionID() {
		return
	}
	if !deadOK {
		t.Fatalf("greeting shows thread id %d, CONNECTION_ID() is %d", c.GetConnectionID(), id)
	}
	_, err = db.Open(t).Exec(fmt.Sprintf("KILL %d", c.GetConnectionID()))
	if my := mysqlErr(t, err); my.Number != gomysql.ER_NO_SUCH_THREAD {
		t.Fatalf("KILL of the greeting's thread id %d: got %v, want 1094", c.GetConnectionID(), err)
	}
	t.Logf("greeted during the flood with the ended thread id %d; CONNECTION_ID() is %d", c.GetConnectionID(), id)
}

// TestSilentConnections: 500 clients that connect and never answer the
// greeting make the server hold only a few connections, are closed at the
// handshake deadline, leave no aborted connect on the server, and a real
// client logs in meanwhile with its greeting's thread id.
func TestSilentConnections(t *testing.T) {
	const (
		silent   = 500
		backends = 4
		deadline = 2 * time.Second
	)
	db := testdb.New(t)
	p := startProxy(t, db, func(c *Config) {
		c.HandshakeTimeout.Duration = deadline
		c.HandshakeBackends = backends
	})
	root := db.Open(t)
	root.SetMaxOpenConns(1)
	before := globalStatus(t, root, "Threads_connected")
	aborted := globalStatus(t, root, "Aborted_connects")

	peak := make(chan int)
	stop := make(chan struct{})
	go func() {
		most := 0
		for {
			select {
			case <-stop:
				peak <- most
				return
			case <-time.After(5 * time.Millisecond):
			}
			var name string
			var n int
			if root.QueryRow("SHOW GLOBAL STATUS LIKE 'Threads_connected'").Scan(&name, &n) == nil {
				most = max(most, n)
			}
		}
	}()
	start := time.Now()
	conns := make([]net.Conn, silent)
	opened := make([]time.Time, silent)
	for i := range conns {
		conns[i], opened[i] = dialSilent(t, p.addr), time.Now()
	}
	t.Logf("%d silent connections open after %v", silent, time.Since(start))
	loginStart := time.Now()
	realLogin(t, db, p.addr, true)
	if err := open(t, db, p.addr).Ping(); err != nil {
		t.Fatalf("database/sql during the flood: %v", err)
	}
	t.Logf("real clients logged in within %v", time.Since(loginStart))
	early, late := time.Duration(0), time.Duration(0)
	for i, c := range conns {
		waitClosed(t, c, time.Until(opened[i].Add(deadline+5*time.Second)))
		d := time.Since(opened[i]) - deadline
		early, late = min(early, d), max(late, d)
	}
	close(stop)
	most := <-peak
	t.Logf("Threads_connected: %d before, at most %d during the flood; closed between %v and %v after their deadline",
		before, most, early, late)
	if early < -100*time.Millisecond {
		t.Errorf("a silent connection was closed %v before its handshake deadline", -early)
	}
	// The flood's backends, the real clients' two sessions, and threads
	// that the server has not yet reaped after a quit.
	if limit := before + backends + 2 + 4; most > limit {
		t.Errorf("Threads_connected reached %d, want at most %d", most, limit)
	}
	testdb.WaitFor(t, 10*time.Second, "abandoned backend logins to finish", func() bool {
		return p.gate.backendsHeld() == 0
	})
	time.Sleep(100 * time.Millisecond) // let the server count a late abort
	if after := globalStatus(t, root, "Aborted_connects"); after != aborted {
		t.Errorf("Aborted_connects went from %d to %d", aborted, after)
	}
}

// TestMaxHandshakes: beyond MaxHandshakes pending clients, the one that
// has waited longest is closed, and a real client still gets in.
func TestMaxHandshakes(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	p := startProxy(t, db, func(c *Config) { c.MaxHandshakes = 3 })
	var conns []net.Conn
	for range 3 {
		c := dialSilent(t, p.addr)
		// Read the greeting: the proxy has registered this client before
		// the next one connects.
		if _, err := bufio.NewReader(c).Peek(4); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	realLogin(t, db, p.addr, false)
	if took := waitClosed(t, conns[0], 3*time.Second); took > 2*time.Second {
		t.Errorf("oldest pending client closed after %v", took)
	}
	_ = conns[2].SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := io.Copy(io.Discard, conns[2]); err == nil {
		t.Error("newest pending client closed")
	}
}

// TestTooManyConnections: beyond MaxConnections a client gets ERROR 1040,
// as from the server, through go-sql-driver; a freed slot admits again.
func TestTooManyConnections(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	p := startProxy(t, db, func(c *Config) { c.MaxConnections = 2 })
	var pools []*sql.DB
	for range 2 {
		pool := open(t, db, p.addr)
		if err := pool.Ping(); err != nil { // one connection, kept idle in the pool
			t.Fatal(err)
		}
		pools = append(pools, pool)
	}
	err := open(t, db, p.addr).Ping()
	my := mysqlErr(t, err)
	if my.Number != gomysql.ER_CON_COUNT_ERROR || my.Message != "Too many connections" {
		t.Fatalf("got %v, want 1040 Too many connections", my)
	}
	t.Logf("beyond max connections: %v", my)
	pools[0].Close()
	testdb.WaitFor(t, 5*time.Second, "a free connection slot", func() bool {
		return open(t, db, p.addr).Ping() == nil
	})
}

// TestTooManyConnectionsPacket: the refusal is byte for byte the server's.
func TestTooManyConnectionsPacket(t *testing.T) {
	want := []byte("\x17\x00\x00\x00\xff\x10\x04Too many connections")
	if string(tooManyConnectionsPacket) != string(want) {
		t.Fatalf("got %q, want %q", tooManyConnectionsPacket, want)
	}
}

// TestHandshakeBurst: more clients logging in at once than there are
// handshake backends all get their own thread id in the greeting: they
// wait briefly for a backend connection rather than being greeted with an
// ended thread's.
func TestHandshakeBurst(t *testing.T) {
	t.Parallel()
	const clients = 40
	db := testdb.New(t)
	p := startProxy(t, db, func(c *Config) { c.HandshakeBackends = 8 })
	// A failed login leaves the proxy an ended thread's greeting to fall
	// back on.
	if err := open(t, db, p.addr, func(c *mysql.Config) { c.Passwd = "wrong" }).Ping(); err == nil {
		t.Fatal("wrong password accepted")
	}
	testdb.WaitFor(t, 5*time.Second, "the failed login's backend to be given up", func() bool {
		_, ok := p.gate.deadGreeting()
		return ok
	})
	errs := make(chan error, clients)
	start := time.Now()
	for range clients {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := client.ConnectWithContext(ctx, p.addr, db.User, db.Password, db.Name, 10*time.Second)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			r, err := c.Execute("SELECT CONNECTION_ID()")
			if err != nil {
				errs <- err
				return
			}
			if id, _ := r.GetUint(0, 0); uint32(id) != c.GetConnectionID() {
				errs <- fmt.Errorf("greeting shows thread id %d, CONNECTION_ID() is %d", c.GetConnectionID(), id)
				return
			}
			errs <- nil
		}()
	}
	for range clients {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	t.Logf("%d logins through %d handshake backends in %v", clients, p.cfg.HandshakeBackends, time.Since(start))
}
