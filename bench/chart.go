package bench

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// WriteChart draws the report to path; the extension picks the format
// (png, svg, pdf, ...). One row per scenario: for a concurrency sweep,
// throughput and p99 against clients; for a single client count,
// throughput and units granted over time. Direct, relay and proxy share each
// panel.
func WriteChart(path string, r *Report) error {
	var rows [][]*plot.Plot
	for _, name := range scenarioOrder(r) {
		cells := cellsOf(r, name)
		var row []*plot.Plot
		var err error
		if len(cells) > 1 {
			row, err = sweepPlots(name, cells)
		} else {
			row, err = timelinePlots(name, cells[0])
		}
		if err != nil {
			return err
		}
		rows = append(rows, row)
	}
	if len(rows) == 0 {
		return fmt.Errorf("chart: empty report")
	}
	const cols = 2
	w, h := 8*vg.Inch, vg.Length(len(rows))*3*vg.Inch
	format := strings.TrimPrefix(strings.ToLower(filepath.Ext(path)), ".")
	cw, err := draw.NewFormattedCanvas(w, h, format)
	if err != nil {
		return fmt.Errorf("chart %s: %w", path, err)
	}
	tiles := draw.Tiles{Rows: len(rows), Cols: cols, PadX: vg.Millimeter * 4, PadY: vg.Millimeter * 4,
		PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 2}
	canvases := plot.Align(rows, tiles, draw.New(cw))
	for i, row := range rows {
		for j, p := range row {
			p.Draw(canvases[i][j])
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := cw.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func scenarioOrder(r *Report) []string {
	var names []string
	for _, c := range r.Cells {
		if len(names) == 0 || names[len(names)-1] != c.Scenario {
			names = append(names, c.Scenario)
		}
	}
	return names
}

func cellsOf(r *Report, scenario string) []Cell {
	var out []Cell
	for _, c := range r.Cells {
		if c.Scenario == scenario {
			out = append(out, c)
		}
	}
	return out
}

// sweepPlots: throughput and p99 against the client count, log scales.
func sweepPlots(name string, cells []Cell) ([]*plot.Plot, error) {
	series := func(side func(Cell) *SideResult, y func(*SideResult) float64) plotter.XYs {
		xys := make(plotter.XYs, len(cells))
		for i, c := range cells {
			xys[i].X, xys[i].Y = float64(c.Clients), y(side(c))
		}
		return xys
	}
	direct := func(c Cell) *SideResult { return c.Direct }
	relay := func(c Cell) *SideResult { return c.Relay }
	proxy := func(c Cell) *SideResult { return c.Proxy }
	lines := func(y func(*SideResult) float64) []any {
		var out []any
		for _, side := range []struct {
			name string
			get  func(Cell) *SideResult
		}{{Direct, direct}, {Relay, relay}, {Proxy, proxy}} {
			if !slices.ContainsFunc(cells, func(c Cell) bool { return side.get(c) == nil }) {
				out = append(out, side.name, series(side.get, y))
			}
		}
		return out
	}
	throughput := func(s *SideResult) float64 { return s.Throughput }
	p99 := func(s *SideResult) float64 { return max(s.Latency.P99, 0.001) }

	tp := newPlot(name+": throughput", "clients", "ops/s")
	lp := newPlot(name+": p99 latency", "clients", "ms (log)")
	for _, p := range []*plot.Plot{tp, lp} {
		p.X.Scale, p.X.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
	}
	lp.Y.Scale, lp.Y.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
	if err := plotutil.AddLinePoints(tp, lines(throughput)...); err != nil {
		return nil, err
	}
	if err := plotutil.AddLinePoints(lp, lines(p99)...); err != nil {
		return nil, err
	}
	headroom(tp)
	// Whole decades, so that the log axis has labelled ticks and the
	// legend room above the lines.
	lp.Y.Min = math.Pow(10, math.Floor(math.Log10(lp.Y.Min)))
	lp.Y.Max = math.Pow(10, math.Ceil(math.Log10(lp.Y.Max))+0.5)
	return []*plot.Plot{tp, lp}, nil
}

// timelinePlots: throughput (per half second) and cumulative units granted
// against time.
func timelinePlots(name string, c Cell) ([]*plot.Plot, error) {
	rate := func(s *SideResult) plotter.XYs {
		// A point per 0.5 s, or per sample for runs shorter than 5 s (a
		// flash sale through the proxy may last one second).
		window := 5
		if len(s.Timeline) < 50 {
			window = 1
		}
		var xys plotter.XYs
		for i := window; i < len(s.Timeline); i += window {
			a, b := s.Timeline[i-window], s.Timeline[i]
			xys = append(xys, plotter.XY{X: b.T, Y: float64(b.Ops-a.Ops) / (b.T - a.T)})
		}
		return xys
	}
	granted := func(s *SideResult) plotter.XYs {
		xys := plotter.XYs{{}}
		for _, p := range s.Timeline {
			xys = append(xys, plotter.XY{X: p.T, Y: float64(p.Granted)})
		}
		return xys
	}
	title := fmt.Sprintf("%s, %d clients", name, c.Clients)
	tp := newPlot(title+": throughput", "seconds", "ops/s")
	gp := newPlot(title+": units granted", "seconds", "units")
	lines := func(y func(*SideResult) plotter.XYs) []any {
		var out []any
		for _, s := range c.sideResults() {
			out = append(out, s.Side, y(s))
		}
		return out
	}
	if err := plotutil.AddLines(tp, lines(rate)...); err != nil {
		return nil, err
	}
	if err := plotutil.AddLines(gp, lines(granted)...); err != nil {
		return nil, err
	}
	headroom(tp)
	headroom(gp)
	tp.X.Tick.Marker, gp.X.Tick.Marker = plainTicks, plainTicks
	return []*plot.Plot{tp, gp}, nil
}

// headroom starts a linear y axis at zero and leaves room for the legend
// above the lines.
func headroom(p *plot.Plot) {
	p.Y.Min = 0
	p.Y.Max *= 1.3
	p.Y.Tick.Marker = plainTicks
}

// plainTicks labels linear axes 12,000 and 2.5 rather than 12000.00 and
// 2.50.
var plainTicks = plot.TickerFunc(func(lo, hi float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(lo, hi)
	for i, t := range ticks {
		switch {
		case t.Label == "":
		case t.Value == math.Trunc(t.Value):
			ticks[i].Label = thousands(t.Value)
		default:
			ticks[i].Label = strconv.FormatFloat(t.Value, 'f', -1, 64)
		}
	}
	return ticks
})

func newPlot(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text, p.X.Label.Text, p.Y.Label.Text = title, x, y
	p.Legend.Top, p.Legend.Left = true, true
	p.Add(plotter.NewGrid())
	return p
}
