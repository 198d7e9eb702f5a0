package proxy

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"testing"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
)

// TestGoldenPackets pins the bytes of the packets the proxy builds itself.
func TestGoldenPackets(t *testing.T) {
	salt := []byte("abcdefghijklmnopqrst")
	g := greeting{version: "10.11.6-MariaDB", connID: 0x01020304, charset: 45, status: statusAutocommit}
	tests := []struct {
		name string
		got  []byte
		want string // hex
	}{
		{
			name: "greeting",
			got:  appendGreeting(nil, g, proxyCapabilities, salt, gomysql.AUTH_NATIVE_PASSWORD),
			want: "0a" + hex.EncodeToString([]byte("10.11.6-MariaDB")) + "00" +
				"04030201" + hex.EncodeToString(salt[:8]) + "00" +
				"cfb7" + "2d" + "0200" + "3f00" + "15" + "00000000000000000000" +
				hex.EncodeToString(salt[8:]) + "00" +
				hex.EncodeToString([]byte("mysql_native_password")) + "00",
		},
		{
			name: "mariadb greeting",
			got: appendGreeting(nil, greeting{version: "11.4.2-MariaDB", connID: 9, charset: 45, status: statusAutocommit,
				extCapability: 0x1f}, proxyCapabilities&^gomysql.CLIENT_LONG_PASSWORD, salt, gomysql.AUTH_NATIVE_PASSWORD),
			want: "0a" + hex.EncodeToString([]byte("11.4.2-MariaDB")) + "00" +
				"09000000" + hex.EncodeToString(salt[:8]) + "00" +
				"ceb7" + "2d" + "0200" + "3f00" + "15" + "000000000000" + "08000000" +
				hex.EncodeToString(salt[8:]) + "00" +
				hex.EncodeToString([]byte("mysql_native_password")) + "00",
		},
		{
			name: "ok with info",
			got:  appendOK(nil, 1, 0, statusAutocommit, 0, rowsInfo(1, 1, 0)),
			// As MariaDB sends it after an UPDATE: the info is length-encoded.
			want: "00" + "01" + "00" + "0200" + "0000" + "28" +
				hex.EncodeToString([]byte("Rows matched: 1  Changed: 1  Warnings: 0")),
		},
		{
			name: "ok with large counts",
			got:  appendOK(nil, 300, 1<<24, statusAutocommit|statusInTrans, 2, ""),
			want: "00" + "fc2c01" + "fe0000000100000000" + "0300" + "0200",
		},
		{
			name: "err",
			got:  appendErr(nil, gomysql.NewDefaultError(gomysql.ER_NET_PACKET_TOO_LARGE)),
			want: "ff" + "8104" + "23" + hex.EncodeToString([]byte("08S01")) +
				hex.EncodeToString([]byte("Got a packet bigger than 'max_allowed_packet' bytes")),
		},
		{
			name: "err with bad state",
			got:  appendErr(nil, &gomysql.MyError{Code: 2013, State: "", Message: "x"}),
			want: "ff" + "dd07" + "23" + hex.EncodeToString([]byte("HY000")) + "78",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := hex.EncodeToString(tt.got); got != tt.want {
				t.Errorf("bytes\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

// TestGreetingRoundTrip parses what appendGreeting builds.
func TestGreetingRoundTrip(t *testing.T) {
	salt := []byte("abcdefghijklmnopqrst")
	g := greeting{version: "11.4.2-MariaDB-log", connID: 77, charset: 45, status: statusAutocommit,
		extCapability: mariadbExtendedTypeInfo}
	caps := uint32(proxyCapabilities &^ gomysql.CLIENT_LONG_PASSWORD)
	payload := appendGreeting(nil, g, caps, salt, gomysql.AUTH_CACHING_SHA2_PASSWORD)
	raw := append([]byte{byte(len(payload)), byte(len(payload) >> 8), 0, 0}, payload...)
	got, err := parseGreeting(raw)
	if err != nil {
		t.Fatal(err)
	}
	if got.version != g.version || got.connID != g.connID || got.charset != g.charset ||
		got.status != g.status || got.capability != caps || got.extCapability != g.extCapability {
		t.Errorf("parsed %+v, want %+v with capability %#x", got, g, caps)
	}
}

// handshakeResponseFor builds a client's handshake response as
// go-sql-driver/mysql and libmariadb do.
func handshakeResponseFor(caps uint32, user string, auth []byte, db, plugin string, attrs map[string]string) []byte {
	b := binary.LittleEndian.AppendUint32(nil, caps)
	b = binary.LittleEndian.AppendUint32(b, 1<<24)
	b = append(b, 45)
	b = append(b, make([]byte, 23)...)
	b = append(append(b, user...), 0)
	switch {
	case caps&gomysql.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA != 0:
		b = append(gomysql.AppendLengthEncodedInteger(b, uint64(len(auth))), auth...)
	case caps&gomysql.CLIENT_SECURE_CONNECTION != 0:
		b = append(append(b, byte(len(auth))), auth...)
	default:
		b = append(append(b, auth...), 0)
	}
	if caps&gomysql.CLIENT_CONNECT_WITH_DB != 0 {
		b = append(append(b, db...), 0)
	}
	if caps&gomysql.CLIENT_PLUGIN_AUTH != 0 {
		b = append(append(b, plugin...), 0)
	}
	if caps&gomysql.CLIENT_CONNECT_ATTRS != 0 {
		var kv []byte
		for k, v := range attrs {
			kv = append(gomysql.AppendLengthEncodedInteger(kv, uint64(len(k))), k...)
			kv = append(gomysql.AppendLengthEncodedInteger(kv, uint64(len(v))), v...)
		}
		b = append(gomysql.AppendLengthEncodedInteger(b, uint64(len(kv))), kv...)
	}
	return b
}

func TestParseHandshakeResponse(t *testing.T) {
	base := uint32(gomysql.CLIENT_PROTOCOL_41 | gomysql.CLIENT_SECURE_CONNECTION | gomysql.CLIENT_PLUGIN_AUTH)
	auth := bytes.Repeat([]byte{7}, 20)
	tests := []struct {
		name    string
		caps    uint32
		offered uint32 // 0: proxyCapabilities
		ext     uint32 // MariaDB extended capabilities sent
		wantExt uint32
		db      string
		attrs   map[string]string
		wantErr bool
	}{
		{name: "mariadb extended capabilities", caps: base, offered: proxyCapabilities &^ gomysql.CLIENT_LONG_PASSWORD,
			ext: 0x1f, wantExt: mariadbExtendedTypeInfo},
		{name: "mysql client of a mariadb server", caps: base | gomysql.CLIENT_LONG_PASSWORD,
			offered: proxyCapabilities &^ gomysql.CLIENT_LONG_PASSWORD, ext: 0x1f},
		{name: "extended capabilities not offered", caps: base, ext: 0x1f},
		{name: "secure connection", caps: base},
		{name: "lenenc auth data", caps: base | gomysql.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA},
		{name: "with db", caps: base | gomysql.CLIENT_CONNECT_WITH_DB, db: "shop"},
		{name: "with attrs", caps: base | gomysql.CLIENT_CONNECT_ATTRS, attrs: map[string]string{"_client_name": "x"}},
		{name: "ssl refused", caps: base | gomysql.CLIENT_SSL, wantErr: true},
		{name: "pre-4.1 refused", caps: gomysql.CLIENT_SECURE_CONNECTION, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := handshakeResponseFor(tt.caps, "alice", auth, tt.db, gomysql.AUTH_NATIVE_PASSWORD, tt.attrs)
			binary.LittleEndian.PutUint32(p[28:], tt.ext)
			offered := tt.offered
			if offered == 0 {
				offered = proxyCapabilities
			}
			r, err := parseHandshakeResponse(p, offered)
			if tt.wantErr {
				if err == nil {
					t.Fatal("no error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.user != "alice" || !bytes.Equal(r.authData, auth) || r.db != tt.db ||
				r.plugin != gomysql.AUTH_NATIVE_PASSWORD || r.collation != 45 || len(r.attrs) != len(tt.attrs) ||
				r.extCapability != tt.wantExt {
				t.Errorf("parsed %+v", r)
			}
		})
	}
}

// FuzzParseHandshakeResponse feeds the handshake parsers arbitrary bytes.
func FuzzParseHandshakeResponse(f *testing.F) {
	base := uint32(gomysql.CLIENT_PROTOCOL_41 | gomysql.CLIENT_SECURE_CONNECTION | gomysql.CLIENT_PLUGIN_AUTH |
		gomysql.CLIENT_CONNECT_WITH_DB | gomysql.CLIENT_CONNECT_ATTRS)
	f.Add(handshakeResponseFor(base, "u", []byte("01234567890123456789"), "db", "mysql_native_password",
		map[string]string{"a": "b"}))
	f.Add(handshakeResponseFor(base|gomysql.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA, "u", nil, "", "", nil))
	// A truncated length-encoded auth length and a huge one.
	f.Add(append(handshakeResponseFor(base|gomysql.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA, "u", nil, "", "", nil)[:34], 0xfc))
	f.Add(append(handshakeResponseFor(base|gomysql.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA, "u", nil, "", "", nil)[:34],
		0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff))
	salt := []byte("abcdefghijklmnopqrst")
	f.Add(appendGreeting(nil, greeting{version: "10.11.6-MariaDB", extCapability: 0x1f}, 0, salt, "x"))
	f.Fuzz(func(t *testing.T, p []byte) {
		_, _ = parseHandshakeResponse(p, proxyCapabilities)
		_, _ = parseHandshakeResponse(p, proxyCapabilities&^gomysql.CLIENT_LONG_PASSWORD)
		_, _ = parseGreeting(append([]byte{0, 0, 0, 0}, p...)) // the backend's side
	})
}

// FuzzDecodeExecute feeds COM_STMT_EXECUTE packets to the decoders the
// proxy runs on them: the layout and type carry-over of every execution
// and the parameter decoding of mergeable ones.
func FuzzDecodeExecute(f *testing.F) {
	exec := func(params int, bound bool, types, values []byte) []byte {
		b := []byte{gomysql.COM_STMT_EXECUTE, 1, 0, 0, 0, 0, 1, 0, 0, 0}
		b = append(b, make([]byte, (params+7)/8)...)
		if bound {
			b = append(append(b, 1), types...)
		} else {
			b = append(b, 0)
		}
		return append(b, values...)
	}
	f.Add(uint8(2), exec(2, true, []byte{gomysql.MYSQL_TYPE_LONGLONG, 0, gomysql.MYSQL_TYPE_VAR_STRING, 0},
		[]byte{1, 0, 0, 0, 0, 0, 0, 0, 3, 'a', 'b', 'c'}))
	f.Add(uint8(1), exec(1, true, []byte{gomysql.MYSQL_TYPE_VAR_STRING, 0}, []byte{0xfc, 1}))
	f.Add(uint8(1), exec(1, true, []byte{gomysql.MYSQL_TYPE_BLOB, 0}, []byte{0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}))
	f.Add(uint8(3), exec(3, false, nil, nil))
	f.Fuzz(func(t *testing.T, params uint8, pkt []byte) {
		st := &preparedStmt{numParams: int(params)}
		_ = st.withBackendTypes(pkt)
		_, _ = st.decodeParams(pkt)
		_, _ = st.decodeParams(pkt) // again, with the types remembered
		_, _ = parseOK(pkt)
		_ = parseErr(pkt)
	})
}

func TestContainsFold(t *testing.T) {
	tests := []struct {
		s, sub string
		want   bool
	}{
		{"SET SESSION sql_mode = ''", "sql_mode", true},
		{"set @@SQL_MODE = 'ANSI'", "sql_mode", true},
		{"SET SQL?MODE", "sql_mode", false},
		{"USE shop", "use", true},
		{"SELECT 1", "use", false},
		{"up", "update", false},
	}
	for _, tt := range tests {
		t.Run(tt.s, func(t *testing.T) {
			if got := containsFold([]byte(tt.s), tt.sub); got != tt.want {
				t.Errorf("containsFold(%q, %q) = %v", tt.s, tt.sub, got)
			}
		})
	}
}

// TestPacketIORoundTrip writes and reads logical packets of the sizes
// around the 16 MiB split, and checks writing allocates nothing.
func TestPacketIORoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 250, maxPayloadChunk - 1, maxPayloadChunk, maxPayloadChunk + 1, 2 * maxPayloadChunk} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			a, b := net.Pipe()
			defer a.Close()
			defer b.Close()
			w, r := newPacketIO(a, clientSide), newPacketIO(b, backendSide)
			payload := bytes.Repeat([]byte{0xab}, n)
			done := make(chan error, 1)
			go func() {
				err := w.writePacket(payload)
				if err == nil {
					err = w.flush()
				}
				done <- err
			}()
			got, err := r.readPacket(nil, 0)
			if err != nil || !bytes.Equal(got, payload) {
				t.Fatalf("read %d bytes, %v; want %d", len(got), err, n)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if w.seq != r.seq {
				t.Errorf("sequence: writer %d, reader %d", w.seq, r.seq)
			}
		})
	}
	p := newPacketIO(discardConn{}, clientSide)
	payload := make([]byte, 100)
	if allocs := testing.AllocsPerRun(100, func() { _ = p.writePacket(payload); _ = p.flush() }); allocs != 0 {
		t.Errorf("writePacket allocates %v times", allocs)
	}
}

// discardConn is a net.Conn that accepts every write.
type discardConn struct{ net.Conn }

func (discardConn) Write(b []byte) (int, error) { return len(b), nil }
