package binlog

import (
	"sync"
	"sync/atomic"
	"time"
)

// Stats is a snapshot of a consumer's progress, for the admin port and
// the metrics.
type Stats struct {
	Name    string // Config.Name
	Running bool   // Run is in progress
	// EventsTotal counts the events read from the binlog since Run began.
	EventsTotal uint64
	// EventsPerSec is the read rate over the last 10 s or so, or since
	// the call before when Stats is called less often; 0 on the first
	// call.
	EventsPerSec float64
	// InFlightEvents and InFlightBytes are in the window: read, not yet
	// acknowledged by every sink.
	InFlightEvents, InFlightBytes int
	// Lag is how long ago the oldest event in flight was committed; 0
	// when none is in flight.
	Lag time.Duration
	// LastCommit is the commit time of the last transaction read; zero
	// before the first.
	LastCommit time.Time
	// Checkpoint is the last position saved (or loaded at start);
	// CheckpointSaved is when it was saved by this consumer, zero when
	// loaded and not yet saved again.
	Checkpoint      Position
	CheckpointSaved time.Time
}

// rateWindow is how far back EventsPerSec looks when Stats is called
// often; samples are kept at most one a second.
const rateWindow = 10 * time.Second

type rateSample struct {
	n  uint64
	at time.Time
}

// live is what Stats reads: the running stream and window (set once per
// Run), the last checkpoint, and the samples behind EventsPerSec.
type live struct {
	running atomic.Bool
	st      atomic.Pointer[stream]
	w       atomic.Pointer[window]

	mu      sync.Mutex
	cp      Position     // guarded by mu
	cpSaved time.Time    // guarded by mu
	samples []rateSample // guarded by mu; oldest first
}

func (l *live) checkpoint(pos Position, saved time.Time) {
	l.mu.Lock()
	l.cp, l.cpSaved = pos, saved
	l.mu.Unlock()
}

// Stats returns a snapshot of the consumer's progress; it is safe to call
// at any time from any goroutine, also before Run and after it returned.
func (c *Consumer) Stats() Stats {
	l := &c.live
	now := time.Now()
	s := Stats{Name: c.cfg.Name, Running: l.running.Load()}
	if st := l.st.Load(); st != nil {
		s.EventsTotal = st.read.Load()
		if us := st.lastCommit.Load(); us != 0 {
			s.LastCommit = time.UnixMicro(us).UTC()
		}
	}
	if w := l.w.Load(); w != nil {
		var oldest time.Time
		s.InFlightEvents, s.InFlightBytes, oldest = w.stats()
		if !oldest.IsZero() {
			s.Lag = max(now.Sub(oldest), 0)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	s.Checkpoint, s.CheckpointSaved = l.cp, l.cpSaved
	// Drop samples older than the window, keeping the newest of them.
	k := 0
	for k+1 < len(l.samples) && now.Sub(l.samples[k+1].at) >= rateWindow {
		k++
	}
	l.samples = l.samples[k:]
	if len(l.samples) > 0 {
		first := l.samples[0]
		if d := now.Sub(first.at).Seconds(); d > 0 && s.EventsTotal >= first.n {
			s.EventsPerSec = float64(s.EventsTotal-first.n) / d
		}
	}
	if len(l.samples) == 0 || now.Sub(l.samples[len(l.samples)-1].at) >= time.Second {
		l.samples = append(l.samples, rateSample{n: s.EventsTotal, at: now})
	}
	return s
}
