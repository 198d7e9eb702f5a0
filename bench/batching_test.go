package bench

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// exposition is a /metrics page of a proxy whose merger ran batches
// batches carrying requests requests, with neighbours around the histogram.
func exposition(batches, requests int) string {
	return fmt.Sprintf(`# HELP hotrow_batches_total Batch transactions by execution path (lone, fast, general).
# TYPE hotrow_batches_total counter
hotrow_batches_total{path="fast"} %d
hotrow_batches_total{path="general"} 0
hotrow_batches_total{path="lone"} 0
# HELP hotrow_batch_size Requests per batch.
# TYPE hotrow_batch_size histogram
hotrow_batch_size_bucket{le="1"} 0
hotrow_batch_size_bucket{le="2"} 0
hotrow_batch_size_bucket{le="+Inf"} %d
hotrow_batch_size_sum %d
hotrow_batch_size_count %d
# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 42
`, batches, batches, requests, batches)
}

func TestParseBatchCounts(t *testing.T) {
	tests := []struct {
		name string
		text string
		want batchCounts
		err  string
	}{
		{"histogram", exposition(120, 1900), batchCounts{batches: 120, requests: 1900}, ""},
		{"no merger", "# TYPE hotrow_sessions gauge\nhotrow_sessions 3\n", batchCounts{}, "no hotrow_batch_size"},
		{"not prometheus", "<html>hello</html>\n", batchCounts{}, "parse metrics"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseBatchCounts(strings.NewReader(tt.text))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want one with %q", err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestBatchRates(t *testing.T) {
	tests := []struct {
		name             string
		start, end       batchCounts
		wall             time.Duration
		perBatch, perSec float64
		err              bool
	}{
		{"batches of 16", batchCounts{10, 100}, batchCounts{110, 1700}, 2 * time.Second, 16, 50, false},
		{"alternating 14 and 2", batchCounts{}, batchCounts{200, 1600}, 10 * time.Second, 8, 20, false},
		{"no batch", batchCounts{5, 9}, batchCounts{5, 9}, time.Second, 0, 0, false},
		{"counters went back", batchCounts{50, 500}, batchCounts{3, 30}, time.Second, -1, -1, true},
		{"empty window", batchCounts{}, batchCounts{1, 1}, 0, -1, -1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			perBatch, perSec, err := batchRates(tt.start, tt.end, tt.wall)
			if (err != nil) != tt.err || perBatch != tt.perBatch || perSec != tt.perSec {
				t.Fatalf("got %v, %v, %v; want %v, %v, error %v", perBatch, perSec, err, tt.perBatch, tt.perSec, tt.err)
			}
		})
	}
}

// TestBatchMeter scrapes a fake /metrics at both ends of a window; no URL
// or a failing endpoint reads n/a.
func TestBatchMeter(t *testing.T) {
	var scrapes atomic.Int32
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := int(scrapes.Add(1))
		fmt.Fprint(w, exposition(10*n, 40*n))
	}))
	t.Cleanup(ok.Close)
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusInternalServerError)
	}))
	t.Cleanup(broken.Close)

	ctx := context.Background()
	tests := []struct {
		name             string
		url              string
		perBatch, perSec float64
		err              bool
	}{
		{"scraped", ok.URL + "/metrics", 4, 5, false},
		{"no url", "", -1, -1, false},
		{"endpoint fails", broken.URL + "/metrics", -1, -1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			perBatch, perSec, err := startBatches(ctx, tt.url).rates(ctx, 2*time.Second)
			if (err != nil) != tt.err || perBatch != tt.perBatch || perSec != tt.perSec {
				t.Fatalf("got %v, %v, %v; want %v, %v, error %v", perBatch, perSec, err, tt.perBatch, tt.perSec, tt.err)
			}
		})
	}
}
