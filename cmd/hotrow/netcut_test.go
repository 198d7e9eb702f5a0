package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/go-sql-driver/mysql"

	"github.com/hotrow/hotrow/internal/testdb"
)

// privateDB is a MariaDB container alone on a Docker network of its own,
// reached at its address on that network (no published port), so that
// disconnecting it from the network drops the proxy's packets.
type privateDB struct {
	db               *testdb.DB
	ctr, network, ip string
}

// docker runs the docker CLI, bounded in time, and returns its trimmed
// output.
func docker(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("docker %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

// startPrivateDB runs the image scripts/build-mariadb-image.sh builds
// (HOTROW_BENCH_IMAGE overrides it, as for the bench) on a new network
// with a subnet of its own, so that the container keeps its address
// across a disconnect and reconnect. Without Docker or the image the test
// skips, or fails under HOTROW_TESTCONTAINERS=1 (as bench's container
// tests). The Docker engine must run on this host: the container's
// address is routed here. Container and network are removed at cleanup.
func startPrivateDB(t *testing.T) *privateDB {
	t.Helper()
	image := cmp.Or(os.Getenv("HOTROW_BENCH_IMAGE"), "hotrow/mariadb:10.11")
	if _, err := docker("image", "inspect", image); err != nil {
		if os.Getenv("HOTROW_TESTCONTAINERS") == "1" {
			t.Fatalf("no database container: %v", err)
		}
		t.Skipf("no database container (build it with scripts/build-mariadb-image.sh; HOTROW_TESTCONTAINERS=1 makes this a failure): %v", err)
	}
	p := &privateDB{}
	var prefix string
	for attempt := 0; ; attempt++ {
		b := make([]byte, 4)
		_, _ = rand.Read(b)
		prefix = fmt.Sprintf("10.%d.%d.", 200+int(b[0])%50, b[1])
		p.network = "hotrow-netcut-" + hex.EncodeToString(b)
		_, err := docker("network", "create", "--driver", "bridge", "--subnet", prefix+"0/24", p.network)
		if err == nil {
			break
		}
		if attempt == 4 { // the subnets drawn overlap others
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { _, _ = docker("network", "rm", p.network) })
	const password = "hotrow-netcut"
	p.ip = prefix + "10"
	var err error
	p.ctr, err = docker("run", "-d", "--network", p.network, "--ip", p.ip, "-e", "MARIADB_ROOT_PASSWORD="+password, image)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = docker("rm", "-f", p.ctr) })
	srv := &testdb.Server{Addr: net.JoinHostPort(p.ip, "3306"), User: "root", Password: password}
	root := srv.Root(t)
	testdb.WaitFor(t, 2*time.Minute, "the container's server to accept a login", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return root.PingContext(ctx) == nil
	})
	if _, err := root.Exec("CREATE DATABASE netcut"); err != nil {
		t.Fatal(err)
	}
	p.db = &testdb.DB{Server: srv, Name: "netcut"}
	return p
}

// cut disconnects the container from its network: its packets are
// dropped from then on, nothing is refused or reset.
func (p *privateDB) cut() error {
	_, err := docker("network", "disconnect", p.network, p.ctr)
	return err
}

// restore reconnects the container with its address.
func (p *privateDB) restore() error {
	_, err := docker("network", "connect", "--ip", p.ip, p.network, p.ctr)
	return err
}

// hotrowStatus reads the numeric rows of SHOW HOTROW STATUS on the admin
// port at addr.
func hotrowStatus(t *testing.T, addr string) map[string]int {
	t.Helper()
	rows, err := openDB(t, "admin", "", addr, "").Query("SHOW HOTROW STATUS")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	st := map[string]int{}
	for rows.Next() {
		var name, value string
		if err := rows.Scan(&name, &value); err != nil {
			t.Fatal(err)
		}
		if n, err := strconv.Atoi(value); err == nil {
			st[name] = n
		}
	}
	return st
}

// timedErr is the time span and the error of one statement.
type timedErr struct {
	start, end time.Time
	err        error
}

// runTimed runs fn in the background; the result arrives on the channel.
func runTimed(fn func() error) <-chan timedErr {
	ch := make(chan timedErr, 1)
	go func() {
		start := time.Now()
		err := fn()
		ch <- timedErr{start, time.Now(), err}
	}()
	return ch
}

// TestNetworkCut cuts the network between the proxy and its database (a
// container disconnected from its private Docker network: packets
// dropped, not refused) while 24 clients buy from one hot row, holds the
// cut longer than --backend-dead-after, and reconnects. Checks:
//
//   - a pass-through statement in flight fails (2013) within the bound,
//     before the network is back; an idle client's connection is closed
//     within it; a client connecting during the cut gets an error, not a
//     hang;
//   - every merged statement in flight at the cut ends with a success that
//     happened or an error, once the network is back; the sale's
//     invariants hold (sale.check: stock deducted at least the OKs and at
//     most the OKs plus errors, and per client no more ledger rows than
//     that: no oversell, no double apply, no success without its
//     deduction);
//   - sales resume by themselves: a new client's sale succeeds soon after
//     the reconnect, and 10 more follow.
func TestNetworkCut(t *testing.T) {
	const (
		clients   = 24
		deadAfter = 3 * time.Second
		hold      = 8 * time.Second // longer than deadAfter: connections must be given up
		slack     = 2 * time.Second // keepalive granularity (1 s) and a loaded machine
	)
	p := startPrivateDB(t)
	s := newSaleIn(t, p.db, 1_000_000)
	bin := buildHotrow(t)
	addr, adminAddr := freeAddr(t), freeAddr(t)
	startChild(t, bin, addr, p.db, append(s.proxyArgs("netcut"), "--backend-dead-after", deadAfter.String(),
		"--admin-listen", adminAddr, "--admin-user", "admin:")...)

	var (
		mu    sync.Mutex
		execs []timedErr // the buyers' deductions
	)
	s.onExec = func(start time.Time, err error) {
		mu.Lock()
		defer mu.Unlock()
		execs = append(execs, timedErr{start, time.Now(), err})
	}
	// A pass-through client and an idle one, logged in before the cut.
	pool, err := sql.Open("mysql", clientDSN(p.db, addr))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	passConn, err := pool.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer passConn.Close()
	idle, err := client.Connect(addr, p.db.User, p.db.Password, p.db.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()

	var passRes, idleRes, newRes timedErr
	// The cut takes effect during the docker command, between cutAt and
	// cutDone; bounds are measured from cutAt.
	var cutAt, cutDone, restoredAt, resumedAt time.Time
	// resume is the client that sells after the reconnect: its OK, and
	// its lost connections (a deduction that may have happened).
	var resume saleResult
	stop := make(chan struct{})
	results := s.run(clients, func(int) string { return addr }, func() {
		defer close(stop)
		pass := runTimed(func() error {
			var v int
			return passConn.QueryRowContext(context.Background(), "SELECT SLEEP(20)").Scan(&v)
		})
		time.Sleep(300 * time.Millisecond) // the SLEEP is running, the sale too
		cutAt = time.Now()
		if err := p.cut(); err != nil {
			t.Error(err)
			return
		}
		cutDone = time.Now()
		idleDone := runTimed(func() error {
			_ = idle.Conn.Conn.SetReadDeadline(cutAt.Add(hold))
			_, err := idle.Conn.Conn.Read(make([]byte, 1))
			return err
		})
		time.Sleep(deadAfter + slack)
		newDone := runTimed(func() error { // a client arriving during the cut
			ctx, cancel := context.WithTimeout(context.Background(), hold)
			defer cancel()
			c, err := sql.Open("mysql", clientDSN(p.db, addr))
			if err != nil {
				return err
			}
			defer c.Close()
			return c.PingContext(ctx)
		})
		time.Sleep(time.Until(cutAt.Add(hold)))
		if err := p.restore(); err != nil {
			t.Error(err)
			return
		}
		restoredAt = time.Now()
		passRes, idleRes, newRes = <-pass, <-idleDone, <-newDone
		deadline := restoredAt.Add(30 * time.Second)
		for resumedAt.IsZero() && time.Now().Before(deadline) {
			c, err := sql.Open("mysql", clientDSN(p.db, addr))
			if err != nil {
				t.Error(err)
				return
			}
			res, err := c.Exec("UPDATE inventory SET stock = stock - 1 WHERE sku_id = 1 AND stock >= 1")
			c.Close()
			var my *mysql.MySQLError
			switch {
			case err == nil:
				if n, _ := res.RowsAffected(); n == 1 {
					resumedAt = time.Now()
					resume.ok++
				}
			case errors.As(err, &my) && my.Number == 2013:
				resume.failed, resume.lastError = resume.failed+1, err
			}
			if resumedAt.IsZero() {
				time.Sleep(100 * time.Millisecond)
			}
		}
		time.Sleep(500 * time.Millisecond) // buyers still running sell on too
	}, stop)

	since := func(t time.Time) time.Duration { return t.Sub(cutAt).Round(time.Millisecond) }
	var my *mysql.MySQLError
	if passRes.err == nil || errors.As(passRes.err, &my) && my.Number != 2013 {
		t.Errorf("pass-through statement in flight: %v, want a lost connection", passRes.err)
	}
	if !passRes.end.Before(cutAt.Add(deadAfter + slack)) {
		t.Errorf("pass-through statement in flight failed %v after the cut, want within %v", since(passRes.end), deadAfter+slack)
	}
	if idleRes.err == nil || errors.Is(idleRes.err, os.ErrDeadlineExceeded) || !idleRes.end.Before(cutAt.Add(deadAfter+slack)) {
		t.Errorf("idle client: %v %v after the cut, want its connection closed within %v", idleRes.err, since(idleRes.end), deadAfter+slack)
	}
	if newRes.err == nil || errors.Is(newRes.err, context.DeadlineExceeded) {
		t.Errorf("client connecting during the cut: %v, want a connection error before the network is back", newRes.err)
	}
	if resumedAt.IsZero() {
		t.Fatalf("no sale succeeded within 30s of the reconnect")
	}
	// The deductions the cut held up: started before the network was
	// back, ended after the cut was in effect.
	var inFlight, failed int
	var lastEnd time.Time
	errs := map[string]int{}
	for _, e := range execs {
		if !e.start.Before(restoredAt) || !e.end.After(cutDone) {
			continue
		}
		inFlight++
		if e.err != nil {
			failed++
			errs[e.err.Error()]++
		}
		if e.end.After(lastEnd) {
			lastEnd = e.end
		}
	}
	if lastEnd.After(restoredAt.Add(15 * time.Second)) {
		t.Errorf("a deduction in flight at the cut ended %v after the reconnect", lastEnd.Sub(restoredAt))
	}
	// The cut must have been seen: by the merger on its connection (a
	// batch retried or resolved), or, when the statement in flight ran
	// alone on its client's connection, by that client (2013).
	st := hotrowStatus(t, adminAddr)
	if st["retries"]+st["resolved"] == 0 && failed == 0 {
		t.Errorf("the merger neither retried nor resolved a batch (status %v) and no deduction failed: the cut went unseen", st)
	}
	s.settle(t)
	results = append(results, resume)
	ledger := s.check(t, "after the cut", results)
	ok, _ := sum(results)
	t.Logf("cut (docker network disconnect took %v) for %v, reconnected %v after: pass-through statement failed %v after the cut (%v); idle client closed after %v (%v); "+
		"client connecting during the cut: %v after the cut (%v)",
		cutDone.Sub(cutAt).Round(time.Millisecond), hold, since(restoredAt), since(passRes.end), passRes.err, since(idleRes.end), idleRes.err, since(newRes.end), newRes.err)
	t.Logf("%d deductions held up by the cut: %d errors %v, last one ended %v after the cut (%v after the reconnect); "+
		"merger: %d batches retried, %d commits resolved; a new client sold %v after the reconnect; buyers and the new client told OK %d times, ledger %d rows",
		inFlight, failed, errs, since(lastEnd), lastEnd.Sub(restoredAt).Round(time.Millisecond), st["retries"], st["resolved"],
		resumedAt.Sub(restoredAt).Round(time.Millisecond), ok, ledger)
	s.sellOn(t, addr, 10)
	s.check(t, "after selling on", results)
}
