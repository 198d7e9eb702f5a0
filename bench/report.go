package bench

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// WriteTable prints the report as an aligned table: per cell one line per
// side (direct, relay, proxy: those that ran), then ratio lines (proxy /
// direct, relay / direct, proxy / relay: throughput, p50 added, p99), then
// the batching table (writeBatching), then the violations if any. "hop
// cpu" and "hop µs/op" are the CPU of the process in the middle (the proxy
// or the relay).
func WriteTable(w io.Writer, r *Report) error {
	fmt.Fprintf(w, "server %s (sync_binlog=%d, innodb_flush_log_at_trx_commit=%d, log_bin=%d), %d CPUs, %s measured after %s warm-up\n",
		r.Server.Version, r.Server.SyncBinlog, r.Server.FlushLogAtTrxCommit, r.Server.LogBin, r.CPUs, r.Duration, r.Warmup)
	if r.Relay != "" {
		fmt.Fprintf(w, "relay: %s\n", r.Relay)
	}
	fmt.Fprintln(w)
	rows := [][]string{{"scenario", "clients", "side", "ops/s", "p50 ms", "p95 ms", "p99 ms", "max ms",
		"errors", "granted", "sold out s", "hop cpu", "hop µs/op", "db cpu", "bench cpu", "check"}}
	for _, c := range r.Cells {
		for i, s := range c.sideResults() {
			name, clients := c.Scenario, strconv.Itoa(c.Clients)
			if i > 0 {
				name, clients = "", ""
			}
			rows = append(rows, []string{name, clients, s.Side, thousands(s.Throughput),
				millis(s.Latency.P50), millis(s.Latency.P95), millis(s.Latency.P99), millis(s.Latency.Max),
				formatErrors(s.Errors), thousands(float64(s.Granted)), seconds(s.SoldOutSeconds),
				percent(s.CPU.Proxy), micros(s.CPU.ProxyPerOp), percent(s.CPU.DB), percent(s.CPU.Bench), s.Check})
		}
		ratioRow := func(label string, q Ratio) {
			rows = append(rows, []string{"", "", label, times(q.Throughput), added(q.AddedP50), "", times(q.P99)})
		}
		if c.Direct != nil && c.Proxy != nil {
			ratioRow("proxy/direct", c.Ratio)
		}
		if c.RelayVsDirect != nil {
			ratioRow("relay/direct", *c.RelayVsDirect)
		}
		if c.ProxyVsRelay != nil {
			ratioRow("proxy/relay", *c.ProxyVsRelay)
		}
	}
	if err := writeAligned(w, rows, "lrl"); err != nil {
		return err
	}
	if err := writeBatching(w, r); err != nil {
		return err
	}
	for _, c := range r.Cells {
		for _, s := range c.sideResults() {
			for _, v := range s.Violations {
				if _, err := fmt.Fprintf(w, "CHECK FAILED %s × %d %s: %s\n", c.Scenario, c.Clients, s.Side, v); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// writeBatching prints, per cell with a proxy side, how the proxy's merger
// batched in the measured window, beside the proxy's throughput and its
// ratio to direct that the batching explains. A table of its own: the main
// one is wide enough.
func writeBatching(w io.Writer, r *Report) error {
	rows := [][]string{{"scenario", "clients", "proxy ops/s", "proxy/direct", "req/batch", "batches/s"}}
	for _, c := range r.Cells {
		if c.Proxy != nil {
			rows = append(rows, []string{c.Scenario, strconv.Itoa(c.Clients), thousands(c.Proxy.Throughput),
				times(c.Ratio.Throughput), batching(c.Proxy.RequestsPerBatch), batching(c.Proxy.BatchesPerSec)})
		}
	}
	if len(rows) == 1 {
		return nil
	}
	if _, err := fmt.Fprintln(w, "\nmerger batching on the proxy side (its /metrics over the measured window):"); err != nil {
		return err
	}
	return writeAligned(w, rows, "lrrrrr")
}

// writeAligned prints rows in columns two spaces apart. align[i] is 'l'
// or 'r' for column i; columns past align are right-aligned (numbers),
// except the last, which is left-aligned.
func writeAligned(w io.Writer, rows [][]string, align string) error {
	var width []int
	for _, row := range rows {
		for i, cell := range row {
			if i >= len(width) {
				width = append(width, 0)
			}
			width[i] = max(width[i], utf8.RuneCountInString(cell))
		}
	}
	var b strings.Builder
	for _, row := range rows {
		for i, cell := range row {
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(cell))
			switch {
			case i < len(align) && align[i] == 'l', i >= len(align) && i == len(width)-1:
				b.WriteString(cell + pad + "  ")
			default:
				b.WriteString(pad + cell + "  ")
			}
		}
		line := strings.TrimRight(b.String(), " ")
		b.Reset()
		if _, err := fmt.Fprintln(w, line); err != nil {
			return err
		}
	}
	return nil
}

// WriteJSON writes the report, timelines included, to path.
func WriteJSON(path string, r *Report) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// thousands formats v rounded, with thousands separators: 12,345.
func thousands(v float64) string {
	s := strconv.FormatInt(int64(v+0.5), 10)
	var b strings.Builder
	for i, ch := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(ch)
	}
	return b.String()
}

func millis(ms float64) string {
	switch {
	case ms >= 100:
		return strconv.FormatFloat(ms, 'f', 0, 64)
	case ms >= 10:
		return strconv.FormatFloat(ms, 'f', 1, 64)
	}
	return strconv.FormatFloat(ms, 'f', 2, 64)
}

func seconds(s float64) string {
	if s == 0 {
		return "-"
	}
	return strconv.FormatFloat(s, 'f', 2, 64)
}

func percent(p float64) string {
	if p < 0 {
		return "n/a"
	}
	return strconv.FormatFloat(p, 'f', 0, 64) + "%"
}

// micros formats a CPU time per operation in µs, n/a when negative.
func micros(us float64) string {
	switch {
	case us < 0:
		return "n/a"
	case us >= 100:
		return strconv.FormatFloat(us, 'f', 0, 64)
	}
	return strconv.FormatFloat(us, 'f', 1, 64)
}

// batching formats requests per batch or batches per second: n/a when
// negative (not measured), - when zero.
func batching(v float64) string {
	switch {
	case v < 0:
		return "n/a"
	case v == 0:
		return "-"
	case v >= 100:
		return thousands(v)
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}

// added formats a latency difference in ms with its sign: +0.12, -1.5.
func added(ms float64) string {
	s := millis(math.Abs(ms))
	if ms < 0 {
		return "-" + s
	}
	return "+" + s
}

func times(r float64) string {
	if r == 0 {
		return "-"
	}
	if r < 10 {
		return strconv.FormatFloat(r, 'f', 2, 64) + "x"
	}
	return strconv.FormatFloat(r, 'f', 1, 64) + "x"
}

// formatErrors lists error counts by code, most frequent first: "1213:5 conn:2".
func formatErrors(errs map[string]int64) string {
	if len(errs) == 0 {
		return "-"
	}
	keys := slices.Collect(maps.Keys(errs))
	slices.SortFunc(keys, func(a, b string) int {
		return cmp.Or(cmp.Compare(errs[b], errs[a]), strings.Compare(a, b))
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + ":" + strconv.FormatInt(errs[k], 10)
	}
	return strings.Join(parts, " ")
}

// WriteSaleSummary says in one paragraph how a flash-sale cell went.
func WriteSaleSummary(w io.Writer, c Cell, stock int64) {
	line := func(s *SideResult) string {
		if s.SoldOutSeconds > 0 {
			return fmt.Sprintf("sold out in %.2f s", s.SoldOutSeconds)
		}
		msg := fmt.Sprintf("sold %s of %s in %.1f s, not sold out", thousands(float64(s.Granted)), thousands(float64(stock)), s.Seconds)
		if s.Granted > 0 {
			msg += fmt.Sprintf(" (at that pace the sale would take %.0f s)", float64(stock)*s.Seconds/float64(s.Granted))
		}
		return msg
	}
	fmt.Fprintf(w, "Flash sale of %s units, %d buyers: direct %s; through hotrow %s.\n",
		thousands(float64(stock)), c.Clients, line(c.Direct), line(c.Proxy))
	if c.Direct.SoldOutSeconds > 0 && c.Proxy.SoldOutSeconds > 0 {
		fmt.Fprintf(w, "hotrow sold out %s faster, at %s the throughput and %s the p99 latency.\n",
			times(c.Direct.SoldOutSeconds/c.Proxy.SoldOutSeconds), times(c.Ratio.Throughput), times(c.Ratio.P99))
	}
	if len(c.Direct.Violations)+len(c.Proxy.Violations) == 0 {
		fmt.Fprintln(w, "Checked on both sides: stock + units granted = initial stock, nothing oversold.")
	} else {
		fmt.Fprintln(w, "CORRECTNESS CHECK FAILED: see CHECK FAILED above.")
	}
}
