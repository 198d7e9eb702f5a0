package schema

import (
	"fmt"
	"strconv"
	"time"
)

// Widths of the ledger's and markers' free-form columns. The DDL is built
// from them and writers clip values to them, so a value hotrow writes can
// never make its INSERT fail.
const (
	MaxBatchID    = 96
	MaxInstanceID = 64
	MaxSchemaName = 64
	MaxTableName  = 64
	MaxKey        = 3072
	MaxDelta      = 255
	MaxDigest     = 64
	MaxConsumer   = 64
	MaxColumnName = 64
	// MaxClaimID fits a batch id, ':' and a sequence number.
	MaxClaimID = MaxBatchID + 11
)

// LedgerColumns lists the ledger columns a writer supplies, in the order
// of LedgerRow's fields; created_at is the server's time of the INSERT.
const LedgerColumns = "batch_id, seq, table_schema, table_name, key_value, delta, stock_after, conn_id, digest"

// ClaimColumns lists the claim columns a writer supplies.
const ClaimColumns = "claim_id, instance_id, owner_conn, server_start, table_schema, table_name, key_column, stock_column, key_value, amount"

// Verdicts of a claim, the values of the verdicts table's verdict column.
const (
	VerdictConfirm = "confirm"
	VerdictCancel  = "cancel"
)

// MarkerColumns lists the batch marker columns a writer supplies.
const MarkerColumns = "batch_id, instance_id, requests, granted"

// LedgerRow is one ledger row: one granted request of a merged batch.
// (BatchID, Seq) is its primary key and the order feed's idempotency key.
type LedgerRow struct {
	BatchID string
	// Seq is the request's position in its batch (arrival order).
	Seq uint32
	// Schema and Table name the hot table; Key is the key column's value
	// as text.
	Schema, Table string
	Key           string
	// Delta is the signed change of the stock as decimal text: negative
	// for a deduction, positive for a restock.
	Delta string
	// StockAfter is the stock after this request as decimal text; empty
	// when unknown (NULL).
	StockAfter string
	// ConnID is the client's backend connection id (the thread id the
	// client sees).
	ConnID uint32
	// Digest identifies the statement's shape.
	Digest string
	// CreatedAt is when the batch wrote the row (server time).
	CreatedAt time.Time
}

// ID is the row's stable idempotency key: batch id and sequence.
func (r LedgerRow) ID() string { return r.BatchID + ":" + strconv.FormatUint(uint64(r.Seq), 10) }

// DecodeLedgerRow decodes a ledger row from column names and values as a
// row event of the binlog (or a query) gives them: strings or []byte for
// text columns, integers for seq and conn_id, a time or its text for
// created_at. Unknown columns are ignored, so added columns do not break
// older readers; a missing key column is an error.
func DecodeLedgerRow(names []string, values []any) (LedgerRow, error) {
	var r LedgerRow
	if len(names) != len(values) {
		return r, fmt.Errorf("ledger row: %d names for %d values", len(names), len(values))
	}
	var haveID, haveSeq bool
	for i, name := range names {
		v := values[i]
		var err error
		switch name {
		case "batch_id":
			r.BatchID, haveID = text(v), true
		case "seq":
			var n uint64
			n, err = unsigned(v)
			r.Seq, haveSeq = uint32(n), true
		case "table_schema":
			r.Schema = text(v)
		case "table_name":
			r.Table = text(v)
		case "key_value":
			r.Key = text(v)
		case "delta":
			r.Delta = text(v)
		case "stock_after":
			r.StockAfter = text(v)
		case "conn_id":
			var n uint64
			n, err = unsigned(v)
			r.ConnID = uint32(n)
		case "digest":
			r.Digest = text(v)
		case "created_at":
			r.CreatedAt, err = timestamp(v)
		}
		if err != nil {
			return r, fmt.Errorf("ledger row column %s: %w", name, err)
		}
	}
	if !haveID || !haveSeq {
		return r, fmt.Errorf("ledger row: batch_id or seq missing (columns %q)", names)
	}
	return r, nil
}

func text(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case []byte:
		return string(v)
	}
	return fmt.Sprint(v)
}

func unsigned(v any) (uint64, error) {
	switch v := v.(type) {
	case int8:
		return uint64(uint8(v)), nil
	case int16:
		return uint64(uint16(v)), nil
	case int32:
		return uint64(uint32(v)), nil
	case int64:
		if v < 0 {
			return uint64(uint32(v)), nil // an INT UNSIGNED read as signed
		}
		return uint64(v), nil
	case uint8:
		return uint64(v), nil
	case uint16:
		return uint64(v), nil
	case uint32:
		return uint64(v), nil
	case uint64:
		return v, nil
	case string, []byte:
		return strconv.ParseUint(text(v), 10, 64)
	}
	return 0, fmt.Errorf("unexpected %T", v)
}

// timestamp accepts a time.Time or the server's text form of TIMESTAMP(6)
// (the binlog reader's form), read as UTC.
func timestamp(v any) (time.Time, error) {
	switch v := v.(type) {
	case nil:
		return time.Time{}, nil
	case time.Time:
		return v, nil
	case string, []byte:
		s := text(v)
		for _, layout := range []string{"2006-01-02 15:04:05.999999", time.RFC3339Nano} {
			if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
				return t, nil
			}
		}
		return time.Time{}, fmt.Errorf("bad time %q", s)
	}
	return time.Time{}, fmt.Errorf("unexpected %T", v)
}
