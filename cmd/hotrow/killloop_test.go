package main

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// TestRepeatedKillsKeepLedgerExact: three hotrow instances sell one hot
// row with --lone-passthrough=false, so that every deduction is written
// with its ledger row (a batch of one is its own transaction: the
// statement, its ledger row and COMMIT in one round trip). The first
// instance is SIGKILLed at a random moment of the sale and restarted, 15
// times, while the others go on selling; their batches and its own wait
// for each other's row lock. After every kill, one snapshot of the stock
// and the ledger checks that the stock deducted is the ledger's rows: no
// deduction without its ledger row and no ledger row without its
// deduction, whatever statement the kill cut.
func TestRepeatedKillsKeepLedgerExact(t *testing.T) {
	const stock, kills, buyersPerInstance = 1_000_000, 15, 8
	bin := buildHotrow(t)
	s := newSale(t, stock)
	// Buyers 2 ms apart, on a new connection after an error (the kill, or
	// the instance not back yet).
	s.reconnect, s.think = true, 2*time.Millisecond
	s.flags = []string{"--lone-passthrough=false"}
	insts := s.startInstances(t, bin, "rk1", "rk2", "rk3")

	seed := rand.Uint64()
	rng := rand.New(rand.NewPCG(seed, seed))
	t.Logf("seed %d", seed)
	stop := make(chan struct{})
	s.run(buyersPerInstance*len(insts), func(i int) string { return insts[i%len(insts)].addr }, func() {
		defer close(stop)
		for k := range kills {
			time.Sleep(time.Duration(100+rng.IntN(300)) * time.Millisecond)
			insts[0].kill()
			s.checkLedgerExact(t, fmt.Sprintf("after kill %d", k+1))
			insts[0] = insts[0].restart(t)
		}
	}, stop)
	s.settle(t)
	left := s.checkLedgerExact(t, "at the end")
	if stock-left < 1000 {
		t.Errorf("only %d units sold: the kills were not mid-sale", stock-left)
	}
	t.Logf("%d units sold through 3 instances, the first killed %d times", stock-left, kills)
}

// checkLedgerExact checks, in one snapshot, that row 1's stock deducted
// equals its ledger rows, and returns the stock left.
func (s *sale) checkLedgerExact(t *testing.T, phase string) int {
	t.Helper()
	var left, ledger int
	if err := s.root.QueryRow("SELECT (SELECT stock FROM inventory WHERE sku_id = 1), (SELECT COUNT(*) FROM `"+s.meta+"`.ledger WHERE table_schema = ? AND key_value = '1')",
		s.db.Name).Scan(&left, &ledger); err != nil {
		t.Fatal(err)
	}
	if s.stock-left != ledger {
		t.Errorf("%s: %d deducted, %d ledger rows", phase, s.stock-left, ledger)
		s.logLedgerGaps(t, left)
	}
	return left
}
