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

// replyEater relays TCP connections to the server. When armed with a
// server connection id, the next query that connection sends reaches the
// server, but the server's replies are swallowed and, once the server had
// time to finish (COMMIT included), the connection is closed: a
// connection lost after COMMIT succeeded. (Arming by id keeps other
// connections of the merger, e.g. the janitor's, from taking the fault.)
type replyEater struct {
	ln     net.Listener
	target string
	armed  atomic.Uint32 // server connection id, 0: disarmed
	wg     sync.WaitGroup
}

// handshakeConnID reads the connection id from the server's initial
// handshake packet: 4 header bytes, the protocol version, the server
// version up to a NUL, then the id (4 bytes, little endian).
func handshakeConnID(p []byte) uint32 {
	if len(p) < 5 {
		return 0
	}
	i := 5
	for i < len(p) && p[i] != 0 {
		i++
	}
	if i+5 > len(p) {
		return 0
	}
	return uint32(p[i+1]) | uint32(p[i+2])<<8 | uint32(p[i+3])<<16 | uint32(p[i+4])<<24
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
		var connID atomic.Uint32
		e.wg.Go(func() { // client -> server
			buf := make([]byte, 64<<10)
			for {
				n, err := c.Read(buf)
				if id := connID.Load(); n > 0 && id != 0 && e.armed.CompareAndSwap(id, 0) {
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
				if n > 0 && connID.Load() == 0 {
					connID.Store(handshakeConnID(buf[:n]))
				}
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

// lostReplies is a fixture whose merger talks to the server through a
// replyEater: the reply of the armAt-th COMMIT (counted since the last
// reset of commits) is lost after the server ran it, and onLoss, when
// set, runs then on the batch's goroutine.
type lostReplies struct {
	*fixture
	commits, armAt atomic.Int32
	onLoss         atomic.Pointer[func()]
}

func newLostReplies(t *testing.T) *lostReplies {
	t.Helper()
	var eater *replyEater
	lr := &lostReplies{}
	lr.fixture = newFixture(t, "INT UNSIGNED", map[string]int64{"a": 100}, func(c *Config) {
		c.hooks.before = func(s batchStep, connID uint32) {
			if s == stepCommit && lr.commits.Add(1) == lr.armAt.Load() {
				eater.armed.Store(connID)
				if fn := lr.onLoss.Load(); fn != nil {
					(*fn)()
				}
			}
		}
	})
	eater = newReplyEater(t, lr.db.Addr)
	// Restart the merger on the relay.
	lr.m.Close()
	cfg := lr.m.cfg
	dsn, _ := mysql.ParseDSN(cfg.DSN)
	dsn.Addr = eater.ln.Addr().String()
	cfg.DSN = dsn.FormatDSN()
	m, err := New(context.Background(), cfg, lr.m.log)
	if err != nil {
		t.Fatal(err)
	}
	lr.m = m
	t.Cleanup(func() { m.Close() })
	return lr
}

// TestReplyLostAfterCommit: the connection dies after the server
// committed but before hotrow read the outcome. The marker shows the batch
// committed, so clients get their outcomes and nothing is applied twice.
func TestReplyLostAfterCommit(t *testing.T) {
	lr := newLostReplies(t)
	f, m, commits, armAt := lr.fixture, lr.m, &lr.commits, &lr.armAt
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
	t.Run("lone-matched-nothing", func(t *testing.T) {
		// No ledger row either way: the request runs again and reports
		// that it matched nothing.
		commits.Store(0)
		armAt.Store(1)
		out, err := m.Do(context.Background(), f.text(t, "UPDATE inv SET stock = stock - 2 WHERE sku = 'a' AND stock >= 1000", 20))
		if err != nil || out.Matched != 0 || out.Changed != 0 {
			t.Fatalf("lone request matching nothing with its reply lost = %+v, %v; want nothing matched", out, err)
		}
	})
	if got := f.stock(t, "a"); got != 100-2-6 {
		t.Fatalf("stock = %d, want %d: a lost reply must not apply twice", got, 100-2-6)
	}
	if got := f.ledgerRows(t); got != 7 {
		t.Fatalf("ledger rows = %d, want 7", got)
	}
	if s := m.Stats(); s.Resolved != 3 || s.FastPath == 0 {
		t.Fatalf("stats %+v: want 3 resolved commits and a fast batch", s)
	}
}

// TestCloseResolvesCommitInFlight: Close while a batch's COMMIT is in
// flight and its reply is lost still resolves the batch (one lookup
// despite Close): the client hears its true outcome, not a guess and not
// "not applied".
func TestCloseResolvesCommitInFlight(t *testing.T) {
	lr := newLostReplies(t)
	closed := make(chan struct{})
	closeMerger := func() { go func() { lr.m.Close(); close(closed) }() }
	lr.onLoss.Store(&closeMerger)
	lr.armAt.Store(1)
	out, err := lr.m.Do(context.Background(), lr.text(t, "UPDATE inv SET stock = stock - 2 WHERE sku = 'a' AND stock >= 2", 1))
	if err != nil || out.Matched != 1 || out.Changed != 1 {
		t.Fatalf("request whose COMMIT reply was lost during Close = %+v, %v; want 1 matched and changed", out, err)
	}
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close still running 10 s after the batch resolved")
	}
	if got := lr.stock(t, "a"); got != 98 {
		t.Fatalf("stock = %d, want 98", got)
	}
	if s := lr.m.Stats(); s.Resolved != 1 {
		t.Fatalf("stats %+v: want 1 resolved commit", s)
	}
}
