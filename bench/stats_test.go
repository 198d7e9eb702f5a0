package bench

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

func TestBucketRoundTrip(t *testing.T) {
	for _, v := range []uint64{0, 1, 31, 63, 64, 65, 127, 128, 1000, 123456789, 1 << 40, math.MaxInt64} {
		i := bucketOf(v)
		if hi := bucketHigh(i); hi < v {
			t.Errorf("value %d: bucket %d high %d < value", v, i, hi)
		}
		if i > 0 && bucketHigh(i-1) >= v {
			t.Errorf("value %d: previous bucket %d high %d >= value", v, i-1, bucketHigh(i-1))
		}
		if i >= numBuckets {
			t.Errorf("value %d: bucket %d out of range", v, i)
		}
	}
}

func TestHistogramQuantiles(t *testing.T) {
	tests := []struct {
		name   string
		values func(i int) time.Duration
		n      int
		want   map[float64]time.Duration
	}{
		{"uniform 1..10000us", func(i int) time.Duration { return time.Duration(i+1) * time.Microsecond }, 10000,
			map[float64]time.Duration{0.5: 5 * time.Millisecond, 0.95: 9500 * time.Microsecond, 0.99: 9900 * time.Microsecond, 1: 10 * time.Millisecond}},
		{"constant", func(int) time.Duration { return 1234 * time.Microsecond }, 100,
			map[float64]time.Duration{0: 1234 * time.Microsecond, 0.5: 1234 * time.Microsecond, 1: 1234 * time.Microsecond}},
		{"bimodal", func(i int) time.Duration {
			if i%100 == 0 {
				return time.Second
			}
			return time.Millisecond
		}, 10000, map[float64]time.Duration{0.5: time.Millisecond, 0.98: time.Millisecond, 0.999: time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Histogram
			for i := range tt.n {
				h.Record(tt.values(i))
			}
			for q, want := range tt.want {
				got := h.Quantile(q)
				if rel := math.Abs(float64(got-want)) / float64(want); rel > 1.0/32 {
					t.Errorf("q%.3f = %v, want %v (±3%%)", q, got, want)
				}
			}
			if h.Count() != uint64(tt.n) {
				t.Errorf("count %d, want %d", h.Count(), tt.n)
			}
		})
	}
}

func TestHistogramMerge(t *testing.T) {
	var a, b, all Histogram
	for i := range 1000 {
		d := time.Duration(i*i) * time.Microsecond
		all.Record(d)
		if i%2 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	var empty Histogram
	a.Merge(&b)
	a.Merge(&empty)
	for _, q := range []float64{0, 0.5, 0.9, 0.99, 1} {
		if a.Quantile(q) != all.Quantile(q) {
			t.Errorf("q%v merged %v, want %v", q, a.Quantile(q), all.Quantile(q))
		}
	}
	if a.Count() != all.Count() || a.Max() != all.Max() || a.Mean() != all.Mean() {
		t.Errorf("merged count/max/mean %d/%v/%v, want %d/%v/%v", a.Count(), a.Max(), a.Mean(), all.Count(), all.Max(), all.Mean())
	}
	if empty.Quantile(0.5) != 0 || empty.Mean() != 0 {
		t.Error("empty histogram should report zeros")
	}
}

// p returns the probability of rank k.
func (z *Zipf) p(k int) float64 {
	if k == 1 {
		return z.cdf[0]
	}
	return z.cdf[k-1] - z.cdf[k-2]
}

func TestZipf(t *testing.T) {
	const n, draws = 1000, 200000
	z := NewZipf(n, 1.1)
	var sum float64
	for k := 1; k <= n; k++ {
		sum += z.p(k)
	}
	if math.Abs(sum-1) > 1e-9 {
		t.Fatalf("probabilities sum to %v", sum)
	}
	// P(1)/P(2) = 2^1.1.
	if r := z.p(1) / z.p(2); math.Abs(r-math.Pow(2, 1.1)) > 1e-9 {
		t.Errorf("P(1)/P(2) = %v, want 2^1.1", r)
	}
	r := rand.New(rand.NewPCG(1, 2))
	counts := make([]int, n+1)
	for range draws {
		k := z.Next(r)
		if k < 1 || k > n {
			t.Fatalf("rank %d out of 1..%d", k, n)
		}
		counts[k]++
	}
	for _, k := range []int{1, 2, 10, 100} {
		want := z.p(k) * draws
		sd := math.Sqrt(want)
		if math.Abs(float64(counts[k])-want) > 5*sd {
			t.Errorf("rank %d drawn %d times, want %.0f ± %.0f", k, counts[k], want, 5*sd)
		}
	}
}

func TestLookupScenarios(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		err  bool
	}{
		{"hot", []string{"hot"}, false},
		{"zipf, flash-sale", []string{"zipf", "flash-sale"}, false},
		{"all", ScenarioNames(), false},
		{"hot,nope", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := LookupScenarios(tt.in)
			if (err != nil) != tt.err || len(got) != len(tt.want) {
				t.Fatalf("LookupScenarios(%q) = %d scenarios, %v", tt.in, len(got), err)
			}
			for i, s := range got {
				if s.Name != tt.want[i] {
					t.Errorf("scenario %d = %s, want %s", i, s.Name, tt.want[i])
				}
			}
		})
	}
}
