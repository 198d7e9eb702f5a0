package proxy

import (
	"bytes"
	"context"
	"encoding/binary"
	"math"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/hotrow/hotrow/merger"
)

// preparedStmt is what the proxy remembers of a statement the client
// prepared on its backend connection.
type preparedStmt struct {
	numParams int
	// hot is the mergeable shape of the statement, nil if it never merges.
	hot *merger.Statement
	// paramTypes are the parameter types the client bound last (2 bytes
	// each). A client re-executing without re-sending types means these.
	paramTypes []byte
	// backendTypes are the types the backend last saw; they differ from
	// paramTypes when executions that bound new types were merged.
	backendTypes []byte
	// longData: COM_STMT_SEND_LONG_DATA sent parameter data the proxy does
	// not see, so the next execution passes through.
	longData bool
	// text is the statement, for noteTx when an execution passes through.
	text []byte
}

// stmt looks up the statement a COM_STMT_* packet names.
func (s *session) stmt(pkt []byte) *preparedStmt {
	if len(pkt) < 5 {
		return nil
	}
	return s.stmts[binary.LittleEndian.Uint32(pkt[1:])]
}

// prepare forwards COM_STMT_PREPARE, relays the response and remembers
// the statement, with its mergeable shape if it has one.
func (s *session) prepare(pkt []byte) error {
	query := string(pkt[1:])
	return s.forward(pkt, func() error {
		r, err := s.relay()
		if err != nil || r.header != headerOK || len(r.payload) < 12 {
			return err
		}
		id := binary.LittleEndian.Uint32(r.payload[1:])
		cols := int(binary.LittleEndian.Uint16(r.payload[5:]))
		params := int(binary.LittleEndian.Uint16(r.payload[7:]))
		for _, n := range []int{params, cols} {
			if n == 0 {
				continue
			}
			for range n + 1 { // definitions, then EOF
				if _, err := s.relay(); err != nil {
					return err
				}
			}
		}
		st := &preparedStmt{numParams: params, text: []byte(query)}
		s.noteQuery([]byte(query))
		if s.mergeCandidate(query) {
			if db, err := s.currentDB(); err == nil {
				st.hot, _ = s.srv.matcher.MatchPrepared(db, query)
			} else {
				return err
			}
		}
		s.stmts[id] = st
		return nil
	})
}

// execute merges a COM_STMT_EXECUTE of a hot statement, or forwards it.
func (s *session) execute(ctx context.Context, pkt []byte) error {
	st := s.stmt(pkt)
	if st == nil {
		return s.forward(pkt, s.relayResult)
	}
	if st.hot != nil && !st.longData && s.canMerge() && s.srv.ruleActive(st.hot.Rule) {
		if args, ok := st.decodeParams(pkt); ok {
			if handled, err := s.mergeRequest(ctx, merger.Request{Stmt: st.hot, Args: args, ConnID: s.connID}); handled || err != nil {
				return err
			}
		} else if c := s.claimer(); c != nil {
			s.unmergedBy(c, merger.UnmergedParams)
		}
	}
	s.noteTx(st.text)
	pkt = st.withBackendTypes(pkt)
	err := s.forward(pkt, s.relayResult)
	st.longData = false
	return err
}

// execLayout locates the parts of a COM_STMT_EXECUTE packet.
type execLayout struct {
	flags     byte
	nullMap   []byte
	boundPos  int // offset of new-params-bound-flag
	bound     bool
	valuesPos int
}

func (st *preparedStmt) layout(pkt []byte) (execLayout, bool) {
	var l execLayout
	if len(pkt) < 10 {
		return l, false
	}
	l.flags = pkt[5]
	if st.numParams == 0 {
		return l, true
	}
	nullLen := (st.numParams + 7) / 8
	l.boundPos = 10 + nullLen
	if len(pkt) <= l.boundPos {
		return l, false
	}
	l.nullMap = pkt[10:l.boundPos]
	l.bound = pkt[l.boundPos] == 1
	l.valuesPos = l.boundPos + 1
	if l.bound {
		l.valuesPos += 2 * st.numParams
		if len(pkt) < l.valuesPos {
			return l, false
		}
	}
	return l, true
}

// withBackendTypes returns the packet to forward: when the client relies
// on types it bound in an execution the proxy merged (so the backend never
// saw them), the types are put back into the packet.
func (st *preparedStmt) withBackendTypes(pkt []byte) []byte {
	l, ok := st.layout(pkt)
	if !ok || st.numParams == 0 {
		return pkt
	}
	if l.bound {
		types := pkt[l.boundPos+1 : l.valuesPos]
		st.paramTypes = append(st.paramTypes[:0], types...)
		st.backendTypes = append(st.backendTypes[:0], types...)
		return pkt
	}
	if st.paramTypes == nil || bytes.Equal(st.paramTypes, st.backendTypes) {
		return pkt
	}
	out := make([]byte, 0, len(pkt)+len(st.paramTypes))
	out = append(out, pkt[:l.boundPos]...)
	out = append(out, 1)
	out = append(out, st.paramTypes...)
	out = append(out, pkt[l.boundPos+1:]...)
	st.backendTypes = append(st.backendTypes[:0], st.paramTypes...)
	return out
}

// decodeParams reads the parameter values of an execution the proxy may
// merge. ok is false for anything it does not decode exactly (cursors,
// temporal types, malformed packets): those pass through.
func (st *preparedStmt) decodeParams(pkt []byte) (args []any, ok bool) {
	l, ok := st.layout(pkt)
	if !ok || l.flags != 0 {
		return nil, false
	}
	types := st.paramTypes
	if l.bound {
		types = pkt[l.boundPos+1 : l.valuesPos]
	}
	if len(types) != 2*st.numParams {
		return nil, false
	}
	args = make([]any, st.numParams)
	p := pkt[l.valuesPos:]
	for i := range args {
		if l.nullMap[i/8]&(1<<(i%8)) != 0 {
			continue // NULL
		}
		var v any
		v, p, ok = decodeBinaryValue(types[2*i], types[2*i+1]&0x80 != 0, p)
		if !ok {
			return nil, false
		}
		args[i] = v
	}
	if l.bound {
		st.paramTypes = append(st.paramTypes[:0], types...)
	}
	return args, true
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

// decodeBinaryValue reads one binary-protocol parameter value. DECIMAL
// parameters are not decoded: the merger could only bind them as strings,
// which the server computes with as DOUBLE, not DECIMAL.
func decodeBinaryValue(typ byte, unsigned bool, p []byte) (any, []byte, bool) {
	fixed := func(n int) (uint64, bool) {
		if len(p) < n {
			return 0, false
		}
		var v uint64
		for i := n - 1; i >= 0; i-- {
			v = v<<8 | uint64(p[i])
		}
		p = p[n:]
		return v, true
	}
	integer := func(n int) (any, []byte, bool) {
		u, ok := fixed(n)
		if !ok {
			return nil, nil, false
		}
		if unsigned {
			return u, p, true
		}
		shift := 64 - 8*n
		return int64(u<<shift) >> shift, p, true
	}
	switch typ {
	case gomysql.MYSQL_TYPE_TINY:
		return integer(1)
	case gomysql.MYSQL_TYPE_SHORT, gomysql.MYSQL_TYPE_YEAR:
		return integer(2)
	case gomysql.MYSQL_TYPE_LONG, gomysql.MYSQL_TYPE_INT24:
		return integer(4)
	case gomysql.MYSQL_TYPE_LONGLONG:
		return integer(8)
	case gomysql.MYSQL_TYPE_FLOAT:
		u, ok := fixed(4)
		return float64(math.Float32frombits(uint32(u))), p, ok
	case gomysql.MYSQL_TYPE_DOUBLE:
		u, ok := fixed(8)
		return math.Float64frombits(u), p, ok
	case gomysql.MYSQL_TYPE_NULL:
		return nil, p, true
	case gomysql.MYSQL_TYPE_VARCHAR, gomysql.MYSQL_TYPE_VAR_STRING, gomysql.MYSQL_TYPE_STRING,
		gomysql.MYSQL_TYPE_TINY_BLOB, gomysql.MYSQL_TYPE_MEDIUM_BLOB, gomysql.MYSQL_TYPE_LONG_BLOB,
		gomysql.MYSQL_TYPE_BLOB:
		v, n, ok := lenEncBytes(p)
		// Non-ASCII bytes mean what the session's character set says, which
		// the merger's utf8mb4 connection may not share: pass through.
		if !ok || !isASCII(v) {
			return nil, nil, false
		}
		return string(v), p[n:], true
	}
	return nil, nil, false
}
