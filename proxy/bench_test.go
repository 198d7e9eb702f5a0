package proxy

import (
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/hotrow/hotrow/internal/testdb"
)

// BenchmarkOverhead measures what the pass-through costs: a point SELECT
// by primary key (one round trip: text protocol, interpolated parameter)
// at 1 and 16 concurrent clients, directly and through the proxy in the
// same run. The proxy runs report the latency added per query
// (us_added/query) and their throughput against direct (pct_of_direct).
// The tcp-relay runs go through a plain byte pump (two io.Copy per
// connection): the floor of any user-space TCP proxy on the machine.
//
//	go test -run XXX -bench Overhead -benchtime 5s ./proxy/
func BenchmarkOverhead(b *testing.B) {
	db := testdb.New(b)
	rows := make([]string, 1000)
	for i := range rows {
		rows[i] = fmt.Sprintf("(%d, 'value %d', %d)", i, i, i*7)
	}
	db.Exec(b, "CREATE TABLE kv (id INT PRIMARY KEY, v VARCHAR(64), n INT)",
		"INSERT INTO kv VALUES "+strings.Join(rows, ","))
	p := startProxy(b, db)
	relay := startRelay(b, db.Addr)
	for _, clients := range []int{1, 16} {
		var directNs float64
		for _, tg := range []struct{ name, addr string }{{"direct", db.Addr}, {"proxy", p.addr}, {"tcp-relay", relay}} {
			b.Run(fmt.Sprintf("clients=%d/%s", clients, tg.name), func(b *testing.B) {
				pool := open(b, db, tg.addr, func(c *mysql.Config) { c.InterpolateParams = true })
				pool.SetMaxOpenConns(clients)
				pool.SetMaxIdleConns(clients)
				const query = "SELECT v, n FROM kv WHERE id = ?"
				get := func(id int) error {
					var v string
					var n int
					return pool.QueryRow(query, id%len(rows)).Scan(&v, &n)
				}
				for i := range clients { // open every connection before timing
					if err := get(i); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportAllocs()
				b.ResetTimer()
				if clients == 1 {
					for i := 0; b.Loop(); i++ {
						if err := get(i); err != nil {
							b.Fatal(err)
						}
					}
				} else {
					b.SetParallelism((clients + 1) / 2) // GOMAXPROCS × parallelism goroutines
					b.RunParallel(func(pb *testing.PB) {
						for i := 0; pb.Next(); i++ {
							if err := get(i); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
				if tg.name == "direct" {
					directNs = ns
					return
				}
				// proxy and tcp-relay: compared with direct.
				if directNs > 0 {
					// Each of the clients waits ns per query in turn.
					b.ReportMetric(float64(clients)*(ns-directNs)/1000, "us_added/query")
					b.ReportMetric(100*directNs/ns, "pct_of_direct")
				}
			})
		}
	}
}

// startRelay listens on a loopback port and copies bytes between each
// client and a new connection to backend, until cleanup.
func startRelay(b *testing.B, backend string) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex // guards conns
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			be, err := net.Dial("tcp", backend)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, be)
			mu.Unlock()
			wg.Go(func() { _, _ = io.Copy(be, c); be.Close() })
			wg.Go(func() { _, _ = io.Copy(c, be); c.Close() })
		}
	})
	b.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}
