package schema

import "testing"

func TestParseRule(t *testing.T) {
	r, err := ParseRule("shop.inv:sku:stock")
	if err != nil || r != (Rule{"shop", "inv", "sku", "stock"}) || r.String() != "shop.inv:sku:stock" {
		t.Fatalf("%+v %v", r, err)
	}
	for _, bad := range []string{"", "shop.inv:sku", "inv:sku:stock", "a.b.c:k:s", "shop.inv::stock", "shop.inv:sku:"} {
		if _, err := ParseRule(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
