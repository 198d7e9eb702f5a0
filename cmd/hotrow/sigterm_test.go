package main

import (
	"syscall"
	"testing"
	"time"
)

// TestSigtermMidSale: SIGTERM while 24 clients buy from one hot row,
// batches running. The proxy stops accepting, lets every running
// statement finish and answer (the drain), exits 0, and leaves nothing to
// recover: the stock deducted is exactly the OKs told (no deduction
// without its answer), the sale's invariants hold, and a restarted proxy
// sells on.
func TestSigtermMidSale(t *testing.T) {
	const clients = 24
	s := newSale(t, 1_000_000)
	bin := buildHotrow(t)
	addr := freeAddr(t)
	child := startChild(t, bin, addr, s.db, append(s.proxyArgs("sigterm-test"), "--drain-timeout", "10s")...)
	var exited time.Duration
	results := s.run(clients, func(int) string { return addr }, func() {
		time.Sleep(300 * time.Millisecond) // mid-sale
		start := time.Now()
		if err := child.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Error(err)
		}
		select {
		case <-child.done:
			exited = time.Since(start)
		case <-time.After(20 * time.Second):
			t.Error("the proxy did not exit within 20 s of SIGTERM")
			child.kill()
		}
	}, nil)
	if code := child.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}
	ledger := s.check(t, "after SIGTERM", results)
	ok, failed := sum(results)
	var left int
	if err := s.root.QueryRow("SELECT stock FROM inventory WHERE sku_id = 1").Scan(&left); err != nil {
		t.Fatal(err)
	}
	if deducted := s.stock - left; deducted != ok {
		t.Errorf("%d deducted, %d told OK: a drained proxy answers every deduction it made", deducted, ok)
	}
	t.Logf("%d clients: %d told OK, %d sessions ended by the shutdown, %d ledger rows; exited %v after SIGTERM",
		clients, ok, failed, ledger, exited.Round(time.Millisecond))
	child.restart(t)
	s.sellOn(t, addr, 10)
	s.check(t, "after the restart", results)
}
