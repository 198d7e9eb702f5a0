package proxy

import (
	"context"
	"testing"
	"time"

	"github.com/hotrow/hotrow/internal/testdb"
)

// TestSessionsCountersKill: the registry lists sessions with why they are
// not mergeable, counts merged and passed-through statements, and
// KillSession ends a session.
func TestSessionsCountersKill(t *testing.T) {
	db := testdb.New(t)
	db.Exec(t, "CREATE TABLE inventory (sku_id BIGINT PRIMARY KEY, stock INT NOT NULL)",
		"INSERT INTO inventory VALUES (1, 10)")
	p, _, _ := startHotProxy(t, db)
	ctx := context.Background()
	pool := open(t, db, p.addr)
	plain, err := pool.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	inTx, err := pool.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer inTx.Close()
	if _, err := plain.ExecContext(ctx, "UPDATE inventory SET stock = stock - 1 WHERE sku_id = 1"); err != nil {
		t.Fatal(err)
	}
	if _, err := inTx.ExecContext(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	var id uint32
	if err := inTx.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&id); err != nil {
		t.Fatal(err)
	}
	reasons := map[uint32]string{}
	for _, s := range p.Sessions() {
		reasons[s.ConnID] = s.Reason
		if s.User != db.User || s.Mergeable != (s.Reason == "") {
			t.Errorf("session %+v", s)
		}
	}
	if len(reasons) != 2 || reasons[id] != "in a transaction" {
		t.Fatalf("sessions: reasons %v, want 2 with %d in a transaction", reasons, id)
	}
	c := p.Counters()
	if c.Merged != 1 || c.PassThrough != 2 || c.Sessions != 2 || c.Logins != 2 {
		t.Fatalf("Counters = %+v, want 1 merged, 2 passed through, 2 sessions", c)
	}
	if p.KillSession(999999) {
		t.Fatal("KillSession of an unknown id: want false")
	}
	if !p.KillSession(id) {
		t.Fatal("KillSession: want true")
	}
	testdb.WaitFor(t, 5*time.Second, "killed session gone", func() bool { return p.Counters().Sessions == 1 })
	if err := inTx.PingContext(ctx); err == nil {
		t.Fatal("killed session still answers")
	}
}
