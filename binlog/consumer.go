package binlog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/hotrow/hotrow/internal/ctxsleep"
	"github.com/hotrow/hotrow/schema"
)

// ErrClosed is returned by Run after Close, or when Run is called twice.
var ErrClosed = errors.New("binlog: consumer closed or already run")

// Consumer is the order feed: it reads the binlog, delivers events to its
// sinks and keeps its checkpoint. See the package documentation.
type Consumer struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	cancel  context.CancelFunc // guarded by mu; ends a running Run
	started bool               // guarded by mu
	closed  bool               // guarded by mu
	done    chan struct{}      // closed when Run returns

	live live // what Stats reads
}

// NewConsumer returns a consumer for cfg; it connects in Run.
func NewConsumer(cfg Config, log *slog.Logger) (*Consumer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Consumer{cfg: cfg, log: log.With("consumer", cfg.Name), done: make(chan struct{})}, nil
}

// Run connects, checks the server, and feeds the sinks until ctx ends or
// Close is called (then it returns nil after a last checkpoint), or a
// fatal error: a wrong server setting (ErrServerSetting), a missing
// privilege (ErrPrivilege), a purged position (ErrPurged), a sink that
// cannot be opened, an event that cannot be decoded. Lost connections
// are retried forever.
func (c *Consumer) Run(ctx context.Context) error {
	c.mu.Lock()
	if c.started || c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	ctx, cancel := context.WithCancel(ctx)
	c.cancel, c.started = cancel, true
	c.mu.Unlock()
	defer close(c.done)
	defer cancel()
	c.live.running.Store(true)
	defer c.live.running.Store(false)
	err := c.run(ctx)
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// Close stops a running Run and waits for it and its goroutines. It is
// idempotent.
func (c *Consumer) Close() error {
	c.mu.Lock()
	c.closed = true
	cancel, started := c.cancel, c.started
	c.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	if started {
		<-c.done
	}
	return nil
}

func (c *Consumer) run(ctx context.Context) error {
	cfg := c.cfg
	dsn, _ := mysql.ParseDSN(cfg.SourceDSN)
	dsn.DBName = ""
	dsn.ParseTime = true
	if dsn.Params == nil {
		dsn.Params = map[string]string{}
	}
	dsn.Params["time_zone"] = "'+00:00'"
	db, err := sql.Open("mysql", dsn.FormatDSN())
	if err != nil {
		return fmt.Errorf("binlog: %w", err)
	}
	defer db.Close()
	db.SetMaxOpenConns(4)

	srv, err := checkServer(ctx, db)
	if err != nil {
		return err
	}
	if err := schema.Ensure(ctx, db, cfg.MetaSchema); err != nil {
		return fmt.Errorf("binlog: %w", err)
	}
	cps := newCheckpoints(db, cfg.MetaSchema, cfg.Name)
	start, err := c.startPosition(ctx, db, srv, cps)
	if err != nil {
		return err
	}

	sinks := make([]Sink, 0, len(cfg.Sinks))
	defer func() {
		for _, s := range sinks {
			if err := s.Close(); err != nil {
				c.log.Warn("close sink", "sink", s.Name(), "err", err)
			}
		}
	}()
	opts := cfg.SinkOptions
	if opts.Logger == nil {
		opts.Logger = c.log
	}
	for _, spec := range cfg.Sinks {
		s, err := OpenSink(ctx, spec, opts)
		if err != nil {
			return fmt.Errorf("binlog: %w", err)
		}
		sinks = append(sinks, s)
	}

	w := newWindow(len(sinks), cfg.MaxInFlightEvents, cfg.MaxInFlightBytes)
	st, err := newStream(cfg, c.log, srv, w, start)
	if err != nil {
		return err
	}
	c.live.w.Store(w)
	c.live.st.Store(st)
	var wg sync.WaitGroup
	gctx, stop := context.WithCancel(ctx)
	for i, s := range sinks {
		wg.Go(func() { c.deliver(gctx, w, i, s) })
	}
	var cpDone sync.WaitGroup
	cpCtx, stopCP := context.WithCancel(context.Background())
	cpDone.Go(func() { c.checkpointLoop(cpCtx, gctx, w, cps) })
	if cfg.StatsInterval > 0 {
		wg.Go(func() { c.statsLoop(gctx, w, st) })
	}
	if cfg.LedgerRetention > 0 {
		wg.Go(func() { c.retentionLoop(gctx, db) })
	}
	err = st.run(gctx)
	stop()
	wg.Wait()
	stopCP() // after the sinks stopped: the last checkpoint covers their last acknowledgements
	cpDone.Wait()
	return err
}

// startPosition is the checkpoint, or the server's current (or oldest
// with FromStart) position when there is none or ResetCheckpoint.
func (c *Consumer) startPosition(ctx context.Context, db *sql.DB, srv server, cps *checkpoints) (Position, error) {
	if c.cfg.ResetCheckpoint {
		if err := cps.reset(ctx); err != nil {
			return Position{}, err
		}
		c.log.Warn("checkpoint reset: starting at the server's current position")
	} else {
		pos, ok, err := cps.load(ctx)
		if err != nil {
			return Position{}, err
		}
		if ok {
			c.log.Info("resuming from checkpoint", "gtid", pos.GTID, "file", pos.File, "pos", pos.Pos)
			c.live.checkpoint(pos, time.Time{})
			return pos, nil
		}
	}
	var pos Position
	var err error
	if c.cfg.FromStart && !c.cfg.ResetCheckpoint {
		pos, err = srv.first(ctx, db)
	} else {
		pos, err = srv.current(ctx, db)
	}
	if err != nil {
		return Position{}, err
	}
	c.log.Info("no checkpoint: starting", "from_start", c.cfg.FromStart, "gtid", pos.GTID, "file", pos.File, "pos", pos.Pos)
	// Store it at once, so a restart before the first event resumes here.
	if err := cps.save(ctx, pos); err != nil {
		return Position{}, err
	}
	c.live.checkpoint(pos, time.Now())
	return pos, nil
}

// deliver feeds sink i from the window in order, retrying a failed
// batch (the same messages) with backoff until ctx ends.
func (c *Consumer) deliver(ctx context.Context, w *window, i int, s Sink) {
	for {
		from, msgs := w.next(i, c.cfg.SinkBatch)
		if len(msgs) == 0 {
			select {
			case <-w.wake[i]:
				continue
			case <-ctx.Done():
				return
			}
		}
		backoff := c.cfg.RetryMin
		for attempt := 1; ; attempt++ {
			err := s.Deliver(ctx, msgs)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return
			}
			c.log.Warn("sink delivery failed, retrying", "sink", s.Name(), "err", err.Error(),
				"events", len(msgs), "first_id", msgs[0].ID, "attempt", attempt, "retry_in", backoff)
			if !ctxsleep.Sleep(ctx, jittered(backoff)) {
				return
			}
			backoff = min(2*backoff, c.cfg.RetryMax)
		}
		w.ack(i, from+uint64(len(msgs)))
	}
}

// checkpointLoop writes the newest boundary every sink passed, at most
// once per CheckpointInterval while run is live, and once more when
// ctx ends (after the sinks stopped).
func (c *Consumer) checkpointLoop(ctx, run context.Context, w *window, cps *checkpoints) {
	t := time.NewTicker(c.cfg.CheckpointInterval)
	defer t.Stop()
	var latest Position
	dirty, failing := false, false
	write := func(ctx context.Context) {
		if pos, ok := w.checkpoint(); ok {
			latest, dirty = pos, true
		}
		if !dirty {
			return
		}
		if err := cps.save(ctx, latest); err != nil {
			if ctx.Err() == nil && !failing {
				c.log.Warn("checkpoint write failed, retrying", "err", err.Error())
			}
			failing = true
			return
		}
		c.live.checkpoint(latest, time.Now())
		if failing {
			c.log.Info("checkpoint written again", "gtid", latest.GTID)
		}
		dirty, failing = false, false
	}
	for {
		select {
		case <-t.C:
			write(run)
		case <-ctx.Done():
			final, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			write(final)
			cancel()
			if !dirty && latest.File != "" {
				c.log.Info("checkpoint", "gtid", latest.GTID, "file", latest.File, "pos", latest.Pos)
			}
			return
		}
	}
}

// statsLoop logs lag and throughput every StatsInterval.
func (c *Consumer) statsLoop(ctx context.Context, w *window, st *stream) {
	t := time.NewTicker(c.cfg.StatsInterval)
	defer t.Stop()
	last, lastAt := st.read.Load(), time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			n := st.read.Load()
			events, bytes, oldest := w.stats()
			lag := time.Duration(0)
			if !oldest.IsZero() {
				lag = now.Sub(oldest)
			}
			c.log.Info("order feed", "events_per_sec", float64(n-last)/now.Sub(lastAt).Seconds(),
				"events_total", n, "lag_ms", lag.Milliseconds(), "in_flight_events", events,
				"in_flight_bytes", bytes, "last_commit", time.UnixMicro(st.lastCommit.Load()).UTC())
			last, lastAt = n, now
		}
	}
}

// jittered spreads d over [d/2, d).
func jittered(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}
