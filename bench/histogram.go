package bench

import (
	"math"
	"math/bits"
	"time"
)

// subBits is the number of significant bits a bucket keeps: every power of
// two is split into 2^(subBits-1) buckets, a relative error below 1/32.
const (
	subBits    = 6
	subCount   = 1 << (subBits - 1) // buckets per power of two
	maxShift   = 64 - subBits
	numBuckets = (maxShift + 2) * subCount
)

// Histogram records durations in log-spaced buckets, HDR style: values
// below 2^subBits ns are exact, larger ones keep their top subBits bits.
// Recording is two shifts and an increment. A Histogram is not safe for
// concurrent use: each client goroutine owns one and they are merged at
// the end.
type Histogram struct {
	counts   [numBuckets]uint64
	n        uint64
	sum      time.Duration
	min, max time.Duration
}

// bucketOf returns the bucket index of v nanoseconds.
func bucketOf(v uint64) int {
	shift := bits.Len64(v) - subBits
	if shift <= 0 {
		return int(v)
	}
	return shift*subCount + int(v>>uint(shift))
}

// bucketHigh returns the largest value that falls into bucket i.
func bucketHigh(i int) uint64 {
	if i < 2*subCount {
		return uint64(i)
	}
	shift := i/subCount - 1
	top := uint64(i - shift*subCount)
	return (top+1)<<uint(shift) - 1
}

// Record adds one observation; negative durations count as zero.
func (h *Histogram) Record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[bucketOf(uint64(d))]++
	if h.n == 0 || d < h.min {
		h.min = d
	}
	if d > h.max {
		h.max = d
	}
	h.n++
	h.sum += d
}

// Merge adds the observations of o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.n += o.n
	h.sum += o.sum
}

// Count returns the number of observations.
func (h *Histogram) Count() uint64 { return h.n }

// Max returns the largest observation (exact).
func (h *Histogram) Max() time.Duration { return h.max }

// Mean returns the arithmetic mean (exact), 0 when empty.
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return h.sum / time.Duration(h.n)
}

// Quantile returns the smallest bucket bound below which a fraction q of
// the observations fall (q in [0,1]), clamped to the exact min and max; 0
// when empty. The result overestimates by at most one bucket width (~3%).
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			v := time.Duration(bucketHigh(i))
			return min(max(v, h.min), h.max)
		}
	}
	return h.max
}
