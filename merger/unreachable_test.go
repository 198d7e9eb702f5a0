package merger

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/hotrow/hotrow/internal/testdb"
)

// cutRelay relays TCP connections to the server until Cut, which closes
// the listener and every relayed connection: the server becomes
// unreachable for the clients of the relay (connection refused), as when
// it crashed, without touching the shared test server.
type cutRelay struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	wg     sync.WaitGroup
}

func newCutRelay(t *testing.T, target string) *cutRelay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &cutRelay{ln: ln, target: target}
	r.wg.Go(r.accept)
	t.Cleanup(func() { r.Cut(); r.wg.Wait() })
	return r
}

func (r *cutRelay) accept() {
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", r.target)
		if err != nil {
			c.Close()
			continue
		}
		r.mu.Lock()
		r.conns = append(r.conns, c, s)
		r.mu.Unlock()
		r.wg.Go(func() { _, _ = io.Copy(s, c); s.Close() })
		r.wg.Go(func() { _, _ = io.Copy(c, s); c.Close() })
	}
}

// Cut makes the server unreachable through the relay.
func (r *cutRelay) Cut() {
	r.ln.Close()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.conns {
		c.Close()
	}
	r.conns = nil
}

// TestUnreachableServerBoundsEveryRequest: while the server cannot be
// reached, every request fails with ErrNotApplied about ResolveTimeout
// after it arrived, however many batches are queued before it (each batch
// used to wait a full ResolveTimeout of its own, so the last of n queued
// batches waited n x ResolveTimeout: a test run hung for 510 s so).
func TestUnreachableServerBoundsEveryRequest(t *testing.T) {
	const resolve = time.Second
	f := newFixture(t, "INT", map[string]int64{"a": 100}, nil)
	m := unreachable(t, f, func(c *Config) { c.ResolveTimeout, c.MaxBatch, c.QueueTimeout = resolve, 2, time.Minute })

	const n = 16
	type res struct {
		err error
		d   time.Duration
	}
	results := make(chan res, n)
	for i := range n {
		go func() {
			start := time.Now()
			_, err := m.Do(context.Background(), f.text(t, "UPDATE inv SET stock = stock - 1 WHERE sku = 'a'", uint32(i+1)))
			results <- res{err, time.Since(start)}
		}()
	}
	timeout := time.After(time.Duration(n) * resolve * 2)
	var worst time.Duration
	for range n {
		select {
		case r := <-results:
			if !errors.Is(r.err, ErrNotApplied) {
				t.Errorf("request while the server is unreachable = %v, want ErrNotApplied", r.err)
			}
			worst = max(worst, r.d)
		case <-timeout:
			t.Fatalf("requests still waiting after %v", time.Duration(n)*resolve*2)
		}
	}
	t.Logf("slowest request failed after %v", worst)
	if limit := resolve + 3*time.Second; worst > limit {
		t.Fatalf("a request waited %v, want at most ResolveTimeout + slack (%v)", worst, limit)
	}
	if got := f.stock(t, "a"); got != 100 {
		t.Fatalf("stock = %d, want 100", got)
	}
}

// unreachable replaces f's merger by one, tuned by tune, whose server
// became unreachable after it started.
func unreachable(t *testing.T, f *fixture, tune func(*Config)) *Merger {
	t.Helper()
	relay := newCutRelay(t, f.db.Addr)
	f.m.Close()
	cfg := f.m.cfg
	dsn, _ := mysql.ParseDSN(cfg.DSN)
	dsn.Addr = relay.ln.Addr().String()
	cfg.DSN = dsn.FormatDSN()
	tune(&cfg)
	m, err := New(context.Background(), cfg, f.m.log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	relay.Cut()
	return m
}

// TestCloseEndsRetries: Close while requests are retrying against an
// unreachable server (and more wait behind them) returns at once, and
// every pending Do fails with ErrNotApplied instead of waiting out
// ResolveTimeout.
func TestCloseEndsRetries(t *testing.T) {
	const n, bound = 6, 3 * time.Second
	f := newFixture(t, "INT", map[string]int64{"a": 100}, nil)
	// MaxBatch 1: the first request retries while the others queue.
	m := unreachable(t, f, func(c *Config) { c.ResolveTimeout, c.MaxBatch = time.Minute, 1 })
	errs := make(chan error, n)
	for i := range n {
		go func() {
			_, err := m.Do(context.Background(), f.text(t, "UPDATE inv SET stock = stock - 1 WHERE sku = 'a'", uint32(i+1)))
			errs <- err
		}()
	}
	testdb.WaitFor(t, 5*time.Second, "one request retrying, the others queued", func() bool {
		s := m.Stats()
		return len(s.Tables) == 1 && s.Queued == n-1
	})
	start := time.Now()
	closed := make(chan struct{})
	go func() { m.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(bound):
		t.Fatalf("Close still running after %v", bound)
	}
	t.Logf("Close returned after %v", time.Since(start))
	for range n {
		select {
		case err := <-errs:
			if !errors.Is(err, ErrNotApplied) {
				t.Errorf("pending request after Close = %v, want ErrNotApplied", err)
			}
		case <-time.After(bound):
			t.Fatalf("a request still waits %v after Close returned", bound)
		}
	}
	if got := f.stock(t, "a"); got != 100 {
		t.Fatalf("stock = %d, want 100", got)
	}
}
