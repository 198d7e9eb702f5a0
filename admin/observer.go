package admin

import (
	"bytes"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pingcap/tidb/pkg/parser"

	"github.com/hotrow/hotrow/merger"
)

const (
	// maxDigests bounds the statement digests stats_pass_through keeps;
	// beyond, statements count under the digest "other".
	maxDigests = 1024
	// maxNotMerged bounds the (table, reason) pairs of stats_not_merged.
	maxNotMerged = 1024
)

// Observer sees the text queries the proxy passes through
// (proxy.Observer): it feeds UPDATEs to hot-key detection, counts
// statements on ruled tables that passed through by reason
// (stats_not_merged) and, when digests are on (SET
// hotrow.pass_through_digests = 1), counts and times every statement
// by digest (stats_pass_through). Safe for concurrent use; bounded.
type Observer struct {
	rules   *merger.RuleSet
	det     *merger.HotKeys // nil: no detection
	digests atomic.Bool

	mu        sync.Mutex
	notMerged map[notMergedKey]uint64 // guarded by mu
	byDigest  map[string]*digestStat  // guarded by mu
}

type notMergedKey struct {
	table  merger.TableName
	reason string
}

type digestStat struct {
	digest, sample string
	count          uint64
	total, max     time.Duration
}

// NewObserver returns an Observer over the rules in force and det (nil:
// no hot-key detection).
func NewObserver(rules *merger.RuleSet, det *merger.HotKeys) *Observer {
	return &Observer{rules: rules, det: det, notMerged: map[notMergedKey]uint64{}, byDigest: map[string]*digestStat{}}
}

func noop() {}

// PassThrough implements proxy.Observer.
func (o *Observer) PassThrough(defaultDB string, query []byte, notMerged string) (end func()) {
	var endHot func()
	if isUpdate(query) {
		q := string(query)
		if o.det != nil {
			endHot = o.det.Begin(defaultDB, q)
		}
		if t, ok := updateTable(query, defaultDB); ok {
			o.countNotMerged(t, notMerged)
		}
	}
	if !o.digests.Load() {
		if endHot == nil {
			return noop
		}
		return endHot
	}
	sample := string(query)
	if len(sample) > 1024 {
		sample = sample[:1024]
	}
	start := time.Now()
	return func() {
		if endHot != nil {
			endHot()
		}
		o.countDigest(sample, time.Since(start))
	}
}

// countNotMerged counts an UPDATE of t that passed through, when t has a
// rule in force.
func (o *Observer) countNotMerged(t merger.TableName, why string) {
	ruled := false
	for _, r := range o.rules.Rules() {
		if r.Schema == t.Schema && r.Table == t.Table {
			ruled = true
			break
		}
	}
	if !ruled {
		return
	}
	if why == "" {
		why = "statement not of the mergeable shape"
		if o.rules.Paused(t) {
			why = "table paused"
		}
	}
	k := notMergedKey{t, why}
	o.mu.Lock()
	if _, ok := o.notMerged[k]; ok || len(o.notMerged) < maxNotMerged {
		o.notMerged[k]++
	}
	o.mu.Unlock()
}

// countDigest records one statement's latency under its digest.
func (o *Observer) countDigest(sample string, d time.Duration) {
	norm, dg := parser.NormalizeDigest(sample)
	key := dg.String()
	o.mu.Lock()
	defer o.mu.Unlock()
	st := o.byDigest[key]
	if st == nil {
		if len(o.byDigest) >= maxDigests {
			key, norm = "other", "(other statements)"
			st = o.byDigest[key]
		}
		if st == nil {
			if len(norm) > 256 {
				norm = norm[:256]
			}
			st = &digestStat{digest: key, sample: norm}
			o.byDigest[key] = st
		}
	}
	st.count++
	st.total += d
	st.max = max(st.max, d)
}

// isUpdate reports whether q starts with UPDATE (after white space).
func isUpdate(q []byte) bool {
	q = bytes.TrimLeft(q, " \t\r\n")
	return len(q) > 6 && bytes.EqualFold(q[:6], []byte("update"))
}

// updateTable reads the table an UPDATE names: UPDATE [LOW_PRIORITY]
// [IGNORE] [db.]table, names bare or backquoted (without escaped
// backquotes). ok is false for anything else (joins are seen as their
// first table).
func updateTable(q []byte, defaultDB string) (t merger.TableName, ok bool) {
	q = bytes.TrimLeft(q, " \t\r\n")[6:]
	word := func() (string, bool) {
		q = bytes.TrimLeft(q, " \t\r\n")
		if len(q) > 0 && q[0] == '`' {
			i := bytes.IndexByte(q[1:], '`')
			if i < 0 {
				return "", false
			}
			w := string(q[1 : 1+i])
			q = q[2+i:]
			return w, true
		}
		i := 0
		for i < len(q) && (q[i] == '_' || q[i] == '$' || q[i] >= '0' && q[i] <= '9' || q[i]|0x20 >= 'a' && q[i]|0x20 <= 'z') {
			i++
		}
		w := string(q[:i])
		q = q[i:]
		return w, i > 0
	}
	name, ok := word()
	for ok && (equalFold(name, "low_priority") || equalFold(name, "ignore")) {
		name, ok = word()
	}
	if !ok {
		return t, false
	}
	if len(q) > 0 && q[0] == '.' {
		q = q[1:]
		table, ok := word()
		return merger.TableName{Schema: name, Table: table}, ok
	}
	return merger.TableName{Schema: defaultDB, Table: name}, defaultDB != ""
}

func equalFold(a, b string) bool { return bytes.EqualFold([]byte(a), []byte(b)) }

// notMergedTable is stats_not_merged.
func (o *Observer) notMergedTable() *table {
	t := &table{cols: []string{"schema_name", "table_name", "reason", "statements"}}
	o.mu.Lock()
	defer o.mu.Unlock()
	for k, n := range o.notMerged {
		t.rows = append(t.rows, []any{k.table.Schema, k.table.Table, k.reason, n})
	}
	return t
}

// passThroughTable is stats_pass_through.
func (o *Observer) passThroughTable() *table {
	t := &table{cols: []string{"digest", "digest_text", "count", "avg_ms", "max_ms", "total_ms"}}
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, st := range o.byDigest {
		t.rows = append(t.rows, []any{st.digest, st.sample, st.count,
			ms(st.total) / float64(st.count), ms(st.max), ms(st.total)})
	}
	return t
}
