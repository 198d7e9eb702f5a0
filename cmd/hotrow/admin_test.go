package main

import (
	"database/sql"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/hotrow/hotrow/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestAdminRefusesOpenAddressWithoutPassword: a non-loopback admin
// address without a password stops the proxy at start.
func TestAdminRefusesOpenAddressWithoutPassword(t *testing.T) {
	err := proxyMain([]string{"--backend", "127.0.0.1:1", "--user", "app:pw",
		"--admin-listen", "0.0.0.0:0", "--admin-user", "admin:"})
	if err == nil || !strings.Contains(err.Error(), "set a password") {
		t.Fatalf("proxyMain = %v, want a refusal naming the password", err)
	}
}

// TestProxyWithAdminAndMetrics runs `hotrow proxy` in process with the
// admin port and metrics on, reads hot_rules seeded from --hot-rule,
// scrapes /metrics, and stops it with SIGINT.
func TestProxyWithAdminAndMetrics(t *testing.T) {
	db := testdb.New(t)
	db.Exec(t, "CREATE TABLE inventory (sku_id BIGINT PRIMARY KEY, stock INT NOT NULL)", "INSERT INTO inventory VALUES (1, 10)")
	meta := db.Name + "_meta"
	t.Cleanup(func() {
		root, err := sql.Open("mysql", db.Server.DSN(""))
		if err == nil {
			_, _ = root.Exec("DROP DATABASE IF EXISTS `" + meta + "`")
			root.Close()
		}
	})
	listen, adminAddr, metricsAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	done := make(chan error, 1)
	go func() {
		done <- proxyMain([]string{"--listen", listen, "--backend", db.Addr, "--user", db.User + ":" + db.Password,
			"--hot-rule", db.Name + ".inventory:sku_id:stock", "--meta-schema", meta, "--log-level", "warn",
			"--admin-listen", adminAddr, "--admin-user", "admin:secret", "--metrics-listen", metricsAddr})
	}()
	c := mysql.NewConfig()
	c.User, c.Passwd, c.Net, c.Addr = "admin", "secret", "tcp", adminAddr
	adm, err := sql.Open("mysql", c.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
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
