package merger

import (
	"math"
	"strconv"
)

// appendIdent appends a backquoted identifier.
func appendIdent(b []byte, name string) []byte {
	b = append(b, '`')
	for i := 0; i < len(name); i++ {
		if name[i] == '`' {
			b = append(b, '`')
		}
		b = append(b, name[i])
	}
	return append(b, '`')
}

// appendTable appends `schema`.`table`.
func appendTable(b []byte, schemaName, table string) []byte {
	b = appendIdent(b, schemaName)
	b = append(b, '.')
	return appendIdent(b, table)
}

// appendQuoted appends s as a string literal. nbe: the session has
// NO_BACKSLASH_ESCAPES, so only quotes are doubled.
func appendQuoted[T string | []byte](b []byte, s T, nbe bool) []byte {
	b = append(b, '\'')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\'':
			b = append(b, '\'', '\'')
		case nbe:
			b = append(b, c)
		case c == '\\':
			b = append(b, '\\', '\\')
		case c == 0:
			b = append(b, '\\', '0')
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '\r':
			b = append(b, '\\', 'r')
		case c == 0x1a:
			b = append(b, '\\', 'Z')
		default:
			b = append(b, c)
		}
	}
	return append(b, '\'')
}

// appendValue appends v as the SQL literal of the same type: integers as
// integers, float64 in exponent notation (a DOUBLE literal, as a bound
// double parameter), strings and bytes quoted, nil as NULL.
func appendValue(b []byte, v any, nbe bool) []byte {
	switch v := v.(type) {
	case nil:
		return append(b, "NULL"...)
	case int64:
		return strconv.AppendInt(b, v, 10)
	case uint64:
		return strconv.AppendUint(b, v, 10)
	case int:
		return strconv.AppendInt(b, int64(v), 10)
	case float64:
		if math.IsInf(v, 0) || math.IsNaN(v) {
			return append(b, "NULL"...)
		}
		return strconv.AppendFloat(b, v, 'e', -1, 64)
	case bool:
		if v {
			return append(b, '1')
		}
		return append(b, '0')
	case string:
		return appendQuoted(b, v, nbe)
	case []byte:
		return appendQuoted(b, v, nbe)
	default:
		return append(b, "NULL"...)
	}
}

// appendText appends v as text (the ledger's key_value and delta).
func appendText(b []byte, v any) []byte {
	switch v := v.(type) {
	case nil:
		return append(b, "NULL"...)
	case int64:
		return strconv.AppendInt(b, v, 10)
	case uint64:
		return strconv.AppendUint(b, v, 10)
	case int:
		return strconv.AppendInt(b, int64(v), 10)
	case float64:
		return strconv.AppendFloat(b, v, 'g', -1, 64)
	case bool:
		if v {
			return append(b, '1')
		}
		return append(b, '0')
	case string:
		return append(b, v...)
	case []byte:
		return append(b, v...)
	default:
		return append(b, '?')
	}
}

// appendInterpolated appends query with each ? placeholder (outside
// quotes, backquotes and comments) replaced by the literal of the next arg.
func appendInterpolated(b []byte, query string, args []any, nbe bool) []byte {
	n := 0
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case c == '?':
			if n < len(args) {
				b = appendValue(b, args[n], nbe)
			} else {
				b = append(b, "NULL"...)
			}
			n++
			continue
		case c == '\'' || c == '"' || c == '`':
			j := skipQuoted(query, i, nbe || c == '`')
			b = append(b, query[i:j]...)
			i = j - 1
			continue
		case c == '#' || c == '-' && i+2 < len(query) && query[i+1] == '-' && (query[i+2] == ' ' || query[i+2] == '\t'):
			j := i
			for j < len(query) && query[j] != '\n' {
				j++
			}
			b = append(b, query[i:j]...)
			i = j - 1
			continue
		case c == '/' && i+1 < len(query) && query[i+1] == '*':
			j := i + 2
			for j+1 < len(query) && (query[j] != '*' || query[j+1] != '/') {
				j++
			}
			j = min(j+2, len(query))
			b = append(b, query[i:j]...)
			i = j - 1
			continue
		}
		b = append(b, c)
	}
	return b
}

// skipQuoted returns the index after the quoted token starting at i.
func skipQuoted(s string, i int, noEscapes bool) int {
	q := s[i]
	for j := i + 1; j < len(s); j++ {
		switch {
		case s[j] == '\\' && !noEscapes:
			j++
		case s[j] == q:
			if j+1 < len(s) && s[j+1] == q {
				j++
				continue
			}
			return j + 1
		}
	}
	return len(s)
}

// clip returns b cut to at most n bytes.
func clip(b []byte, n int) []byte {
	return b[:min(len(b), n)]
}
