package proxy

import (
	"container/list"
	"context"
	"net"
	"sync"
	"time"
)

// preauth bounds what clients that have not authenticated yet cost the
// proxy and the server:
//
//   - at most maxClients of them at a time: beyond it the one that has
//     waited longest is closed (a flood of silent connections then cycles
//     through the oldest, while a real client, which answers the greeting
//     within milliseconds, gets in);
//   - at most cap(slots) backend connections held for them, counting those
//     being abandoned: when every slot is taken, the oldest pending client's
//     backend connection is taken from it and abandoned (logged in and
//     quit, so the server counts no aborted connect);
//   - no pending client keeps its backend connection longer than hold.
//
// A client whose backend connection was taken keeps waiting for its
// handshake; if it authenticates, claim reports that it needs a new one.
type preauth struct {
	maxClients int
	slots      chan struct{} // one token per backend connection held or being abandoned
	hold       time.Duration
	// abandon logs a backend connection in with a configured account and
	// quits; run on a goroutine of the Server's wait group.
	abandon func(net.Conn, greeting)
	wg      *sync.WaitGroup

	mu      sync.Mutex // guards the fields below and every pendingHandshake's
	pending list.List  // *pendingHandshake in arrival order
	holders list.List  // *pendingHandshake holding a backend connection, oldest first
	active  int        // pending clients not yet closed by kick
	closed  bool
	// dead is the greeting of the last backend connection abandoned: its
	// thread has ended.
	dead     greeting
	haveDead bool
	// lastClaim is when a client last authenticated with the backend
	// connection it was greeted for.
	lastClaim time.Time
}

// pendingHandshake is one client between accept and authentication.
type pendingHandshake struct {
	client net.Conn
	elem   *list.Element // nil once it left
	kicked bool          // its client was closed to admit a newer one
	be     net.Conn      // backend connection held for it; nil when none
	held   *list.Element // in preauth.holders while be is set
	g      greeting      // be's greeting
	since  time.Time     // when be was dialled
	timer  *time.Timer   // takes be away after hold
}

func newPreauth(cfg Config, abandon func(net.Conn, greeting), wg *sync.WaitGroup) *preauth {
	return &preauth{
		maxClients: cfg.MaxHandshakes,
		slots:      make(chan struct{}, cfg.HandshakeBackends),
		hold:       cfg.ConnectTimeout.Duration,
		abandon:    abandon,
		wg:         wg,
	}
}

// enter registers a client that has just connected, closing the client
// that has waited longest when there are too many. It returns false after
// close.
func (p *preauth) enter(client net.Conn) (*pendingHandshake, bool) {
	h := &pendingHandshake{client: client}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, false
	}
	h.elem = p.pending.PushBack(h)
	p.active++
	for e := p.pending.Front(); p.active > p.maxClients && e != nil; e = e.Next() {
		if old := e.Value.(*pendingHandshake); !old.kicked && old != h {
			old.kicked = true
			p.active--
			old.client.Close() // its handshake fails and it leaves
		}
	}
	return h, true
}

// leave unregisters h at the end of its handshake, abandoning the backend
// connection it still holds (its client failed or gave up).
func (p *preauth) leave(h *pendingHandshake) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if h.elem == nil {
		return
	}
	p.pending.Remove(h.elem)
	h.elem = nil
	if !h.kicked {
		p.active--
	}
	p.dropBackendLocked(h)
}

// acquire returns the greeting h is greeted with. Normally that is the
// greeting of a backend connection dialled for h and held for it: h waits
// for a free slot, taking the slot of the pending client that has held one
// longest once that one is past keepFor. Only when h cannot get a slot (see
// fallback: a flood of handshakes that do not answer, or a burst longer
// than maxSlotWait) is it greeted instead with the greeting of a backend
// connection already abandoned, whose thread has ended: the server's
// version and capabilities, and a thread id no live session has (the
// server does not reuse thread ids), so a KILL of it cannot hit another
// session. ctx bounds the wait and the dial.
func (p *preauth) acquire(ctx context.Context, h *pendingHandshake, dial func(context.Context) (net.Conn, greeting, error)) (greeting, error) {
	giveUp := time.Now().Add(grace)
	for acquired := false; !acquired; {
		select {
		case p.slots <- struct{}{}:
			acquired = true
			continue
		default:
		}
		p.evictOldest(h) // its slot frees once the abandon is done
		if dead, ok := p.fallback(giveUp); ok {
			return dead, nil
		}
		retry := time.NewTimer(20 * time.Millisecond)
		select {
		case p.slots <- struct{}{}:
			acquired = true
		case <-retry.C:
		case <-ctx.Done():
			retry.Stop()
			return greeting{}, ctx.Err()
		}
		retry.Stop()
	}
	conn, g, err := dial(ctx)
	if err != nil {
		<-p.slots
		return greeting{}, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	h.be, h.g, h.since = conn, g, time.Now()
	h.held = p.holders.PushBack(h)
	if h.elem == nil || p.closed {
		// Gone while dialing (shutdown): give the connection back.
		p.dropBackendLocked(h)
		return greeting{}, net.ErrClosed
	}
	h.timer = time.AfterFunc(p.hold, func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.dropBackendLocked(h)
	})
	return g, nil
}

// keepFor is how long a pending client keeps the backend connection it was
// greeted for before a newcomer may take it: much longer than a real
// client takes to answer the greeting, even on a loaded machine.
const keepFor = time.Second

// grace is how long a newcomer waits for a slot at least.
const grace = 250 * time.Millisecond

// maxSlotWait bounds how long a newcomer waits for a slot while other
// clients are still logging in (a burst of real clients).
const maxSlotWait = time.Second

// fallback returns the greeting of an ended thread when a newcomer that
// started waiting grace before giveUp should stop waiting for a slot:
// after grace when no client has claimed its backend connection for as
// long (the slots are held by clients that do not answer), after
// maxSlotWait in any case.
func (p *preauth) fallback(giveUp time.Time) (greeting, bool) {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case !p.haveDead, now.Before(giveUp):
		return greeting{}, false
	case now.Sub(p.lastClaim) >= grace, now.Sub(giveUp) >= maxSlotWait-grace:
		return p.dead, true
	}
	return greeting{}, false
}

func (p *preauth) deadGreeting() (greeting, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dead, p.haveDead
}

// evictOldest abandons the backend connection of the pending client that
// has waited longest, if it has held it for longer than keepFor.
func (p *preauth) evictOldest(h *pendingHandshake) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e := p.holders.Front(); e != nil {
		if old := e.Value.(*pendingHandshake); old != h && time.Since(old.since) >= keepFor {
			p.dropBackendLocked(old)
		}
	}
}

// claim hands h's backend connection over to its now authenticated
// session, freeing its slot. ok is false when h no longer holds one (taken
// for a newer client, or held past hold): the session must dial anew, and
// its backend thread id then differs from the one its greeting showed.
func (p *preauth) claim(h *pendingHandshake) (conn net.Conn, g greeting, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if h.be == nil {
		return nil, greeting{}, false
	}
	conn, g = h.be, h.g
	h.be = nil
	p.holders.Remove(h.held)
	h.timer.Stop()
	p.lastClaim = time.Now()
	<-p.slots
	return conn, g, true
}

// dropBackendLocked takes h's backend connection, if any, and abandons it
// on a goroutine that frees its slot when done.
func (p *preauth) dropBackendLocked(h *pendingHandshake) {
	if h.be == nil {
		return
	}
	conn, g := h.be, h.g
	h.be = nil
	p.holders.Remove(h.held)
	if h.timer != nil {
		h.timer.Stop()
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer func() { <-p.slots }()
		p.abandon(conn, g)
		p.mu.Lock()
		p.dead, p.haveDead = g, true
		p.mu.Unlock()
	}()
}

// close closes every pending client (shutdown); later clients are refused.
func (p *preauth) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for e := p.pending.Front(); e != nil; e = e.Next() {
		e.Value.(*pendingHandshake).client.Close()
	}
}

// backendsHeld reports the backend connections held for pending clients
// or being abandoned.
func (p *preauth) backendsHeld() int { return len(p.slots) }
