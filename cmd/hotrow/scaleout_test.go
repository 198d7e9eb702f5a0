package main

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// roundRobin is a TCP load balancer in front of several proxies, as
// HAProxy in tcp mode with roundrobin: each new connection goes to the
// next address.
type roundRobin struct {
	ln    net.Listener
	addrs []string
	next  atomic.Int64
	wg    sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func startRoundRobin(t *testing.T, addrs ...string) *roundRobin {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lb := &roundRobin{ln: ln, addrs: addrs, conns: map[net.Conn]struct{}{}}
	lb.wg.Add(1)
	go lb.serve()
	t.Cleanup(lb.close)
	return lb
}

func (lb *roundRobin) serve() {
	defer lb.wg.Done()
	for {
		c, err := lb.ln.Accept()
		if err != nil {
			return
		}
		addr := lb.addrs[int(lb.next.Add(1)-1)%len(lb.addrs)]
		lb.wg.Add(1)
		go func() {
			defer lb.wg.Done()
			defer c.Close()
			b, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				return // as HAProxy without a health check: the client sees a close
			}
			defer b.Close()
			lb.track(c, b)
			done := make(chan struct{}, 2)
			pump := func(dst, src net.Conn) {
				_, _ = io.Copy(dst, src)
				if tc, ok := dst.(*net.TCPConn); ok {
					_ = tc.CloseWrite()
				}
				done <- struct{}{}
			}
			go pump(b, c)
			go pump(c, b)
			<-done
			c.Close()
			b.Close()
			<-done
			lb.untrack(c, b)
		}()
	}
}

func (lb *roundRobin) track(cs ...net.Conn) {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	for _, c := range cs {
		lb.conns[c] = struct{}{}
	}
}

func (lb *roundRobin) untrack(cs ...net.Conn) {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	for _, c := range cs {
		delete(lb.conns, c)
	}
}

func (lb *roundRobin) close() {
	lb.ln.Close()
	lb.mu.Lock()
	for c := range lb.conns {
		c.Close()
	}
	lb.mu.Unlock()
	lb.wg.Wait()
}

// TestScaleOutCrash: two proxy instances behind a round-robin TCP balancer
// sell from the same hot row, their batches serialising on the row lock;
// one is killed with SIGKILL mid-sale. Its clients get errors, the other's
// go on; every OK of both is a deduction and every deduction was told OK
// or in flight (sale.check), and the killed instance, restarted with its
// id, sells on.
func TestScaleOutCrash(t *testing.T) {
	const clients = 24
	s := newSale(t, 1_000_000)
	bin := buildHotrow(t)
	insts := s.startInstances(t, bin, "scale-a", "scale-b")
	lb := startRoundRobin(t, insts[0].addr, insts[1].addr)
	lbAddr := lb.ln.Addr().String()
	stop := make(chan struct{})
	results := s.run(clients, func(int) string { return lbAddr }, func() {
		time.Sleep(300 * time.Millisecond) // mid-sale
		insts[0].kill()
		time.Sleep(300 * time.Millisecond) // instance b sells on alone
		close(stop)
	}, stop)
	s.settle(t)
	ledger := s.check(t, "after the crash of one instance", results)
	ok, failed := sum(results)
	rows := s.ledgerRows(t, "scale-a", "scale-b")
	t.Logf("%d clients through the balancer: %d told OK, %d failed (the killed instance's); ledger %d rows, %v by instance a, %v by b",
		clients, ok, failed, ledger, rows["scale-a"], rows["scale-b"])
	if len(rows["scale-a"]) == 0 || len(rows["scale-b"]) == 0 {
		t.Errorf("ledger rows by instance: a %v, b %v; want both selling", rows["scale-a"], rows["scale-b"])
	}
	if failed == 0 || failed == clients {
		t.Errorf("%d of %d clients failed; want those of the killed instance only", failed, clients)
	}
	insts[0].restart(t)
	s.sellOn(t, lbAddr, 10) // through both instances
	s.check(t, "after the restart", results)
}
