package binlog

import (
	"fmt"

	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/hotrow/hotrow/schema"
)

// Claims are merged UPDATEs made inside a client's transaction (see
// merger/claim.go): the batch that deducts the stock writes the claim's
// ledger row and a claims row; the client's own transaction commits a
// 'confirm' verdict, a copy of that ledger row; a rolled back claim gets
// a 'cancel' verdict and its stock back. So a claim's event is emitted
// from its confirmation's commit (same id as its ledger row: batch id +
// ":" + seq), its ledger row in the batch is no event, and a cancelled
// claim has none.

// claimTables names the meta schema's claims and verdicts tables.
type claimTables struct {
	claimsTable, verdicts tableName
}

func newClaimTables(meta string) claimTables {
	return claimTables{claimsTable: tableName{meta, schema.ClaimsTable}, verdicts: tableName{meta, schema.VerdictsTable}}
}

// verdictConfirm is the ENUM index of 'confirm' in verdicts.verdict, as
// row events carry ENUM values.
const verdictConfirm = 1

// addClaimRows follows the rows of the claims and verdicts tables:
// claims a batch wrote (their ledger rows are then no events),
// confirmations (each one event) and cancels (the transaction's hot-table
// changes, which restore the claims' stock, are no events). handled is
// false for other tables.
func (t *txn) addClaimRows(tb *tables, name tableName, typ replication.EnumRowsEventType, names []string, rows [][]any) (handled bool, err error) {
	switch name {
	case tb.claimsTable:
		if typ != replication.EnumRowsEventTypeInsert {
			return true, nil
		}
		ci := indexOf(names, "claim_id")
		if ci < 0 {
			return true, fmt.Errorf("binlog: %s has no claim_id column (columns %q)", name, names)
		}
		for _, row := range rows {
			if ci < len(row) {
				if t.claimIDs == nil {
					t.claimIDs = make(map[string]bool)
				}
				t.claimIDs[keyText(row[ci])] = true
			}
		}
		return true, nil
	case tb.verdicts:
		if typ != replication.EnumRowsEventTypeInsert {
			return true, nil
		}
		vi, ci := indexOf(names, "verdict"), indexOf(names, "claim_id")
		if vi < 0 || ci < 0 {
			return true, fmt.Errorf("binlog: %s has no verdict or claim_id column (columns %q)", name, names)
		}
		for _, row := range rows {
			if vi >= len(row) || !isConfirm(row[vi]) {
				t.cancel = true // the claim never happened, nor does its restore
				continue
			}
			r, err := schema.DecodeLedgerRow(names, row)
			if err != nil {
				return true, fmt.Errorf("binlog: confirmation: %w", err)
			}
			ev := ledgerEvent(r)
			ev.ID = keyText(row[ci])
			t.items = append(t.items, item{ev: ev})
		}
		return true, nil
	}
	return false, nil
}

// isConfirm reports whether a verdict column's value (an ENUM index, or
// its text) is 'confirm'.
func isConfirm(v any) bool {
	switch v := v.(type) {
	case int64:
		return v == verdictConfirm
	case int32:
		return v == verdictConfirm
	case uint64:
		return v == verdictConfirm
	case string:
		return v == schema.VerdictConfirm
	case []byte:
		return string(v) == schema.VerdictConfirm
	}
	return false
}
