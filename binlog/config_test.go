package binlog

import (
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	valid := func() Config {
		c := DefaultConfig()
		c.SourceDSN, c.Sinks = "feed:pw@tcp(127.0.0.1:3306)/", []string{"stdout"}
		return c
	}
	cases := []struct {
		name  string
		tune  func(*Config)
		error string // substring; empty: valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"no source", func(c *Config) { c.SourceDSN = "" }, "source"},
		{"no sink", func(c *Config) { c.Sinks = nil }, "sink"},
		{"long name", func(c *Config) { c.Name = strings.Repeat("n", 65) }, "name"},
		{"bad include", func(c *Config) { c.Include = []string{"nodot"} }, "DB.TABLE"},
		{"empty window", func(c *Config) { c.MaxInFlightEvents = 0 }, "window"},
		{"short retention", func(c *Config) { c.LedgerRetention = time.Minute }, "retention"},
		{"retention", func(c *Config) { c.LedgerRetention = 24 * time.Hour }, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.tune(&c)
			err := c.Validate()
			switch {
			case tc.error == "" && err != nil:
				t.Fatalf("unexpected error %v", err)
			case tc.error != "" && (err == nil || !strings.Contains(err.Error(), tc.error)):
				t.Fatalf("got %v, want an error about %q", err, tc.error)
			}
		})
	}
}

func TestParseHotRule(t *testing.T) {
	r, err := ParseHotRule("shop.inv:sku:stock")
	if err != nil || r != (HotRule{"shop", "inv", "sku", "stock"}) || r.String() != "shop.inv:sku:stock" {
		t.Fatalf("%+v %v", r, err)
	}
	for _, bad := range []string{"", "shop.inv:sku", "inv:sku:stock", "a.b.c:k:s", "shop.inv::stock"} {
		if _, err := ParseHotRule(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
