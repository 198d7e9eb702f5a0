package merger

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hotrow/hotrow/internal/testdb"
)

// TestGathererBackoff: a wait that gathers less than three quarters of its
// target pauses the waits for 1, then 2, 4 ... up to 16 batches; one that
// gathers enough ends the pause.
func TestGathererBackoff(t *testing.T) {
	var g gatherer
	g.reset()
	g.target = 16
	var skips []int
	for range 7 {
		g.settle(11) // 11 of 16: short
		skips = append(skips, g.skip)
		g.skip = 0
	}
	if fmt.Sprint(skips) != "[1 2 4 8 16 16 16]" {
		t.Fatalf("skips after misses %v, want [1 2 4 8 16 16 16]", skips)
	}
	g.settle(12) // three quarters: enough
	if g.backoff != 0 {
		t.Fatalf("backoff %d after a wait that gathered enough, want 0", g.backoff)
	}
	g.settle(0)
	if g.skip != 1 {
		t.Fatalf("skip %d after a miss that follows a success, want 1", g.skip)
	}
}

// TestGatherWaitsForReturningClients: after a batch of several clients,
// the table's worker stays a moment, so the first client back queues
// instead of running alone, and the next batch waits for the clients of
// the last two batches, up to GatherWait after its oldest request.
func TestGatherWaitsForReturningClients(t *testing.T) {
	const gather = 300 * time.Millisecond
	var slow atomic.Bool
	f := newFixture(t, "INT", map[string]int64{"a": 100}, func(c *Config) {
		c.GatherWait = gather
		c.hooks.before = func(s batchStep, _ uint32) {
			// A slow batch: a quarter of its time exceeds GatherWait.
			if s == stepCommit && slow.Load() {
				time.Sleep(4 * gather)
			}
		}
	})
	req := func(id uint32) Request { return f.text(t, "UPDATE inv SET stock = stock - 1 WHERE sku = 'a'", id) }
	do := func(id uint32) <-chan error {
		errc := make(chan error, 1)
		go func() { _, err := f.m.Do(context.Background(), req(id)); errc <- err }()
		return errc
	}
	release := f.holdRow(t, "a")
	first := do(1)
	testdb.WaitFor(t, 5*time.Second, "1 in flight", f.inFlight)
	two, three := do(2), do(3)
	testdb.WaitFor(t, 5*time.Second, "2 and 3 queued", func() bool { return f.m.Stats().Queued == 2 })
	slow.Store(true)
	release()
	for _, errc := range []<-chan error{first, two, three} {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	slow.Store(false)
	// The batch of 2 and 3 just ended: client 2 is back first.
	if done, ok := f.m.Alone(req(2)); ok {
		done(Outcome{}, nil)
		t.Fatal("Alone right after a batch of several clients: want the request to queue for the next batch")
	}
	began := time.Now()
	two = do(2)
	time.Sleep(gather / 3)
	three = do(3)
	for _, errc := range []<-chan error{two, three} {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	if waited := time.Since(began); waited < gather-gather/10 {
		// Clients 1, 2 and 3 were the last two batches': the batch waits
		// for all three, 1 never comes, so it forms after GatherWait.
		t.Errorf("2 and 3 answered after %v, want at least GatherWait (%v)", waited, gather)
	}
	f.mu.Lock()
	last := f.order[len(f.order)-1]
	f.mu.Unlock()
	var ids []uint32
	for _, r := range last.Requests {
		ids = append(ids, r.ConnID)
	}
	if fmt.Sprint(ids) != "[2 3]" {
		t.Fatalf("last batch ran connections %v, want [2 3] in one batch", ids)
	}
	if got := f.stock(t, "a"); got != 95 {
		t.Fatalf("stock = %d, want 95", got)
	}
}
