package proxy

import (
	"errors"
	"net"
	"os"
	"sync"
	"time"
)

// idleWatchDelay is how long a session waits for its client's next
// command before it watches its backend connection: a busy session never
// starts the watcher, an idle one learns of its backend's end within
// about this delay.
const idleWatchDelay = 50 * time.Millisecond

// errBackendClosedIdle: the server closed an idle session's connection
// (wait_timeout, KILL, shutdown).
var errBackendClosedIdle = errors.New("server closed the idle connection")

// idleWatch notices that the server closed the backend connection of an
// idle session, and then closes the client's connection at once, as the
// server's own close would reach a direct client: the client's driver
// sees a closed socket before it sends its next statement (database/sql
// then retries on a fresh connection) instead of a 2013 after it.
//
// The session arms it before waiting for a command and disarms it when the
// command arrives. Once armed for idleWatchDelay, a goroutine reads from
// the backend connection, where nothing may arrive between commands: any
// byte, EOF or error means the connection is lost. Disarming interrupts
// that read with a deadline in the past and waits for the goroutine.
//
// A busy session arms and disarms it for every command, so neither
// touches the timer when it is set already: disarming leaves it running,
// and when it fires it sets itself again for the rest of the delay if the
// session went idle since (the timer fires at most once per delay, instead
// of a Reset and a Stop per command).
type idleWatch struct {
	be     net.Conn // the backend connection, read below its buffer
	onLost func()   // closes the client connection

	mu       sync.Mutex // guards the fields below
	timer    *time.Timer
	pending  bool          // the timer is set
	armed    bool          // the session waits for a command
	since    time.Time     // when it started waiting
	running  bool          // the watcher goroutine is reading
	stopping bool          // disarm is interrupting it
	done     chan struct{} // closed when the watcher goroutine ends
	lost     bool
}

// arm starts watching after idleWatchDelay. Call it only when nothing of
// the backend's stream is buffered.
func (w *idleWatch) arm() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.armed, w.since = true, time.Now()
	if w.pending {
		return
	}
	w.pending = true
	if w.timer == nil {
		w.timer = time.AfterFunc(idleWatchDelay, w.fire)
	} else {
		w.timer.Reset(idleWatchDelay)
	}
}

// fire starts the watcher once the session has waited idleWatchDelay.
func (w *idleWatch) fire() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.pending = false
	if !w.armed || w.running || w.lost {
		return
	}
	if rest := idleWatchDelay - time.Since(w.since); rest > 0 {
		w.pending = true
		w.timer.Reset(rest)
		return
	}
	w.running, w.done = true, make(chan struct{})
	go w.watch(w.done)
}

func (w *idleWatch) watch(done chan struct{}) {
	defer close(done)
	var b [1]byte
	_, err := w.be.Read(b[:])
	w.mu.Lock()
	interrupted := w.stopping && errors.Is(err, os.ErrDeadlineExceeded)
	if !interrupted {
		w.lost = true
	}
	w.mu.Unlock()
	if !interrupted {
		w.onLost()
	}
}

// disarm stops watching, before the session uses the backend connection,
// and reports whether the backend connection was lost meanwhile.
func (w *idleWatch) disarm() (lost bool) {
	w.mu.Lock()
	w.armed = false
	if !w.running {
		defer w.mu.Unlock()
		return w.lost
	}
	w.stopping = true
	_ = w.be.SetReadDeadline(time.Now())
	done := w.done
	w.mu.Unlock()
	<-done
	_ = w.be.SetReadDeadline(noDeadline)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.running, w.stopping = false, false
	return w.lost
}
