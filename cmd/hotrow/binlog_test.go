package main

import (
	"flag"
	"io"
	"testing"
	"time"

	"github.com/hotrow/hotrow/binlog"
)

func TestBinlogFlags(t *testing.T) {
	cases := []struct {
		name, prefix string
		args         []string
		check        func(t *testing.T, c binlog.Config)
		wantErr      bool
	}{
		{name: "binlog command", args: []string{"--source", "u:p@tcp(127.0.0.1:3306)/", "--sink", "stdout", "--sink", "jsonl:/tmp/o",
			"--hot-rule", "shop.inv:sku:stock", "--include", "shop.orders", "--name", "feed1", "--ledger-retention", "24h", "--from-start"},
			check: func(t *testing.T, c binlog.Config) {
				if len(c.Sinks) != 2 || len(c.HotRules) != 1 || c.HotRules[0].Stock != "stock" || c.Include[0] != "shop.orders" ||
					c.Name != "feed1" || c.LedgerRetention != 24*time.Hour || !c.FromStart || c.MetaSchema != "hotrow" {
					t.Errorf("config %+v", c)
				}
			}},
		{name: "beside the proxy", prefix: "binlog-", args: []string{"--binlog-source", "u:p@tcp(127.0.0.1:3306)/", "--binlog-sink", "stdout"},
			check: func(t *testing.T, c binlog.Config) {
				if len(c.Sinks) != 1 || c.Name != "default" {
					t.Errorf("config %+v", c)
				}
			}},
		{name: "no sink", args: []string{"--source", "u:p@tcp(127.0.0.1:3306)/"}, wantErr: true},
		{name: "bad hot rule", args: []string{"--source", "u:p@tcp(127.0.0.1:3306)/", "--sink", "stdout", "--hot-rule", "inv"}, wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			build := binlogFlags(fs, tc.prefix)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			c, err := build()
			if err == nil {
				err = c.Validate()
			}
			if (err != nil) != tc.wantErr {
				t.Fatalf("error %v, want error %v", err, tc.wantErr)
			}
			if tc.check != nil {
				tc.check(t, c)
			}
		})
	}
}
