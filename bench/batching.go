package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// batchSizeFamily is the proxy's histogram of requests per batch
// (admin/metrics.go): its _count counts batches on every path, lone ones
// included, and its _sum the requests they carried.
const batchSizeFamily = "hotrow_batch_size"

// scrapeTimeout bounds one scrape of the proxy's /metrics.
const scrapeTimeout = 5 * time.Second

// batchCounts are the merger's cumulative batch counters.
type batchCounts struct {
	batches, requests float64
}

// parseBatchCounts reads the batch counters from a Prometheus text
// exposition.
func parseBatchCounts(r io.Reader) (batchCounts, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return batchCounts{}, fmt.Errorf("parse metrics: %w", err)
	}
	f := fams[batchSizeFamily]
	if f == nil || len(f.GetMetric()) != 1 || f.GetMetric()[0].GetHistogram() == nil {
		return batchCounts{}, fmt.Errorf("no %s histogram in the metrics (does the proxy run a merger?)", batchSizeFamily)
	}
	h := f.GetMetric()[0].GetHistogram()
	return batchCounts{batches: float64(h.GetSampleCount()), requests: h.GetSampleSum()}, nil
}

// batchRates returns the requests per batch (0 when no batch ran) and the
// batches per second between two readings wall apart.
func batchRates(start, end batchCounts, wall time.Duration) (perBatch, perSec float64, err error) {
	batches, requests := end.batches-start.batches, end.requests-start.requests
	switch {
	case batches < 0 || requests < 0:
		return -1, -1, errors.New("batch counters went back (did the proxy restart?)")
	case wall <= 0:
		return -1, -1, errors.New("empty window")
	case batches > 0:
		perBatch = requests / batches
	}
	return perBatch, batches / wall.Seconds(), nil
}

// scrapeBatchCounts reads the batch counters from the proxy's /metrics at
// url.
func scrapeBatchCounts(ctx context.Context, url string) (batchCounts, error) {
	ctx, cancel := context.WithTimeout(ctx, scrapeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return batchCounts{}, err
	}
	// The text format, not whatever else the endpoint might negotiate.
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return batchCounts{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return batchCounts{}, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return parseBatchCounts(resp.Body)
}

// batchMeter measures how the proxy's merger batched over an interval,
// from a scrape of its /metrics at each end. An empty URL measures nothing.
type batchMeter struct {
	url   string
	start batchCounts
	err   error
}

// startBatches takes the first reading from url (empty: none).
func startBatches(ctx context.Context, url string) batchMeter {
	m := batchMeter{url: url}
	if url != "" {
		m.start, m.err = scrapeBatchCounts(ctx, url)
	}
	return m
}

// rates takes the second reading and returns the requests per batch and
// the batches per second since the first over wall, or -1, -1 when not
// measured: no URL (nil error), or a failed scrape (its error).
func (m batchMeter) rates(ctx context.Context, wall time.Duration) (perBatch, perSec float64, err error) {
	if m.url == "" {
		return -1, -1, nil
	}
	if m.err != nil {
		return -1, -1, m.err
	}
	end, err := scrapeBatchCounts(ctx, m.url)
	if err != nil {
		return -1, -1, err
	}
	return batchRates(m.start, end, wall)
}
