package merger

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/hotrow/hotrow/internal/deadpeer"
	"github.com/hotrow/hotrow/schema"
)

// Config tunes a Merger. Start from DefaultConfig.
type Config struct {
	// DSN is the go-sql-driver/mysql DSN of the backend user that runs
	// merged batches (its database part is ignored).
	DSN string
	// MetaSchema is the database of hotrow's own tables.
	MetaSchema string
	// InstanceID names the proxy instance; batch ids and markers embed it.
	// It must be unique among the instances sharing a server and should
	// be stable across restarts of one instance (configure it; the default,
	// host-pid-random, changes with every start), so that its batches stay
	// attributable to it. ASCII letters, digits, '.', '_' and '-', at
	// most 48 bytes.
	InstanceID string
	// MaxBatch is the most requests one batch transaction carries.
	MaxBatch int
	// MaxQueue bounds the requests waiting for one hot table (all its rows
	// together), MaxQueueTotal those waiting for all tables; beyond them Do
	// returns ErrQueueFull.
	MaxQueue      int
	MaxQueueTotal int
	// QueueTimeout is how long a request may wait for its batch to start
	// before it fails with ErrLockWaitTimeout. 0: the server's
	// innodb_lock_wait_timeout, read at start.
	QueueTimeout time.Duration
	// PoolSize is the most backend connections, hence the most tables
	// whose batches run at the same time.
	PoolSize int
	// ResolveTimeout bounds how long a request's batch keeps retrying
	// while the backend is unreachable, counted from the request's
	// arrival, and how long an uncertain COMMIT is looked
	// up before the requests fail with ErrOutcomeUnknown.
	ResolveTimeout time.Duration
	// MarkerRetention is how long batch markers are kept; older ones, of
	// any instance, are deleted in the background. A marker may be looked
	// up until its COMMIT's read timed out (innodb_lock_wait_timeout +
	// 30 s) and ResolveTimeout passed, so Validate wants at least 1 minute
	// and 10 x ResolveTimeout, and New at least twice that read timeout
	// plus ResolveTimeout.
	MarkerRetention time.Duration
	// DeadAfter closes a backend connection once the server's host has
	// acknowledged nothing for that long (a network cut; see package
	// deadpeer); 0 keeps the OS defaults.
	DeadAfter time.Duration
	// ClaimSweepAge is how old a claim without a verdict must be before the
	// sweep looks at it; ClaimSweepEvery how often the sweep runs (also at
	// start).
	ClaimSweepAge   time.Duration
	ClaimSweepEvery time.Duration
	// LonePassThrough lets a request with nothing queued or running for
	// its table run on its client's own connection (Merger.Alone) instead
	// of as a batch of one with a ledger row. Off, every grant made
	// through the merger has a ledger row (batch id, connection id).
	LonePassThrough bool
	// ClaimUncontended (the default) makes every claimable UPDATE of a
	// client's transaction a claim, even on a row that is not hot. Off,
	// such an UPDATE runs in the client's own transaction (HoldIfIdle):
	// faster for rows nobody waits for, but the transaction then holds
	// the row's lock across its client's round trips, like a direct one:
	// a batch of the table that includes the row waits for it (so do the
	// other rows of that batch), and the transaction's later hot UPDATEs
	// pass through (it touched the hot table).
	ClaimUncontended bool
	// TxHotThreshold is how many client transactions updating one row at
	// once (holding or waiting for its lock) make it hot: their later
	// UPDATEs of it are claims (HoldIfIdle). At least 2.
	TxHotThreshold int
	// GatherWait bounds how long a table's next batch waits for the
	// clients of its last two batches to come back (see gatherer): at
	// most this long, and at most a quarter of the last batch's duration,
	// after its oldest request arrived. 0: a batch forms as soon as the
	// previous one ended, from whatever queued.
	GatherWait time.Duration
	// hooks are fault-injection and observation points for tests.
	hooks hooks
}

// MaxGatherWait bounds Config.GatherWait: a wait meant to be short next to
// a batch's commit.
const MaxGatherWait = time.Second

// DefaultConfig returns the defaults: batches of up to 256 requests, 4,096
// waiting requests per table and 65,536 in all, 32 backend connections.
func DefaultConfig() Config {
	return Config{
		MetaSchema:     "hotrow",
		InstanceID:     defaultInstanceID(),
		MaxBatch:       256,
		MaxQueue:       4096,
		MaxQueueTotal:  65536,
		PoolSize:       32,
		ResolveTimeout: 60 * time.Second,
		DeadAfter:      deadpeer.Default,

		MarkerRetention:  24 * time.Hour,
		ClaimSweepAge:    5 * time.Second,
		ClaimSweepEvery:  30 * time.Second,
		LonePassThrough:  true,
		GatherWait:       time.Millisecond,
		TxHotThreshold:   4,
		ClaimUncontended: true,
	}
}

// defaultInstanceID is host-pid-random: unique, but new on every start.
func defaultInstanceID() string {
	host, _ := os.Hostname()
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	id := sanitizeID(host)
	if len(id) > 24 {
		id = id[:24]
	}
	return id + "-" + strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(b)
}

// sanitizeID keeps the characters an instance id may hold.
func sanitizeID(s string) string {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if validIDByte(s[i]) {
			b = append(b, s[i])
		}
	}
	if len(b) == 0 {
		return "hotrow"
	}
	return string(b)
}

func validIDByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}

// maxInstanceID leaves room in a batch id for the batch counter.
const maxInstanceID = 48

// Validate reports the first setting that cannot work.
func (c Config) Validate() error {
	if _, err := mysql.ParseDSN(c.DSN); err != nil {
		return fmt.Errorf("merger: DSN: %w", err)
	}
	if c.MetaSchema == "" {
		return errors.New("merger: MetaSchema is empty")
	}
	if c.InstanceID == "" || len(c.InstanceID) > maxInstanceID || sanitizeID(c.InstanceID) != c.InstanceID {
		return fmt.Errorf("merger: InstanceID %q: want 1-%d of [A-Za-z0-9._-]", c.InstanceID, maxInstanceID)
	}
	if maxInstanceID+1+13+1+20 > schema.MaxBatchID { // id, '-', start time, '-', counter
		return errors.New("merger: batch ids do not fit the ledger")
	}
	switch {
	case c.MaxBatch < 1:
		return fmt.Errorf("merger: MaxBatch %d < 1", c.MaxBatch)
	case c.MaxQueue < 1:
		return fmt.Errorf("merger: MaxQueue %d < 1", c.MaxQueue)
	case c.MaxQueueTotal < c.MaxQueue:
		return fmt.Errorf("merger: MaxQueueTotal %d < MaxQueue %d", c.MaxQueueTotal, c.MaxQueue)
	case c.QueueTimeout < 0:
		return fmt.Errorf("merger: QueueTimeout %v < 0", c.QueueTimeout)
	case c.DeadAfter < 0:
		return fmt.Errorf("merger: DeadAfter %v < 0", c.DeadAfter)
	case c.PoolSize < 1:
		return fmt.Errorf("merger: PoolSize %d < 1", c.PoolSize)
	case c.ResolveTimeout <= 0:
		return fmt.Errorf("merger: ResolveTimeout %v <= 0", c.ResolveTimeout)
	case c.GatherWait < 0 || c.GatherWait > MaxGatherWait:
		return fmt.Errorf("merger: GatherWait %v: want 0 to %v", c.GatherWait, MaxGatherWait)
	case c.TxHotThreshold < 2:
		return fmt.Errorf("merger: TxHotThreshold %d: want at least 2", c.TxHotThreshold)
	case c.ClaimSweepAge < 0 || c.ClaimSweepEvery <= 0:
		return fmt.Errorf("merger: ClaimSweepAge %v, ClaimSweepEvery %v: want >= 0 and > 0", c.ClaimSweepAge, c.ClaimSweepEvery)
	case c.MarkerRetention < 10*c.ResolveTimeout || c.MarkerRetention < time.Minute:
		return fmt.Errorf("merger: MarkerRetention %v: want at least 1m and 10 x ResolveTimeout", c.MarkerRetention)
	}
	return nil
}
