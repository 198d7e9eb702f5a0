package binlog

import (
	"encoding/json"
	"time"
)

// Kind says what an event reports.
type Kind string

// The kinds of events.
const (
	// KindOrder: stock of a hot table went down (a deduction).
	KindOrder Kind = "order"
	// KindRestock: stock of a hot table went up.
	KindRestock Kind = "restock"
	// KindRow: a row of an --include table changed (op c, u or d).
	KindRow Kind = "row"
)

// Source locates an event's transaction in the server's binlog.
type Source struct {
	GTID     string `json:"gtid,omitempty"`
	File     string `json:"file"`
	Pos      uint32 `json:"pos"`
	ServerID uint32 `json:"server_id"`
}

// Event is one event of the order feed, as sinks send it (one JSON object
// per line or message).
type Event struct {
	// ID is stable across redeliveries: batch id + ":" + seq for a merged
	// deduction (the ledger's key), GTID (or file:pos) + ":" + the row's
	// position in its transaction otherwise.
	ID    string `json:"id"`
	Kind  Kind   `json:"kind"`
	Table string `json:"table"` // schema.table
	Key   string `json:"key,omitempty"`
	// Quantity is the units taken (order) or added (restock), positive.
	Quantity   json.Number `json:"quantity,omitempty"`
	StockAfter json.Number `json:"stock_after,omitempty"`
	// Batch and ConnID are set for merged deductions: the batch that
	// committed it and the client's connection id.
	Batch  string `json:"batch,omitempty"`
	ConnID uint32 `json:"conn_id,omitempty"`
	// CommittedAt is the transaction's commit time in µs since the epoch.
	CommittedAt int64 `json:"committed_at"`
	// Op, Before and After describe a row event: c (insert), u (update) or
	// d (delete), with the row's images by column name.
	Op     string         `json:"op,omitempty"`
	Before map[string]any `json:"before,omitempty"`
	After  map[string]any `json:"after,omitempty"`
	Source Source         `json:"source"`
}

// Message is an event as a sink delivers it, encoded once.
type Message struct {
	// ID is the event's id (idempotency key downstream).
	ID string
	// Key orders messages downstream: table + "/" + key, so one row's
	// events stay in order on a partitioned sink.
	Key string
	// Data is the event's JSON encoding, without a trailing newline.
	Data []byte
	// Committed is the transaction's commit time.
	Committed time.Time
}
