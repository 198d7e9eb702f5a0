package merger

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hotrow/hotrow/internal/testdb"
)

// TestLateArrivalsJoinBatch: requests that queue while a batch's locking
// read runs join that batch when it locked their row, after its own
// requests; a request on a row it did not lock waits for the next batch.
// Outcomes are those of the serial order.
func TestLateArrivalsJoinBatch(t *testing.T) {
	entered, proceed := make(chan struct{}), make(chan struct{})
	var begins atomic.Int32
	f := newFixture(t, "INT", map[string]int64{"a": 100, "b": 10, "c": 10}, func(c *Config) {
		c.hooks.before = func(s batchStep, _ uint32) {
			// The second batch (the first is batchInFlight's lone
			// request) waits before its locking read.
			if s == stepBegin && begins.Add(1) == 2 {
				close(entered)
				<-proceed
			}
		}
	})
	release, first := f.batchInFlight(t)
	do := func(sku string, amount int, id uint32) <-chan error {
		errc := make(chan error, 1)
		go func() {
			q := fmt.Sprintf("UPDATE inv SET stock = stock - %d WHERE sku = '%s' AND stock >= %d", amount, sku, amount)
			_, err := f.m.Do(context.Background(), f.text(t, q, id))
			errc <- err
		}()
		return errc
	}
	var errs []<-chan error
	errs = append(errs, do("a", 2, 2))
	testdb.WaitFor(t, 5*time.Second, "2 queued", func() bool { return f.m.Stats().Queued == 1 })
	errs = append(errs, do("b", 6, 3))
	testdb.WaitFor(t, 5*time.Second, "3 queued", func() bool { return f.m.Stats().Queued == 2 })
	release()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	<-entered // batch [2 3] formed, before its locking read
	errs = append(errs, do("a", 3, 4))
	testdb.WaitFor(t, 5*time.Second, "4 queued", func() bool { return f.m.Stats().Queued == 1 })
	errs = append(errs, do("c", 1, 5))
	testdb.WaitFor(t, 5*time.Second, "5 queued", func() bool { return f.m.Stats().Queued == 2 })
	errs = append(errs, do("b", 6, 6)) // refused: b has 4 left after 3
	testdb.WaitFor(t, 5*time.Second, "6 queued", func() bool { return f.m.Stats().Queued == 3 })
	close(proceed)
	for _, errc := range errs {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	var joined *executed
	for i := range f.order {
		if len(f.order[i].Requests) > 1 {
			joined = &f.order[i]
			break
		}
	}
	if joined == nil {
		t.Fatalf("no batch of several requests among %d", len(f.order))
	}
	var ids []uint32
	for _, r := range joined.Requests {
		ids = append(ids, r.ConnID)
	}
	if fmt.Sprint(ids) != "[2 3 4 6]" {
		t.Fatalf("batch ran connections %v, want [2 3 4 6] (4 and 6 joined; 5's row was not locked)", ids)
	}
	var matched []uint64
	for _, o := range joined.Outcomes {
		matched = append(matched, o.Matched)
	}
	if fmt.Sprint(matched) != "[1 1 1 0]" {
		t.Fatalf("matched %v, want [1 1 1 0]", matched)
	}
	for sku, want := range map[string]int64{"a": 100 - 1 - 2 - 3, "b": 4, "c": 9} {
		if got := f.stock(t, sku); got != want {
			t.Errorf("stock %s = %d, want %d", sku, got, want)
		}
	}
	if s := f.m.Stats(); s.Queued != 0 {
		t.Errorf("%d still queued", s.Queued)
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
