package binlog

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hotrow/hotrow/internal/testdb"
)

// flakySink fails every Deliver while failing is set, and records what it
// delivered. Tests open it as "flaky:NAME".
type flakySink struct {
	name    string
	failing atomic.Bool

	mu        sync.Mutex
	failures  int      // guarded by mu
	failedIDs []string // guarded by mu; ids of the last failed batch
	ids       []string // guarded by mu; delivered, in order
	retryErr  error    // guarded by mu; a retry that did not resend the failed batch
}

var (
	flakyMu    sync.Mutex
	flakySinks = map[string]*flakySink{}
)

func init() {
	sinkKinds["flaky"] = func(_ context.Context, arg string, _ SinkOptions) (Sink, error) {
		flakyMu.Lock()
		defer flakyMu.Unlock()
		s, ok := flakySinks[arg]
		if !ok {
			return nil, fmt.Errorf("no flaky sink %q", arg)
		}
		return s, nil
	}
}

func newFlakySink(t *testing.T, name string) *flakySink {
	s := &flakySink{name: name}
	flakyMu.Lock()
	flakySinks[name] = s
	flakyMu.Unlock()
	t.Cleanup(func() {
		flakyMu.Lock()
		delete(flakySinks, name)
		flakyMu.Unlock()
	})
	return s
}

func (s *flakySink) Name() string { return "flaky:" + s.name }
func (s *flakySink) Close() error { return nil }

func (s *flakySink) Deliver(_ context.Context, msgs []Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = m.ID
	}
	if s.failedIDs != nil && strings.Join(ids, ",") != strings.Join(s.failedIDs, ",") && s.retryErr == nil {
		s.retryErr = fmt.Errorf("retry sent %v, the failed batch was %v", ids, s.failedIDs)
	}
	if s.failing.Load() {
		s.failures++
		s.failedIDs = ids
		return errors.New("flaky sink is down")
	}
	s.failedIDs = nil
	s.ids = append(s.ids, ids...)
	return nil
}

func (s *flakySink) state() (failures int, ids []string, retryErr error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failures, append([]string(nil), s.ids...), s.retryErr
}

func TestFailingSinkStallsWithinTheWindow(t *testing.T) {
	f := newFeedFixture(t, "INT")
	flaky := newFlakySink(t, t.Name())
	flaky.failing.Store(true)
	const window, events = 50, 300
	f.cfg.Sinks = append(f.cfg.Sinks, "flaky:"+t.Name())
	f.cfg.MaxInFlightEvents, f.cfg.SinkBatch = window, 8
	f.db.Exec(t, "INSERT INTO inv VALUES ('a', 100000, NULL)")
	f.start(t)
	conn := f.db.Open(t)
	for range events {
		if _, err := conn.Exec("UPDATE inv SET stock = stock - 1 WHERE sku = 'a'"); err != nil {
			t.Fatal(err)
		}
	}
	// The jsonl sink runs ahead of the dead one by the window at most.
	testdb.WaitFor(t, 30*time.Second, "the window to fill", func() bool {
		failures, _, _ := flaky.state()
		return failures >= 5 && len(readEvents(t, f.out)) >= window
	})
	time.Sleep(300 * time.Millisecond)
	if n := len(readEvents(t, f.out)); n > window {
		t.Fatalf("the healthy sink got %d events while the other was down: window %d not respected", n, window)
	}
	flaky.failing.Store(false)
	f.waitIDs(t, events)
	testdb.WaitFor(t, 30*time.Second, "the flaky sink to catch up", func() bool {
		_, ids, _ := flaky.state()
		return len(ids) >= events
	})
	failures, ids, retryErr := flaky.state()
	if retryErr != nil {
		t.Error(retryErr)
	}
	jsonl := readEvents(t, f.out)
	if len(ids) != events || len(jsonl) != events {
		t.Fatalf("delivered %d and %d events, want %d each", len(ids), len(jsonl), events)
	}
	for i := range ids {
		if ids[i] != jsonl[i].ID {
			t.Fatalf("event %d: %s to one sink, %s to the other", i, ids[i], jsonl[i].ID)
		}
	}
	t.Logf("%d failed deliveries, then %d events in order", failures, len(ids))
}

func TestAlterTableMidStream(t *testing.T) {
	f := newFeedFixture(t, "INT")
	f.cfg.Include = []string{f.db.Name + ".notes"}
	f.db.Exec(t, "CREATE TABLE notes (id INT PRIMARY KEY, a VARCHAR(8), b INT)")
	f.start(t)
	f.db.Exec(t,
		"INSERT INTO notes VALUES (1, 'x', 2)",
		"ALTER TABLE notes ADD COLUMN c VARCHAR(8) AFTER id, DROP COLUMN a",
		"INSERT INTO notes VALUES (2, 'y', 3)",
		"UPDATE notes SET b = 4 WHERE id = 1",
	)
	evs := f.waitEvents(t, 3)
	want := []string{
		"c map[] map[a:x b:2 id:1]",
		"c map[] map[b:3 c:y id:2]",
		"u map[b:2 c:<nil> id:1] map[b:4 c:<nil> id:1]",
	}
	for i, ev := range evs {
		if got := fmt.Sprint(ev.Op, " ", ev.Before, " ", ev.After); got != want[i] {
			t.Errorf("event %d: %s, want %s", i, got, want[i])
		}
	}
}

func TestPurgedBinlog(t *testing.T) {
	f := newFeedFixture(t, "INT")
	f.db.Exec(t, "INSERT INTO inv VALUES ('a', 100, NULL)")
	c, errc := f.start(t)
	f.db.Exec(t, "UPDATE inv SET stock = stock - 1 WHERE sku = 'a'")
	f.waitEvents(t, 1)
	c.Close()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	// Transactions the consumer has not read, then their binlog is purged.
	root := f.db.Server.Root(t)
	f.db.Exec(t, "UPDATE inv SET stock = stock - 2 WHERE sku = 'a'")
	if _, err := root.Exec("FLUSH BINARY LOGS"); err != nil {
		t.Fatal(err)
	}
	file, _, err := masterStatus(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	// The server keeps a binlog until InnoDB no longer needs it for crash
	// recovery: retry until it is gone.
	testdb.WaitFor(t, 30*time.Second, "the purge", func() bool {
		if _, err := root.Exec("PURGE BINARY LOGS TO '" + file + "'"); err != nil {
			t.Fatal(err)
		}
		first, err := server{mariadb: true}.first(context.Background(), root)
		return err == nil && first.File == file
	})
	c2, err := NewConsumer(f.cfg, feedLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = c2.Run(ctx)
	if !errors.Is(err, ErrPurged) || !strings.Contains(err.Error(), "--reset-checkpoint") || !strings.Contains(err.Error(), "ledger") {
		t.Fatalf("got %v, want ErrPurged saying what to do", err)
	}
	t.Log(err)

	var stale string
	if err := root.QueryRow("SELECT gtid FROM `" + f.meta + "`.checkpoints").Scan(&stale); err != nil {
		t.Fatal(err)
	}
	f.cfg.ResetCheckpoint = true
	f.start(t)
	testdb.WaitFor(t, 30*time.Second, "the reset checkpoint", func() bool {
		var gtid string
		err := root.QueryRow("SELECT gtid FROM `" + f.meta + "`.checkpoints").Scan(&gtid)
		return err == nil && gtid != stale
	})
	f.db.Exec(t, "UPDATE inv SET stock = stock - 3 WHERE sku = 'a'")
	evs := f.waitEvents(t, 2)
	if evs[1].Quantity != "3" {
		t.Errorf("after the reset: %+v", evs[1])
	}
}

func TestServerRestart(t *testing.T) {
	srv := testdb.Shared(t)
	if srv.Local == nil {
		t.Skip("the server comes from HOTROW_TEST_DSN: cannot restart it")
	}
	f := newFeedFixture(t, "INT")
	f.db.Exec(t, "INSERT INTO inv VALUES ('a', 100, NULL)")
	_, errc := f.start(t)
	f.db.Exec(t, "UPDATE inv SET stock = stock - 1 WHERE sku = 'a'")
	f.waitEvents(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv.Local.Kill()
	if err := srv.Local.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	f.db.Exec(t, "UPDATE inv SET stock = stock - 2 WHERE sku = 'a'")
	evs := f.waitEvents(t, 2)
	if evs[len(evs)-1].Quantity != "2" {
		t.Errorf("after the restart: %+v", evs)
	}
	select {
	case err := <-errc:
		t.Fatalf("consumer ended: %v", err)
	default:
	}
}

func TestServerChecks(t *testing.T) {
	f := newFeedFixture(t, "INT")
	root := f.db.Server.Root(t)
	run := func(cfg Config) error {
		t.Helper()
		c, err := NewConsumer(cfg, feedLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return c.Run(ctx)
	}
	t.Run("binlog_row_metadata", func(t *testing.T) {
		if _, err := root.Exec("SET GLOBAL binlog_row_metadata = 'MINIMAL'"); err != nil {
			t.Fatal(err)
		}
		defer root.Exec("SET GLOBAL binlog_row_metadata = 'FULL'")
		err := run(f.cfg)
		if !errors.Is(err, ErrServerSetting) || !strings.Contains(err.Error(), "binlog_row_metadata=FULL") {
			t.Fatalf("got %v, want ErrServerSetting naming binlog_row_metadata", err)
		}
	})
	t.Run("privileges", func(t *testing.T) {
		user := "feed_" + f.db.Name[2:]
		for _, q := range []string{
			"CREATE USER '" + user + "'@'%' IDENTIFIED BY 'pw'",
			"GRANT SELECT ON *.* TO '" + user + "'@'%'",
			"GRANT ALL ON `" + f.meta + "`.* TO '" + user + "'@'%'",
		} {
			if _, err := root.Exec(q); err != nil {
				t.Fatal(err)
			}
		}
		defer root.Exec("DROP USER '" + user + "'@'%'")
		cfg := f.cfg
		cfg.SourceDSN = user + ":pw@tcp(" + f.db.Server.Addr + ")/"
		err := run(cfg)
		if !errors.Is(err, ErrPrivilege) || !strings.Contains(err.Error(), "REPLICATION SLAVE") {
			t.Fatalf("got %v, want ErrPrivilege naming REPLICATION SLAVE", err)
		}
		t.Log(err)
		// With BINLOG MONITOR the binlog dump itself is refused.
		if _, err := root.Exec("GRANT BINLOG MONITOR ON *.* TO '" + user + "'@'%'"); err != nil {
			t.Fatal(err)
		}
		err = run(cfg)
		if !errors.Is(err, ErrPrivilege) || !strings.Contains(err.Error(), "REPLICATION SLAVE") {
			t.Fatalf("got %v, want ErrPrivilege naming REPLICATION SLAVE", err)
		}
		t.Log(err)
	})
}

// An XA transaction is skipped with a warning, and the feed goes on.
func TestXATransactionSkipped(t *testing.T) {
	f := newFeedFixture(t, "INT")
	f.db.Exec(t, "INSERT INTO inv VALUES ('a', 10, NULL)")
	f.start(t)
	conn, err := f.db.Open(t).Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, q := range []string{"XA START 'x1'", "UPDATE inv SET stock = stock - 1 WHERE sku = 'a'", "XA END 'x1'", "XA PREPARE 'x1'", "XA COMMIT 'x1'",
		"UPDATE inv SET stock = stock - 2 WHERE sku = 'a'"} {
		if _, err := conn.ExecContext(context.Background(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	f.waitEvents(t, 1)
	time.Sleep(200 * time.Millisecond) // nothing more arrives
	evs := readEvents(t, f.out)
	if len(evs) != 1 || evs[0].Quantity != "2" {
		t.Fatalf("events %+v", evs)
	}
}
