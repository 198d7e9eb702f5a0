package main

import (
	"bufio"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hotrow/hotrow/internal/localdb"
	"github.com/hotrow/hotrow/internal/testdb"
)

// TestProxyFeed: `hotrow proxy --binlog-sink` runs the order feed beside
// the proxy with the proxy's settings: every deduction, made through the
// proxy (in a batch, an event per ledger row; alone on the client's
// connection, an event of the row change) or directly on the server,
// becomes exactly one event; the admin port and the metrics show the
// feed's progress.
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
	meta := db.Name + "_meta"
	t.Cleanup(func() { _, _ = direct.Exec("DROP DATABASE IF EXISTS `" + meta + "`") })
	adminAddr, metricsAddr := freeAddr(t), freeAddr(t)
	startChild(t, buildHotrow(t), listen, db, "--hot-rule", db.Name+".inventory:sku_id:stock", "--meta-schema", meta,
		"--instance-id", "feedtest", "--binlog-sink", "jsonl:"+out, "--binlog-name", db.Name, "--binlog-from-start",
		"--admin-listen", adminAddr, "--metrics-listen", metricsAddr)
	viaProxy, err := sql.Open("mysql", clientDSN(db, listen))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { viaProxy.Close() })

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
	var ledger int
	if err := direct.QueryRow("SELECT COUNT(*) FROM `" + meta + "`.ledger").Scan(&ledger); err != nil {
		t.Fatal(err)
	}
	if fromBatches != ledger || fromDirect != directN+merged-ledger || units != 1000-stock {
		t.Fatalf("feed: %d batch + %d row-change events, %d units; want %d ledger rows + %d direct + %d alone, %d units",
			fromBatches, fromDirect, units, ledger, directN, merged-ledger, 1000-stock)
	}

	checkFeedStats(t, adminAddr, metricsAddr, db.Name, len(events))
}

// checkFeedStats waits for SHOW HOTROW STATUS to show the feed past n
// events with a checkpoint saved past them and nothing in flight, and for /metrics
// to carry its series.
func checkFeedStats(t *testing.T, adminAddr, metricsAddr, name string, n int) {
	t.Helper()
	adm := openDB(t, "admin", "", adminAddr, "")
	var status map[string]string
	testdb.WaitFor(t, 30*time.Second, "the feed's rows in SHOW HOTROW STATUS", func() bool {
		status = map[string]string{}
		rows, err := adm.Query("SHOW HOTROW STATUS")
		if err != nil {
			return false
		}
		defer rows.Close()
		for rows.Next() {
			var k, v string
			if rows.Scan(&k, &v) == nil {
				status[k] = v
			}
		}
		total, _ := strconv.Atoi(status["feed_events_total"])
		// The checkpoint saved at start (--binlog-from-start) has no GTID;
		// wait for one saved past the events.
		return total >= n && status["feed_in_flight_events"] == "0" && status["feed_checkpoint_gtid"] != ""
	})
	if status["feed_name"] != name || status["feed_running"] != "1" || status["feed_checkpoint_saved_at"] == "" ||
		status["feed_lag_ms"] != "0" || status["feed_events_per_sec"] == "" || status["feed_last_commit"] == "" {
		t.Errorf("feed rows: %v", status)
	}
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		`hotrow_feed_events_total{feed="` + name + `"} ` + status["feed_events_total"] + "\n",
		`hotrow_feed_lag_seconds{feed="` + name + `"} 0` + "\n",
		`hotrow_feed_in_flight_events{feed="` + name + `"} 0` + "\n",
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
