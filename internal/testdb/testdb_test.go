package testdb

import (
	"testing"
)

func TestMain(m *testing.M) { Main(m) }

func TestServerIsDurableWithBinlog(t *testing.T) {
	db := New(t)
	conn := db.Open(t)
	want := map[string]string{
		"log_bin":                        "ON",
		"binlog_format":                  "ROW",
		"sync_binlog":                    "1",
		"innodb_flush_log_at_trx_commit": "1",
	}
	for name, v := range want {
		var got, n string
		if err := conn.QueryRow("SHOW GLOBAL VARIABLES LIKE '"+name+"'").Scan(&n, &got); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if db.Local != nil && got != v {
			t.Errorf("%s = %q, want %q", name, got, v)
		}
	}
	var cur string
	if err := conn.QueryRow("SELECT DATABASE()").Scan(&cur); err != nil || cur != db.Name {
		t.Fatalf("DATABASE() = %q, %v; want %q", cur, err, db.Name)
	}
}
