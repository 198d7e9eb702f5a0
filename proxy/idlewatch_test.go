package proxy

import (
	"fmt"
	"testing"
	"time"

	"github.com/hotrow/hotrow/internal/testdb"
)

// TestIdleBackendClosed: when the server closes an idle session's backend
// connection (wait_timeout, or KILL from another session), the proxy
// closes the client's connection at once, and a database/sql pool goes on
// transparently on a fresh connection, as it does directly.
func TestIdleBackendClosed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		close func(t *testing.T, tg target, id int)
		// within bounds how long after close the client's socket closes.
		within time.Duration
	}{
		{"wait_timeout", func(t *testing.T, tg target, id int) {}, 3 * time.Second},
		{"KILL", func(t *testing.T, tg target, id int) {
			if _, err := tg.db.Open(t).Exec(fmt.Sprintf("KILL %d", id)); err != nil {
				t.Fatal(err)
			}
		}, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			db := testdb.New(t)
			p := startProxy(t, db)
			tg := target{name: "proxy", db: db, addr: p.addr}
			pool := open(t, db, p.addr)
			pool.SetMaxOpenConns(1)
			var id int
			if err := pool.QueryRow("SELECT CONNECTION_ID()").Scan(&id); err != nil {
				t.Fatal(err)
			}
			if tt.name == "wait_timeout" {
				if _, err := pool.Exec("SET SESSION wait_timeout = 1"); err != nil {
					t.Fatal(err)
				}
			}
			start := time.Now()
			tt.close(t, tg, id)
			testdb.WaitFor(t, tt.within, "the proxy to close the idle session", func() bool {
				return p.sessionCount() == 0
			})
			t.Logf("session closed %v after the server was told to close it", time.Since(start).Round(time.Millisecond))
			var next int
			if err := pool.QueryRow("SELECT CONNECTION_ID()").Scan(&next); err != nil {
				t.Fatalf("next query on the pool: %v", err)
			}
			if next == id {
				t.Fatalf("the pool still uses thread %d", id)
			}
		})
	}
}

// TestIdleWatchBusySession: a session that runs commands back to back,
// with and without pauses longer than the watch delay, keeps working (the
// watcher never steals a byte of a response).
func TestIdleWatchBusySession(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	p := startProxy(t, db)
	pool := open(t, db, p.addr)
	pool.SetMaxOpenConns(1)
	for i := range 20 {
		if i%5 == 0 {
			time.Sleep(idleWatchDelay + 20*time.Millisecond)
		}
		var got int
		if err := pool.QueryRow("SELECT ?", i).Scan(&got); err != nil || got != i {
			t.Fatalf("query %d: got %d, %v", i, got, err)
		}
	}
	if n := p.sessionCount(); n != 1 {
		t.Fatalf("%d sessions, want the same one throughout", n)
	}
}
