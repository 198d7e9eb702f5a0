package merger

import (
	"testing"
	"time"
)

// TestRowUsers: a row is cold until two users at once or threshold
// holders make it hot, for txHotWindow; rows no longer used nor hot are
// forgotten (at done, or swept when the map grows).
func TestRowUsers(t *testing.T) {
	var u rowUsers
	k := rowKey{Rule{Schema: "s", Table: "t"}, int64(1)}
	for i := range 3 {
		if !u.holdIfCold(k, 4) {
			t.Fatalf("holder %d of a cold row refused at threshold 4", i+1)
		}
	}
	if u.holdIfCold(k, 4) {
		t.Fatal("the fourth holder was let in at threshold 4")
	}
	for range 3 {
		u.done(k)
	}
	if u.holdIfCold(k, 4) {
		t.Fatal("the row was cold again right after it turned hot")
	}
	u.rows[k].hotUntil = time.Now().Add(-time.Millisecond) // the window passed
	if !u.holdIfCold(k, 4) {
		t.Fatal("the row stayed hot after its window")
	}
	u.done(k)
	if len(u.rows) != 0 {
		t.Fatalf("%d rows remembered after the last user left a cold row", len(u.rows))
	}
	// Two merged requests at once make a row hot; once they left and the
	// window passed, a sweep forgets it.
	u.add(k)
	u.add(k)
	u.done(k)
	u.done(k)
	if u.holdIfCold(k, 4) {
		t.Fatal("a row with two merged requests at once is not hot")
	}
	u.rows[k].hotUntil = time.Now().Add(-time.Millisecond)
	for i := range rowsSweepMin {
		u.add(rowKey{Rule{Schema: "s", Table: "t"}, int64(i + 2)}) // in use
	}
	u.add(rowKey{Rule{Schema: "s", Table: "t"}, int64(0)}) // a new row: the map is swept
	if _, ok := u.rows[k]; ok || len(u.rows) != rowsSweepMin+1 {
		t.Fatalf("%d rows after the sweep (the expired hot row kept: %v), want %d", len(u.rows), ok, rowsSweepMin+1)
	}
}
