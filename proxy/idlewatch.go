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
type idleWatch struct {
	be     net.Conn // the backend connection, read below its buffer
	onLost func()   // closes the client connection

	mu       sync.Mutex // guards the fields below
	timer    *time.Timer
	armed    bool
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
	w.armed = true
	if w.timer == nil {
		w.timer = time.AfterFunc(idleWatchDelay, w.start)
	} else {
		w.timer.Reset(idleWatchDelay)
	}
}

func (w *idleWatch) start() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.armed || w.running || w.lost {
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
	if w.timer != nil {
		w.timer.Stop()
	}
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
