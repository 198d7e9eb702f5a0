package merger

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hotrow/hotrow/internal/testdb"
)

// TestAloneMarksTableBusy: a request run alone marks its table busy until
// done: another may not run alone, requests queue and their batch starts
// only after done; a queued request whose ctx ended meanwhile is dropped
// even when done hands it to a worker first; the statement is counted;
// Close waits for done; claims and LonePassThrough off never run alone.
func TestAloneMarksTableBusy(t *testing.T) {
	f := newFixture(t, "INT", map[string]int64{"a": 100, "b": 100}, nil)
	const q = "UPDATE inv SET stock = stock - 1 WHERE sku = 'a' AND stock >= 1"
	req := f.text(t, q, 1)
	claim := req
	claim.Claim = &Owner{ConnID: 1}
	if _, ok := f.m.Alone(claim); ok {
		t.Fatal("a claim may run alone")
	}
	done, ok := f.m.Alone(req)
	if !ok {
		t.Fatal("nothing queued, yet not alone")
	}
	other := f.text(t, "UPDATE inv SET stock = stock - 1 WHERE sku = 'b'", 2)
	if _, ok := f.m.Alone(other); ok {
		t.Fatal("alone while another statement of the table runs alone")
	}
	queued := make(chan error, 1)
	go func() { _, err := f.m.Do(context.Background(), other); queued <- err }()
	ctx, cancel := context.WithCancel(context.Background())
	dropped := make(chan error, 1)
	go func() {
		_, err := f.m.Do(ctx, f.text(t, "UPDATE inv SET stock = stock - 7 WHERE sku = 'b'", 3))
		dropped <- err
	}()
	testdb.WaitFor(t, 5*time.Second, "requests queued behind the lone statement", func() bool { return f.m.Stats().Queued == 2 })
	time.Sleep(50 * time.Millisecond)
	if s := f.m.Stats(); s.Requests != 0 || len(s.Tables) != 1 {
		t.Fatalf("stats %+v: want no batch before done, one busy table", s)
	}
	cancel()
	done(Outcome{Matched: 1, Changed: 1}, nil)
	if err := <-queued; err != nil {
		t.Fatal(err)
	}
	if err := <-dropped; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled request = %v, want context.Canceled", err)
	}
	if got := f.stock(t, "b"); got != 99 {
		t.Fatalf("stock b = %d, want 99 (the cancelled request must not run)", got)
	}
	s := f.m.Stats()
	if s.Alone != 1 || s.AloneGranted != 1 || s.LonePath != 2 || s.Requests != 2 || s.Dropped != 1 {
		t.Fatalf("stats %+v: want 1 alone (granted) and 1 batch of one, 2 requests, 1 dropped", s)
	}
	var lone uint64
	for _, ts := range f.m.TableStats() {
		lone += ts.LoneRequests
	}
	if lone != 2 {
		t.Fatalf("lone requests %d, want 2", lone)
	}

	// Close waits for a statement running alone.
	done, ok = f.m.Alone(req)
	if !ok {
		t.Fatal("table still busy after done")
	}
	closed := make(chan struct{})
	go func() { f.m.Close(); close(closed) }()
	select {
	case <-closed:
		t.Fatal("Close returned while a statement ran alone")
	case <-time.After(100 * time.Millisecond):
	}
	done(Outcome{}, errors.New("lost"))
	<-closed
	if s := f.m.Stats(); s.Alone != 2 || s.AloneGranted != 1 || len(s.Tables) != 0 {
		t.Fatalf("stats %+v: want 2 alone, 1 granted, no busy table", s)
	}
	if _, ok := f.m.Alone(req); ok {
		t.Fatal("alone after Close")
	}

	off := newFixture(t, "INT", map[string]int64{"a": 1}, func(c *Config) { c.LonePassThrough = false })
	if _, ok := off.m.Alone(off.text(t, q, 1)); ok {
		t.Fatal("alone with LonePassThrough off")
	}
}
