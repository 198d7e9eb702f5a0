package merger

import (
	"context"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/hotrow/hotrow/internal/testdb"
)

// replyEater relays TCP connections to the server. When armed, the next
// query any connection sends reaches the server, but the server's replies
// are swallowed and, once the server had time to finish (COMMIT included),
// the connection is closed: a connection lost after COMMIT succeeded.
type replyEater struct {
	ln     net.Listener
	target string
	armed  atomic.Bool
	wg     sync.WaitGroup
}

func newReplyEater(t *testing.T, target string) *replyEater {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &replyEater{ln: ln, target: target}
	e.wg.Go(e.accept)
	t.Cleanup(func() { ln.Close(); e.wg.Wait() })
	return e
}

func (e *replyEater) accept() {
	for {
		c, err := e.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", e.target)
		if err != nil {
			c.Close()
			continue
		}
		var swallow atomic.Bool
		e.wg.Go(func() { // client -> server
			buf := make([]byte, 64<<10)
			for {
				n, err := c.Read(buf)
				if n > 0 && e.armed.CompareAndSwap(true, false) {
					swallow.Store(true)
					e.wg.Go(func() {
						time.Sleep(300 * time.Millisecond)
						c.Close()
						s.Close()
					})
				}
				if n > 0 {
					if _, werr := s.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					s.Close()
					return
				}
			}
		})
		e.wg.Go(func() { // server -> client
			buf := make([]byte, 64<<10)
			for {
				n, err := s.Read(buf)
				if n > 0 && !swallow.Load() {
					if _, werr := c.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					if err != io.EOF {
						c.Close()
					}
					return
				}
			}
		})
	}
}

// TestReplyLostAfterCommit: the connection dies after the server
// committed but before hotrow read the outcome. The marker shows the batch
// committed, so clients get their outcomes and nothing is applied twice.
func TestReplyLostAfterCommit(t *testing.T) {
	var eater *replyEater
	var commits atomic.Int32
	var armAt atomic.Int32
	f := newFixture(t, "INT UNSIGNED", map[string]int64{"a": 100}, func(c *Config) {
		c.Hooks.Before = func(s Step, _ uint32) {
			if s == StepCommit && commits.Add(1) == armAt.Load() {
				eater.armed.Store(true)
			}
		}
	})
	eater = newReplyEater(t, f.db.Addr)
	// Restart the merger on the relay.
	f.m.Close()
	cfg := f.m.cfg
	dsn, _ := mysql.ParseDSN(cfg.DSN)
	dsn.Addr = eater.ln.Addr().String()
	cfg.DSN = dsn.FormatDSN()
	m, err := New(context.Background(), cfg, f.m.log)
	if err != nil {
		t.Fatal(err)
	}
	f.m = m
	t.Cleanup(func() { m.Close() })

	t.Run("lone", func(t *testing.T) {
		commits.Store(0)
		armAt.Store(1)
		out, err := m.Do(context.Background(), f.text(t, "UPDATE inv SET stock = stock - 2 WHERE sku = 'a' AND stock >= 2", 1))
		if err != nil || out.Matched != 1 || out.Changed != 1 {
			t.Fatalf("lone request with its reply lost = %+v, %v; want 1 matched and changed", out, err)
		}
	})
	t.Run("fast", func(t *testing.T) {
		commits.Store(0)
		armAt.Store(2) // the batch after the lone request
		release := f.holdRow(t, "a")
		errs := make(chan error, 6)
		do := func(id uint32) {
			out, err := m.Do(context.Background(), f.text(t, "UPDATE inv SET stock = stock - 1 WHERE sku = 'a' AND stock >= 1", id))
			if err == nil && out.Matched != 1 {
				err = io.ErrUnexpectedEOF
			}
			errs <- err
		}
		go do(10)
		testdb.WaitFor(t, 5*time.Second, "first batch in flight", f.inFlight)
		for i := range 5 {
			go do(uint32(11 + i))
		}
		testdb.WaitFor(t, 5*time.Second, "five queued", func() bool { return f.m.Stats().Queued == 5 })
		release()
		for range 6 {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
	})
	if got := f.stock(t, "a"); got != 100-2-6 {
		t.Fatalf("stock = %d, want %d: a lost reply must not apply twice", got, 100-2-6)
	}
	if got := f.ledgerRows(t); got != 7 {
		t.Fatalf("ledger rows = %d, want 7", got)
	}
	if s := m.Stats(); s.Resolved != 2 || s.FastPath == 0 {
		t.Fatalf("stats %+v: want 2 resolved commits and a fast batch", s)
	}
}
