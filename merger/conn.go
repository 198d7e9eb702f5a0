package merger

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/go-mysql-org/go-mysql/client"
	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-sql-driver/mysql"

	"github.com/hotrow/hotrow/internal/ctxsleep"
	"github.com/hotrow/hotrow/internal/deadpeer"
)

// backend is one connection of the merger's pool. It speaks through
// go-mysql's client rather than database/sql: a merged batch needs the
// server's "Rows matched: N  Changed: M  Warnings: W" info of every
// UPDATE (go-mysql exposes it as Result.StatusMessage under
// CLIENT_SESSION_TRACK; go-sql-driver drops it) and one result per
// statement of a multi-statement round trip.
type backend struct {
	c  *client.Conn
	id uint32 // CONNECTION_ID()
	// nbe is true when the session's sql_mode has NO_BACKSLASH_ESCAPES.
	nbe bool
	// db is the session's default database.
	db string
	// sql is the statement buffer, reused across batches.
	sql []byte
}

// connPool hands out backends; at most size exist at once.
type connPool struct {
	dsn         *mysql.Config
	readTimeout time.Duration
	deadAfter   time.Duration // see Config.DeadAfter
	tokens      chan struct{} // one per backend that may exist

	mu     sync.Mutex
	idle   []*backend // guarded by mu
	closed bool       // guarded by mu
}

// newConnPool returns a pool of at most size backends on dsn whose
// reads time out after readTimeout and whose connections close once the
// server's host has answered nothing for deadAfter.
func newConnPool(dsn *mysql.Config, size int, readTimeout, deadAfter time.Duration) *connPool {
	return &connPool{dsn: dsn, readTimeout: readTimeout, deadAfter: deadAfter, tokens: make(chan struct{}, size)}
}

// get returns an idle backend that is still alive or dials one, waiting
// while size backends are in use.
func (p *connPool) get(ctx context.Context) (*backend, error) {
	select {
	case p.tokens <- struct{}{}: // a free slot is taken even if ctx ended
	default:
		select {
		case p.tokens <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	p.mu.Lock()
	for n := len(p.idle); n > 0; n = len(p.idle) {
		b := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		if b.alive() {
			return b, nil
		}
		_ = b.c.Close()
		p.mu.Lock()
	}
	p.mu.Unlock()
	b, err := p.dial(ctx)
	if err != nil {
		<-p.tokens
		return nil, err
	}
	return b, nil
}

// alive reports whether an idle backend's connection is still open: a
// non-blocking peek at its socket finds neither end of stream, nor data,
// nor an error (go-sql-driver's check before it reuses a connection). A
// statement sent on a connection the server already closed would fail
// with its outcome unknown; found here, nothing was sent and the attempt
// is simply retried.
func (b *backend) alive() bool {
	sc, ok := b.c.Conn.Conn.(syscall.Conn)
	if !ok {
		return true
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	alive := false
	var buf [1]byte
	err = raw.Read(func(fd uintptr) bool {
		_, _, rerr := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		alive = rerr == syscall.EAGAIN || rerr == syscall.EINTR
		return true
	})
	return err == nil && alive
}

// put returns b to the pool; a broken backend is closed instead.
func (p *connPool) put(b *backend, broken bool) {
	p.mu.Lock()
	if broken || p.closed {
		p.mu.Unlock()
		_ = b.c.Close()
	} else {
		p.idle = append(p.idle, b)
		p.mu.Unlock()
	}
	<-p.tokens
}

// close closes the idle backends; backends in use close when put back.
func (p *connPool) close() {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	p.mu.Unlock()
	for _, b := range idle {
		_ = b.c.Close()
	}
}

// dialTimeout bounds one connection attempt: the DSN's timeout, else 5 s.
func (p *connPool) dialTimeout() time.Duration {
	if p.dsn.Timeout > 0 {
		return p.dsn.Timeout
	}
	return 5 * time.Second
}

// dial opens a backend outside the pool's accounting (resolution uses it
// directly, so that it never waits for a pool slot).
func (p *connPool) dial(ctx context.Context) (*backend, error) {
	timeout := p.dialTimeout()
	dialer := deadpeer.Dialer(timeout, p.deadAfter).DialContext
	c, err := client.ConnectWithDialer(ctx, "", p.dsn.Addr, p.dsn.User, p.dsn.Passwd, "", dialer, func(c *client.Conn) error {
		c.ReadTimeout, c.WriteTimeout = p.readTimeout, timeout
		for _, capability := range []uint32{gomysql.CLIENT_MULTI_STATEMENTS, gomysql.CLIENT_FOUND_ROWS, gomysql.CLIENT_SESSION_TRACK} {
			if err := c.SetCapability(capability); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("merger: connect to %s: %w", p.dsn.Addr, err)
	}
	// CapabilityString lists the negotiated flags (HasCapability only the
	// requested ones).
	if !strings.Contains(c.CapabilityString(), "CLIENT_SESSION_TRACK") {
		_ = c.Close()
		return nil, fmt.Errorf("merger: %s does not support CLIENT_SESSION_TRACK (needs MySQL 5.7+ or MariaDB 10.2+)", p.dsn.Addr)
	}
	if err := c.SetCharset("utf8mb4"); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("merger: SET NAMES utf8mb4: %w", err)
	}
	if set := sessionSettings(p.dsn.Params); set != "" {
		if _, err := c.Execute(set); err != nil {
			_ = c.Close()
			return nil, fmt.Errorf("merger: %s (settings of the DSN): %w", set, err)
		}
	}
	r, err := c.Execute("SELECT @@SESSION.sql_mode")
	if err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("merger: read sql_mode: %w", err)
	}
	mode, _ := r.GetString(0, 0)
	return &backend{c: c, id: c.GetConnectionID(), nbe: strings.Contains(mode, "NO_BACKSLASH_ESCAPES")}, nil
}

// sessionSettings is the SET of a DSN's system variables (its parameters
// go-sql-driver does not interpret, e.g. innodb_lock_wait_timeout=1), as
// go-sql-driver runs it on every connection it opens; "" when there are
// none. Batch connections get the same session as the merger's own pool
// (whose innodb_lock_wait_timeout sets the queue and read timeouts).
func sessionSettings(params map[string]string) string {
	if len(params) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("SET ")
	for i, k := range slices.Sorted(maps.Keys(params)) {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(k + "=" + params[k])
	}
	return b.String()
}

// run sends b.sql as one multi-statement round trip and calls fn with the
// result of each statement in order. failed is the index of the statement
// that got an error (the server ran none after it) and err its error;
// failed is -1 when every statement succeeded. An error that is not a
// server error means the connection is lost: the statements from failed
// on may or may not have run.
func (b *backend) run(fn func(i int, r *gomysql.Result)) (failed int, err error) {
	failed = -1
	i := 0
	_, sendErr := b.c.ExecuteMultiple(unsafe.String(unsafe.SliceData(b.sql), len(b.sql)), func(r *gomysql.Result, e error) {
		if e != nil {
			failed, err = i, e
			return
		}
		fn(i, r)
		i++
	})
	if sendErr != nil {
		return 0, sendErr
	}
	return failed, err
}

// parseInfo reads matched and changed rows from an UPDATE's info,
// "Rows matched: N  Changed: M  Warnings: W" (the numbers in that order
// whatever the server's message language).
func parseInfo(info string) (matched, changed uint64, ok bool) {
	var nums [2]uint64
	n := 0
	for i := 0; i < len(info) && n < 2; {
		if c := info[i]; c < '0' || c > '9' {
			i++
			continue
		}
		var v uint64
		for ; i < len(info) && info[i] >= '0' && info[i] <= '9'; i++ {
			v = v*10 + uint64(info[i]-'0')
		}
		nums[n] = v
		n++
	}
	return nums[0], nums[1], n == 2
}

// close returns the executor's backend to the pool.
func (x *executor) close() {
	if x.b != nil {
		x.m.pool.put(x.b, false)
		x.b = nil
	}
}

// conn returns the executor's backend, connecting (with backoff while the
// server is unreachable) until deadline or until ctx ends. It always makes
// one attempt, even past the deadline, so that a request that waited long
// in its queue still runs when the server is up; while the server is
// down, a batch past its deadline costs one failed dial, not another
// ResolveTimeout. Once ctx ended, only an idle backend can serve.
func (x *executor) conn(ctx context.Context, deadline time.Time) (*backend, error) {
	if x.b != nil {
		return x.b, nil
	}
	for backoff := 20 * time.Millisecond; ; backoff = min(2*backoff, time.Second) {
		until := time.Now().Add(x.m.pool.dialTimeout())
		if deadline.After(until) {
			until = deadline
		}
		dctx, cancel := context.WithDeadline(ctx, until)
		b, err := x.m.pool.get(dctx)
		cancel()
		if err == nil {
			x.b = b
			return b, nil
		}
		if time.Now().Add(backoff).After(deadline) || !ctxsleep.Sleep(ctx, backoff) {
			return nil, err
		}
	}
}

// drop closes a backend whose connection failed.
func (x *executor) drop() {
	if x.b != nil {
		x.m.pool.put(x.b, true)
		x.b = nil
	}
}

// rollback ends the open transaction after a failed attempt.
func (x *executor) rollback() {
	if x.b == nil {
		return
	}
	if _, err := x.b.c.Execute("ROLLBACK"); err != nil {
		x.drop()
	}
}

// failed handles an error of a statement before COMMIT: a lost connection
// is dropped (the server rolls the transaction back), otherwise the
// transaction is rolled back here.
func (x *executor) failed(err error) {
	if serverError(err) == nil {
		x.drop()
		return
	}
	x.rollback()
}
