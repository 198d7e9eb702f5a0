package main

import (
	"database/sql"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/hotrow/hotrow/internal/testdb"
)

// TestAdminRefusesOpenAddressWithoutPassword: a non-loopback admin
// address without a password stops the proxy at start.
func TestAdminRefusesOpenAddressWithoutPassword(t *testing.T) {
	err := proxyMain([]string{"--backend", "127.0.0.1:1", "--user", "app:pw",
		"--admin-listen", "0.0.0.0:0", "--admin-user", "admin:"})
	if err == nil || !strings.Contains(err.Error(), "set a password") {
		t.Fatalf("proxyMain = %v, want a refusal naming the password", err)
	}
}

// runProxy runs `hotrow proxy` in process with args; stop sends SIGINT
// and waits for it to return.
func runProxy(t *testing.T, args ...string) (stop func()) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- proxyMain(args) }()
	return func() {
		t.Helper()
		if err := syscall.Kill(syscall.Getpid(), syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("proxyMain: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("proxyMain did not stop on SIGINT")
		}
	}
}

func openDB(t *testing.T, user, password, addr, db string) *sql.DB {
	t.Helper()
	c := mysql.NewConfig()
	c.User, c.Passwd, c.Net, c.Addr, c.DBName = user, password, "tcp", addr, db
	conn, err := sql.Open("mysql", c.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// TestProxyWithAdminAndMetrics runs `hotrow proxy` in process with the
// admin port and metrics on: hot_rules is seeded from --hot-rule, /metrics
// answers, a rule changed and saved on the admin port survives a restart
// whose flags name no rule, and merging follows it.
func TestProxyWithAdminAndMetrics(t *testing.T) {
	db := testdb.New(t)
	db.Exec(t, "CREATE TABLE inventory (sku_id BIGINT PRIMARY KEY, stock INT NOT NULL)", "INSERT INTO inventory VALUES (1, 10)",
		"CREATE TABLE flash (id BIGINT PRIMARY KEY, qty INT NOT NULL)", "INSERT INTO flash VALUES (1, 10)")
	meta := db.Sibling(t, "_meta")
	listen, adminAddr, metricsAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	common := []string{"--listen", listen, "--backend", db.Addr, "--user", db.User + ":" + db.Password,
		"--meta-schema", meta, "--log-level", "warn", "--admin-listen", adminAddr, "--admin-user", "admin:secret"}
	stop := runProxy(t, append(common, "--hot-rule", db.Name+".inventory:sku_id:stock", "--metrics-listen", metricsAddr)...)
	adm := openDB(t, "admin", "secret", adminAddr, "")
	testdb.WaitFor(t, 30*time.Second, "the admin port", func() bool { return adm.Ping() == nil })
	var table string
	var enabled int
	if err := adm.QueryRow("SELECT table_name, enabled FROM hot_rules").Scan(&table, &enabled); err != nil || table != "inventory" || enabled != 1 {
		t.Fatalf("hot_rules: %q %d %v", table, enabled, err)
	}
	testdb.WaitFor(t, 10*time.Second, "/metrics", func() bool {
		resp, err := http.Get("http://" + metricsAddr + "/metrics")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	for _, q := range []string{"DELETE FROM hot_rules", "INSERT INTO hot_rules VALUES ('" + db.Name + "', 'flash', 'id', 'qty', 1)",
		"LOAD HOT RULES TO RUNTIME", "SAVE HOT RULES TO DISK"} {
		if _, err := adm.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	stop()
	adm.Close()

	stop = runProxy(t, common...)
	defer stop()
	adm = openDB(t, "admin", "secret", adminAddr, "")
	testdb.WaitFor(t, 30*time.Second, "the admin port after the restart", func() bool { return adm.Ping() == nil })
	if err := adm.QueryRow("SELECT table_name FROM runtime_hot_rules").Scan(&table); err != nil || table != "flash" {
		t.Fatalf("runtime rule after the restart: %q %v, want flash", table, err)
	}
	app := openDB(t, db.User, db.Password, listen, db.Name)
	if _, err := app.Exec("UPDATE flash SET qty = qty - 1 WHERE id = 1 AND qty >= 1"); err != nil {
		t.Fatal(err)
	}
	var merged string
	rows, err := adm.Query("SHOW HOTROW STATUS")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var name, value string
		if err := rows.Scan(&name, &value); err != nil {
			t.Fatal(err)
		}
		if name == "statements_merged" {
			merged = value
		}
	}
	if merged != "1" {
		t.Fatalf("statements_merged = %q after the restart, want 1", merged)
	}
}

// TestAutoHotWithoutAdminPort: --auto-hot alone vets and promotes a hot
// key (shown in the metrics).
func TestAutoHotWithoutAdminPort(t *testing.T) {
	db := testdb.New(t)
	db.Exec(t, "CREATE TABLE inventory (sku_id BIGINT PRIMARY KEY, stock INT NOT NULL)", "INSERT INTO inventory VALUES (1, 100)")
	meta := db.Sibling(t, "_meta")
	listen, metricsAddr := freeAddr(t), freeAddr(t)
	stop := runProxy(t, "--listen", listen, "--backend", db.Addr, "--user", db.User+":"+db.Password,
		"--meta-schema", meta, "--log-level", "warn", "--auto-hot", "--hot-threshold", "4", "--metrics-listen", metricsAddr)
	defer stop()
	app := openDB(t, db.User, db.Password, listen, db.Name)
	testdb.WaitFor(t, 30*time.Second, "the proxy", func() bool { return app.Ping() == nil })
	direct := db.Open(t)
	tx, err := direct.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("SELECT stock FROM inventory WHERE sku_id = 1 FOR UPDATE"); err != nil {
		t.Fatal(err)
	}
	const n = 6
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := app.Exec("UPDATE inventory SET stock = stock - 1 WHERE sku_id = 1 AND stock >= 1")
			errs <- err
		}()
	}
	testdb.WaitFor(t, 15*time.Second, "hotrow_auto_hot_rules_total 1", func() bool {
		resp, err := http.Get("http://" + metricsAddr + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(b), "\nhotrow_auto_hot_rules_total 1\n")
	})
	_ = tx.Rollback()
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
