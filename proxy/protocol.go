package proxy

import (
	"encoding/binary"
	"fmt"

	"github.com/go-mysql-org/go-mysql/mysql"
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
	statusInTrans       = mysql.SERVER_STATUS_IN_TRANS
	statusAutocommit    = mysql.SERVER_STATUS_AUTOCOMMIT
	statusMoreResults   = mysql.SERVER_MORE_RESULTS_EXISTS
	statusCursorExists  = mysql.SERVER_STATUS_CURSOR_EXISTS
	statusLastRowSent   = mysql.SERVER_STATUS_LAST_ROW_SEND
	statusInTransReadOn = mysql.SERVER_STATUS_IN_TRANS_READONLY
)

// proxyCapabilities are the capability flags hotrow can pass through
// byte-exact. Not in the set, and so never negotiated on either side:
// SSL and compression (not yet supported), CLIENT_DEPRECATE_EOF,
// CLIENT_SESSION_TRACK and CLIENT_QUERY_ATTRIBUTES (they change packet
// layouts the proxy parses), and MariaDB's extended capabilities (the
// proxy announces CLIENT_LONG_PASSWORD, so clients speak the MySQL dialect).
const proxyCapabilities = mysql.CLIENT_LONG_PASSWORD | mysql.CLIENT_FOUND_ROWS |
	mysql.CLIENT_LONG_FLAG | mysql.CLIENT_CONNECT_WITH_DB | mysql.CLIENT_ODBC |
	mysql.CLIENT_LOCAL_FILES | mysql.CLIENT_IGNORE_SPACE | mysql.CLIENT_PROTOCOL_41 |
	mysql.CLIENT_INTERACTIVE | mysql.CLIENT_IGNORE_SIGPIPE | mysql.CLIENT_TRANSACTIONS |
	mysql.CLIENT_SECURE_CONNECTION | mysql.CLIENT_MULTI_STATEMENTS |
	mysql.CLIENT_MULTI_RESULTS | mysql.CLIENT_PS_MULTI_RESULTS | mysql.CLIENT_PLUGIN_AUTH |
	mysql.CLIENT_CONNECT_ATTRS | mysql.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA

// okInfo is what the proxy reads from an OK packet.
type okInfo struct {
	affectedRows, insertID uint64
	status, warnings       uint16
}

// parseOK reads an OK packet (header 0x00, or 0xFE closing a result set
// with CLIENT_DEPRECATE_EOF, which the proxy never negotiates).
func parseOK(p []byte) (okInfo, error) {
	var ok okInfo
	pos := 1
	var n int
	ok.affectedRows, _, n = mysql.LengthEncodedInt(p[pos:])
	pos += n
	if pos > len(p) {
		return ok, mysql.ErrMalformPacket
	}
	ok.insertID, _, n = mysql.LengthEncodedInt(p[pos:])
	pos += n
	if pos+4 > len(p) {
		return ok, mysql.ErrMalformPacket
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
	b = mysql.AppendLengthEncodedInteger(b, affected)
	b = mysql.AppendLengthEncodedInteger(b, insertID)
	b = binary.LittleEndian.AppendUint16(b, status)
	b = binary.LittleEndian.AppendUint16(b, warnings)
	return append(b, info...)
}

// appendErr builds an ERR packet payload.
func appendErr(b []byte, e *mysql.MyError) []byte {
	b = append(b, headerErr)
	b = binary.LittleEndian.AppendUint16(b, e.Code)
	state := e.State
	if len(state) != 5 {
		state = mysql.DEFAULT_MYSQL_STATE
	}
	b = append(b, '#')
	b = append(b, state...)
	return append(b, e.Message...)
}

// parseErr decodes an ERR packet payload.
func parseErr(p []byte) *mysql.MyError {
	e := &mysql.MyError{State: mysql.DEFAULT_MYSQL_STATE}
	if len(p) < 3 {
		e.Code, e.Message = mysql.ER_UNKNOWN_ERROR, "malformed error packet"
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
