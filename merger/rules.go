package merger

import (
	"slices"
	"sync"
	"sync/atomic"
)

// RuleSet holds the hot rules in force and lets an operator replace them
// while the proxy runs. It answers MatchText and MatchPrepared (the
// proxy's Matcher) with a Matcher built for the active rules: the rules
// minus the paused tables. Replacing the rules builds a new Matcher (an
// empty cache) and swaps it in atomically; a statement matched before
// the swap keeps its *Statement, so requests already queued or in a batch
// run to their end, and the next statement is matched against the new
// rules. Prepared statements matched before a swap keep their shape but
// pass through while their rule is not Active. Safe for concurrent use.
type RuleSet struct {
	cur atomic.Pointer[Matcher]
	// named matches no statement: it holds every rule in force, paused
	// ones included, for MentionsHot.
	named atomic.Pointer[Matcher]

	mu     sync.Mutex
	rules  []Rule                 // guarded by mu
	paused map[TableName]struct{} // guarded by mu
}

// TableName names a table by database and name (case-sensitive, as rules
// compare them).
type TableName struct{ Schema, Table string }

// String is DB.TABLE.
func (t TableName) String() string { return t.Schema + "." + t.Table }

// NewRuleSet returns a RuleSet with the given rules in force.
func NewRuleSet(rules []Rule) *RuleSet {
	s := &RuleSet{paused: map[TableName]struct{}{}}
	s.Set(rules)
	return s
}

// MatchText matches against the active rules (Matcher.MatchText).
func (s *RuleSet) MatchText(defaultDB, query string) (*Statement, []any, bool) {
	return s.cur.Load().MatchText(defaultDB, query)
}

// MatchPrepared matches against the active rules (Matcher.MatchPrepared).
func (s *RuleSet) MatchPrepared(defaultDB, query string) (*Statement, bool) {
	return s.cur.Load().MatchPrepared(defaultDB, query)
}

// MentionsHot reports whether q names the table of a rule in force,
// paused or not (Matcher.MentionsHot): a transaction that touched such a
// table through pass-through must not claim on it, even once it resumes.
func (s *RuleSet) MentionsHot(q []byte) bool {
	return s.named.Load().MentionsHot(q)
}

// Active reports whether r is in force and not paused. A prepared
// statement matched before a rule change asks it at each execution, so
// that it stops merging when its rule went away.
func (s *RuleSet) Active(r Rule) bool {
	return slices.Contains(s.cur.Load().rules, r)
}

// Set replaces the rules; the next statement is matched against them.
func (s *RuleSet) Set(rules []Rule) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rules = slices.Clone(rules)
	s.swapLocked()
}

// Add puts r in force unless a rule for its table already is; it reports
// whether it did.
func (s *RuleSet) Add(r Rule) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, have := range s.rules {
		if have.Schema == r.Schema && have.Table == r.Table {
			return false
		}
	}
	s.rules = append(s.rules, r)
	s.swapLocked()
	return true
}

// Rules returns the rules in force, paused ones included.
func (s *RuleSet) Rules() []Rule {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.rules)
}

// Pause stops matching statements on table t: they pass through, while
// the requests already queued for it finish. It reports whether t was
// not paused already.
func (s *RuleSet) Pause(t TableName) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.paused[t]; ok {
		return false
	}
	s.paused[t] = struct{}{}
	s.swapLocked()
	return true
}

// Resume undoes Pause; it reports whether t was paused.
func (s *RuleSet) Resume(t TableName) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.paused[t]; !ok {
		return false
	}
	delete(s.paused, t)
	s.swapLocked()
	return true
}

// Paused reports whether table t is paused.
func (s *RuleSet) Paused(t TableName) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.paused[t]
	return ok
}

// swapLocked builds the Matcher of the active rules and puts it in force.
func (s *RuleSet) swapLocked() {
	active := make([]Rule, 0, len(s.rules))
	for _, r := range s.rules {
		if _, ok := s.paused[TableName{r.Schema, r.Table}]; !ok {
			active = append(active, r)
		}
	}
	s.cur.Store(NewMatcher(active))
	s.named.Store(NewMatcher(s.rules))
}
