package schema

import (
	"strings"
	"testing"
	"time"
)

func TestDecodeLedgerRow(t *testing.T) {
	names := strings.Split(strings.ReplaceAll(LedgerColumns, " ", ""), ",")
	names = append(names, "created_at", "added_later")
	at := time.Date(2026, 12, 2, 10, 11, 12, 123456000, time.UTC)
	tests := []struct {
		name   string
		values []any
		want   LedgerRow
	}{
		{"binlog types", []any{"b-1", int64(7), "shop", "inventory", []byte("42"), []byte("-3"), []byte("97"), int64(-1), []byte("d1"), "2026-12-02 10:11:12.123456", 5},
			LedgerRow{BatchID: "b-1", Seq: 7, Schema: "shop", Table: "inventory", Key: "42", Delta: "-3", StockAfter: "97", ConnID: 1<<32 - 1, Digest: "d1", CreatedAt: at}},
		{"query types", []any{[]byte("b-2"), uint32(0), "s", "t", "k", "+1", nil, uint32(9), "", at, nil},
			LedgerRow{BatchID: "b-2", Seq: 0, Schema: "s", Table: "t", Key: "k", Delta: "+1", ConnID: 9, CreatedAt: at}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeLedgerRow(names, tc.values)
			if err != nil {
				t.Fatal(err)
			}
			if !got.CreatedAt.Equal(tc.want.CreatedAt) {
				t.Fatalf("created_at = %v, want %v", got.CreatedAt, tc.want.CreatedAt)
			}
			got.CreatedAt, tc.want.CreatedAt = time.Time{}, time.Time{}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
	if _, err := DecodeLedgerRow([]string{"seq"}, []any{int64(1)}); err == nil {
		t.Fatal("a row without batch_id decoded")
	}
	if _, err := DecodeLedgerRow([]string{"batch_id", "seq"}, []any{"b", "x"}); err == nil {
		t.Fatal("a bad seq decoded")
	}
	if id := (LedgerRow{BatchID: "b-1", Seq: 3}).ID(); id != "b-1:3" {
		t.Fatalf("ID = %q", id)
	}
}
