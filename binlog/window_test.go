package binlog

import (
	"context"
	"testing"
	"time"
)

func windowMsgs(ids ...string) []Message {
	out := make([]Message, len(ids))
	for i, id := range ids {
		out[i] = Message{ID: id, Data: []byte(id)}
	}
	return out
}

func TestWindow(t *testing.T) {
	w := newWindow(2, 3, 1<<20)
	ctx := context.Background()
	p1, p2, p3 := Position{File: "f", Pos: 1}, Position{File: "f", Pos: 2}, Position{File: "f", Pos: 3}
	if err := w.add(ctx, windowMsgs("a", "b"), p1); err != nil {
		t.Fatal(err)
	}
	if err := w.add(ctx, nil, p2); err != nil { // an irrelevant transaction
		t.Fatal(err)
	}
	if _, ok := w.checkpoint(); ok {
		t.Fatal("checkpoint before any acknowledgement")
	}
	from, got := w.next(0, 10)
	if from != 0 || len(got) != 2 {
		t.Fatalf("next: %d %v", from, got)
	}
	w.ack(0, 2)
	if _, ok := w.checkpoint(); ok {
		t.Fatal("checkpoint past events sink 1 has not acknowledged")
	}
	w.ack(1, 1)
	if _, ok := w.checkpoint(); ok {
		t.Fatal("checkpoint inside a transaction")
	}
	w.ack(1, 2)
	if pos, ok := w.checkpoint(); !ok || pos != p2 {
		t.Fatalf("checkpoint %v %v, want %v (past the empty transaction)", pos, ok, p2)
	}

	// Full: three events in flight; the next add waits for room.
	if err := w.add(ctx, windowMsgs("c", "d", "e"), p3); err != nil {
		t.Fatal(err)
	}
	added := make(chan error, 1)
	go func() { added <- w.add(ctx, windowMsgs("f"), Position{File: "f", Pos: 4}) }()
	select {
	case err := <-added:
		t.Fatalf("add into a full window returned %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	w.ack(0, 3)
	w.ack(1, 3)
	if err := <-added; err != nil {
		t.Fatal(err)
	}
	if n, _, _ := w.stats(); n != 3 {
		t.Fatalf("%d events in flight, want 3", n)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := w.add(cctx, windowMsgs("g"), Position{}); err == nil {
		t.Fatal("add into a full window ignored its ctx")
	}
}

func TestWindowBytes(t *testing.T) {
	w := newWindow(1, 1000, 4)
	ctx := context.Background()
	if err := w.add(ctx, windowMsgs("abc", "de"), Position{Pos: 1}); err != nil { // 5 bytes: one transaction overshoots
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := w.add(cctx, windowMsgs("f"), Position{Pos: 2}); err == nil {
		t.Fatal("add past the byte bound did not wait")
	}
	w.ack(0, 1)
	if _, bytes, _ := w.stats(); bytes != 2 {
		t.Fatalf("%d bytes in flight, want 2", bytes)
	}
	if err := w.add(ctx, windowMsgs("f"), Position{Pos: 2}); err != nil {
		t.Fatal(err)
	}
}
