package main

import (
	"strings"
	"testing"
	"time"

	"github.com/hotrow/hotrow/merger"
	"github.com/hotrow/hotrow/proxy"
)

// TestMergerConfig: the proxy's settings reach the merger; unset ones keep
// the merger's defaults, and the merger validates the instance id.
func TestMergerConfig(t *testing.T) {
	base := func(mutate func(*proxy.Config)) proxy.Config {
		c := proxy.DefaultConfig()
		c.Backend = "db:3306"
		c.Users = []proxy.User{{Name: "app", Password: "pw"}, {Name: "shop", Password: "s3"}}
		c.HotRules = []string{"shop.inventory:sku_id:stock"}
		mutate(&c)
		return c
	}
	defaults := merger.DefaultConfig()
	tests := []struct {
		name    string
		cfg     proxy.Config
		check   func(merger.Config) bool
		invalid string // part of merger.Config.Validate's error, "" when valid
	}{
		{"merge user's credentials", base(func(c *proxy.Config) { c.MergeUser = "shop" }),
			func(mc merger.Config) bool { return mc.DSN == "shop:s3@tcp(db:3306)/" }, ""},
		{"instance id", base(func(c *proxy.Config) { c.InstanceID = "shop-proxy-1" }),
			func(mc merger.Config) bool { return mc.InstanceID == "shop-proxy-1" }, ""},
		{"default instance id", base(func(*proxy.Config) {}),
			func(mc merger.Config) bool { return hostAndPID(mc.InstanceID) == hostAndPID(defaults.InstanceID) }, ""},
		{"bad instance id", base(func(c *proxy.Config) { c.InstanceID = "shop proxy" }),
			func(mc merger.Config) bool { return mc.InstanceID == "shop proxy" }, "InstanceID"},
		{"long instance id", base(func(c *proxy.Config) { c.InstanceID = strings.Repeat("x", 49) }),
			func(merger.Config) bool { return true }, "InstanceID"},
		{"batch and meta schema", base(func(c *proxy.Config) { c.MaxBatch, c.MetaSchema = 64, "meta" }),
			func(mc merger.Config) bool { return mc.MaxBatch == 64 && mc.MetaSchema == "meta" }, ""},
		{"claim sweep", base(func(c *proxy.Config) {
			c.ClaimSweepAge.Duration, c.ClaimSweepEvery.Duration = 2*time.Second, time.Minute
		}),
			func(mc merger.Config) bool {
				return mc.ClaimSweepAge == 2*time.Second && mc.ClaimSweepEvery == time.Minute
			}, ""},
		{"default claim sweep", base(func(*proxy.Config) {}),
			func(mc merger.Config) bool {
				return mc.ClaimSweepAge == defaults.ClaimSweepAge && mc.ClaimSweepEvery == defaults.ClaimSweepEvery
			}, ""},
		{"lone pass-through by default", base(func(*proxy.Config) {}),
			func(mc merger.Config) bool { return mc.LonePassThrough }, ""},
		{"lone pass-through off", base(func(c *proxy.Config) { c.LonePassThrough = false }),
			func(mc merger.Config) bool { return !mc.LonePassThrough }, ""},
		{"every UPDATE of a transaction a claim by default", base(func(*proxy.Config) {}),
			func(mc merger.Config) bool { return mc.ClaimUncontended }, ""},
		{"uncontended UPDATEs in their transaction", base(func(c *proxy.Config) { c.ClaimUncontended = false }),
			func(mc merger.Config) bool { return !mc.ClaimUncontended }, ""},
		{"tx hot threshold", base(func(c *proxy.Config) { c.TxHotThreshold = 16 }),
			func(mc merger.Config) bool { return mc.TxHotThreshold == 16 }, ""},
		{"tx hot threshold too low", base(func(c *proxy.Config) { c.TxHotThreshold = 1 }),
			func(mc merger.Config) bool { return mc.TxHotThreshold == 1 }, "TxHotThreshold"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mc := mergerConfig(tt.cfg)
			if !tt.check(mc) {
				t.Errorf("merger config %+v", mc)
			}
			err := mc.Validate()
			if tt.invalid == "" && err != nil || tt.invalid != "" && (err == nil || !strings.Contains(err.Error(), tt.invalid)) {
				t.Errorf("Validate() = %v, want an error about %q", err, tt.invalid)
			}
		})
	}
}

// hostAndPID strips the random suffix off a default instance id.
func hostAndPID(id string) string { return id[:max(0, strings.LastIndex(id, "-"))] }
