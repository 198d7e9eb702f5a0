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

// groupKeys fills x.keys, x.keyOf and x.keyIdx for batch.
func (x *executor) groupKeys(batch []*waiter) {
	if x.keyIdx == nil {
		x.keyIdx = make(map[any]int)
	}
	clear(x.keyIdx)
	clear(x.keys)
	x.keys, x.keyOf = x.keys[:0], x.keyOf[:0]
	for _, w := range batch {
		v := keyValue(&w.req)
		k := normKey(v)
		j, ok := x.keyIdx[k]
		if !ok {
			j = len(x.keys)
			x.keyIdx[k] = j
			x.keys = append(x.keys, v)
		}
		x.keyOf = append(x.keyOf, j)
	}
}

// mapRows sets x.rowOf: the locked row of each key, -1 for a key that
// has no row (its requests match nothing). It returns false when a key
// without an exactly equal row might still equal a locked row under the
// column's collation (case, trailing spaces, non-ASCII text): only the
// server can tell, so the general path runs.
func (x *executor) mapRows() bool {
	x.rowOf = x.rowOf[:0]
	for range x.keys {
		x.rowOf = append(x.rowOf, -1)
	}
	for r := range x.locked {
		if j, ok := x.keyIdx[x.locked[r].key]; ok {
			x.rowOf[j] = r
		}
	}
	for j, k := range x.keys {
		if x.rowOf[j] >= 0 {
			continue
		}
		if s, isStr := normKey(k).(string); isStr {
			for r := range x.locked {
				if mayCollateEqual(s, x.locked[r].text) {
					return false
				}
			}
		}
	}
	return true
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
