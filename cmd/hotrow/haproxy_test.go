package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hotrow/hotrow/internal/testdb"
	"github.com/hotrow/hotrow/schema"
)

// haproxy is Debian's HAProxy run by a test in tcp mode in front of proxy
// instances, its servers named s0, s1, ... in the order given.
type haproxy struct {
	*child
	addr string
}

// lookHAProxy returns the haproxy binary; without one the test skips,
// except under CI (set to anything), which installs it
// (scripts/install-deps.sh).
func lookHAProxy(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/haproxy"); serr != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("haproxy is not installed (CI=%s): %v", os.Getenv("CI"), err)
			}
			t.Skip("haproxy is not installed (apt-get install haproxy, or scripts/install-deps.sh as root)")
		}
		bin = "/usr/sbin/haproxy"
	}
	return bin
}

// startHAProxy runs bin (haproxy) on a free loopback port, one thread,
// tcp mode, round robin over insts, each health-checked by a TCP connect
// every 100 ms (down after 2 failures, up after 2 successes); a connection
// refused by a server is retried and redispatched to another. It waits
// until a client logs in to db through it.
func startHAProxy(t *testing.T, bin string, db *testdb.DB, insts []*proxyChild) *haproxy {
	t.Helper()
	addr := freeAddr(t)
	var cfg strings.Builder
	fmt.Fprintf(&cfg, `global
	nbthread 1
	maxconn 2000

defaults
	mode tcp
	retries 3
	option redispatch
	timeout connect 500ms
	timeout client 30s
	timeout server 30s
	timeout check 500ms

listen hotrow
	bind %s
	balance roundrobin
	default-server inter 100ms fall 2 rise 2
`, addr)
	for i, p := range insts {
		fmt.Fprintf(&cfg, "\tserver s%d %s check\n", i, p.addr)
	}
	file := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(file, []byte(cfg.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-c", "-f", file).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c: %v\n%s\n%s", err, out, cfg.String())
	}
	h := &haproxy{child: startProcess(t, bin, "-f", file, "-db"), addr: addr}
	waitLogin(t, db, addr, "haproxy")
	return h
}

// waitServer waits until haproxy logs that its server i went to state
// (DOWN or UP).
func (h *haproxy) waitServer(t *testing.T, i int, state string) {
	t.Helper()
	line := fmt.Sprintf("Server hotrow/s%d is %s", i, state)
	testdb.WaitFor(t, 10*time.Second, "haproxy: "+line, func() bool {
		b, _ := os.ReadFile(h.log)
		return strings.Contains(string(b), line)
	})
}

// plantClaim inserts a claim of instance id as a crash of one of its
// transactional sessions leaves it: one unit of row 2, no verdict, a
// minute old, its owner connection gone. Only instance id's sweep may
// cancel it (adding the unit back to row 2). It returns the claim id.
func (s *sale) plantClaim(t *testing.T, id string) string {
	t.Helper()
	claim := id + "-planted-1:0"
	if _, err := s.root.Exec("INSERT INTO `"+s.meta+"`."+schema.ClaimsTable+" ("+schema.ClaimColumns+", created_at)"+
		" VALUES (?, ?, 4294967295, 0, ?, 'inventory', 'sku_id', 'stock', '2', 1, NOW(6) - INTERVAL 1 MINUTE)",
		claim, id, s.db.Name); err != nil {
		t.Fatal(err)
	}
	return claim
}

// verdict is the verdict on claim, "" without one.
func (s *sale) verdict(t *testing.T, claim string) string {
	t.Helper()
	var v string
	err := s.root.QueryRow("SELECT COALESCE(MAX(verdict), '') FROM `"+s.meta+"`."+schema.VerdictsTable+" WHERE claim_id = ?", claim).Scan(&v)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestScaleOutHAProxy: a flash sale of 2,000 units through Debian's
// HAProxy (tcp mode, round robin, health checks) in front of 2 and 4
// hotrow instances, each with its own instance id, selling from one hot
// row of one MariaDB. 40 clients buy one unit at a time, 50 ms apart (10
// per connection, then a new connection through HAProxy; an error also
// means a new connection) until told sold out. Once a quarter is sold
// the first instance is killed with SIGKILL; HAProxy's health check takes
// it out, it is restarted with its id, HAProxy's check brings it back and
// the sale goes on. Checked: the sale sells out exactly: OKs never exceed the
// stock, stock + ledger rows = initial, every client told OK has its
// ledger row (sale.check); batch ids are unique across instances (each
// marker's id carries its own instance id, every ledger row belongs to
// exactly one instance, each marker's granted count is its batch's ledger
// rows); every instance sold, the restarted one after its restart too;
// and its recovery touched only its own batches: of two claims left
// without a verdict by crashed sessions, planted while it was down, its
// start-up sweep cancels its own and leaves another instance's alone.
func TestScaleOutHAProxy(t *testing.T) {
	lbBin := lookHAProxy(t)
	bin := buildHotrow(t)
	for _, n := range []int{2, 4} {
		t.Run(fmt.Sprintf("%d_instances", n), func(t *testing.T) { flashSaleBehindHAProxy(t, lbBin, bin, n) })
	}
}

func flashSaleBehindHAProxy(t *testing.T, lbBin, bin string, n int) {
	const stock, clients = 2000, 40
	s := newSale(t, stock)
	s.reconnect, s.perConn, s.think = true, 10, 50*time.Millisecond
	// Every grant in a batch with a ledger row: the test attributes each
	// one to its instance and batch (a lone statement has no ledger row).
	s.flags = []string{"--lone-passthrough=false"}
	s.db.Exec(t, "INSERT INTO inventory VALUES (2, 0)") // what the planted claims restore
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("hap%d", i+1)
	}
	insts := s.startInstances(t, bin, ids...)
	lb := startHAProxy(t, lbBin, s.db, insts)
	// The clients stop at the latest after 40 s (a sale that does not sell
	// out), or when the test ends early.
	stop := make(chan struct{})
	end := sync.OnceFunc(func() { close(stop) })
	defer end()
	defer time.AfterFunc(40*time.Second, end).Stop()
	var killedAt, upAt int64
	var mine, other string
	began := time.Now()
	results := s.run(clients, func(int) string { return lb.addr }, func() {
		testdb.WaitFor(t, 30*time.Second, "a quarter of the stock to sell", func() bool { return s.granted.Load() >= stock/4 })
		insts[0].kill()
		killedAt = s.granted.Load()
		mine, other = s.plantClaim(t, ids[0]), s.plantClaim(t, "hap-elsewhere")
		lb.waitServer(t, 0, "DOWN")
		insts[0] = insts[0].restart(t)
		lb.waitServer(t, 0, "UP")
		upAt = s.granted.Load()
	}, stop)
	took := time.Since(began)
	s.settle(t)
	ledger := s.check(t, "after the sale", results)
	ok, failed := sum(results)
	soldOut := 0
	for _, r := range results {
		soldOut += r.okNone
	}
	rows := s.ledgerRows(t, ids...)
	t.Logf("%d instances, %d clients, %d sessions through haproxy in %v: %d told OK, %d told sold out, %d sessions failed (%d of their statements committed); "+
		"%s killed at %d OKs, back UP at %d; ledger %d rows, by instance and process %v",
		n, clients, len(results), took.Round(time.Millisecond), ok, soldOut, failed, ledger-ok, ids[0], killedAt, upAt, ledger, rows)
	if ok > stock || ledger != stock {
		t.Errorf("stock %d: %d told OK, %d ledger rows; want at most the stock told OK, and all of it sold", stock, ok, ledger)
		s.logLedgerGaps(t, 0)
	}
	if soldOut != clients {
		t.Errorf("%d clients told sold out, want all %d", soldOut, clients)
	}
	inLedger := 0
	for i, id := range ids {
		procs := 1
		if i == 0 {
			procs = 2
		}
		if len(rows[id]) != procs {
			t.Errorf("instance %s: ledger rows by process %v, want %d processes selling", id, rows[id], procs)
		}
		for _, r := range rows[id] {
			inLedger += r
		}
	}
	if inLedger != ledger {
		t.Errorf("%d ledger rows, %d of them by the instances %v", ledger, inLedger, ids)
	}
	s.checkMarkers(t, ids)

	testdb.WaitFor(t, 30*time.Second, "the restarted instance's sweep to cancel its claim", func() bool { return s.verdict(t, mine) != "" })
	var row2 int
	if err := s.root.QueryRow("SELECT stock FROM inventory WHERE sku_id = 2").Scan(&row2); err != nil {
		t.Fatal(err)
	}
	if v, w := s.verdict(t, mine), s.verdict(t, other); v != "cancel" || w != "" || row2 != 1 {
		t.Errorf("after the restart: verdict on %s's claim %q (want cancel), on another instance's %q (want none); row 2 stock %d, want 1", ids[0], v, w, row2)
	}
}

// checkMarkers checks the batch markers of the sale: each belongs to one
// of ids and its batch id begins with that id, and its granted count is
// the number of its batch's ledger rows.
func (s *sale) checkMarkers(t *testing.T, ids []string) {
	t.Helper()
	q := "`" + s.meta + "`."
	var markers, foreign, miscounted int
	args := []any{}
	for _, id := range ids {
		args = append(args, id)
	}
	in := strings.TrimSuffix(strings.Repeat("?,", len(ids)), ",")
	if err := s.root.QueryRow("SELECT COUNT(*), COALESCE(SUM(LEFT(batch_id, LENGTH(instance_id) + 1) <> CONCAT(instance_id, '-') OR instance_id NOT IN ("+in+")), 0) FROM "+q+schema.BatchesTable,
		args...).Scan(&markers, &foreign); err != nil {
		t.Fatal(err)
	}
	if err := s.root.QueryRow("SELECT COUNT(*) FROM " + q + schema.BatchesTable + " b LEFT JOIN (SELECT batch_id, COUNT(*) AS n FROM " + q + schema.LedgerTable +
		" GROUP BY batch_id) l USING (batch_id) WHERE b.granted <> COALESCE(l.n, 0)").Scan(&miscounted); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d batch markers", markers)
	if markers == 0 || foreign > 0 || miscounted > 0 {
		t.Errorf("%d batch markers: %d not of their instance's batch ids %v, %d whose granted count is not their ledger rows", markers, foreign, ids, miscounted)
	}
}
