package proxy

import (
	"encoding/binary"
	"fmt"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
)

// Packet headers of the responses the proxy reads or writes.
const (
	headerOK          = 0x00
	headerLocalInfile = 0xFB
	headerEOF         = 0xFE
	headerErr         = 0xFF
)

// Server status flags the proxy reads from the backend's OK and EOF packets.
const (
	statusInTrans      = gomysql.SERVER_STATUS_IN_TRANS
	statusAutocommit   = gomysql.SERVER_STATUS_AUTOCOMMIT
	statusMoreResults  = gomysql.SERVER_MORE_RESULTS_EXISTS
	statusCursorExists = gomysql.SERVER_STATUS_CURSOR_EXISTS
)

// proxyCapabilities are the capability flags hotrow can pass through
// byte-exact. Not in the set, and so never negotiated on either side:
// compression (not supported), CLIENT_SSL (added when Config.TLSCert is
// set, see tls.go), CLIENT_DEPRECATE_EOF,
// CLIENT_SESSION_TRACK and CLIENT_QUERY_ATTRIBUTES (they change packet
// layouts the proxy parses). CLIENT_LONG_PASSWORD is offered when the
// backend offers it: a MariaDB server clears it and then negotiates its
// extended capabilities (proxyExtCapabilities).
const proxyCapabilities = gomysql.CLIENT_LONG_PASSWORD | gomysql.CLIENT_FOUND_ROWS |
	gomysql.CLIENT_LONG_FLAG | gomysql.CLIENT_CONNECT_WITH_DB | gomysql.CLIENT_ODBC |
	gomysql.CLIENT_LOCAL_FILES | gomysql.CLIENT_IGNORE_SPACE | gomysql.CLIENT_PROTOCOL_41 |
	gomysql.CLIENT_INTERACTIVE | gomysql.CLIENT_IGNORE_SIGPIPE | gomysql.CLIENT_TRANSACTIONS |
	gomysql.CLIENT_SECURE_CONNECTION | gomysql.CLIENT_MULTI_STATEMENTS |
	gomysql.CLIENT_MULTI_RESULTS | gomysql.CLIENT_PS_MULTI_RESULTS | gomysql.CLIENT_PLUGIN_AUTH |
	gomysql.CLIENT_CONNECT_ATTRS | gomysql.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA

// MariaDB's extended capabilities (the upper 32 bits of its 64-bit flags)
// travel in the greeting's and the handshake response's reserved bytes
// when the CLIENT_LONG_PASSWORD bit (MariaDB's CLIENT_MYSQL) is clear, as a
// MariaDB server announces it. proxyExtCapabilities are the ones passed
// through: MARIADB_CLIENT_EXTENDED_TYPE_INFO only adds the type's format
// (e.g. json) to column definitions, which the proxy relays without
// reading. The others (progress reports, bulk execution, cached metadata)
// change the responses the proxy follows and are not offered.
const (
	mariadbExtendedTypeInfo = 1 << 3
	proxyExtCapabilities    = mariadbExtendedTypeInfo
)

// okInfo is what the proxy reads from an OK packet.
type okInfo struct {
	affectedRows, insertID uint64
	status, warnings       uint16
}

// lenEncInt reads a length-encoded integer off the front of p; n is its
// width in bytes. ok is false when p is too short or starts with the NULL
// (0xFB) or reserved (0xFF) marker. Unlike gomysql.LengthEncodedInt it never
// reads past p, so it is safe on packets from the network.
func lenEncInt(p []byte) (v uint64, n int, ok bool) {
	if len(p) == 0 {
		return 0, 0, false
	}
	switch p[0] {
	case 0xfb, 0xff:
		return 0, 0, false
	case 0xfc:
		n = 3
	case 0xfd:
		n = 4
	case 0xfe:
		n = 9
	default:
		return uint64(p[0]), 1, true
	}
	if len(p) < n {
		return 0, 0, false
	}
	for i := n - 1; i >= 1; i-- {
		v = v<<8 | uint64(p[i])
	}
	return v, n, true
}

// lenEncBytes reads a length-encoded string off the front of p and
// returns it and the bytes consumed.
func lenEncBytes(p []byte) ([]byte, int, bool) {
	l, n, ok := lenEncInt(p)
	if !ok || l > uint64(len(p)-n) {
		return nil, 0, false
	}
	end := n + int(l)
	return p[n:end], end, true
}

// parseOK reads an OK packet (header 0x00, or 0xFE closing a result set
// with CLIENT_DEPRECATE_EOF, which the proxy never negotiates).
func parseOK(p []byte) (okInfo, error) {
	var ok okInfo
	if len(p) < 1 {
		return ok, gomysql.ErrMalformPacket
	}
	pos := 1
	for _, v := range []*uint64{&ok.affectedRows, &ok.insertID} {
		x, n, valid := lenEncInt(p[pos:])
		if !valid {
			return ok, gomysql.ErrMalformPacket
		}
		*v, pos = x, pos+n
	}
	if pos+4 > len(p) {
		return ok, gomysql.ErrMalformPacket
	}
	ok.status = binary.LittleEndian.Uint16(p[pos:])
	ok.warnings = binary.LittleEndian.Uint16(p[pos+2:])
	return ok, nil
}

// isEOF reports whether p is an EOF packet (a row may also start with
// 0xFE, but then it is at least 9 bytes long).
func isEOF(p []byte) bool { return len(p) > 0 && p[0] == headerEOF && len(p) < 9 }

// eofStatus returns the status flags of an EOF packet.
func eofStatus(p []byte) uint16 {
	if len(p) < 5 {
		return 0
	}
	return binary.LittleEndian.Uint16(p[3:])
}

// appendOK builds an OK packet payload with an info message, as the server
// sends after an UPDATE ("Rows matched: 1  Changed: 1  Warnings: 0").
func appendOK(b []byte, affected, insertID uint64, status, warnings uint16, info string) []byte {
	b = append(b, headerOK)
	b = gomysql.AppendLengthEncodedInteger(b, affected)
	b = gomysql.AppendLengthEncodedInteger(b, insertID)
	b = binary.LittleEndian.AppendUint16(b, status)
	b = binary.LittleEndian.AppendUint16(b, warnings)
	if info == "" {
		return b
	}
	// The server sends the info as a length-encoded string (libmariadb
	// reads it so, with or without CLIENT_SESSION_TRACK).
	b = gomysql.AppendLengthEncodedInteger(b, uint64(len(info)))
	return append(b, info...)
}

// appendErr builds an ERR packet payload.
func appendErr(b []byte, e *gomysql.MyError) []byte {
	b = append(b, headerErr)
	b = binary.LittleEndian.AppendUint16(b, e.Code)
	state := e.State
	if len(state) != 5 {
		state = gomysql.DEFAULT_MYSQL_STATE
	}
	b = append(b, '#')
	b = append(b, state...)
	return append(b, e.Message...)
}

// parseErr decodes an ERR packet payload.
func parseErr(p []byte) *gomysql.MyError {
	e := &gomysql.MyError{State: gomysql.DEFAULT_MYSQL_STATE}
	if len(p) < 3 {
		e.Code, e.Message = gomysql.ER_UNKNOWN_ERROR, "malformed error packet"
		return e
	}
	e.Code = binary.LittleEndian.Uint16(p[1:])
	rest := p[3:]
	if len(rest) >= 6 && rest[0] == '#' {
		e.State, rest = string(rest[1:6]), rest[6:]
	}
	e.Message = string(rest)
	return e
}

// rowsInfo formats the info message of an UPDATE's OK packet exactly as
// MySQL and MariaDB do.
func rowsInfo(matched, changed uint64, warnings uint16) string {
	return fmt.Sprintf("Rows matched: %d  Changed: %d  Warnings: %d", matched, changed, warnings)
}
