package merger

import (
	"context"
	"strconv"
	"time"

	"github.com/hotrow/hotrow/schema"
)

// janitorChunk bounds the marker rows one DELETE removes.
const janitorChunk = 10000

// runJanitor deletes batch markers older than MarkerRetention, at start
// and then every quarter of it (at most hourly), until stop is closed.
// Markers only serve to resolve uncertain COMMITs, which takes at most
// ResolveTimeout; the ledger is never touched.
func (m *Merger) runJanitor(stop <-chan struct{}) {
	defer m.janitor.Done()
	every := min(m.cfg.MarkerRetention/4, time.Hour)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		m.pruneMarkers(stop)
		select {
		case <-stop:
			return
		case <-tick.C:
		}
	}
}

func (m *Merger) pruneMarkers(stop <-chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	q := "DELETE FROM " + m.metaIdent + "." + schema.BatchesTable +
		" WHERE created_at < NOW(6) - INTERVAL " + strconv.FormatInt(int64(m.cfg.MarkerRetention/time.Second), 10) +
		" SECOND LIMIT " + strconv.Itoa(janitorChunk)
	for {
		res, err := m.meta.ExecContext(ctx, q)
		if err != nil {
			if ctx.Err() == nil {
				m.log.Warn("pruning batch markers", "err", err)
			}
			return
		}
		if n, _ := res.RowsAffected(); n < janitorChunk {
			return
		}
	}
}
