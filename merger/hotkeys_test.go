package merger

import (
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"
)

func TestHotKeysDetectsAndPromotes(t *testing.T) {
	rules := NewRuleSet([]Rule{{Schema: "shop", Table: "ruled", Key: "id", Stock: "qty"}})
	h := NewHotKeys(rules, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := h.SetThreshold(1); err == nil {
		t.Fatal("SetThreshold(1): want an error")
	}
	if err := h.SetThreshold(3); err != nil {
		t.Fatal(err)
	}
	checked := make(chan Rule, 4)
	h.SetCheck(func(r Rule) error {
		checked <- r
		if r.Table == "bad" {
			return errors.New("not unique")
		}
		return nil
	})
	h.SetAuto(true)
	const q = "UPDATE inv SET stock = stock - 1 WHERE sku = 'a' AND stock >= 1"
	// Not of the shape, or on a ruled table: never counted.
	for _, other := range []string{
		"UPDATE inv SET stock = 5 WHERE sku = 'a'",
		"UPDATE inv SET stock = stock - 1",
		"UPDATE ruled SET qty = qty - 1 WHERE id = 1",
		"SELECT 1",
	} {
		for range 5 {
			defer h.Begin("shop", other)()
		}
	}
	if c := h.Candidates(); len(c) != 0 {
		t.Fatalf("candidates from statements of another shape: %+v", c)
	}
	// Two in flight: below the threshold; ends are counted.
	h.Begin("shop", q)()
	e1 := h.Begin("shop", q)
	e2 := h.Begin("shop", "UPDATE inv SET stock = stock - 2 WHERE sku = 'a' AND stock >= 2")
	if c := h.Candidates(); len(c) != 0 {
		t.Fatalf("candidates below the threshold: %+v", c)
	}
	e3 := h.Begin("shop", "update `inv` set stock = stock - 7 where sku = 'a'")
	defer e1()
	defer e2()
	defer e3()
	inv := Rule{Schema: "shop", Table: "inv", Key: "sku", Stock: "stock"}
	select {
	case r := <-checked:
		if r != inv {
			t.Fatalf("checked %+v, want %+v", r, inv)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("candidate never checked")
	}
	deadline := time.Now().Add(5 * time.Second)
	for h.AutoAdded() != 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	c := h.Candidates()
	if len(c) != 1 || c[0].Rule != inv || c[0].Key != "a" || c[0].Peak != 3 || !c[0].Auto {
		t.Fatalf("candidates = %+v", c)
	}
	if _, _, ok := rules.MatchText("shop", q); !ok {
		t.Fatal("the promoted rule does not match")
	}
	// A refused candidate stays a candidate, with the reason.
	for range 3 {
		defer h.Begin("shop", "UPDATE bad SET n = n + 1 WHERE id = 5")()
	}
	<-checked
	deadline = time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, c := range h.Candidates() {
			if c.Rule.Table == "bad" && c.Refused == "not unique" && !c.Auto {
				return
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("refused candidate: %+v", h.Candidates())
}
