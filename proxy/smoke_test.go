package proxy

import (
	"testing"

	"github.com/hotrow/hotrow/internal/testdb"
)

func TestSmokePassThrough(t *testing.T) {
	db := testdb.New(t)
	p := startProxy(t, db)
	conn := open(t, db, p.addr)
	if _, err := conn.Exec("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec("INSERT INTO t VALUES (1, 'a'), (2, 'b')"); err != nil {
		t.Fatal(err)
	}
	var v string
	if err := conn.QueryRow("SELECT v FROM t WHERE id = ?", 2).Scan(&v); err != nil || v != "b" {
		t.Fatalf("got %q, %v", v, err)
	}
}
