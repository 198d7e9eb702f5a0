package main

import (
	"bufio"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/hotrow/hotrow/internal/localdb"
	"github.com/hotrow/hotrow/internal/testdb"
)

// childArgs, when set, makes the test binary run `hotrow proxy` with these
// arguments (separated by \x1f) instead of the tests.
const childArgs = "HOTROW_CMD_PROXY_ARGS"

func TestMain(m *testing.M) {
	if args := os.Getenv(childArgs); args != "" {
		if err := proxyMain(strings.Split(args, "\x1f")); err != nil {
			fmt.Fprintln(os.Stderr, "hotrow proxy:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	testdb.Main(m)
}

// TestProxyFeed: `hotrow proxy --binlog-sink` runs the order feed beside
// the proxy with the proxy's settings: every deduction, merged through the
// proxy or made directly on the server, becomes exactly one event.
func TestProxyFeed(t *testing.T) {
	db := testdb.New(t)
	direct := db.Open(t)
	db.Exec(t, "CREATE TABLE inventory (sku_id INT PRIMARY KEY, stock INT NOT NULL)",
		"INSERT INTO inventory VALUES (1, 1000)")
	port, err := localdb.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	listen := "127.0.0.1:" + strconv.Itoa(port)
	out := filepath.Join(t.TempDir(), "orders.jsonl")
	srv := db.Server
	args := []string{"--listen", listen, "--backend", srv.Addr, "--user", srv.User + ":" + srv.Password,
		"--hot-rule", db.Name + ".inventory:sku_id:stock", "--meta-schema", db.Name + "_meta", "--instance-id", "feedtest",
		"--binlog-sink", "jsonl:" + out, "--binlog-name", db.Name, "--binlog-from-start"}
	t.Cleanup(func() { _, _ = direct.Exec("DROP DATABASE IF EXISTS `" + db.Name + "_meta`") })
	logPath := filepath.Join(t.TempDir(), "proxy.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childArgs+"="+strings.Join(args, "\x1f"))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); logFile.Close() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("proxy log:\n%s", b)
		}
	})

	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = srv.User, srv.Password, "tcp", listen, db.Name
	viaProxy, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { viaProxy.Close() })
	testdb.WaitFor(t, 20*time.Second, "the proxy to accept clients", func() bool { return viaProxy.Ping() == nil })

	// 32 buyers through the proxy, one unit each, while the server also
	// takes 20 direct deductions of 2 units.
	const buyers, each, directN = 32, 10, 20
	var wg sync.WaitGroup
	errs := make(chan error, buyers+1)
	var mu sync.Mutex
	merged := 0
	for range buyers {
		wg.Go(func() {
			for range each {
				r, err := viaProxy.Exec("UPDATE inventory SET stock = stock - 1 WHERE sku_id = 1 AND stock >= 1")
				if err != nil {
					errs <- err
					return
				}
				n, _ := r.RowsAffected()
				mu.Lock()
				merged += int(n)
				mu.Unlock()
			}
		})
	}
	wg.Go(func() {
		for range directN {
			if _, err := direct.Exec("UPDATE inventory SET stock = stock - 2 WHERE sku_id = 1"); err != nil {
				errs <- err
				return
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var stock int
	if err := direct.QueryRow("SELECT stock FROM inventory WHERE sku_id = 1").Scan(&stock); err != nil {
		t.Fatal(err)
	}
	if want := 1000 - merged - 2*directN; stock != want || merged != buyers*each {
		t.Fatalf("stock %d after %d merged grants, want %d and %d grants", stock, merged, want, buyers*each)
	}

	// Every deduction reaches the sink exactly once (by id).
	type event struct {
		ID, Kind, Table, Key, Batch string
		Quantity                    json.Number
	}
	var events map[string]event
	testdb.WaitFor(t, 30*time.Second, "every deduction in the feed", func() bool {
		events = map[string]event{}
		f, err := os.Open(out)
		if err != nil {
			return false
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var e event
			if json.Unmarshal(sc.Bytes(), &e) == nil {
				events[e.ID] = e
			}
		}
		return len(events) >= merged+directN
	})
	var fromBatches, fromDirect, units int
	for _, e := range events {
		if e.Kind != "order" || e.Table != db.Name+".inventory" || e.Key != "1" {
			t.Errorf("unexpected event %+v", e)
			continue
		}
		q, _ := e.Quantity.Int64()
		units += int(q)
		if e.Batch != "" {
			fromBatches++
		} else {
			fromDirect++
		}
	}
	if fromBatches != merged || fromDirect != directN || units != 1000-stock {
		t.Fatalf("feed: %d merged + %d direct events, %d units; want %d + %d, %d units", fromBatches, fromDirect, units, merged, directN, 1000-stock)
	}
}
