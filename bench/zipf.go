package bench

import (
	"math"
	"math/rand/v2"
	"sort"
)

// Zipf draws ranks 1..n with P(k) proportional to 1/k^s, by inverse
// transform over a precomputed cumulative table (exact for finite n, any
// s > 0). The table is read-only: one Zipf serves every client, each with
// its own random source.
type Zipf struct {
	cdf []float64 // cdf[k-1] = P(rank <= k)
}

// NewZipf returns a Zipf over ranks 1..n with exponent s.
func NewZipf(n int, s float64) *Zipf {
	cdf := make([]float64, n)
	var total float64
	for k := 1; k <= n; k++ {
		total += math.Pow(float64(k), -s)
		cdf[k-1] = total
	}
	for i := range cdf {
		cdf[i] /= total
	}
	cdf[n-1] = 1
	return &Zipf{cdf: cdf}
}

// Next returns a rank in 1..n drawn with r.
func (z *Zipf) Next(r *rand.Rand) int {
	u := r.Float64()
	return sort.SearchFloat64s(z.cdf, u) + 1
}
