package admin

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/hotrow/hotrow/binlog"
	"github.com/hotrow/hotrow/merger"
)

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// runtimeRulesTable lists the rules in force and whether they are paused.
func (s *Server) runtimeRulesTable() *table {
	t := &table{cols: []string{"schema_name", "table_name", "key_column", "stock_column", "paused"}}
	for _, r := range s.rules.Rules() {
		t.rows = append(t.rows, []any{r.Schema, r.Table, r.Key, r.Stock,
			boolInt(s.rules.Paused(merger.TableName{Schema: r.Schema, Table: r.Table}))})
	}
	return t
}

// hotKeysTable has a row per hot row (table and key value) that was in a
// batch: requests by outcome, batches, the table's queue depth (the
// merger queues per table) and latency quantiles.
func (s *Server) hotKeysTable() *table {
	t := &table{cols: []string{"schema_name", "table_name", "key_column", "key_value", "requests", "granted", "refused", "errors",
		"batches", "avg_batch", "max_batch", "table_queue_depth", "wait_p50_ms", "wait_p99_ms", "commit_p50_ms", "commit_p99_ms"}}
	depth := map[merger.Rule]int{}
	for _, d := range s.m.Stats().Tables {
		depth[d.Rule] = d.Depth
	}
	keys := s.m.KeyStats()
	slices.SortFunc(keys, func(a, b merger.KeyStats) int {
		return cmp.Or(strings.Compare(a.Rule.String(), b.Rule.String()), strings.Compare(a.Key, b.Key))
	})
	for _, k := range keys {
		avg := 0.0
		if k.Batches > 0 {
			avg = float64(k.Requests) / float64(k.Batches)
		}
		t.rows = append(t.rows, []any{k.Rule.Schema, k.Rule.Table, k.Rule.Key, k.Key, k.Requests, k.Granted, k.Refused, k.Errors,
			k.Batches, avg, int64(k.MaxBatch), int64(depth[k.Rule]),
			ms(k.Wait.Quantile(0.5)), ms(k.Wait.Quantile(0.99)), ms(k.Commit.Quantile(0.5)), ms(k.Commit.Quantile(0.99))})
	}
	return t
}

// hotTablesTable has a row per hot table that ran batches or is ruled:
// requests by outcome and path, batches, queue depth and latency
// quantiles.
func (s *Server) hotTablesTable() *table {
	t := &table{cols: []string{"schema_name", "table_name", "key_column", "requests", "granted", "refused", "errors",
		"merged", "lone", "batches", "avg_batch", "max_batch", "queue_depth", "paused",
		"wait_p50_ms", "wait_p99_ms", "commit_p50_ms", "commit_p99_ms"}}
	depth := map[merger.Rule]int{}
	for _, d := range s.m.Stats().Tables {
		depth[d.Rule] = d.Depth
	}
	stats := map[merger.Rule]merger.TableStats{}
	for _, ts := range s.m.TableStats() {
		stats[ts.Rule] = ts
	}
	for _, r := range s.rules.Rules() {
		if _, ok := stats[r]; !ok {
			stats[r] = merger.TableStats{Rule: r}
		}
	}
	keys := make([]merger.Rule, 0, len(stats))
	for r := range stats {
		keys = append(keys, r)
	}
	slices.SortFunc(keys, func(a, b merger.Rule) int { return strings.Compare(a.String(), b.String()) })
	for _, r := range keys {
		ts := stats[r]
		avg := 0.0
		if ts.Batches > 0 {
			avg = float64(ts.Requests) / float64(ts.Batches)
		}
		t.rows = append(t.rows, []any{r.Schema, r.Table, r.Key, ts.Requests, ts.Granted, ts.Refused, ts.Errors,
			ts.Requests - ts.LoneRequests, ts.LoneRequests, ts.Batches, avg, int64(ts.MaxBatch), int64(depth[r]),
			boolInt(s.rules.Paused(merger.TableName{Schema: r.Schema, Table: r.Table})),
			ms(ts.Wait.Quantile(0.5)), ms(ts.Wait.Quantile(0.99)), ms(ts.Commit.Quantile(0.5)), ms(ts.Commit.Quantile(0.99))})
	}
	return t
}

// batchesTable lists the recent batches, newest first.
func (s *Server) batchesTable() *table {
	t := &table{cols: []string{"batch_id", "schema_name", "table_name", "path", "size", "granted", "committed",
		"max_wait_ms", "commit_ms", "finished_at"}}
	for _, b := range s.m.RecentBatches() {
		t.rows = append(t.rows, []any{b.ID, b.Rule.Schema, b.Rule.Table, b.Path, int64(b.Size), int64(b.Granted),
			boolInt(b.Committed), ms(b.MaxWait), ms(b.Commit), b.Finished.UTC().Format("2006-01-02 15:04:05.000000")})
	}
	return t
}

// sessionsTable lists the proxy's client sessions.
func (s *Server) sessionsTable() *table {
	t := &table{cols: []string{"session_id", "backend_connection_id", "user", "client", "state", "mergeable", "not_mergeable_reason"}}
	if s.px == nil {
		return t
	}
	for _, ss := range s.px.Sessions() {
		state := "idle"
		if ss.Busy {
			state = "busy"
		}
		t.rows = append(t.rows, []any{int64(ss.ConnID), int64(ss.ConnID), ss.User, ss.Client, state,
			boolInt(ss.Mergeable), ss.Reason})
	}
	return t
}

// statusTable is SHOW HOTROW STATUS.
func (s *Server) statusTable() *table {
	t := &table{cols: []string{"Variable_name", "Value"}}
	add := func(name string, v any) { t.rows = append(t.rows, []any{name, fmt.Sprint(v)}) }
	st := s.m.Stats()
	add("instance_id", s.cfg.InstanceID)
	add("uptime_seconds", int64(time.Since(s.started).Seconds()))
	if s.px != nil {
		c := s.px.Counters()
		add("sessions", c.Sessions)
		add("logins", c.Logins)
		add("statements", c.Statements)
		add("statements_merged", c.Merged)
		add("statements_pass_through", c.PassThrough)
	}
	add("rules_runtime", len(s.rules.Rules()))
	add("queued", st.Queued)
	add("batches", st.Batches)
	add("batches_lone", st.LonePath)
	add("lone_on_client_connection", st.Alone)
	add("lone_on_client_connection_granted", st.AloneGranted)
	add("batches_fast", st.FastPath)
	add("batches_general", st.GeneralPath)
	add("commits", st.Commits)
	add("requests", st.Requests)
	add("retries", st.Retries)
	add("resolved", st.Resolved)
	add("dropped", st.Dropped)
	add("timed_out", st.TimedOut)
	add("queue_full", st.QueueFull)
	if s.cfg.Feed != nil {
		addFeedStatus(add, s.cfg.Feed.Stats())
	}
	return t
}

// addFeedStatus adds the order feed's rows to SHOW HOTROW STATUS.
func addFeedStatus(add func(string, any), f binlog.Stats) {
	at := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339Nano)
	}
	add("feed_name", f.Name)
	add("feed_running", boolInt(f.Running))
	add("feed_checkpoint_gtid", f.Checkpoint.GTID)
	add("feed_checkpoint_file", f.Checkpoint.File)
	add("feed_checkpoint_pos", f.Checkpoint.Pos)
	add("feed_checkpoint_saved_at", at(f.CheckpointSaved))
	add("feed_lag_ms", f.Lag.Milliseconds())
	add("feed_last_commit", at(f.LastCommit))
	add("feed_events_total", f.EventsTotal)
	add("feed_events_per_sec", strconv.FormatFloat(f.EventsPerSec, 'f', 1, 64))
	add("feed_in_flight_events", f.InFlightEvents)
	add("feed_in_flight_bytes", f.InFlightBytes)
}

// variable is one SHOW HOTROW VARIABLES entry; set is nil when read-only.
type variable struct {
	name string
	get  func() string
	set  func(v string) error
}

func (s *Server) variables() []variable {
	limit := func(name string, get func(merger.Limits) int, put func(*merger.Limits, int)) variable {
		return variable{name: name,
			get: func() string { return strconv.Itoa(get(s.m.Limits())) },
			set: func(v string) error {
				n, err := strconv.Atoi(v)
				if err != nil {
					return gomysql.NewError(gomysql.ER_WRONG_TYPE_FOR_VAR, fmt.Sprintf("Incorrect argument type to variable 'hotrow.%s': want an integer", name))
				}
				l := s.m.Limits()
				put(&l, n)
				if err := s.m.SetLimits(l); err != nil {
					return gomysql.NewError(gomysql.ER_WRONG_VALUE_FOR_VAR, fmt.Sprintf("Variable 'hotrow.%s' can't be set to the value of '%s': %v", name, v, err))
				}
				s.log.Info("admin set a variable", "variable", "hotrow."+name, "value", n)
				return nil
			}}
	}
	return []variable{
		{name: "instance_id", get: func() string { return s.cfg.InstanceID }},
		limit("max_batch", func(l merger.Limits) int { return l.MaxBatch }, func(l *merger.Limits, n int) { l.MaxBatch = n }),
		limit("max_queue", func(l merger.Limits) int { return l.MaxQueue }, func(l *merger.Limits, n int) { l.MaxQueue = n }),
		limit("max_queue_total", func(l merger.Limits) int { return l.MaxQueueTotal }, func(l *merger.Limits, n int) { l.MaxQueueTotal = n }),
		limit("batch_gather_us", func(l merger.Limits) int { return int(l.GatherWait / time.Microsecond) },
			func(l *merger.Limits, n int) { l.GatherWait = time.Duration(n) * time.Microsecond }),
		{name: "meta_schema", get: func() string { return s.cfg.MetaSchema }},
		{name: "auto_hot", get: func() string {
			if s.det != nil && s.det.Auto() {
				return "1"
			}
			return "0"
		}, set: func(v string) error {
			if s.det == nil {
				return gomysql.NewError(gomysql.ER_WRONG_VALUE_FOR_VAR, "hot-key detection is not running")
			}
			switch strings.ToUpper(v) {
			case "1", "ON":
				s.det.SetAuto(true)
				s.log.Info("admin turned automatic hot-key merging on")
				go s.det.PromoteAll()
			case "0", "OFF":
				s.det.SetAuto(false)
				s.log.Info("admin turned automatic hot-key merging off")
			default:
				return gomysql.NewError(gomysql.ER_WRONG_VALUE_FOR_VAR, fmt.Sprintf("Variable 'hotrow.auto_hot' can't be set to the value of '%s'", v))
			}
			return nil
		}},
		{name: "pass_through_digests", get: func() string {
			if s.obs != nil && s.obs.digests.Load() {
				return "1"
			}
			return "0"
		}, set: func(v string) error {
			if s.obs == nil {
				return gomysql.NewError(gomysql.ER_WRONG_VALUE_FOR_VAR, "pass-through statements are not observed")
			}
			switch strings.ToUpper(v) {
			case "1", "ON":
				s.obs.digests.Store(true)
			case "0", "OFF":
				s.obs.digests.Store(false)
			default:
				return gomysql.NewError(gomysql.ER_WRONG_VALUE_FOR_VAR, fmt.Sprintf("Variable 'hotrow.pass_through_digests' can't be set to the value of '%s'", v))
			}
			return nil
		}},
		{name: "hot_threshold", get: func() string {
			if s.det == nil {
				return "0"
			}
			return strconv.FormatInt(s.det.Threshold(), 10)
		}, set: func(v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || s.det == nil {
				return gomysql.NewError(gomysql.ER_WRONG_TYPE_FOR_VAR, "Incorrect argument type to variable 'hotrow.hot_threshold': want an integer")
			}
			if err := s.det.SetThreshold(n); err != nil {
				return gomysql.NewError(gomysql.ER_WRONG_VALUE_FOR_VAR, fmt.Sprintf("Variable 'hotrow.hot_threshold' can't be set to the value of '%s': %v", v, err))
			}
			return nil
		}},
		{name: "rules_poll_interval", get: func() string { return s.cfg.PollInterval.String() }},
	}
}

// variablesTable is SHOW HOTROW VARIABLES.
func (s *Server) variablesTable() *table {
	t := &table{cols: []string{"Variable_name", "Value"}}
	for _, v := range s.variables() {
		t.rows = append(t.rows, []any{"hotrow." + v.name, v.get()})
	}
	return t
}

// setVariable is SET hotrow.name = value.
func (s *Server) setVariable(name, value string) error {
	for _, v := range s.variables() {
		if v.name != name {
			continue
		}
		if v.set == nil {
			return gomysql.NewDefaultError(gomysql.ER_INCORRECT_GLOBAL_LOCAL_VAR, "hotrow."+name, "read only")
		}
		return v.set(value)
	}
	return gomysql.NewError(gomysql.ER_UNKNOWN_SYSTEM_VARIABLE, fmt.Sprintf("Unknown system variable 'hotrow.%s' (SHOW HOTROW VARIABLES lists them)", name))
}

// candidatesTable lists hot-key candidates: tables without a rule whose
// mergeable UPDATEs crossed the threshold.
func (s *Server) candidatesTable() *table {
	t := &table{cols: []string{"schema_name", "table_name", "key_column", "stock_column", "hottest_key",
		"peak_concurrent", "seen", "first_seen", "auto_merged", "not_merged_reason"}}
	if s.det == nil {
		return t
	}
	for _, c := range s.det.Candidates() {
		t.rows = append(t.rows, []any{c.Rule.Schema, c.Rule.Table, c.Rule.Key, c.Rule.Stock, c.Key, c.Peak, c.Seen,
			c.FirstSeen.UTC().Format("2006-01-02 15:04:05.000000"), boolInt(c.Auto), c.Refused})
	}
	return t
}
