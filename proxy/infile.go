package proxy

import (
	"fmt"
	"strings"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
)

// localInfileAllowed decides whether the server's request for a client
// file (a 0xFB packet naming it) is relayed to the client. A rogue or
// compromised server can send that request in answer to any statement,
// and many drivers then send the file (the "rogue server" file read), so
// the proxy relays it only when the client itself negotiated
// CLIENT_LOCAL_FILES, the command was a COM_QUERY (query is nil
// otherwise) whose first statement is LOAD DATA|XML [LOW_PRIORITY |
// CONCURRENT] LOCAL INFILE 'file', and the server asks for that very file.
func localInfileAllowed(capability uint32, query []byte, requested string) bool {
	if capability&gomysql.CLIENT_LOCAL_FILES == 0 || query == nil {
		return false
	}
	sc := sqlScanner{s: query}
	if !sc.keyword("load") || !(sc.keyword("data") || sc.keyword("xml")) {
		return false
	}
	_ = sc.keyword("low_priority") || sc.keyword("concurrent")
	if !sc.keyword("local") || !sc.keyword("infile") {
		return false
	}
	raw, unescaped, ok := sc.stringLiteral()
	return ok && (requested == unescaped || requested == raw)
}

// sqlScanner reads the leading tokens of a statement.
type sqlScanner struct {
	s   []byte
	pos int
}

// skipSpace skips white space and comments (/* */, -- and #).
func (sc *sqlScanner) skipSpace() {
	for sc.pos < len(sc.s) {
		switch c := sc.s[sc.pos]; {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			sc.pos++
		case c == '#' || c == '-' && sc.pos+2 < len(sc.s) && sc.s[sc.pos+1] == '-' && (sc.s[sc.pos+2] == ' ' || sc.s[sc.pos+2] == '\t'):
			for sc.pos < len(sc.s) && sc.s[sc.pos] != '\n' {
				sc.pos++
			}
		case c == '/' && sc.pos+1 < len(sc.s) && sc.s[sc.pos+1] == '*':
			if sc.pos+2 < len(sc.s) && (sc.s[sc.pos+2] == '!' || sc.s[sc.pos+2] == 'M') {
				return // an executable comment: not skipped, so no match
			}
			end := strings.Index(string(sc.s[sc.pos+2:]), "*/")
			if end < 0 {
				sc.pos = len(sc.s)
				return
			}
			sc.pos += 2 + end + 2
		default:
			return
		}
	}
}

// keyword consumes kw (lower case) when it is the next token.
func (sc *sqlScanner) keyword(kw string) bool {
	sc.skipSpace()
	end := sc.pos + len(kw)
	if end > len(sc.s) || !strings.EqualFold(string(sc.s[sc.pos:end]), kw) {
		return false
	}
	if end < len(sc.s) {
		if c := sc.s[end]; c == '_' || c == '$' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80 {
			return false
		}
	}
	sc.pos = end
	return true
}

// stringLiteral consumes a quoted string and returns it as written between
// the quotes and with backslash escapes and doubled quotes undone.
func (sc *sqlScanner) stringLiteral() (raw, unescaped string, ok bool) {
	sc.skipSpace()
	if sc.pos >= len(sc.s) || sc.s[sc.pos] != '\'' && sc.s[sc.pos] != '"' {
		return "", "", false
	}
	q := sc.s[sc.pos]
	var b strings.Builder
	for i := sc.pos + 1; i < len(sc.s); i++ {
		c := sc.s[i]
		switch {
		case c == '\\' && i+1 < len(sc.s):
			i++
			b.WriteByte(unescapeByte(sc.s[i]))
		case c == q && i+1 < len(sc.s) && sc.s[i+1] == q:
			i++
			b.WriteByte(q)
		case c == q:
			raw = string(sc.s[sc.pos+1 : i])
			sc.pos = i + 1
			return raw, b.String(), true
		default:
			b.WriteByte(c)
		}
	}
	return "", "", false
}

func unescapeByte(c byte) byte {
	switch c {
	case '0':
		return 0
	case 'n':
		return '\n'
	case 'r':
		return '\r'
	case 't':
		return '\t'
	case 'b':
		return '\b'
	case 'Z':
		return 0x1a
	}
	return c
}

// refuseInfile answers a server's file request that localInfileAllowed
// refused: the server gets an empty file (ending its LOAD, if any, with no
// rows) and the client, which never saw the request, an error. A response
// that goes on after that (more results) cannot be followed: the session
// then ends.
func (s *session) refuseInfile(requested string) error {
	s.log.Warn("refused the server's request for a local file the statement did not name", "file", requested)
	if err := s.be.writePacket(nil); err != nil {
		return s.lostBackendMidResponse(err)
	}
	if err := s.be.flush(); err != nil {
		return s.lostBackendMidResponse(err)
	}
	reply, err := s.be.readPacket(s.conBuf, 0)
	if err != nil {
		return s.lostBackendMidResponse(err)
	}
	s.conBuf = reply
	more := false
	if len(reply) > 0 && reply[0] == headerOK {
		if ok, err := parseOK(reply); err == nil {
			s.status = ok.status
			more = ok.status&statusMoreResults != 0
		}
	}
	if err := s.writeErr(gomysql.NewError(gomysql.ER_NOT_ALLOWED_COMMAND, fmt.Sprintf(
		"hotrow: refused the server's request for the local file '%s': the statement is not a LOAD DATA LOCAL INFILE of that file", requested))); err != nil {
		return err
	}
	if more {
		return backendSide.tag(fmt.Errorf("more results after a refused local file request: %w", gomysql.ErrMalformPacket))
	}
	return nil
}
