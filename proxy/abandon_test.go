package proxy

import (
	"database/sql"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/hotrow/hotrow/internal/testdb"
)

// TestFailedLoginsDoNotAbortBackendConnects: clients that fail their
// login, or just probe the port, must not count as aborted connects on
// the server (max_connect_errors would block the proxy's host).
func TestFailedLoginsDoNotAbortBackendConnects(t *testing.T) {
	db := testdb.New(t)
	p := startProxy(t, db)
	root := db.Open(t)
	abortedConnects := func() int {
		var name string
		var n int
		if err := root.QueryRow("SHOW GLOBAL STATUS LIKE 'Aborted_connects'").Scan(&name, &n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := abortedConnects()
	for range 3 {
		bad, err := sql.Open("mysql", dsn(db, p.addr, func(c *mysql.Config) { c.Passwd = "wrong" }))
		if err != nil {
			t.Fatal(err)
		}
		if err := bad.Ping(); err == nil {
			t.Fatal("login with a wrong password succeeded")
		}
		bad.Close()
	}
	// The abandoned backend logins finish in the background; wait until no
	// backend thread of ours is left in the handshake.
	testdb.WaitFor(t, 5*time.Second, "backend logins to finish", func() bool {
		var n int
		_ = root.QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE COMMAND = 'Connect'").Scan(&n)
		return n == 0
	})
	time.Sleep(100 * time.Millisecond) // let the server count a late abort
	if after := abortedConnects(); after != before {
		t.Fatalf("Aborted_connects went from %d to %d", before, after)
	}
}
