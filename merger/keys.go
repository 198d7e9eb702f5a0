package merger

import (
	"math"
	"strings"

	"github.com/hotrow/hotrow/schema"
)

// lockedRow is one row of the batch's locking read.
type lockedRow struct {
	key   any // normalized (normKey)
	text  string
	stock any
}

// keyValue is request r's key value as the statement gives it.
func keyValue(r *Request) any { return r.Stmt.Key.Value(r.Args) }

// normKey returns a comparable value that is equal for two key values
// exactly when they name the same row by exact comparison: bytes become
// strings, integers that fit int64 are int64, floats compare by bits.
func normKey(v any) any {
	switch v := v.(type) {
	case []byte:
		return string(v)
	case uint64:
		if v <= math.MaxInt64 {
			return int64(v)
		}
	case float64:
		return floatKey(math.Float64bits(v))
	}
	return v
}

// keySet groups a batch's requests by the row their key names. Its
// executor reuses it across batches.
type keySet struct {
	// keys[j] is the j-th distinct key value in arrival order, as the
	// first request on it gave it.
	keys []any
	// of[i] is the index in keys of request i's key.
	of []int
	// idx maps a normalized key (normKey) to its index in keys.
	idx map[any]int
}

// group fills ks for batch.
func (ks *keySet) group(batch []*waiter) {
	if ks.idx == nil {
		ks.idx = make(map[any]int)
	}
	clear(ks.idx)
	clear(ks.keys)
	ks.keys, ks.of = ks.keys[:0], ks.of[:0]
	for _, w := range batch {
		v := keyValue(&w.req)
		k := normKey(v)
		j, ok := ks.idx[k]
		if !ok {
			j = len(ks.keys)
			ks.idx[k] = j
			ks.keys = append(ks.keys, v)
		}
		ks.of = append(ks.of, j)
	}
}

// rowStocks appends to dst, per key of ks, the stock of its row in locked
// (the batch's locking read), nil for a key that has no row (its requests
// match nothing). ok is false when a key without an exactly equal row
// might still equal a locked row under the column's collation (case,
// trailing spaces, non-ASCII text): only the server can tell, so the
// general path runs; so it does when a row's stock is NULL.
func rowStocks(dst []any, ks *keySet, locked []lockedRow) (stocks []any, ok bool) {
	stocks = append(dst, make([]any, len(ks.keys))...)[len(dst):]
	for r := range locked {
		if j, ok := ks.idx[locked[r].key]; ok {
			if locked[r].stock == nil {
				return stocks, false // NULL stock: the server decides
			}
			stocks[j] = locked[r].stock
		}
	}
	for j, k := range ks.keys {
		if stocks[j] != nil {
			continue
		}
		if s, isStr := normKey(k).(string); isStr {
			for r := range locked {
				if mayCollateEqual(s, locked[r].text) {
					return stocks, false
				}
			}
		}
	}
	return stocks, true
}

// mayCollateEqual reports whether two different strings may compare equal
// under some collation: unless both are printable ASCII and differ other
// than by letter case and trailing spaces, it says yes.
func mayCollateEqual(a, b string) bool {
	if !printableASCII(a) || !printableASCII(b) {
		return true
	}
	return strings.EqualFold(strings.TrimRight(a, " "), strings.TrimRight(b, " "))
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// keyFits reports whether comparing the key column with key is exact and
// warning-free: an integer with an integer column, a string with a string
// column. Anything else goes to the general path, where the server
// compares and warns as it would directly.
func keyFits(t schema.Table, key any) bool {
	switch key.(type) {
	case int64, uint64:
		return t.KeyInteger
	case string, []byte:
		return t.KeyString
	}
	return false
}
