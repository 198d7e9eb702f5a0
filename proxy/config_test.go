package proxy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestConfigFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hotrow.toml")
	const file = `listen = "127.0.0.1:7000"
backend = "127.0.0.1:3306"
hot_rules = ["shop.inventory:sku_id:stock"]
drain_timeout = "3s"
backend_dead_after = "10s"
instance_id = "shop-proxy-1"

[[users]]
name = "app"
password = "p:w"
default_schema = "shop"
`
	if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	if err := cfg.LoadFile(path); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	u, ok := cfg.MergeAccount()
	if cfg.Listen != "127.0.0.1:7000" || cfg.DrainTimeout.Duration != 3*time.Second || cfg.InstanceID != "shop-proxy-1" || !ok ||
		cfg.BackendDeadAfter.Duration != 10*time.Second ||
		u != (User{Name: "app", Password: "p:w", DefaultSchema: "shop"}) || cfg.AuthPlugin != "mysql_native_password" {
		t.Fatalf("config %+v, merge account %+v", cfg, u)
	}
	if err := os.WriteFile(path, []byte("listne = \"x\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	other := DefaultConfig()
	if err := other.LoadFile(path); err == nil || !strings.Contains(err.Error(), "listne") {
		t.Fatalf("unknown key: got %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	valid := func() Config {
		c := DefaultConfig()
		c.Backend = "127.0.0.1:3306"
		c.Users = []User{{Name: "app", Password: "x"}}
		return c
	}
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string // substring of the error; empty: valid
	}{
		{"valid", func(*Config) {}, ""},
		{"no backend", func(c *Config) { c.Backend = "" }, "backend"},
		{"no users", func(c *Config) { c.Users = nil }, "no users"},
		{"duplicate user", func(c *Config) { c.Users = append(c.Users, c.Users[0]) }, "twice"},
		{"bad plugin", func(c *Config) { c.AuthPlugin = "sha256_password" }, "auth plugin"},
		{"bad rule", func(c *Config) { c.HotRules = []string{"inventory:sku"} }, "hot rule"},
		{"unknown merge user", func(c *Config) { c.HotRules = []string{"a.b:c:d"}; c.MergeUser = "nobody" }, "merge user"},
		{"tiny packets", func(c *Config) { c.MaxPacketSize = 10 }, "max packet"},
		{"no handshake timeout", func(c *Config) { c.HandshakeTimeout.Duration = 0 }, "handshake timeout"},
		{"no connections", func(c *Config) { c.MaxConnections = 0 }, "max connections"},
		{"no handshake backends", func(c *Config) { c.HandshakeBackends = 0 }, "handshake backends"},
		{"tls cert without key", func(c *Config) { c.TLSCert = "c.pem" }, "certificate and a key"},
		{"require tls without cert", func(c *Config) { c.RequireTLS = true }, "require tls"},
		{"bad backend tls", func(c *Config) { c.BackendTLS = "always" }, "backend tls"},
		{"dead after off", func(c *Config) { c.BackendDeadAfter.Duration = 0 }, ""},
		{"dead after under a second", func(c *Config) { c.BackendDeadAfter.Duration = 500 * time.Millisecond }, "backend dead after"},
		{"backend ca with tls off", func(c *Config) { c.BackendTLS, c.BackendCA = BackendTLSOff, "ca.pem" }, "backend ca"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.mutate(&c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("got %v, want an error about %q", err, tt.want)
			}
		})
	}
	if _, err := ParseUser("nopassword"); err == nil {
		t.Fatal("ParseUser accepted a user without password")
	}
}
