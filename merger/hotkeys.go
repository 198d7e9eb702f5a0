package merger

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pingcap/tidb/pkg/parser/ast"
	"github.com/pingcap/tidb/pkg/parser/opcode"
)

const (
	// maxTrackedKeys bounds the (table, key) counters HotKeys keeps.
	maxTrackedKeys = 4096
	// maxCandidates bounds the candidates it reports.
	maxCandidates = 64
	// DefaultHotThreshold is the concurrent waiters on one key that make
	// it a candidate.
	DefaultHotThreshold = 8
)

// HotKeys finds hot keys on tables without a rule: the proxy reports
// every pass-through UPDATE (Begin, and the returned end when its response
// has been relayed). UPDATEs of the mergeable shape (what the Matcher
// would accept under some rule: SET c = c ± e WHERE k = v [AND guard])
// are counted per table and key; a key with at least Threshold such
// statements in flight at once is a candidate. With Auto on, a
// candidate's rule is checked (SetCheck: a unique key, an integer stock
// column) and added to the RuleSet, so the table's next statements are
// merged. Memory is bounded: at most 4,096 keys are tracked (idle ones
// are forgotten first) and 64 candidates kept. Safe for concurrent use.
type HotKeys struct {
	rules *RuleSet
	log   *slog.Logger

	threshold atomic.Int64
	auto      atomic.Bool
	added     atomic.Uint64

	mu     sync.Mutex
	keys   map[hotKey]*keyCount  // guarded by mu
	cands  map[Rule]*Candidate   // guarded by mu
	shapeC map[string]*Statement // guarded by mu; nil: not of the shape
	// check vets a candidate's rule before Auto adds it; nil adds none.
	check func(Rule) error // guarded by mu
}

// SetCheck sets the function that vets a candidate's rule before Auto
// adds it (the admin port checks a unique key and an integer stock
// column); without one no rule is added.
func (h *HotKeys) SetCheck(f func(Rule) error) {
	h.mu.Lock()
	h.check = f
	h.mu.Unlock()
}

type hotKey struct {
	rule Rule
	key  string
}

type keyCount struct {
	inFlight, seen int64
}

// Candidate is a table whose key crossed the threshold.
type Candidate struct {
	Rule Rule
	// Key is the hottest key seen, Peak its most concurrent statements,
	// Seen the mergeable UPDATEs counted on the table's tracked keys.
	Key       string
	Peak      int64
	Seen      int64
	FirstSeen time.Time
	// Auto: the rule was added to the runtime rules; Refused says why
	// it was not (Check's error) when Auto was on.
	Auto    bool
	Refused string
}

// NewHotKeys returns a detector adding its rules to rules.
func NewHotKeys(rules *RuleSet, log *slog.Logger) *HotKeys {
	h := &HotKeys{rules: rules, log: log, keys: map[hotKey]*keyCount{}, cands: map[Rule]*Candidate{},
		shapeC: map[string]*Statement{}}
	h.threshold.Store(DefaultHotThreshold)
	return h
}

// SetThreshold sets the concurrent statements on one key that make it a
// candidate (at least 2).
func (h *HotKeys) SetThreshold(n int64) error {
	if n < 2 {
		return fmt.Errorf("hot threshold %d: want at least 2", n)
	}
	h.threshold.Store(n)
	return nil
}

// Threshold returns the threshold.
func (h *HotKeys) Threshold() int64 { return h.threshold.Load() }

// SetAuto turns automatic merging of candidates on or off.
func (h *HotKeys) SetAuto(on bool) { h.auto.Store(on) }

// Auto reports whether candidates are merged automatically.
func (h *HotKeys) Auto() bool { return h.auto.Load() }

// AutoAdded counts the rules added automatically.
func (h *HotKeys) AutoAdded() uint64 { return h.added.Load() }

// Candidates returns the candidates, hottest first.
func (h *HotKeys) Candidates() []Candidate {
	h.mu.Lock()
	out := make([]Candidate, 0, len(h.cands))
	for _, c := range h.cands {
		out = append(out, *c)
	}
	h.mu.Unlock()
	slices.SortFunc(out, func(a, b Candidate) int { return int(b.Peak - a.Peak) })
	return out
}

func noop() {}

// Begin counts a pass-through statement's start; end counts its end.
// Statements that are not a mergeable-shaped UPDATE of a table without a
// rule cost one scan and a cache lookup.
func (h *HotKeys) Begin(defaultDB, query string) (end func()) {
	if !startsUpdate(query) {
		return noop
	}
	sc := scannerPool.Get().(*scanner)
	defer scannerPool.Put(sc)
	if !sc.scan(query, false) {
		return noop
	}
	sc.key = append(sc.key[:0], 'H')
	for _, s := range sc.slots {
		sc.key = append(sc.key, s.kind)
	}
	k := sc.buildKey(defaultDB)
	h.mu.Lock()
	st, found := h.shapeC[string(k)]
	h.mu.Unlock()
	if !found {
		st = analyzeShape(defaultDB, string(sc.buf), sc.key[1:1+len(sc.slots)])
		h.mu.Lock()
		if len(h.shapeC) >= matchCacheSize {
			clear(h.shapeC)
		}
		h.shapeC[string(k)] = st
		h.mu.Unlock()
	}
	if st == nil || h.ruled(st.Rule) {
		return noop
	}
	key := fmt.Sprint(st.Key.Value(sc.args(query)))
	hk := hotKey{st.Rule, key}
	h.mu.Lock()
	c := h.keys[hk]
	if c == nil {
		if len(h.keys) >= maxTrackedKeys {
			for k, v := range h.keys {
				if v.inFlight == 0 {
					delete(h.keys, k)
				}
			}
		}
		if len(h.keys) >= maxTrackedKeys {
			h.mu.Unlock()
			return noop
		}
		c = &keyCount{}
		h.keys[hk] = c
	}
	c.inFlight++
	c.seen++
	hot := c.inFlight >= h.threshold.Load()
	var promote *Candidate
	if hot {
		cand := h.cands[st.Rule]
		if cand == nil && len(h.cands) < maxCandidates {
			cand = &Candidate{Rule: st.Rule, FirstSeen: time.Now()}
			h.cands[st.Rule] = cand
			if h.auto.Load() {
				promote = cand
			}
		}
		if cand != nil && c.inFlight > cand.Peak {
			cand.Peak, cand.Key = c.inFlight, key
		}
		if cand != nil {
			cand.Seen = max(cand.Seen, c.seen)
		}
	}
	h.mu.Unlock()
	if promote != nil {
		go h.promote(promote.Rule)
	}
	return func() {
		h.mu.Lock()
		c.inFlight--
		h.mu.Unlock()
	}
}

// promote adds the candidate rule r to the runtime rules when Check
// accepts it (SET hotrow.auto_hot = 1 promotes the candidates found
// before).
func (h *HotKeys) promote(r Rule) {
	h.mu.Lock()
	check := h.check
	h.mu.Unlock()
	var refused string
	if check == nil {
		refused = "no check configured"
	} else if err := check(r); err != nil {
		refused = err.Error()
	}
	h.mu.Lock()
	if c := h.cands[r]; c != nil {
		c.Refused = refused
		c.Auto = refused == ""
	}
	h.mu.Unlock()
	if refused != "" {
		h.log.Warn("hot key detected; not merged automatically", "rule", r.String(), "reason", refused)
		return
	}
	if h.rules.Add(r) {
		h.added.Add(1)
		h.log.Info("hot key detected: merging its table automatically", "rule", r.String())
	}
}

// PromoteAll promotes every candidate not yet merged (called when Auto
// is turned on).
func (h *HotKeys) PromoteAll() {
	h.mu.Lock()
	var rs []Rule
	for r, c := range h.cands {
		if !c.Auto {
			rs = append(rs, r)
		}
	}
	h.mu.Unlock()
	for _, r := range rs {
		h.promote(r)
	}
}

// ruled reports whether r's table has a rule in force (paused or not).
func (h *HotKeys) ruled(r Rule) bool {
	h.rules.mu.Lock()
	defer h.rules.mu.Unlock()
	for _, have := range h.rules.rules {
		if have.Schema == r.Schema && have.Table == r.Table {
			return true
		}
	}
	return false
}

func startsUpdate(q string) bool {
	q = strings.TrimLeft(q, " \t\r\n")
	return len(q) > 6 && strings.EqualFold(q[:6], "update")
}

// analyzeShape guesses the rule a normalized UPDATE would need (its
// table, the column its WHERE compares first, the column its SET changes
// first) and returns its Statement when the Matcher would accept the
// statement under that rule, else nil.
func analyzeShape(defaultDB, sql string, kinds []byte) *Statement {
	u, ok := parseUpdate(sql)
	if !ok || u.TableRefs == nil || len(u.List) == 0 || u.Where == nil {
		return nil
	}
	tn := singleTable(u.TableRefs.TableRefs)
	if tn == nil {
		return nil
	}
	r := Rule{Schema: tn.Schema.O, Table: tn.Name.O, Stock: u.List[0].Column.Name.O}
	if r.Schema == "" {
		r.Schema = defaultDB
	}
	keyEq := u.Where
	if and, ok := u.Where.(*ast.BinaryOperationExpr); ok && and.Op == opcode.LogicAnd {
		keyEq = and.L
	}
	eq, ok := keyEq.(*ast.BinaryOperationExpr)
	if !ok {
		return nil
	}
	if c, ok := eq.L.(*ast.ColumnNameExpr); ok {
		r.Key = c.Name.Name.O
	} else if c, ok := eq.R.(*ast.ColumnNameExpr); ok {
		r.Key = c.Name.Name.O
	}
	if r.Schema == "" || r.Key == "" || strings.EqualFold(r.Key, r.Stock) {
		return nil
	}
	return NewMatcher([]Rule{r}).analyze(defaultDB, sql, kinds)
}
