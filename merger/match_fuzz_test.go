package merger

import (
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func FuzzMatchText(f *testing.F) {
	for _, tc := range textAccepted {
		f.Add(tc.db, tc.query)
	}
	for _, tc := range preparedAccepted {
		f.Add(tc.db, tc.query)
	}
	for _, tc := range rejected {
		f.Add(tc.db, tc.query)
	}
	m := testMatcher()
	f.Fuzz(func(t *testing.T, db, query string) {
		if st, ok := m.MatchPrepared(db, query); ok {
			checkOperands(t, st)
		}
		st, args, ok := m.MatchText(db, query)
		if !ok {
			return
		}
		if len(args) != st.NumParams {
			t.Fatalf("%q: %d args for %d params", query, len(args), st.NumParams)
		}
		checkOperands(t, st)
		for i, a := range args {
			switch a.(type) {
			case int64, uint64, string:
			default:
				t.Fatalf("%q: arg %d is %T", query, i, a)
			}
		}
		prep, ok := m.MatchPrepared(db, st.SQL)
		if !ok || !reflect.DeepEqual(prep, st) {
			t.Fatalf("%q: MatchPrepared(%q) = %+v, %v; want %+v", query, st.SQL, prep, ok, st)
		}
		// Writing the args back as literals gives the same shape and args.
		again := render(st, args)
		st2, args2, ok := m.MatchText(db, again)
		if !ok || st2 != st || !reflect.DeepEqual(args2, args) {
			t.Fatalf("%q rendered as %q: got %+v %#v %v; want %+v %#v", query, again, st2, args2, ok, st, args)
		}
	})
}

// checkOperands checks that every operand of st is a valid slot or constant.
func checkOperands(t *testing.T, st *Statement) {
	t.Helper()
	ops := []Operand{st.Key, st.Amount}
	if st.Guard == GuardAtLeast || st.Guard == GuardDiffNonNegative {
		ops = append(ops, st.GuardValue)
	}
	for _, e := range st.Extra {
		ops = append(ops, e.Value)
	}
	for _, o := range ops {
		if o.Param >= st.NumParams || (o.Param < 0 && o.Const == nil) {
			t.Fatalf("%q: operand %+v with %d params", st.SQL, o, st.NumParams)
		}
	}
}

// render replaces the ? slots of st.SQL with args as SQL literals: strings
// quoted where a string may stand, unquoted (decimals) where a number must.
func render(st *Statement, args []any) string {
	numeric := map[int]bool{st.Amount.Param: true}
	if st.Guard == GuardAtLeast || st.Guard == GuardDiffNonNegative {
		numeric[st.GuardValue.Param] = true
	}
	var b strings.Builder
	slot, quoted := 0, false
	for i := 0; i < len(st.SQL); i++ {
		c := st.SQL[i]
		if c == '`' {
			quoted = !quoted
		}
		if c != '?' || quoted {
			b.WriteByte(c)
			continue
		}
		switch v := args[slot].(type) {
		case int64:
			if v == 0 {
				b.WriteString("00") // a literal 0 would stay in the text
				break
			}
			b.WriteString(strconv.FormatInt(v, 10))
		case uint64:
			b.WriteString(strconv.FormatUint(v, 10))
		case string:
			if numeric[slot] {
				b.WriteString(v)
			} else {
				b.WriteString("'" + strings.ReplaceAll(v, "'", "''") + "'")
			}
		}
		slot++
	}
	return b.String()
}
