package bench

import (
	"io"
	"sync"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// ProgressBar shows a run's progress on a terminal: one bar over the
// planned wall time, labelled with the side that is running. It implements
// Progress; Close must be called once the run is over.
type ProgressBar struct {
	p    *mpb.Progress
	bar  *mpb.Bar
	quit chan struct{}
	done chan struct{}
	once sync.Once

	mu      sync.Mutex // guards the fields below
	label   string
	base    time.Duration // planned time of the sides already done
	begun   time.Time     // start of the current side
	planned time.Duration // planned time of the current side
}

// NewProgressBar draws on w (a terminal) a bar for a run planned to take
// total.
func NewProgressBar(w io.Writer, total time.Duration) *ProgressBar {
	pb := &ProgressBar{quit: make(chan struct{}), done: make(chan struct{})}
	pb.p = mpb.New(mpb.WithOutput(w), mpb.WithWidth(40), mpb.WithRefreshRate(200*time.Millisecond))
	pb.bar = pb.p.AddBar(int64(total/time.Millisecond),
		mpb.PrependDecorators(decor.Any(func(decor.Statistics) string {
			pb.mu.Lock()
			defer pb.mu.Unlock()
			return pb.label
		}, decor.WCSyncSpaceR)),
		mpb.AppendDecorators(decor.Percentage(decor.WCSyncSpace), decor.Name(" eta "),
			decor.Any(func(s decor.Statistics) string {
				return (time.Duration(s.Total-s.Current) * time.Millisecond).Round(time.Second).String()
			})),
	)
	go pb.tick()
	return pb
}

// Begin implements Progress.
func (pb *ProgressBar) Begin(label string, planned time.Duration) {
	pb.mu.Lock()
	defer pb.mu.Unlock()
	pb.label, pb.begun, pb.planned = label, time.Now(), planned
}

// End implements Progress.
func (pb *ProgressBar) End() {
	pb.mu.Lock()
	pb.base += pb.planned
	pb.planned = 0
	done := pb.base
	pb.mu.Unlock()
	// Never call into the bar with mu held: its render goroutine takes mu
	// (the label decorator) while SetCurrent waits for that goroutine.
	pb.bar.SetCurrent(int64(done / time.Millisecond))
}

func (pb *ProgressBar) tick() {
	defer close(pb.done)
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-pb.quit:
			return
		case <-t.C:
		}
		pb.mu.Lock()
		running, at := pb.planned > 0, pb.base+min(time.Since(pb.begun), pb.planned)
		pb.mu.Unlock()
		if running {
			pb.bar.SetCurrent(int64(at / time.Millisecond))
		}
	}
}

// Close completes the bar and waits until it is drawn. It is idempotent.
func (pb *ProgressBar) Close() {
	pb.once.Do(func() {
		close(pb.quit)
		<-pb.done
		pb.bar.SetTotal(-1, true)
		pb.p.Wait()
	})
}

// Write prints p above the bar (for log lines while the bar is drawn).
func (pb *ProgressBar) Write(p []byte) (int, error) { return pb.p.Write(p) }
