package merger

import (
	"strings"
	"sync"
)

// scanner normalizes a statement in one pass before any parsing: it collapses
// white space, drops a trailing semicolon, replaces literals by ? (text mode)
// and refuses everything whose meaning could differ from what the TiDB parser
// makes of the normalized text, or that no mergeable statement contains.
type scanner struct {
	buf   []byte // normalized text
	key   []byte // cache key
	slots []slot // text mode: the literals replaced by ?
}

// slot is a literal the scanner replaced by a parameter slot.
type slot struct {
	kind       byte
	start, end int    // the literal in the query; for a string, between the quotes
	u          uint64 // an integer's value
	doubled    bool   // a string with '' in it
}

var scannerPool = sync.Pool{New: func() any { return new(scanner) }}

// Classes of the previous token: a literal must follow an operator.
const (
	prevNone = iota
	prevWord // keyword or identifier
	prevOp   // = < > + - WHERE AND
	prevLit
	prevSep // , or .
)

// scan normalizes query into sc.buf (and sc.slots unless prepared) and
// reports whether it is worth a cache lookup.
func (sc *scanner) scan(q string, prepared bool) bool {
	sc.buf, sc.slots = sc.buf[:0], sc.slots[:0]
	if len(q) > maxMatchLen {
		return false
	}
	prev, space := prevNone, false
	for i := 0; i < len(q); {
		c := q[i]
		if c == ' ' || c == '\t' || c == '\n' || c == '\r' {
			space = true
			i++
			continue
		}
		if c == ';' {
			for i++; i < len(q); i++ {
				if c := q[i]; c != ' ' && c != '\t' && c != '\n' && c != '\r' {
					return false
				}
			}
			break
		}
		if space && len(sc.buf) > 0 {
			sc.buf = append(sc.buf, ' ')
		}
		space = false
		start := i
		switch {
		case isWordStart(c):
			for i < len(q) && isWordChar(q[i]) {
				i++
			}
			w := q[start:i]
			// A word glued to a quote is a hex/bit/national literal or an
			// introducer; TRUE and FALSE are not literals we accept.
			if (i < len(q) && q[i] == '\'') || isWord(w, "true") || isWord(w, "false") {
				return false
			}
			if prev == prevNone && !isWord(w, "update") {
				return false
			}
			sc.buf = append(sc.buf, w...)
			prev = prevWord
			if isWord(w, "where") || isWord(w, "and") {
				prev = prevOp // k = key, e <= c
			}
		case c == '`':
			for i++; ; i++ {
				if i >= len(q) || q[i] < 0x20 || q[i] >= 0x7f {
					return false
				}
				if q[i] == '`' {
					if i+1 < len(q) && q[i+1] == '`' {
						i++
						continue
					}
					break
				}
			}
			i++
			if prev == prevNone {
				return false
			}
			sc.buf = append(sc.buf, q[start:i]...)
			prev = prevWord
		case isDigit(c) || (c == '.' && prev == prevOp && i+1 < len(q) && isDigit(q[i+1])):
			if prev != prevOp {
				return false
			}
			var ok bool
			if i, ok = sc.number(q, i, prepared); !ok {
				return false
			}
			prev = prevLit
		case c == '\'':
			if prev != prevOp {
				return false
			}
			var ok bool
			if i, ok = sc.str(q, i, prepared); !ok {
				return false
			}
			prev = prevLit
		case c == '?' && prepared:
			if prev != prevOp {
				return false
			}
			sc.buf = append(sc.buf, '?')
			i++
			prev = prevLit
		case c == '=' || c == '<' || c == '>' || c == '+' || c == ',' || (c == '-' && (i+1 == len(q) || q[i+1] != '-')):
			sc.buf = append(sc.buf, c)
			i++
			prev = prevOp
			if c == ',' {
				prev = prevSep
			}
		case c == '.':
			sc.buf = append(sc.buf, c)
			i++
			prev = prevSep
		default:
			// Comments (#, /*, --), variables (@), double quotes,
			// parentheses, backslashes, other operators, control and
			// non-ASCII bytes.
			return false
		}
	}
	return prev != prevNone
}

// number scans the numeric literal at q[i:], returning the index after it.
func (sc *scanner) number(q string, i int, prepared bool) (int, bool) {
	start := i
	var u uint64
	kind := byte(kindInt)
	for ; i < len(q) && isDigit(q[i]); i++ {
		d := uint64(q[i] - '0')
		if u > (1<<64-1-d)/10 {
			kind = kindDecimal
		}
		u = u*10 + d
	}
	if i < len(q) && q[i] == '.' {
		kind = kindDecimal
		i++
		// The TiDB parser refuses 5. (MySQL reads 5), so text and prepared
		// statements agree by refusing it here.
		if i == len(q) || !isDigit(q[i]) {
			return 0, false
		}
		for ; i < len(q) && isDigit(q[i]); i++ {
		}
	}
	// 1e5, 0x1F, 0b1, 123abc, 1.2.3: exponent floats, hex, bit literals and
	// identifiers that start with digits.
	if i < len(q) && (isWordChar(q[i]) || q[i] == '.' || q[i] == '`' || q[i] == '\'' || q[i] == '?') {
		return 0, false
	}
	lit := q[start:i]
	if prepared || lit == "0" {
		sc.buf = append(sc.buf, lit...)
		return i, true
	}
	if kind == kindInt && u > 1<<63-1 {
		kind = kindUint
	}
	sc.buf = append(sc.buf, '?')
	sc.slots = append(sc.slots, slot{kind: kind, start: start, end: i, u: u})
	return i, true
}

// str scans the string literal at q[i:], returning the index after it.
func (sc *scanner) str(q string, i int, prepared bool) (int, bool) {
	start := i
	doubled := false
	for i++; ; i++ {
		if i >= len(q) || q[i] < 0x20 || q[i] >= 0x7f || q[i] == '\\' {
			return 0, false
		}
		if q[i] == '\'' {
			if i+1 < len(q) && q[i+1] == '\'' {
				doubled = true
				i++
				continue
			}
			break
		}
	}
	i++
	if i-start == 2 {
		return 0, false
	}
	if prepared {
		sc.buf = append(sc.buf, q[start:i]...)
		return i, true
	}
	sc.buf = append(sc.buf, '?')
	sc.slots = append(sc.slots, slot{kind: kindString, start: start + 1, end: i - 1, doubled: doubled})
	return i, true
}

// buildKey completes sc.key, which holds the mode and the slot kinds, with
// the default database and the normalized text. Neither the kinds nor the
// text hold a NUL, so the key is unambiguous.
func (sc *scanner) buildKey(defaultDB string) []byte {
	sc.key = append(sc.key, 0)
	sc.key = append(sc.key, defaultDB...)
	sc.key = append(sc.key, 0)
	sc.key = append(sc.key, sc.buf...)
	return sc.key
}

// args returns the values of the slots found in query.
func (sc *scanner) args(q string) []any {
	args := make([]any, len(sc.slots))
	for i, s := range sc.slots {
		lit := q[s.start:s.end]
		switch s.kind {
		case kindInt:
			args[i] = int64(s.u)
		case kindUint:
			args[i] = s.u
		case kindDecimal:
			if lit[0] == '.' {
				lit = "0" + lit
			}
			args[i] = lit
		case kindString:
			if s.doubled {
				lit = strings.ReplaceAll(lit, "''", "'")
			}
			args[i] = lit
		}
	}
	return args
}

// isWord reports whether w is the keyword lower, in any case.
func isWord(w, lower string) bool {
	return len(w) == len(lower) && strings.EqualFold(w, lower)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isWordStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
}

func isWordChar(c byte) bool {
	return isWordStart(c) || isDigit(c) || c == '$'
}
