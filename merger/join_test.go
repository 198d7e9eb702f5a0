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
