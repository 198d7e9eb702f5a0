package merger

import (
	"math"
	"testing"
)

func TestNormKey(t *testing.T) {
	for _, tc := range []struct {
		name string
		a, b any
		same bool
	}{
		{"bytes and string", []byte("a"), "a", true},
		{"int64 and uint64", int64(5), uint64(5), true},
		{"large uint64", uint64(math.MaxUint64), int64(-1), false},
		{"case differs", "a", "A", false},
		{"NaN", math.NaN(), math.NaN(), true},
		{"int and string", int64(1), "1", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := normKey(tc.a) == normKey(tc.b); got != tc.same {
				t.Errorf("normKey(%v) == normKey(%v) = %v, want %v", tc.a, tc.b, got, tc.same)
			}
		})
	}
}

func TestMayCollateEqual(t *testing.T) {
	for _, tc := range []struct {
		name, a, b string
		want       bool
	}{
		{"different", "a", "b", false},
		{"case", "sku-A", "sku-a", true},
		{"trailing spaces", "a  ", "a", true},
		{"leading space", " a", "a", false},
		{"non-ASCII", "é", "e", true},
		{"control byte", "a\x00", "a", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := mayCollateEqual(tc.a, tc.b); got != tc.want {
				t.Errorf("mayCollateEqual(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
			}
		})
	}
}
