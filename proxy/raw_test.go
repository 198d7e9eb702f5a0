package proxy

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"testing"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/hotrow/hotrow/internal/testdb"
)

// rawCaps are the capabilities the raw test client asks for.
const rawCaps = gomysql.CLIENT_LONG_PASSWORD | gomysql.CLIENT_LONG_FLAG | gomysql.CLIENT_CONNECT_WITH_DB |
	gomysql.CLIENT_PROTOCOL_41 | gomysql.CLIENT_TRANSACTIONS | gomysql.CLIENT_SECURE_CONNECTION |
	gomysql.CLIENT_MULTI_RESULTS | gomysql.CLIENT_PS_MULTI_RESULTS | gomysql.CLIENT_PLUGIN_AUTH

// rawConn is a minimal MySQL client, independent of the proxy's code, for
// tests that send exact packets and compare the exact bytes of replies.
type rawConn struct {
	t      testing.TB
	conn   net.Conn
	r      *bufio.Reader
	seq    byte
	stmtID uint32 // of the last successful COM_STMT_PREPARE
	// log records every packet received as "seq:hex payload".
	log []string
}

// dialRaw connects to addr and logs in with mysql_native_password. It
// returns the connection and the server's final login reply (OK or ERR).
func dialRaw(t testing.TB, addr, user, password, db string) (*rawConn, []byte) {
	t.Helper()
	return dialRawWith(t, addr, user, password, db, gomysql.AUTH_NATIVE_PASSWORD, 0)
}

// dialRawWith logs in naming plugin in the handshake response (with a
// mysql_native_password scramble) and asking for rawCaps and extraCaps; it
// follows an auth switch to mysql_native_password.
func dialRawWith(t testing.TB, addr, user, password, db, plugin string, extraCaps uint32) (*rawConn, []byte) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	c := &rawConn{t: t, conn: conn, r: bufio.NewReader(conn)}
	g, err := c.read()
	if err != nil {
		t.Fatalf("greeting: %v", err)
	}
	// protocol version, server version, thread id, salt part 1, filler,
	// capabilities (low), charset, status, capabilities (high), salt
	// length, reserved, salt part 2 (NUL-terminated), plugin.
	pos := 1 + bytes.IndexByte(g[1:], 0) + 1 + 4
	salt := append([]byte{}, g[pos:pos+8]...)
	pos += 8 + 1
	caps := uint32(binary.LittleEndian.Uint16(g[pos:]))
	caps |= uint32(binary.LittleEndian.Uint16(g[pos+5:])) << 16
	pos += 2 + 1 + 2 + 2 + 1 + 10
	salt = append(salt, g[pos:pos+12]...)

	resp := binary.LittleEndian.AppendUint32(nil, (rawCaps|extraCaps)&caps)
	resp = binary.LittleEndian.AppendUint32(resp, 1<<24)
	resp = append(resp, 45) // utf8mb4_general_ci
	resp = append(resp, make([]byte, 23)...)
	resp = append(append(resp, user...), 0)
	auth := gomysql.CalcNativePassword(salt, []byte(password))
	resp = append(append(resp, byte(len(auth))), auth...)
	resp = append(append(resp, db...), 0)
	resp = append(append(resp, plugin...), 0)
	c.write(resp)
	for {
		reply, err := c.read()
		if err != nil {
			t.Fatalf("login: %v", err)
		}
		if reply[0] != headerEOF {
			c.log = nil
			return c, reply
		}
		// Auth switch: plugin name, then the new salt.
		plugin, rest, _ := bytes.Cut(reply[1:], []byte{0})
		if string(plugin) != gomysql.AUTH_NATIVE_PASSWORD {
			t.Fatalf("login: server switched to %s", plugin)
		}
		c.write(gomysql.CalcNativePassword(bytes.TrimRight(rest, "\x00"), []byte(password)))
	}
}

var stmtIDInMessage = regexp.MustCompile(`\(\d+\)`)

// read reads one packet and logs it.
func (c *rawConn) read() ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(c.r, hdr[:]); err != nil {
		return nil, err
	}
	n := int(hdr[0]) | int(hdr[1])<<8 | int(hdr[2])<<16
	p := make([]byte, n)
	if _, err := io.ReadFull(c.r, p); err != nil {
		return nil, err
	}
	c.seq = hdr[3] + 1
	logged := p
	if len(p) > 3 && p[0] == headerErr && binary.LittleEndian.Uint16(p[1:]) == gomysql.ER_UNKNOWN_STMT_HANDLER {
		// The message names the server's statement id.
		logged = stmtIDInMessage.ReplaceAll(p, []byte("(N)"))
	}
	c.log = append(c.log, fmt.Sprintf("%d:%x", hdr[3], logged))
	if n == 0 {
		return p, errors.New("empty packet")
	}
	return p, nil
}

// write sends one packet with the next sequence number.
func (c *rawConn) write(p []byte) {
	c.t.Helper()
	c.writeSeq(c.seq, p)
}

func (c *rawConn) writeSeq(seq byte, p []byte) {
	c.t.Helper()
	hdr := []byte{byte(len(p)), byte(len(p) >> 8), byte(len(p) >> 16), seq}
	c.seq = seq + 1
	if _, err := c.conn.Write(append(hdr, p...)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// command starts a new command exchange.
func (c *rawConn) command(p []byte) {
	c.t.Helper()
	c.writeSeq(0, p)
}

// isClosed reports whether the peer closed the connection (reading gives
// EOF or a reset), after reading whatever it still sent.
func (c *rawConn) isClosed() bool {
	_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.Copy(io.Discard, c.r)
	return err == nil || errors.Is(err, net.ErrClosed) || isReset(err)
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && !op.Timeout()
}

// respKind says how a command's response is structured.
type respKind int

const (
	respNone      respKind = iota // no response (COM_STMT_CLOSE, SEND_LONG_DATA)
	respReply                     // one packet: OK, ERR, EOF or a string
	respResult                    // COM_QUERY / COM_STMT_EXECUTE
	respFieldList                 // column definitions up to EOF, or ERR
	respPrepare                   // COM_STMT_PREPARE
)

// response reads a whole response of kind k.
func (c *rawConn) response(k respKind) error {
	switch k {
	case respNone:
		return nil
	case respReply:
		_, err := c.read()
		return err
	case respFieldList:
		for {
			p, err := c.read()
			if err != nil || p[0] == headerErr || isEOF(p) {
				return err
			}
		}
	case respPrepare:
		p, err := c.read()
		if err != nil || p[0] != headerOK {
			return err
		}
		c.stmtID = binary.LittleEndian.Uint32(p[1:])
		// The server numbers statements as it likes: log id 0.
		c.log[len(c.log)-1] = fmt.Sprintf("%d:%x", c.seq-1, append(append([]byte{p[0]}, 0, 0, 0, 0), p[5:]...))
		cols, params := binary.LittleEndian.Uint16(p[5:]), binary.LittleEndian.Uint16(p[7:])
		for _, n := range []uint16{params, cols} {
			if n == 0 {
				continue
			}
			for range n + 1 {
				if _, err := c.read(); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for {
		p, err := c.read()
		if err != nil {
			return err
		}
		switch p[0] {
		case headerErr:
			return nil
		case headerOK:
			_, _, n := gomysql.LengthEncodedInt(p[1:])
			_, _, m := gomysql.LengthEncodedInt(p[1+n:])
			if binary.LittleEndian.Uint16(p[1+n+m:])&statusMoreResults == 0 {
				return nil
			}
			continue
		}
		cols, _, _ := gomysql.LengthEncodedInt(p)
		for range cols + 1 {
			if p, err = c.read(); err != nil {
				return err
			}
		}
		if eofStatus(p)&statusCursorExists != 0 {
			return nil
		}
		for {
			if p, err = c.read(); err != nil {
				return err
			}
			if p[0] == headerErr {
				return nil
			}
			if isEOF(p) {
				break
			}
		}
		if eofStatus(p)&statusMoreResults == 0 {
			return nil
		}
	}
}

// Builders of command packets.
func comQuery(q string) []byte { return append([]byte{gomysql.COM_QUERY}, q...) }

func comStmt(cmd byte, id uint32, rest ...byte) []byte {
	return append(binary.LittleEndian.AppendUint32([]byte{cmd}, id), rest...)
}

// comExecute builds COM_STMT_EXECUTE: flags, iteration count 1, the NULL
// bitmap, and the types when given (new-params-bound flag set).
func comExecute(id uint32, flags byte, nullMap []byte, types []byte, values []byte) []byte {
	p := comStmt(gomysql.COM_STMT_EXECUTE, id, flags, 1, 0, 0, 0)
	p = append(p, nullMap...)
	if types != nil {
		p = append(append(p, 1), types...)
	} else {
		p = append(p, 0)
	}
	return append(p, values...)
}

func lenencString(s string) []byte {
	return append(gomysql.AppendLengthEncodedInteger(nil, uint64(len(s))), s...)
}

func int64LE(v int64) []byte { return binary.LittleEndian.AppendUint64(nil, uint64(v)) }

// rawStep is one command of a raw script: the packet (built from the id of
// the last prepared statement) and the shape of its response.
type rawStep struct {
	name string
	pkt  func(stmt uint32) []byte
	resp respKind
}

// rq is a COM_QUERY step.
func rq(sql string) rawStep {
	return rawStep{name: sql, pkt: func(uint32) []byte { return comQuery(sql) }, resp: respResult}
}

// rawCmd is a step of any command.
func rawCmd(name string, resp respKind, pkt func(stmt uint32) []byte) rawStep {
	return rawStep{name: name, pkt: pkt, resp: resp}
}

// fixed is a packet that does not name a statement.
func fixed(p []byte) func(uint32) []byte { return func(uint32) []byte { return p } }

// rawScript exercises every command the proxy relays; the replies must be
// byte for byte those of the server.
var rawScript = []rawStep{
	rq("CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(10) DEFAULT 'x', d DECIMAL(5,2))"),
	rq("INSERT INTO t (v, d) VALUES ('a', 1.5), ('b', NULL)"),
	rq("UPDATE t SET d = 2 WHERE id > 0"),
	rq("SET sql_mode = ''"),
	rq("INSERT INTO t (v) VALUES ('truncated value')"),
	rq("SHOW WARNINGS"),
	// Status flags: autocommit off, in transaction, and back.
	rq("SET autocommit = 0"),
	rq("INSERT INTO t (v) VALUES ('tx')"),
	rq("SELECT COUNT(*) FROM t"),
	rq("ROLLBACK"),
	rq("SET autocommit = 1"),
	rq("BEGIN"),
	rq("SELECT id, v, d FROM t ORDER BY id"),
	rq("COMMIT"),
	rq("START TRANSACTION READ ONLY"),
	rq("SELECT 1"),
	rq("ROLLBACK"),
	rawCmd("COM_PING", respReply, fixed([]byte{gomysql.COM_PING})),
	rawCmd("COM_INIT_DB information_schema", respReply, fixed(append([]byte{gomysql.COM_INIT_DB}, "information_schema"...))),
	rq("SELECT DATABASE()"),
	rawCmd("COM_INIT_DB nosuchdb", respReply, fixed(append([]byte{gomysql.COM_INIT_DB}, "nosuchdb"...))),
	rawCmd("COM_INIT_DB back", respReply, nil), // filled in per target
	rawCmd("COM_FIELD_LIST t", respFieldList, fixed(append([]byte{gomysql.COM_FIELD_LIST}, "t\x00"...))),
	rawCmd("COM_FIELD_LIST t v%", respFieldList, fixed(append([]byte{gomysql.COM_FIELD_LIST}, "t\x00v%"...))),
	rawCmd("COM_FIELD_LIST nosuch", respFieldList, fixed(append([]byte{gomysql.COM_FIELD_LIST}, "nosuch\x00"...))),
	rq("SELECT 1; SELECT 2"),
	rawCmd("COM_SET_OPTION multi-statements on", respReply, fixed([]byte{gomysql.COM_SET_OPTION, 0, 0})),
	rq("SELECT 1; SELECT 'two', 2; DO 3"),
	rq("SELECT 1; SELECT * FROM nosuch; SELECT 3"),
	rawCmd("COM_SET_OPTION multi-statements off", respReply, fixed([]byte{gomysql.COM_SET_OPTION, 1, 0})),
	rq("SELECT 1; SELECT 2"),
	rq(`CREATE PROCEDURE two() BEGIN SELECT 1 AS a; SELECT 'b' AS b; END`),
	rq("CALL two()"),
	// Prepared statements.
	rawCmd("prepare", respPrepare, fixed(append([]byte{gomysql.COM_STMT_PREPARE}, "SELECT ?, CONCAT(?, '!'), v FROM t WHERE id = ?"...))),
	rawCmd("execute with types", respResult, func(id uint32) []byte {
		types := []byte{gomysql.MYSQL_TYPE_LONGLONG, 0, gomysql.MYSQL_TYPE_VAR_STRING, 0, gomysql.MYSQL_TYPE_LONGLONG, 0}
		vals := append(append(int64LE(7), lenencString("hi")...), int64LE(1)...)
		return comExecute(id, 0, []byte{0}, types, vals)
	}),
	rawCmd("re-execute without types", respResult, func(id uint32) []byte {
		return comExecute(id, 0, []byte{0}, nil, append(append(int64LE(8), lenencString("yo")...), int64LE(2)...))
	}),
	rawCmd("execute with NULL params", respResult, func(id uint32) []byte {
		return comExecute(id, 0, []byte{0b011}, nil, int64LE(1))
	}),
	rawCmd("send long data 1", respNone, func(id uint32) []byte {
		return comStmt(gomysql.COM_STMT_SEND_LONG_DATA, id, append([]byte{1, 0}, "long "...)...)
	}),
	rawCmd("send long data 2", respNone, func(id uint32) []byte {
		return comStmt(gomysql.COM_STMT_SEND_LONG_DATA, id, append([]byte{1, 0}, "data"...)...)
	}),
	rawCmd("execute with long data", respResult, func(id uint32) []byte {
		return comExecute(id, 0, []byte{0}, nil, append(int64LE(9), int64LE(1)...))
	}),
	rawCmd("send long data then reset", respNone, func(id uint32) []byte {
		return comStmt(gomysql.COM_STMT_SEND_LONG_DATA, id, append([]byte{1, 0}, "dropped"...)...)
	}),
	rawCmd("COM_STMT_RESET", respReply, func(id uint32) []byte { return comStmt(gomysql.COM_STMT_RESET, id) }),
	rawCmd("execute after reset", respResult, func(id uint32) []byte {
		return comExecute(id, 0, []byte{0}, nil, append(append(int64LE(10), lenencString("after")...), int64LE(2)...))
	}),
	rawCmd("execute with a cursor", respResult, func(id uint32) []byte {
		return comExecute(id, 1, []byte{0}, nil, append(append(int64LE(11), lenencString("cur")...), int64LE(1)...))
	}),
	rawCmd("COM_STMT_FETCH", respFieldList, func(id uint32) []byte { return comStmt(gomysql.COM_STMT_FETCH, id, 5, 0, 0, 0) }),
	rawCmd("COM_STMT_CLOSE", respNone, func(id uint32) []byte { return comStmt(gomysql.COM_STMT_CLOSE, id) }),
	rawCmd("execute a closed statement", respResult, func(id uint32) []byte {
		return comExecute(id, 0, []byte{0}, nil, nil)
	}),
	rawCmd("prepare a syntax error", respPrepare, fixed(append([]byte{gomysql.COM_STMT_PREPARE}, "SELEC ?"...))),
	rawCmd("prepare insert", respPrepare, fixed(append([]byte{gomysql.COM_STMT_PREPARE}, "INSERT INTO t (v, d) VALUES (?, ?)"...))),
	rawCmd("execute insert", respResult, func(id uint32) []byte {
		types := []byte{gomysql.MYSQL_TYPE_VAR_STRING, 0, gomysql.MYSQL_TYPE_NEWDECIMAL, 0}
		return comExecute(id, 0, []byte{0}, types, append(lenencString("p"), lenencString("3.25")...))
	}),
	rawCmd("execute insert, out of range", respResult, func(id uint32) []byte {
		return comExecute(id, 0, []byte{0}, nil, append(lenencString("p"), lenencString("1000")...))
	}),
	// COM_RESET_CONNECTION drops user variables and prepared statements.
	rq("SET @a = 1"),
	rawCmd("COM_RESET_CONNECTION", respReply, fixed([]byte{gomysql.COM_RESET_CONNECTION})),
	rq("SELECT @a, @@autocommit"),
	rawCmd("execute after reset connection", respResult, func(id uint32) []byte {
		return comExecute(id, 0, []byte{0}, nil, append(lenencString("q"), lenencString("1")...))
	}),
	rawCmd("COM_STATISTICS shape", respReply, fixed([]byte{gomysql.COM_STATISTICS})),
	rawCmd("unknown command 0x40", respReply, fixed([]byte{0x40, 1, 2, 3})),
	rawCmd("COM_SLEEP", respReply, fixed([]byte{gomysql.COM_SLEEP})),
	rq("SELEC 1"),
	rq("SELECT 'still here'"),
}

// TestRawCommands runs rawScript directly and through the proxy and
// compares every reply packet, sequence numbers included.
func TestRawCommands(t *testing.T) {
	t.Parallel()
	direct, proxied, _ := targets(t)
	var logs [2][]string
	for i, tg := range []target{direct, proxied} {
		c, login := dialRaw(t, tg.addr, tg.db.User, tg.db.Password, tg.db.Name)
		logs[i] = append(logs[i], fmt.Sprintf("login %x", login))
		for _, s := range rawScript {
			pkt := s.pkt
			if pkt == nil { // COM_INIT_DB back to the target's database
				pkt = fixed(append([]byte{gomysql.COM_INIT_DB}, tg.db.Name...))
			}
			c.log = nil
			c.command(pkt(c.stmtID))
			if err := c.response(s.resp); err != nil {
				t.Fatalf("%s: %s: %v", tg.name, s.name, err)
			}
			if s.name == "COM_STATISTICS shape" {
				if len(c.log) != 1 || !bytes.HasPrefix([]byte(c.log[0]), []byte(fmt.Sprintf("1:%x", "Uptime: "))) {
					t.Errorf("%s: COM_STATISTICS: %v", tg.name, c.log)
				}
				continue
			}
			for _, l := range c.log {
				logs[i] = append(logs[i], s.name+" "+l)
			}
		}
		c.command([]byte{gomysql.COM_QUIT})
		if !c.isClosed() {
			t.Errorf("%s: connection open after COM_QUIT", tg.name)
		}
	}
	// The database names have the same length: swap them in the hex.
	dn, pn := fmt.Sprintf("%x", direct.db.Name), fmt.Sprintf("%x", proxied.db.Name)
	for i := range logs[1] {
		logs[1][i] = string(bytes.ReplaceAll([]byte(logs[1][i]), []byte(pn), []byte(dn)))
	}
	compareLines(t, logs[0], logs[1])
}

// TestRawPipelined: a client may send its next command before the answer
// to the previous one; the second arrives while the first runs, after the
// session's read of the first, and is answered too. (A session that waits
// for the socket to become readable after answering, without reading
// first, would miss it: readiness that came before a wait is forgotten.)
func TestRawPipelined(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	p := startProxy(t, db)
	c, _ := dialRaw(t, p.addr, db.User, db.Password, db.Name)
	_ = c.conn.SetDeadline(time.Now().Add(10 * time.Second))
	c.command(comQuery("SELECT SLEEP(0.2)"))
	time.Sleep(50 * time.Millisecond)
	c.command(comQuery("SELECT 2"))
	for _, q := range []string{"SELECT SLEEP(0.2)", "SELECT 2"} {
		c.log = nil
		if err := c.response(respResult); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if len(c.log) == 0 || c.log[0][:2] != "1:" {
			t.Fatalf("%s: %v, want a result set", q, c.log)
		}
	}
}

// TestRawBadInput sends malformed, out-of-order, oversized and unknown
// packets: each closes (or errors) that one connection only, and other
// sessions keep working.
func TestRawBadInput(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	p := startProxy(t, db, func(c *Config) { c.MaxPacketSize = 4096 })
	other := open(t, db, p.addr)
	other.SetMaxOpenConns(1)
	if err := other.Ping(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		send func(c *rawConn)
		// wantErr is the error code the client reads before the close, 0: none.
		wantErr uint16
	}{
		{"garbage header", func(c *rawConn) { _, _ = c.conn.Write([]byte{0xff, 0xff, 0x00, 0x07, 1, 2, 3}) }, 0},
		{"wrong sequence", func(c *rawConn) { c.writeSeq(3, comQuery("SELECT 1")) }, 0},
		{"empty packet", func(c *rawConn) { c.command(nil) }, 0},
		{"oversized", func(c *rawConn) { c.command(comQuery("SELECT '" + string(bytes.Repeat([]byte("x"), 5000)) + "'")) },
			gomysql.ER_NET_PACKET_TOO_LARGE},
		{"oversized by far", func(c *rawConn) {
			// The proxy stops reading after the header: the client may
			// not even manage to send it all.
			wrote := make(chan error, 1)
			go func() {
				_, err := c.conn.Write(append([]byte{0, 0, 16, 0, gomysql.COM_QUERY}, make([]byte, 1<<20)...))
				wrote <- err
			}()
			c.t.Cleanup(func() { <-wrote }) // ends at the close, or the connection's deadline
		}, gomysql.ER_NET_PACKET_TOO_LARGE},
		{"COM_CHANGE_USER", func(c *rawConn) { c.command(append([]byte{gomysql.COM_CHANGE_USER}, "root\x00\x00"...)) },
			gomysql.ER_NOT_SUPPORTED_YET},
		{"COM_BINLOG_DUMP", func(c *rawConn) { c.command(comStmt(gomysql.COM_BINLOG_DUMP, 4, 0, 0, 1, 0, 0, 0)) },
			gomysql.ER_NOT_SUPPORTED_YET},
		{"half a packet then close", func(c *rawConn) {
			_, _ = c.conn.Write([]byte{100, 0, 0, 0, gomysql.COM_QUERY, 'S'})
			_ = c.conn.(*net.TCPConn).CloseWrite()
		}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, login := dialRaw(t, p.addr, db.User, db.Password, db.Name)
			if login[0] != headerOK {
				t.Fatalf("login: %x", login)
			}
			tt.send(c)
			if tt.wantErr != 0 {
				reply, err := c.read()
				if err != nil {
					t.Fatalf("read: %v", err)
				}
				if e := parseErr(reply); reply[0] != headerErr || e.Code != tt.wantErr {
					t.Fatalf("reply %x, want error %d", reply, tt.wantErr)
				}
				t.Logf("error: %v", parseErr(reply))
			}
			if tt.name != "COM_BINLOG_DUMP" && !c.isClosed() {
				t.Fatal("connection still open")
			}
			var one int
			if err := other.QueryRow("SELECT 1").Scan(&one); err != nil {
				t.Fatalf("other session: %v", err)
			}
		})
	}
}

// TestBadHandshake: a handshake response the server cannot parse gets the
// server's own error, and only that connection closes.
func TestBadHandshake(t *testing.T) {
	t.Parallel()
	direct, proxied, p := targets(t)
	tests := []struct {
		name string
		resp []byte
	}{
		{"short", []byte{1, 2, 3}},
		{"garbage", bytes.Repeat([]byte{0xfe}, 64)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var replies [2]string
			for i, tg := range []target{direct, proxied} {
				conn, err := net.DialTimeout("tcp", tg.addr, 5*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
				c := &rawConn{t: t, conn: conn, r: bufio.NewReader(conn)}
				if _, err := c.read(); err != nil {
					t.Fatalf("%s: greeting: %v", tg.name, err)
				}
				c.write(tt.resp)
				reply, err := c.read()
				if err != nil {
					t.Fatalf("%s: %v", tg.name, err)
				}
				replies[i] = fmt.Sprintf("%d:%x", c.seq-1, reply)
				if !c.isClosed() {
					t.Errorf("%s: connection still open", tg.name)
				}
			}
			if replies[0] != replies[1] {
				t.Errorf("direct: %s\nproxy:  %s", replies[0], replies[1])
			}
		})
	}
	if err := open(t, proxied.db, p.addr).Ping(); err != nil {
		t.Fatalf("new session: %v", err)
	}
}
