package binlog

import (
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/hotrow/hotrow/schema"
)

// HotRule names a hot table whose stock changes outside merged batches
// become order and restock events: DB.TABLE:KEYCOL:STOCKCOL, as the
// proxy's --hot-rule.
type HotRule struct {
	Schema, Table string
	Key, Stock    string
}

// ParseHotRule reads DB.TABLE:KEYCOL:STOCKCOL.
func ParseHotRule(s string) (HotRule, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return HotRule{}, fmt.Errorf("hot rule %q: want DB.TABLE:KEYCOL:STOCKCOL", s)
	}
	db, table, ok := strings.Cut(parts[0], ".")
	r := HotRule{Schema: db, Table: table, Key: parts[1], Stock: parts[2]}
	if !ok || db == "" || table == "" || r.Key == "" || r.Stock == "" || strings.Contains(table, ".") {
		return HotRule{}, fmt.Errorf("hot rule %q: want DB.TABLE:KEYCOL:STOCKCOL", s)
	}
	return r, nil
}

// String formats the rule as ParseHotRule reads it.
func (r HotRule) String() string { return r.Schema + "." + r.Table + ":" + r.Key + ":" + r.Stock }

// MinLedgerRetention is the shortest LedgerRetention: batch markers must
// outlive the merger's resolution of uncertain commits by far.
const MinLedgerRetention = 10 * time.Minute

// Config configures a Consumer. Start from DefaultConfig.
type Config struct {
	// SourceDSN is the go-sql-driver/mysql DSN of the binlog user on the
	// primary (its database part is ignored). The user needs REPLICATION
	// SLAVE, BINLOG MONITOR (MariaDB) or REPLICATION CLIENT (MySQL),
	// SELECT, and schema.Privileges on MetaSchema.
	SourceDSN string
	// Sinks are sink specs for OpenSink; every event goes to each.
	Sinks []string
	// SinkOptions are passed to every sink.
	SinkOptions SinkOptions
	// HotRules name the hot tables whose direct stock changes are events.
	HotRules []HotRule
	// Include names DB.TABLE tables whose every row change is a row event.
	Include []string
	// Name identifies the consumer's checkpoint row.
	Name string
	// MetaSchema is the database of hotrow's tables (ledger, checkpoints).
	MetaSchema string
	// FromStart starts at the oldest binlog on the server when there is
	// no checkpoint; otherwise a new consumer starts at the current
	// position.
	FromStart bool
	// ResetCheckpoint discards the stored checkpoint and starts at the
	// server's current position (events in between are not sent).
	ResetCheckpoint bool
	// LedgerRetention, when positive, deletes ledger rows and batch
	// markers older than it and older than every consumer's checkpoint.
	LedgerRetention time.Duration
	// ServerID is the replica id the consumer registers with; 0 derives
	// one from Name.
	ServerID uint32
	// MaxInFlightEvents and MaxInFlightBytes bound the events read but not
	// yet acknowledged by every sink; reading stalls beyond them (one
	// transaction may overshoot, since it is emitted whole).
	MaxInFlightEvents int
	MaxInFlightBytes  int
	// SinkBatch is the most messages one Deliver call carries.
	SinkBatch int
	// CheckpointInterval is the least time between checkpoint writes.
	CheckpointInterval time.Duration
	// Heartbeat is the server's heartbeat period on the binlog stream; a
	// stream silent for three periods while the consumer waits for it is
	// reconnected (a stall on a full window does not count).
	Heartbeat time.Duration
	// StatsInterval is how often lag and throughput are logged; 0: never.
	StatsInterval time.Duration
	// RetryMin and RetryMax bound the backoff between failed deliveries
	// and reconnections.
	RetryMin, RetryMax time.Duration
}

// DefaultConfig returns the defaults: consumer "default" in schema
// "hotrow", a window of 100,000 events or 64 MiB, batches of 512.
func DefaultConfig() Config {
	return Config{
		Name:               "default",
		MetaSchema:         "hotrow",
		MaxInFlightEvents:  100_000,
		MaxInFlightBytes:   64 << 20,
		SinkBatch:          512,
		CheckpointInterval: 200 * time.Millisecond,
		Heartbeat:          5 * time.Second,
		StatsInterval:      30 * time.Second,
		RetryMin:           100 * time.Millisecond,
		RetryMax:           30 * time.Second,
	}
}

// Validate reports the first setting that cannot work.
func (c Config) Validate() error {
	if c.SourceDSN == "" {
		return errors.New("binlog: no source DSN (--source)")
	}
	if _, err := mysql.ParseDSN(c.SourceDSN); err != nil {
		return fmt.Errorf("binlog: source DSN: %w", err)
	}
	if len(c.Sinks) == 0 {
		return errors.New("binlog: no sink (--sink)")
	}
	if c.Name == "" || len(c.Name) > schema.MaxConsumer {
		return fmt.Errorf("binlog: consumer name %q: want 1 to %d bytes", c.Name, schema.MaxConsumer)
	}
	if c.MetaSchema == "" {
		return errors.New("binlog: no meta schema")
	}
	for _, t := range c.Include {
		if db, table, ok := strings.Cut(t, "."); !ok || db == "" || table == "" || strings.Contains(table, ".") {
			return fmt.Errorf("binlog: include %q: want DB.TABLE", t)
		}
	}
	switch {
	case c.MaxInFlightEvents < 1 || c.MaxInFlightBytes < 1:
		return errors.New("binlog: the in-flight window must allow at least one event and one byte")
	case c.SinkBatch < 1:
		return errors.New("binlog: sink batch must be at least 1")
	case c.CheckpointInterval <= 0 || c.Heartbeat <= 0:
		return errors.New("binlog: checkpoint interval and heartbeat must be positive")
	case c.RetryMin <= 0 || c.RetryMax < c.RetryMin:
		return errors.New("binlog: want 0 < RetryMin <= RetryMax")
	case c.LedgerRetention < 0 || c.StatsInterval < 0:
		return errors.New("binlog: negative ledger retention or stats interval")
	case c.LedgerRetention > 0 && c.LedgerRetention < MinLedgerRetention:
		return fmt.Errorf("binlog: ledger retention %v: want at least %v (batch markers resolve uncertain commits)", c.LedgerRetention, MinLedgerRetention)
	}
	return nil
}

// serverID is the replica id to register: ServerID, or one derived from
// the consumer's name, so a restarted consumer replaces its old session.
func (c Config) serverID() uint32 {
	if c.ServerID != 0 {
		return c.ServerID
	}
	h := fnv.New32a()
	h.Write([]byte(c.MetaSchema + "/" + c.Name))
	return h.Sum32()&0x3fffffff | 0x40000000
}
