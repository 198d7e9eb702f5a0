package merger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-sql-driver/mysql"

	"github.com/hotrow/hotrow/internal/testdb"
	"github.com/hotrow/hotrow/schema"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// fixture is a hot table in a fresh database and a Merger on it.
type fixture struct {
	db      *testdb.DB
	conn    *sql.DB
	m       *Merger
	rule    Rule
	matcher *Matcher
	meta    string
	// idBase is added to the connection ids runLoad gives its requests.
	idBase uint32

	mu    sync.Mutex
	order []executed // copies of the executed batches, in execution order
}

const invDDL = "CREATE TABLE inv (sku VARCHAR(16) PRIMARY KEY, stock %s NOT NULL, sold INT NOT NULL DEFAULT 0, note VARCHAR(16))"

// newFixture creates inv with the given stock column type and rows, and
// starts a Merger on it; tune adjusts its config.
func newFixture(t testing.TB, stockType string, rows map[string]int64, tune func(*Config)) *fixture {
	t.Helper()
	return newFixtureOn(t, testdb.New(t), stockType, rows, tune)
}

// newFixtureOn is newFixture in database db.
func newFixtureOn(t testing.TB, db *testdb.DB, stockType string, rows map[string]int64, tune func(*Config)) *fixture {
	t.Helper()
	db.Exec(t, fmt.Sprintf(invDDL, stockType))
	conn := db.Open(t)
	for sku, stock := range rows {
		if _, err := conn.Exec("INSERT INTO inv (sku, stock) VALUES (?, ?)", sku, stock); err != nil {
			t.Fatal(err)
		}
	}
	f := &fixture{db: db, conn: conn, rule: Rule{Schema: db.Name, Table: "inv", Key: "sku", Stock: "stock"}, meta: db.Name + "_hr"}
	f.matcher = NewMatcher([]Rule{f.rule})
	cfg := DefaultConfig()
	cfg.DSN = db.DSN()
	cfg.MetaSchema = f.meta
	cfg.ResolveTimeout = 30 * time.Second
	cfg.hooks.executed = f.record
	if tune != nil {
		tune(&cfg)
	}
	m, err := New(context.Background(), cfg, slog.New(slog.NewTextHandler(testWriter{t}, nil)))
	if err != nil {
		t.Fatal(err)
	}
	f.m = m
	t.Cleanup(func() {
		m.Close()
		_, _ = conn.Exec("DROP DATABASE IF EXISTS `" + f.meta + "`")
	})
	return f
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) { w.t.Logf("%s", p); return len(p), nil }

func (f *fixture) record(e executed) {
	c := executed{BatchID: e.BatchID, Path: e.Path,
		Requests: append([]Request(nil), e.Requests...),
		Outcomes: append([]Outcome(nil), e.Outcomes...),
		Errs:     append([]error(nil), e.Errs...)}
	f.mu.Lock()
	f.order = append(f.order, c)
	f.mu.Unlock()
}

// text matches a COM_QUERY text into a Request.
func (f *fixture) text(t testing.TB, q string, connID uint32) Request {
	t.Helper()
	st, args, ok := f.matcher.MatchText(f.db.Name, q)
	if !ok {
		t.Fatalf("not mergeable: %s", q)
	}
	return Request{Stmt: st, Args: args, Text: q, ConnID: connID}
}

// prepared matches a prepared statement and binds args.
func (f *fixture) prepared(t testing.TB, q string, connID uint32, args ...any) Request {
	t.Helper()
	st, ok := f.matcher.MatchPrepared(f.db.Name, q)
	if !ok {
		t.Fatalf("not mergeable: %s", q)
	}
	return Request{Stmt: st, Args: args, ConnID: connID}
}

func (f *fixture) stock(t testing.TB, sku string) int64 {
	t.Helper()
	var v int64
	if err := f.conn.QueryRow("SELECT stock FROM inv WHERE sku = ?", sku).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func (f *fixture) ledgerRows(t testing.TB) int {
	t.Helper()
	var n int
	if err := f.conn.QueryRow("SELECT COUNT(*) FROM `" + f.meta + "`.ledger").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// holdRow locks a row from another session until the returned func runs.
func (f *fixture) holdRow(t testing.TB, sku string) (release func()) {
	t.Helper()
	tx, err := f.conn.Begin()
	if err != nil {
		t.Fatal(err)
	}
	var v int64
	if err := tx.QueryRow("SELECT stock FROM inv WHERE sku = ? FOR UPDATE", sku).Scan(&v); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() { once.Do(func() { _ = tx.Rollback() }) }
	t.Cleanup(release)
	return release
}

// inFlight reports whether a batch of the only active table runs with
// nothing queued behind it, its statement waiting in the server for a
// row the test holds (holdRow). The table alone is not enough: its worker
// lingers after a batch (gather), with nothing queued, before the next
// request arrives.
func (f *fixture) inFlight() bool {
	if s := f.m.Stats(); len(s.Tables) != 1 || s.Queued != 0 {
		return false
	}
	var n int
	_ = f.conn.QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() AND (INFO LIKE '%FOR UPDATE' OR INFO LIKE 'UPDATE%')").Scan(&n)
	return n > 0
}

// direct is a go-mysql connection for executing requests directly, as a
// client of the server would, with the server's matched/changed info.
func direct(t testing.TB, db *testdb.DB, name string) *client.Conn {
	t.Helper()
	c, err := client.Connect(db.Addr, db.User, db.Password, name, func(c *client.Conn) error {
		return c.SetCapability(gomysql.CLIENT_SESSION_TRACK)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.SetCharset("utf8mb4"); err != nil {
		t.Fatal(err)
	}
	return c
}

// result is an outcome as a comparable value.
type result struct {
	Matched, Changed uint64
	Warnings         uint16
	Code             uint16
	Msg              string
}

func toResult(out Outcome, err error, dbName string) result {
	if err != nil {
		se := serverError(err)
		if se == nil {
			return result{Code: 1, Msg: err.Error()}
		}
		return result{Code: se.Code, Msg: strings.ReplaceAll(se.Message, dbName, "DB")}
	}
	return result{Matched: out.Matched, Changed: out.Changed, Warnings: out.Warnings}
}

func TestLoneAndBatchOutcomes(t *testing.T) {
	f := newFixture(t, "INT UNSIGNED", map[string]int64{"a": 10}, nil)
	ctx := context.Background()
	cases := []struct {
		q    string
		want result
	}{
		{"UPDATE inv SET stock = stock - 3 WHERE sku = 'a' AND stock >= 3", result{Matched: 1, Changed: 1}},
		{"UPDATE inv SET stock = stock - 0 WHERE sku = 'a'", result{Matched: 1}},
		{"UPDATE inv SET stock = stock - 30 WHERE sku = 'a' AND stock >= 30", result{}},
		{"UPDATE inv SET stock = stock - 1 WHERE sku = 'nope'", result{}},
		{"UPDATE inv SET stock = stock - 30 WHERE sku = 'a'", result{Code: 1690,
			Msg: "BIGINT UNSIGNED value is out of range in '`DB`.`inv`.`stock` - 30'"}},
		{"UPDATE inv SET stock = stock + 5, note = 'x' WHERE sku = 'a'", result{Matched: 1, Changed: 1}},
	}
	for _, tc := range cases {
		out, err := f.m.Do(ctx, f.text(t, tc.q, 1))
		if got := toResult(out, err, f.db.Name); got != tc.want {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.q, got, tc.want)
		}
	}
	if got := f.stock(t, "a"); got != 12 {
		t.Fatalf("stock = %d, want 12", got)
	}
	// granted: the first, the zero delta and the restock.
	if n := f.ledgerRows(t); n != 3 {
		t.Fatalf("ledger rows = %d, want 3", n)
	}
	if s := f.m.Stats(); s.LonePath != uint64(len(cases)) {
		t.Fatalf("lone batches = %d, want %d", s.LonePath, len(cases))
	}
}

func TestCloseIsIdempotentAndRejects(t *testing.T) {
	f := newFixture(t, "INT", map[string]int64{"a": 100}, nil)
	release := f.holdRow(t, "a")
	done := make(chan error, 2)
	do := func() {
		_, err := f.m.Do(context.Background(), f.text(t, "UPDATE inv SET stock = stock - 1 WHERE sku = 'a'", 1))
		done <- err
	}
	go do()
	testdb.WaitFor(t, 5*time.Second, "first batch in flight", f.inFlight)
	go do()
	testdb.WaitFor(t, 5*time.Second, "second request queued", func() bool { return f.m.Stats().Queued == 1 })
	closed := make(chan struct{})
	go func() { f.m.Close(); close(closed) }()
	testdb.WaitFor(t, 5*time.Second, "merger closing", func() bool {
		f.m.mu.Lock()
		defer f.m.mu.Unlock()
		return f.m.closed
	})
	if _, err := f.m.Do(context.Background(), f.text(t, "UPDATE inv SET stock = stock - 1 WHERE sku = 'a'", 1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Do after Close = %v, want ErrClosed", err)
	}
	release()
	for range 2 {
		if err := <-done; err != nil {
			t.Fatalf("in-flight request: %v", err)
		}
	}
	<-closed
	if err := f.m.Close(); err != nil {
		t.Fatal(err)
	}
	if got := f.stock(t, "a"); got != 98 {
		t.Fatalf("stock = %d, want 98", got)
	}
}

// batchInFlight holds row 'a' elsewhere and starts a request on it whose
// batch then waits for the row lock; later requests queue behind it.
// release lets the batch finish; first receives its error.
func (f *fixture) batchInFlight(t *testing.T) (release func(), first <-chan error) {
	t.Helper()
	release = f.holdRow(t, "a")
	done := make(chan error, 1)
	go func() {
		_, err := f.m.Do(context.Background(), f.text(t, "UPDATE inv SET stock = stock - 1 WHERE sku = 'a'", 1))
		done <- err
	}()
	testdb.WaitFor(t, 5*time.Second, "first batch in flight", f.inFlight)
	return release, done
}

func TestCancelWhileQueuedDrops(t *testing.T) {
	f := newFixture(t, "INT", map[string]int64{"a": 100}, nil)
	release, first := f.batchInFlight(t)
	ctx, cancel := context.WithCancel(context.Background())
	second := make(chan error, 1)
	go func() {
		_, err := f.m.Do(ctx, f.text(t, "UPDATE inv SET stock = stock - 5 WHERE sku = 'a'", 2))
		second <- err
	}()
	testdb.WaitFor(t, 5*time.Second, "second request queued", func() bool { return f.m.Stats().Queued == 1 })
	cancel()
	if err := <-second; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled request = %v, want context.Canceled", err)
	}
	release()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if got := f.stock(t, "a"); got != 99 {
		t.Fatalf("stock = %d, want 99 (the dropped request must not run)", got)
	}
	if s := f.m.Stats(); s.Dropped != 1 || s.Queued != 0 {
		t.Fatalf("stats = %+v, want 1 dropped, none queued", s)
	}
}

// TestGoneClientDropped: a request whose client went away while it waited
// is dropped when its batch forms, and one whose client is still there runs.
func TestGoneClientDropped(t *testing.T) {
	f := newFixture(t, "INT", map[string]int64{"a": 100}, nil)
	release, first := f.batchInFlight(t)
	var gone atomic.Bool
	results := make(chan error, 2)
	for i, g := range []func() bool{gone.Load, func() bool { return false }} {
		req := f.text(t, "UPDATE inv SET stock = stock - 5 WHERE sku = 'a'", uint32(2+i))
		req.Gone = g
		go func() {
			_, err := f.m.Do(context.Background(), req)
			results <- err
		}()
	}
	testdb.WaitFor(t, 5*time.Second, "requests queued", func() bool { return f.m.Stats().Queued == 2 })
	gone.Store(true)
	time.Sleep(goneCheckAge) // younger requests are applied unasked
	release()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	var canceled, ok int
	for range 2 {
		switch err := <-results; {
		case errors.Is(err, context.Canceled):
			canceled++
		case err == nil:
			ok++
		default:
			t.Fatal(err)
		}
	}
	if canceled != 1 || ok != 1 {
		t.Fatalf("%d dropped, %d applied; want 1 and 1", canceled, ok)
	}
	if got := f.stock(t, "a"); got != 94 {
		t.Fatalf("stock = %d, want 94 (the gone client's request must not run)", got)
	}
	if s := f.m.Stats(); s.Dropped != 1 {
		t.Fatalf("stats = %+v, want 1 dropped", s)
	}
}

func TestQueueFullAndTimeout(t *testing.T) {
	f := newFixture(t, "INT", map[string]int64{"a": 100}, func(c *Config) {
		c.MaxQueue, c.MaxQueueTotal = 2, 2
		c.QueueTimeout = 300 * time.Millisecond
	})
	release := f.holdRow(t, "a")
	errs := make(chan error, 3)
	do := func(id uint32) {
		_, err := f.m.Do(context.Background(), f.text(t, "UPDATE inv SET stock = stock - 1 WHERE sku = 'a'", id))
		errs <- err
	}
	go do(1)
	testdb.WaitFor(t, 5*time.Second, "first batch in flight", f.inFlight)
	go do(2)
	go do(3)
	testdb.WaitFor(t, 5*time.Second, "two queued", func() bool { return f.m.Stats().Queued == 2 })
	if _, err := f.m.Do(context.Background(), f.text(t, "UPDATE inv SET stock = stock - 1 WHERE sku = 'a'", 4)); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("Do on a full queue = %v, want ErrQueueFull", err)
	}
	time.Sleep(400 * time.Millisecond) // let the queued requests outlive QueueTimeout
	release()
	var timeouts, ok int
	for range 3 {
		switch err := <-errs; {
		case err == nil:
			ok++
		case errors.Is(err, ErrLockWaitTimeout):
			timeouts++
		default:
			t.Fatalf("unexpected error %v", err)
		}
	}
	if ok != 1 || timeouts != 2 {
		t.Fatalf("ok=%d timeouts=%d, want 1 and 2", ok, timeouts)
	}
	if got := f.stock(t, "a"); got != 99 {
		t.Fatalf("stock = %d, want 99", got)
	}
}

// TestRowHeldElsewhere: while another transaction holds the row longer
// than innodb_lock_wait_timeout (1 s, a setting of the merger's DSN, which
// its batch connections get too), every request fails with 1205 after
// about that long, as it would directly, with no retry storm.
func TestRowHeldElsewhere(t *testing.T) {
	f := newFixture(t, "INT", map[string]int64{"a": 100}, func(c *Config) {
		dsn, err := mysql.ParseDSN(c.DSN)
		if err != nil {
			t.Fatal(err)
		}
		dsn.Params = map[string]string{"innodb_lock_wait_timeout": "1"}
		c.DSN = dsn.FormatDSN()
	})
	if f.m.cfg.QueueTimeout != time.Second {
		t.Fatalf("QueueTimeout = %v, want the server's 1s", f.m.cfg.QueueTimeout)
	}
	release := f.holdRow(t, "a")
	defer release()
	start := time.Now()
	errs := make(chan error, 20)
	for i := range 20 {
		go func() {
			_, err := f.m.Do(context.Background(), f.text(t, "UPDATE inv SET stock = stock - 1 WHERE sku = 'a'", uint32(i+1)))
			errs <- err
		}()
	}
	for range 20 {
		if err := <-errs; errCode(err) != gomysql.ER_LOCK_WAIT_TIMEOUT {
			t.Fatalf("request on a row held elsewhere = %v, want 1205", err)
		}
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v, want about innodb_lock_wait_timeout", d)
	}
}

// TestJanitorPrunesOldMarkersOfEveryInstance: instances share the meta
// schema; a janitor deletes the markers older than MarkerRetention of
// every instance (also of earlier processes and of instances gone for
// good), in chunks, by a range scan of created_at, and keeps newer ones.
func TestJanitorPrunesOldMarkersOfEveryInstance(t *testing.T) {
	db := testdb.New(t)
	conn := db.Open(t)
	meta := db.Name + "_hr"
	t.Cleanup(func() { _, _ = conn.Exec("DROP DATABASE IF EXISTS `" + meta + "`") })
	if err := schema.Ensure(context.Background(), conn, meta); err != nil {
		t.Fatal(err)
	}
	const oldOthers = 2*janitorChunk + 100 // three chunks
	var q strings.Builder
	q.WriteString("INSERT INTO `" + meta + "`.batches (batch_id, instance_id, requests, granted, created_at) VALUES " +
		"('x-old', 'x', 1, 1, NOW(6) - INTERVAL 2 HOUR), ('x-new', 'x', 1, 1, NOW(6)), ('y-new', 'y', 1, 1, NOW(6))")
	for i := range oldOthers {
		fmt.Fprintf(&q, ", ('y-old-%04d', 'y', 1, 1, NOW(6) - INTERVAL 2 HOUR)", i)
	}
	if _, err := conn.Exec(q.String()); err != nil {
		t.Fatal(err)
	}
	ids := func() string {
		var s sql.NullString
		if err := conn.QueryRow("SELECT GROUP_CONCAT(batch_id ORDER BY batch_id) FROM `" + meta + "`.batches WHERE batch_id NOT LIKE 'y-old-%'").Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s.String
	}
	others := func() int {
		var n int
		if err := conn.QueryRow("SELECT COUNT(*) FROM `" + meta + "`.batches WHERE batch_id LIKE 'y-old-%'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	cfg := DefaultConfig()
	cfg.DSN, cfg.MetaSchema, cfg.MarkerRetention, cfg.InstanceID = db.DSN(), meta, time.Hour, "x"
	// The DELETE finds the chunk by a range of created_at, even with
	// nearly every marker old, and deletes its rows by primary key.
	probe := &Merger{cfg: cfg, metaIdent: schema.QuoteIdent(meta)}
	plan, err := conn.Query("EXPLAIN " + probe.pruneQuery())
	if err != nil {
		t.Fatal(err)
	}
	var steps []string
	for plan.Next() {
		var id int
		var selType, table, typ, possible, key, keyLen, ref, rows, extra sql.NullString
		if err := plan.Scan(&id, &selType, &table, &typ, &possible, &key, &keyLen, &ref, &rows, &extra); err != nil {
			t.Fatal(err)
		}
		steps = append(steps, table.String+":"+typ.String+":"+key.String)
	}
	if err := plan.Err(); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(steps, " "); !strings.Contains(got, "batches:eq_ref:PRIMARY") || !strings.Contains(got, "batches:range:created") {
		t.Fatalf("EXPLAIN of the janitor's DELETE: %s, want a range on created and deletes by primary key", got)
	}
	m, err := New(context.Background(), cfg, slog.New(slog.NewTextHandler(testWriter{t}, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	testdb.WaitFor(t, 20*time.Second, "every old marker pruned", func() bool { return others() == 0 })
	if got := ids(); got != "x-new,y-new" {
		t.Fatalf("markers left %q, want x-new,y-new", got)
	}
}

// TestRetentionCoversResolution: New refuses a MarkerRetention that
// Validate accepts but that is shorter than twice the time a marker may
// still be looked up (the backend read timeout plus ResolveTimeout).
func TestRetentionCoversResolution(t *testing.T) {
	db := testdb.New(t)
	cfg := DefaultConfig()
	cfg.DSN, cfg.MetaSchema = db.DSN(), db.Name+"_hr"
	cfg.ResolveTimeout, cfg.MarkerRetention = 5*time.Second, 2*time.Minute
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	conn := db.Open(t)
	t.Cleanup(func() { _, _ = conn.Exec("DROP DATABASE IF EXISTS `" + cfg.MetaSchema + "`") })
	var lockWait int
	if err := conn.QueryRow("SELECT @@innodb_lock_wait_timeout").Scan(&lockWait); err != nil {
		t.Fatal(err)
	}
	m, err := New(context.Background(), cfg, slog.New(slog.NewTextHandler(testWriter{t}, nil)))
	want := 2*(time.Duration(lockWait)*time.Second+30*time.Second+cfg.ResolveTimeout) > cfg.MarkerRetention
	if want != (err != nil) {
		if m != nil {
			m.Close()
		}
		t.Fatalf("innodb_lock_wait_timeout %d s, retention %v: New error %v, want an error: %v", lockWait, cfg.MarkerRetention, err, want)
	}
	if m != nil {
		m.Close()
	}
}

// TestNonUniqueKey: a key matching several rows takes the general path;
// each request matches every row, as directly, and leaves one ledger row.
func TestNonUniqueKey(t *testing.T) {
	f := newFixture(t, "INT", nil, nil)
	f.db.Exec(t, "CREATE TABLE nu (sku VARCHAR(16), stock INT NOT NULL, KEY (sku))",
		"INSERT INTO nu VALUES ('a', 10), ('a', 20)")
	mt := NewMatcher([]Rule{{Schema: f.db.Name, Table: "nu", Key: "sku", Stock: "stock"}})
	const n = 10
	errs := make(chan error, n)
	for i := range n {
		go func() {
			q := "UPDATE nu SET stock = stock - 1 WHERE sku = 'a' AND stock >= 1"
			st, args, ok := mt.MatchText(f.db.Name, q)
			if !ok {
				errs <- errors.New("not mergeable")
				return
			}
			out, err := f.m.Do(context.Background(), Request{Stmt: st, Args: args, Text: q, ConnID: uint32(i + 1)})
			if err == nil && (out.Matched != 2 || out.Changed != 2) {
				err = fmt.Errorf("outcome %+v, want 2 matched and changed", out)
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	var sum int
	if err := f.conn.QueryRow("SELECT SUM(stock) FROM nu").Scan(&sum); err != nil || sum != 10 {
		t.Fatalf("sum(stock) = %d, %v; want 10", sum, err)
	}
	if got := f.ledgerRows(t); got != n {
		t.Fatalf("ledger rows = %d, want %d", got, n)
	}
	if s := f.m.Stats(); s.FastPath != 0 {
		t.Fatalf("fast path used on a non-unique key: %+v", s)
	}
}

// TestCheckConstraintBatch: with CHECK (stock <= 100) and stock 80, the
// batch [+50, -40 AND stock >= 40] must end as serially: the restock fails
// with 4025 and changes nothing, the decrement is granted, stock 40. The
// fast path evaluated only the column's range, granted both and ended at
// 90.
func TestCheckConstraintBatch(t *testing.T) {
	f := newFixture(t, "INT UNSIGNED NOT NULL CHECK (stock <= 100), pad INT DEFAULT 0", map[string]int64{"a": 80}, nil)
	release := f.holdRow(t, "a")
	type res struct {
		i   int
		out Outcome
		err error
	}
	results := make(chan res, 3)
	do := func(i int, q string) {
		out, err := f.m.Do(context.Background(), f.text(t, q, uint32(i+1)))
		results <- res{i, out, err}
	}
	go do(0, "UPDATE inv SET stock = stock - 0 WHERE sku = 'a'")
	testdb.WaitFor(t, 10*time.Second, "first batch in flight", f.inFlight)
	go do(1, "UPDATE inv SET stock = stock + 50 WHERE sku = 'a'")
	testdb.WaitFor(t, 10*time.Second, "restock queued", func() bool { return f.m.Stats().Queued == 1 })
	go do(2, "UPDATE inv SET stock = stock - 40 WHERE sku = 'a' AND stock >= 40")
	testdb.WaitFor(t, 10*time.Second, "both queued", func() bool { return f.m.Stats().Queued == 2 })
	release()
	got := make([]result, 3)
	for range 3 {
		select {
		case r := <-results:
			got[r.i] = toResult(r.out, r.err, f.db.Name)
		case <-time.After(30 * time.Second):
			t.Fatal("requests did not finish in 30s")
		}
	}
	if got[1].Code != 4025 {
		t.Errorf("restock beyond the CHECK = %+v, want error 4025", got[1])
	}
	if want := (result{Matched: 1, Changed: 1}); got[2] != want {
		t.Errorf("decrement = %+v, want %+v", got[2], want)
	}
	if s := f.stock(t, "a"); s != 40 {
		t.Errorf("stock = %d, want 40 as serially", s)
	}
	if n := f.ledgerRows(t); n != 2 {
		t.Errorf("ledger rows = %d, want 2 (the zero change and the decrement)", n)
	}
	if s := f.m.Stats(); s.FastPath != 0 {
		t.Errorf("fast path used on a table with a CHECK constraint: %+v", s)
	}
}
