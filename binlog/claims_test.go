package binlog

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/hotrow/hotrow/merger"
)

// TestClaimEvents: merged claims (UPDATEs inside client transactions)
// are events when their confirmation commits, with the claim's id; a
// cancelled claim, its ledger row and its stock coming back are none; a
// confirmation rolled back is none. Autocommit requests in the same
// batches keep their ledger events.
func TestClaimEvents(t *testing.T) {
	f := newFeedFixture(t, "INT")
	conn := f.db.Open(t)
	if _, err := conn.Exec("INSERT INTO inv (sku, stock) VALUES ('a', 1000)"); err != nil {
		t.Fatal(err)
	}
	f.start(t)
	mcfg := merger.DefaultConfig()
	mcfg.DSN = f.db.DSN()
	mcfg.MetaSchema = f.meta
	m, err := merger.New(context.Background(), mcfg, feedLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	matcher := merger.NewMatcher([]merger.Rule{{Schema: f.db.Name, Table: "inv", Key: "sku", Stock: "stock"}})
	ctx := context.Background()
	type res struct {
		out merger.Outcome
		err error
	}
	const n = 24
	results := make(chan res, n)
	for i := range n {
		go func() {
			st, args, ok := matcher.MatchText(f.db.Name, fmt.Sprintf("UPDATE inv SET stock = stock - %d WHERE sku = 'a' AND stock >= %d", i%3+1, i%3+1))
			if !ok {
				results <- res{err: fmt.Errorf("not mergeable")}
				return
			}
			req := merger.Request{Stmt: st, Args: args, ConnID: uint32(100 + i)}
			if i%4 != 0 {
				req.Claim = &merger.Owner{ConnID: uint32(100 + i)}
			}
			out, err := m.Do(ctx, req)
			results <- res{out, err}
		}()
	}
	var confirmed, cancelled, rolledBack []string
	autocommit := 0
	for range n {
		r := <-results
		if r.err != nil || r.out.Matched != 1 {
			t.Fatalf("request: %+v, %v", r.out, r.err)
		}
		if r.out.ClaimID == "" {
			autocommit++
			continue
		}
		switch (len(confirmed) + len(cancelled) + len(rolledBack)) % 3 {
		case 0:
			confirmed = append(confirmed, r.out.ClaimID)
		case 1:
			cancelled = append(cancelled, r.out.ClaimID)
		default:
			rolledBack = append(rolledBack, r.out.ClaimID)
		}
	}
	for _, id := range append(confirmed, rolledBack...) {
		tx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec("INSERT INTO inv (sku, stock) VALUES (?, 1)", "o-"+id[len(id)-4:]); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(string(m.ConfirmSQL(nil, id))); err != nil {
			t.Fatal(err)
		}
		if contains(rolledBack, id) {
			err = tx.Rollback()
		} else {
			err = tx.Commit()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range append(cancelled, rolledBack...) {
		if ok, err := m.Cancel(ctx, id); !ok || err != nil {
			t.Fatalf("cancel %s: %v, %v", id, ok, err)
		}
	}
	// A marker transaction after everything: its event tells the feed
	// has read past the cancels.
	if _, err := conn.Exec("UPDATE inv SET stock = stock - 1 WHERE sku = 'a'"); err != nil {
		t.Fatal(err)
	}
	want := autocommit + len(confirmed) + 1
	evs := f.waitEvents(t, want)
	time.Sleep(500 * time.Millisecond)
	evs = readEvents(t, f.out)
	var ids []string
	byID := map[string]Event{}
	for _, ev := range evs {
		if ev.Kind == KindRow {
			continue
		}
		ids = append(ids, ev.ID)
		byID[ev.ID] = ev
	}
	sort.Strings(ids)
	if len(ids) != want {
		t.Fatalf("%d events, want %d (%d autocommit, %d confirmed, 1 direct): %v", len(ids), want, autocommit, len(confirmed), ids)
	}
	for _, id := range confirmed {
		ev, ok := byID[id]
		if !ok || ev.Kind != KindOrder || ev.Key != "a" || ev.Table != f.db.Name+".inv" {
			t.Errorf("confirmed claim %s: event %+v (found %v)", id, ev, ok)
		}
	}
	for _, id := range append(cancelled, rolledBack...) {
		if _, ok := byID[id]; ok {
			t.Errorf("cancelled claim %s has an event", id)
		}
	}
	for _, ev := range evs {
		if ev.Kind == KindRestock {
			t.Errorf("restock event %+v (a cancel's restore)", ev)
		}
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
