package proxy

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	gomysql "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/hotrow/hotrow/internal/deadpeer"
	"github.com/hotrow/hotrow/merger"
	"github.com/hotrow/hotrow/schema"
)

// User is an account clients log in with; the proxy opens the session's
// backend connection with the same credentials (as ProxySQL's mysql_users).
type User struct {
	Name     string `toml:"name"`
	Password string `toml:"password"`
	// DefaultSchema is used when the client names no database.
	DefaultSchema string `toml:"default_schema"`
}

// Config is the proxy's configuration. Build it with DefaultConfig, adjust,
// then Validate.
type Config struct {
	// Listen is the client-facing address, e.g. 127.0.0.1:6033.
	Listen string `toml:"listen"`
	// Backend is the MySQL/MariaDB server's host:port.
	Backend string `toml:"backend"`
	Users   []User `toml:"users"`
	// AuthPlugin is offered to clients first: mysql_native_password or
	// caching_sha2_password. Clients answering with the other are served too.
	AuthPlugin string `toml:"auth_plugin"`
	// MaxPacketSize bounds one client packet, like max_allowed_packet.
	MaxPacketSize int `toml:"max_packet_size"`
	// ConnectTimeout bounds dialing and authenticating to the backend. It
	// is also the longest a client that has not answered the greeting
	// keeps the backend connection it was greeted for: keep it below the
	// server's connect_timeout (10s by default), or the server counts an
	// aborted connect against the proxy's host.
	ConnectTimeout duration `toml:"connect_timeout"`
	// HandshakeTimeout bounds a client's handshake, from accept to the OK
	// after its login, like the server's connect_timeout: a client that has
	// not authenticated by then is closed.
	HandshakeTimeout duration `toml:"handshake_timeout"`
	// BackendDeadAfter closes a backend connection (a session's or a
	// merged batch's) once the server's host has acknowledged nothing for
	// that long (a network cut): see package deadpeer. 0: the OS defaults.
	BackendDeadAfter duration `toml:"backend_dead_after"`
	// MaxConnections bounds the client connections, authenticated or not,
	// like max_connections: beyond it a client gets ERROR 1040 (Too many
	// connections) instead of a greeting.
	MaxConnections int `toml:"max_connections"`
	// MaxHandshakes bounds the clients that have connected but not yet
	// authenticated; beyond it the one that has waited longest is closed.
	MaxHandshakes int `toml:"max_handshakes"`
	// HandshakeBackends bounds the backend connections held for clients
	// that have not authenticated yet (see the package doc).
	HandshakeBackends int `toml:"handshake_backends"`
	// DrainTimeout bounds how long shutdown waits for running statements.
	DrainTimeout duration `toml:"drain_timeout"`
	// TLSCert and TLSKey are PEM files of the certificate and key the
	// proxy offers clients TLS with (CLIENT_SSL); empty: no TLS.
	TLSCert string `toml:"tls_cert"`
	TLSKey  string `toml:"tls_key"`
	// RequireTLS refuses clients that do not upgrade to TLS.
	RequireTLS bool `toml:"require_tls"`
	// BackendTLS is "off", "preferred" (TLS when the server offers it) or
	// "required" (no session without it).
	BackendTLS string `toml:"backend_tls"`
	// BackendCA is a PEM file of the CAs the server's certificate is
	// verified against; empty: it is not verified.
	BackendCA string `toml:"backend_ca"`
	// HotRules name the tables whose stock updates are merged.
	HotRules []string `toml:"hot_rules"`
	// MergeUser is the user whose sessions are merged and whose
	// credentials run the merged batches; empty: the first user.
	MergeUser string `toml:"merge_user"`
	// MaxBatch and MetaSchema tune the merger (see package merger).
	MaxBatch   int    `toml:"max_batch"`
	MetaSchema string `toml:"meta_schema"`
	// LonePassThrough runs a hot statement with nothing queued for its
	// table on the session's own connection, without a ledger row
	// (merger.Config.LonePassThrough); off, it runs as a batch of one.
	LonePassThrough bool `toml:"lone_passthrough"`
	// BatchGather bounds how long a hot table's next batch waits for the
	// clients of its last batches to come back (merger.Config.GatherWait);
	// 0: never.
	BatchGather duration `toml:"batch_gather"`
	// ClaimUncontended (default true) makes every claimable UPDATE of a
	// transaction a claim, even on a row that is not hot (merger.Config).
	ClaimUncontended bool `toml:"claim_uncontended"`
	// TxHotThreshold is how many transactions updating one row at once
	// make its later UPDATEs inside transactions claims (merger.Config).
	TxHotThreshold int `toml:"tx_hot_threshold"`
	// InstanceID names this proxy instance in the ids of its merged
	// batches (merger.Config.InstanceID): stable across restarts of the
	// same instance, whose recovery looks for its own batches, and unique
	// across instances in front of the same server. Empty: the merger's
	// default (host name, process id and a random suffix).
	InstanceID string `toml:"instance_id"`
	// ClaimSweepAge and ClaimSweepEvery tune the sweep of claims whose
	// owner transaction is gone (merger.Config).
	ClaimSweepAge   duration `toml:"claim_sweep_age"`
	ClaimSweepEvery duration `toml:"claim_sweep_every"`
}

// Config.BackendTLS values.
const (
	BackendTLSOff       = "off"
	BackendTLSPreferred = "preferred"
	BackendTLSRequired  = "required"
)

// duration is a time.Duration that reads "5s" from TOML.
type duration struct{ time.Duration }

func (d *duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	d.Duration = v
	return err
}

// DefaultConfig returns a configuration with every default filled in.
func DefaultConfig() Config {
	m := merger.DefaultConfig()
	return Config{
		MaxBatch:          m.MaxBatch,
		MetaSchema:        m.MetaSchema,
		ClaimSweepAge:     duration{m.ClaimSweepAge},
		ClaimSweepEvery:   duration{m.ClaimSweepEvery},
		LonePassThrough:   m.LonePassThrough,
		BatchGather:       duration{m.GatherWait},
		TxHotThreshold:    m.TxHotThreshold,
		ClaimUncontended:  m.ClaimUncontended,
		Listen:            "127.0.0.1:6033",
		AuthPlugin:        gomysql.AUTH_NATIVE_PASSWORD,
		MaxPacketSize:     64 << 20,
		ConnectTimeout:    duration{5 * time.Second},
		HandshakeTimeout:  duration{10 * time.Second},
		BackendDeadAfter:  duration{deadpeer.Default},
		MaxConnections:    4096,
		MaxHandshakes:     1024,
		HandshakeBackends: 16,
		BackendTLS:        BackendTLSPreferred,
		DrainTimeout:      duration{10 * time.Second},
	}
}

// LoadFile merges a TOML configuration file into c. Keys absent from the
// file keep their values.
func (c *Config) LoadFile(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	md, err := toml.Decode(string(b), c)
	if err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return fmt.Errorf("config %s: unknown keys %v", path, und)
	}
	return nil
}

// ParseUser reads NAME:PASSWORD (the password may contain colons).
func ParseUser(s string) (User, error) {
	name, pw, ok := strings.Cut(s, ":")
	if !ok || name == "" {
		return User{}, fmt.Errorf("user %q: want NAME:PASSWORD", s)
	}
	return User{Name: name, Password: pw}, nil
}

// Rules parses HotRules.
func (c *Config) Rules() ([]merger.Rule, error) {
	rules := make([]merger.Rule, 0, len(c.HotRules))
	for _, s := range c.HotRules {
		r, err := schema.ParseRule(s)
		if err != nil {
			return nil, err
		}
		rules = append(rules, r)
	}
	return rules, nil
}

// MergeAccount returns the user whose sessions are merged and whose
// credentials run the merged batches.
func (c *Config) MergeAccount() (User, bool) {
	for _, u := range c.Users {
		if c.MergeUser == "" || u.Name == c.MergeUser {
			return u, true
		}
	}
	return User{}, false
}

// Validate checks the configuration and reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("listen %q: %w", c.Listen, err))
	}
	if _, _, err := net.SplitHostPort(c.Backend); err != nil {
		errs = append(errs, fmt.Errorf("backend %q: want HOST:PORT", c.Backend))
	}
	if len(c.Users) == 0 {
		errs = append(errs, errors.New("no users: give at least one --user NAME:PASSWORD"))
	}
	seen := map[string]bool{}
	for _, u := range c.Users {
		if seen[u.Name] {
			errs = append(errs, fmt.Errorf("user %q configured twice", u.Name))
		}
		seen[u.Name] = true
	}
	if c.AuthPlugin != gomysql.AUTH_NATIVE_PASSWORD && c.AuthPlugin != gomysql.AUTH_CACHING_SHA2_PASSWORD {
		errs = append(errs, fmt.Errorf("auth plugin %q: want %s or %s", c.AuthPlugin, gomysql.AUTH_NATIVE_PASSWORD, gomysql.AUTH_CACHING_SHA2_PASSWORD))
	}
	if c.MaxPacketSize < 1024 {
		errs = append(errs, fmt.Errorf("max packet size %d: want at least 1024", c.MaxPacketSize))
	}
	if c.ConnectTimeout.Duration <= 0 || c.HandshakeTimeout.Duration <= 0 {
		errs = append(errs, fmt.Errorf("connect timeout %v, handshake timeout %v: want both positive", c.ConnectTimeout.Duration, c.HandshakeTimeout.Duration))
	}
	if d := c.BackendDeadAfter.Duration; d != 0 && d < time.Second {
		errs = append(errs, fmt.Errorf("backend dead after %v: want 0 (the OS defaults) or at least 1s", d))
	}
	if d := c.BatchGather.Duration; d < 0 || d > merger.MaxGatherWait {
		errs = append(errs, fmt.Errorf("batch gather %v: want 0 to %v", d, merger.MaxGatherWait))
	}
	if c.MaxConnections < 1 || c.MaxHandshakes < 1 || c.HandshakeBackends < 1 {
		errs = append(errs, fmt.Errorf("max connections %d, max handshakes %d, handshake backends %d: want each at least 1", c.MaxConnections, c.MaxHandshakes, c.HandshakeBackends))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("tls: give both a certificate and a key, or neither"))
	}
	if c.RequireTLS && c.TLSCert == "" {
		errs = append(errs, errors.New("require tls: needs a TLS certificate and key"))
	}
	switch c.BackendTLS {
	case BackendTLSOff, BackendTLSPreferred, BackendTLSRequired:
	default:
		errs = append(errs, fmt.Errorf("backend tls %q: want off, preferred or required", c.BackendTLS))
	}
	if c.BackendCA != "" && c.BackendTLS == BackendTLSOff {
		errs = append(errs, errors.New("backend ca: given with backend tls off"))
	}
	if _, err := c.Rules(); err != nil {
		errs = append(errs, err)
	}
	if len(c.HotRules) > 0 {
		if _, ok := c.MergeAccount(); !ok {
			errs = append(errs, fmt.Errorf("merge user %q is not a configured user", c.MergeUser))
		}
	}
	return errors.Join(errs...)
}
