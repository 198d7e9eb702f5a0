package proxy

import (
	"runtime"
	"testing"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/hotrow/hotrow/internal/testdb"
)

// heapInUse is the test process's heap in use after a GC (the proxy runs
// in it).
func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// servesOthers checks that another session through p answers 20 queries,
// each within a second, and closes it.
func servesOthers(t *testing.T, p *testProxy) {
	t.Helper()
	other := open(t, p.db, p.addr)
	defer other.Close()
	for range 20 {
		start := time.Now()
		var one int
		if err := other.QueryRow("SELECT 1").Scan(&one); err != nil || time.Since(start) > time.Second {
			t.Fatalf("another session: %v after %v", err, time.Since(start))
		}
	}
}

// TestSlowReader: a client asks for a 190 MiB result and does not read
// it. The proxy relays with backpressure (the server waits, the proxy
// buffers no more than a packet), so its memory stays flat and other
// sessions are served; when the client finally reads, the packets arrive
// intact, and when it goes away, its server session ends.
func TestSlowReader(t *testing.T) {
	db := testdb.New(t)
	p := startProxy(t, db)
	root := testdb.Shared(t).Root(t)
	base := heapInUse()
	c, login := dialRaw(t, p.addr, db.User, db.Password, db.Name)
	if login[0] != headerOK {
		t.Fatalf("login: %x", login)
	}
	const rowBytes, rows = 64 << 10, 3000
	c.command(comQuery("SELECT REPEAT('x', 65536) FROM seq_1_to_3000"))
	var peak uint64
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		peak = max(peak, heapInUse())
	}
	growth := int64(peak) - int64(base)
	t.Logf("heap in use %d KiB before, at most %d KiB while the client does not read (%d MiB result)",
		base>>10, peak>>10, rowBytes*rows>>20)
	if growth > 16<<20 {
		t.Errorf("the proxy's heap grew by %d MiB for a client that does not read", growth>>20)
	}
	servesOthers(t, p)
	// Read the column count, the column definition, EOF and a few rows.
	for i := range 10 {
		pkt, err := c.read()
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		// A row: the value's length (0xfd and 3 bytes), then the value.
		if i >= 3 && (len(pkt) != 4+rowBytes || pkt[0] != 0xfd || pkt[4] != 'x' || pkt[len(pkt)-1] != 'x') {
			t.Fatalf("row packet %d: %d bytes, want %d", i, len(pkt), 4+rowBytes)
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.conn.Close()
	testdb.WaitFor(t, 10*time.Second, "the slow client's server session to end", func() bool {
		return processCount(t, root, db.User, db.Name) == 0
	})
}

// TestHalfPacketStall: a client sends half a command and stops. Only its
// session waits; others are served; when the server ends that session
// (wait_timeout here), the proxy closes the client, as the server would
// have.
func TestHalfPacketStall(t *testing.T) {
	db := testdb.New(t)
	p := startProxy(t, db)
	c, login := dialRaw(t, p.addr, db.User, db.Password, db.Name)
	if login[0] != headerOK {
		t.Fatalf("login: %x", login)
	}
	c.command(comQuery("SET SESSION wait_timeout = 2"))
	if ok, err := c.read(); err != nil || ok[0] != headerOK {
		t.Fatalf("SET: %x, %v", ok, err)
	}
	start := time.Now()
	if _, err := c.conn.Write([]byte{100, 0, 0, 0, gomysql.COM_QUERY, 'S', 'E', 'L'}); err != nil {
		t.Fatal(err)
	}
	servesOthers(t, p)
	if !c.isClosed() {
		t.Fatal("the stalled client is still open 10 s after the server's wait_timeout")
	}
	took := time.Since(start)
	t.Logf("closed %v after the half packet (wait_timeout 2 s)", took.Round(time.Millisecond))
	if took < 2*time.Second {
		t.Errorf("closed after %v, before the server's wait_timeout", took)
	}
}
