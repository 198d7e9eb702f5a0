package binlog

import (
	"bufio"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hotrow/hotrow/internal/testdb"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(runChild())
	}
	testdb.Main(m)
}

type feedLogWriter struct{ t testing.TB }

func (w feedLogWriter) Write(p []byte) (int, error) { w.t.Logf("%s", p); return len(p), nil }

func feedLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(feedLogWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// feedFixture is a test database with a hot table inv and a consumer
// configuration writing to a jsonl file.
type feedFixture struct {
	db   *testdb.DB
	meta string
	out  string // jsonl path
	cfg  Config
}

func newFeedFixture(t *testing.T, stockType string) *feedFixture {
	t.Helper()
	db := testdb.New(t)
	db.Exec(t, "CREATE TABLE inv (sku VARCHAR(16) PRIMARY KEY, stock "+stockType+" NOT NULL, note VARCHAR(16))")
	f := &feedFixture{db: db, meta: db.Name + "_hr", out: filepath.Join(t.TempDir(), "feed.jsonl")}
	f.cfg = DefaultConfig()
	f.cfg.SourceDSN = db.Server.DSN("")
	f.cfg.Sinks = []string{"jsonl:" + f.out}
	f.cfg.MetaSchema = f.meta
	f.cfg.Name = "test"
	f.cfg.HotRules = []HotRule{{Schema: db.Name, Table: "inv", Key: "sku", Stock: "stock"}}
	f.cfg.StatsInterval = 0
	f.cfg.CheckpointInterval = 50 * time.Millisecond
	f.cfg.Heartbeat = time.Second
	f.cfg.RetryMin, f.cfg.RetryMax = 10*time.Millisecond, 200*time.Millisecond
	root := db.Server.Root(t)
	t.Cleanup(func() { _, _ = root.Exec("DROP DATABASE IF EXISTS `" + f.meta + "`") })
	return f
}

// start runs a consumer on f.cfg until the test ends; its Run error
// arrives on the returned channel.
func (f *feedFixture) start(t *testing.T) (*Consumer, <-chan error) {
	t.Helper()
	c, err := NewConsumer(f.cfg, feedLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- c.Run(context.Background()) }()
	t.Cleanup(func() { c.Close() })
	// Run stores the start position before it reads: wait for it, so
	// what the test writes next is after it.
	f.waitCheckpoint(t)
	return c, errc
}

func (f *feedFixture) waitCheckpoint(t *testing.T) {
	t.Helper()
	root := f.db.Server.Root(t)
	testdb.WaitFor(t, 30*time.Second, "the consumer's checkpoint row", func() bool {
		var n int
		err := root.QueryRow("SELECT COUNT(*) FROM `"+f.meta+"`.checkpoints WHERE consumer = ?", f.cfg.Name).Scan(&n)
		return err == nil && n == 1
	})
}

// readEvents reads a jsonl file (a last line without newline is ignored).
func readEvents(t testing.TB, path string) []Event {
	t.Helper()
	file, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	var out []Event
	r := bufio.NewReader(file)
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			return out // EOF, possibly after a partial line
		}
		if len(line) <= 1 {
			continue
		}
		var ev Event
		if err := json.Unmarshal(line, &ev); err != nil {
			t.Logf("skipping a line cut by a crash %q: %v", line, err)
			continue
		}
		out = append(out, ev)
	}
}

func (f *feedFixture) waitEvents(t *testing.T, n int) []Event {
	t.Helper()
	var evs []Event
	testdb.WaitFor(t, 60*time.Second, "events in the jsonl sink", func() bool {
		evs = readEvents(t, f.out)
		return len(evs) >= n
	})
	return evs
}

func TestDirectDeductionsAndRowEvents(t *testing.T) {
	f := newFeedFixture(t, "DECIMAL(10,2)")
	f.cfg.Include = []string{f.db.Name + ".notes"}
	f.db.Exec(t, "CREATE TABLE notes (id INT PRIMARY KEY, body VARCHAR(32), doc JSON)",
		"INSERT INTO inv VALUES ('a', 10.50, NULL), ('b', 5, NULL)")
	f.start(t)
	f.db.Exec(t,
		"UPDATE inv SET stock = stock - 1.25 WHERE sku = 'a'",
		"UPDATE inv SET note = 'x' WHERE sku = 'a'", // stock unchanged: no event
		"UPDATE inv SET stock = stock + 2 WHERE sku = 'b'",
		"INSERT INTO notes VALUES (1, 'hello', '{\"k\": [1, 2]}')",
		"UPDATE notes SET body = 'bye' WHERE id = 1",
		"DELETE FROM notes WHERE id = 1",
	)
	evs := f.waitEvents(t, 5)
	if len(evs) != 5 {
		t.Fatalf("got %d events, want 5: %+v", len(evs), evs)
	}
	o := evs[0]
	if o.Kind != KindOrder || o.Quantity != "1.25" || o.StockAfter != "9.25" || o.Key != "a" ||
		o.Table != f.db.Name+".inv" || o.Source.GTID == "" || o.ID != o.Source.GTID+":0" || o.CommittedAt == 0 {
		t.Errorf("order event %+v", o)
	}
	if r := evs[1]; r.Kind != KindRestock || r.Quantity != "2" || r.StockAfter != "7" {
		t.Errorf("restock event %+v", r)
	}
	c, u, d := evs[2], evs[3], evs[4]
	if c.Kind != KindRow || c.Op != "c" || c.After["body"] != "hello" || c.Key != "1" || c.Before != nil {
		t.Errorf("insert event %+v", c)
	}
	// MariaDB's JSON is LONGTEXT: its text arrives as is; MySQL's is JSON.
	if doc, _ := c.After["doc"].(string); doc != `{"k": [1, 2]}` {
		if _, ok := c.After["doc"].(map[string]any); !ok {
			t.Errorf("JSON column: %#v", c.After["doc"])
		}
	}
	if u.Op != "u" || u.Before["body"] != "hello" || u.After["body"] != "bye" {
		t.Errorf("update event %+v", u)
	}
	if d.Op != "d" || d.Before["body"] != "bye" || d.After != nil {
		t.Errorf("delete event %+v", d)
	}
}

// An unrelated workload moves the checkpoint: nothing holds it back.
func TestCheckpointPassesUnrelatedTransactions(t *testing.T) {
	f := newFeedFixture(t, "INT")
	f.db.Exec(t, "CREATE TABLE other (id INT PRIMARY KEY)")
	f.start(t)
	root := f.db.Server.Root(t)
	f.db.Exec(t, "INSERT INTO other VALUES (1)")
	var want string
	if err := root.QueryRow("SELECT @@GLOBAL.gtid_binlog_pos").Scan(&want); err != nil {
		t.Fatal(err)
	}
	testdb.WaitFor(t, 30*time.Second, "the checkpoint at "+want, func() bool {
		var gtid string
		err := root.QueryRow("SELECT gtid FROM `"+f.meta+"`.checkpoints WHERE consumer = ?", f.cfg.Name).Scan(&gtid)
		return err == nil && gtid == want
	})
	if evs := readEvents(t, f.out); len(evs) != 0 {
		t.Errorf("events for an unrelated table: %+v", evs)
	}
}

func TestRunAfterClose(t *testing.T) {
	cfg := DefaultConfig()
	cfg.SourceDSN, cfg.Sinks = "u:p@tcp(127.0.0.1:1)/", []string{"stdout"}
	c, err := NewConsumer(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	c.Close()
	if err := c.Run(context.Background()); err != ErrClosed {
		t.Fatalf("Run after Close: %v", err)
	}
}

// countingWriter logs to t and counts lines holding substr.
type countingWriter struct {
	t      testing.TB
	substr string
	n      atomic.Int64
}

func (w *countingWriter) Write(p []byte) (int, error) {
	if strings.Contains(string(p), w.substr) {
		w.n.Add(1)
	}
	w.t.Logf("%s", p)
	return len(p), nil
}

// The server's heartbeats keep an idle stream alive.
func TestIdleStreamStaysConnected(t *testing.T) {
	f := newFeedFixture(t, "INT")
	f.cfg.Heartbeat = 100 * time.Millisecond
	w := &countingWriter{t: t, substr: "binlog stream lost"}
	c, err := NewConsumer(f.cfg, slog.New(slog.NewTextHandler(w, nil)))
	if err != nil {
		t.Fatal(err)
	}
	go c.Run(context.Background())
	defer c.Close()
	f.waitCheckpoint(t)
	time.Sleep(1500 * time.Millisecond) // fifteen heartbeat periods
	if n := w.n.Load(); n != 0 {
		t.Fatalf("%d reconnections of an idle stream", n)
	}
	f.db.Exec(t, "INSERT INTO inv VALUES ('a', 5, NULL)", "UPDATE inv SET stock = 4 WHERE sku = 'a'")
	if evs := f.waitEvents(t, 1); evs[0].Quantity != "1" {
		t.Fatalf("events %+v", evs)
	}
}

func TestFromStart(t *testing.T) {
	f := newFeedFixture(t, "INT")
	f.db.Exec(t, "INSERT INTO inv VALUES ('a', 5, NULL)", "UPDATE inv SET stock = 3 WHERE sku = 'a'")
	f.cfg.FromStart = true
	f.start(t)
	if evs := f.waitEvents(t, 1); evs[0].Quantity != "2" || evs[0].Key != "a" {
		t.Fatalf("events %+v", evs)
	}
}

// A clean stop writes the last checkpoint: the next run repeats nothing.
func TestRestartRepeatsNothing(t *testing.T) {
	f := newFeedFixture(t, "INT")
	f.cfg.CheckpointInterval = time.Hour // only the one at shutdown
	f.db.Exec(t, "INSERT INTO inv VALUES ('a', 100, NULL)")
	conn := f.db.Open(t)
	deduct := func(n int) {
		for range n {
			if _, err := conn.Exec("UPDATE inv SET stock = stock - 1 WHERE sku = 'a'"); err != nil {
				t.Fatal(err)
			}
		}
	}
	c, errc := f.start(t)
	deduct(10)
	f.waitEvents(t, 10)
	c.Close()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	f.start(t)
	deduct(5)
	f.waitEvents(t, 15)
	time.Sleep(200 * time.Millisecond)
	if evs := readEvents(t, f.out); len(evs) != 15 {
		t.Fatalf("%d events, want 15 (none repeated)", len(evs))
	}
}
