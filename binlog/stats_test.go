package binlog

import (
	"testing"
	"time"

	"github.com/hotrow/hotrow/internal/testdb"
)

// Stats before Run, while running (events counted, checkpoint saved, a
// rate between calls) and after Close.
func TestConsumerStats(t *testing.T) {
	f := newFeedFixture(t, "INT")
	f.db.Exec(t, "INSERT INTO inv VALUES ('a', 100, NULL)")
	c, err := NewConsumer(f.cfg, feedLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if s := c.Stats(); s.Name != "test" || s.Running || s.EventsTotal != 0 || s.Checkpoint.File != "" {
		t.Fatalf("Stats before Run = %+v", s)
	}
	c.Close()

	c, _ = f.start(t)
	// start returns once the checkpoint row is in the database; Run notes
	// it in its statistics right after.
	testdb.WaitFor(t, 5*time.Second, "the start position in the statistics", func() bool {
		s := c.Stats()
		return s.Running && s.Checkpoint.File != "" && !s.CheckpointSaved.IsZero()
	})
	start := c.Stats().Checkpoint
	f.db.Exec(t, "UPDATE inv SET stock = stock - 1 WHERE sku = 'a'", "UPDATE inv SET stock = stock - 2 WHERE sku = 'a'")
	f.waitEvents(t, 2)
	var s Stats
	testdb.WaitFor(t, 30*time.Second, "2 events read and a checkpoint past them", func() bool {
		s = c.Stats()
		return s.EventsTotal == 2 && s.InFlightEvents == 0 && s.Checkpoint.Pos != start.Pos
	})
	if s.Lag != 0 || s.LastCommit.IsZero() || time.Since(s.LastCommit) > time.Minute || s.Checkpoint.GTID == "" {
		t.Errorf("Stats = %+v", s)
	}
	time.Sleep(1100 * time.Millisecond)
	c.Stats() // a sample at 2 events
	f.db.Exec(t, "UPDATE inv SET stock = stock - 3 WHERE sku = 'a'")
	testdb.WaitFor(t, 30*time.Second, "the third event", func() bool { return c.Stats().EventsTotal == 3 })
	if s := c.Stats(); s.EventsPerSec <= 0 {
		t.Errorf("EventsPerSec = %v after an event, want > 0", s.EventsPerSec)
	}
	c.Close()
	if s := c.Stats(); s.Running || s.EventsTotal != 3 {
		t.Errorf("Stats after Close = %+v", s)
	}
}
