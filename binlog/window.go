package binlog

import (
	"context"
	"slices"
	"sync"
	"time"
)

// Position is a transaction boundary in the server's binlog: the GTID set
// executed up to it (empty when the server has no GTIDs) and the file and
// offset just past it.
type Position struct {
	GTID string
	File string
	Pos  uint32
	// Committed is the commit time of the transaction that ends here.
	Committed time.Time
}

// boundary is the end of a transaction read from the binlog.
type boundary struct {
	end uint64 // sequence number after the transaction's last message
	pos Position
}

// window holds the messages read but not yet acknowledged by every sink,
// and the transaction boundaries among them. Sequence numbers count
// messages from 0 since the consumer started. The reader adds whole
// transactions; each sink takes its messages in order and acknowledges
// them; the checkpointer takes the newest boundary every sink passed.
type window struct {
	maxEvents, maxBytes int
	// room is signalled when acknowledged messages leave the window.
	room chan struct{}
	// wake[i] is signalled when sink i has new messages.
	wake []chan struct{}

	mu    sync.Mutex
	base  uint64     // guarded by mu; sequence number of msgs[0]
	msgs  []Message  // guarded by mu
	bytes int        // guarded by mu; sum of len(Data) over msgs
	txns  []boundary // guarded by mu; boundaries not yet checkpointed, in order
	acked []uint64   // guarded by mu; per sink, messages below are delivered
}

func newWindow(sinks, maxEvents, maxBytes int) *window {
	w := &window{maxEvents: maxEvents, maxBytes: maxBytes, room: make(chan struct{}, 1),
		wake: make([]chan struct{}, sinks), acked: make([]uint64, sinks)}
	for i := range w.wake {
		w.wake[i] = make(chan struct{}, 1)
	}
	return w
}

func notifyChan(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// add appends one transaction's messages and its end boundary. It waits
// while the window is full; a transaction is added whole once there is
// any room, so one big transaction may overshoot the bounds.
func (w *window) add(ctx context.Context, msgs []Message, pos Position) error {
	for len(msgs) > 0 {
		w.mu.Lock()
		full := len(w.msgs) >= w.maxEvents || w.bytes >= w.maxBytes
		w.mu.Unlock()
		if !full {
			break
		}
		select {
		case <-w.room:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	w.mu.Lock()
	w.msgs = append(w.msgs, msgs...)
	for i := range msgs {
		w.bytes += len(msgs[i].Data)
	}
	end := w.base + uint64(len(w.msgs))
	if n := len(w.txns); n > 0 && w.txns[n-1].end == end {
		w.txns[n-1].pos = pos // nothing to deliver in between: keep the newer
	} else {
		w.txns = append(w.txns, boundary{end: end, pos: pos})
	}
	w.mu.Unlock()
	if len(msgs) > 0 {
		for _, c := range w.wake {
			notifyChan(c)
		}
	}
	return nil
}

// next returns up to max messages sink i has not acknowledged, and the
// sequence number of the first.
func (w *window) next(i, max int) (uint64, []Message) {
	w.mu.Lock()
	defer w.mu.Unlock()
	from := int(w.acked[i] - w.base)
	to := min(len(w.msgs), from+max)
	return w.acked[i], slices.Clone(w.msgs[from:to])
}

// ack records that sink i delivered every message below upto, and drops
// the messages every sink has delivered.
func (w *window) ack(i int, upto uint64) {
	w.mu.Lock()
	w.acked[i] = upto
	low := slices.Min(w.acked)
	n := int(low - w.base)
	for j := range n {
		w.bytes -= len(w.msgs[j].Data)
	}
	clear(w.msgs[:n])
	w.msgs = w.msgs[n:]
	w.base = low
	w.mu.Unlock()
	if n > 0 {
		notifyChan(w.room)
	}
}

// checkpoint removes and returns the newest boundary every sink has
// passed; ok is false when there is none.
func (w *window) checkpoint() (pos Position, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	k := 0
	for k < len(w.txns) && w.txns[k].end <= w.base {
		k++
	}
	if k == 0 {
		return Position{}, false
	}
	pos = w.txns[k-1].pos
	w.txns = slices.Delete(w.txns, 0, k)
	return pos, true
}

// stats returns the messages and bytes in flight and the commit time of
// the oldest undelivered message (zero when none).
func (w *window) stats() (events, bytes int, oldest time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.msgs) > 0 {
		oldest = w.msgs[0].Committed
	}
	return len(w.msgs), w.bytes, oldest
}
