package proxy

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
)

// greeting is the backend's initial handshake packet, read before the
// client is greeted so that the client sees the server's own version and
// connection id (CONNECTION_ID() and KILL then mean the same thing through
// the proxy as on the server).
type greeting struct {
	raw        []byte // the whole packet, header included, for replay
	version    string
	connID     uint32
	capability uint32
	// extCapability holds a MariaDB server's extended capabilities.
	extCapability uint32
	charset       uint8
	status        uint16
}

func parseGreeting(raw []byte) (greeting, error) {
	g := greeting{raw: raw}
	p := raw[4:]
	if len(p) < 1 {
		return g, gomysql.ErrMalformPacket
	}
	if p[0] == headerErr {
		return g, parseErr(p)
	}
	if p[0] != 10 {
		return g, fmt.Errorf("backend speaks protocol version %d, want 10", p[0])
	}
	end := bytes.IndexByte(p[1:], 0)
	if end < 0 {
		return g, gomysql.ErrMalformPacket
	}
	g.version = string(p[1 : 1+end])
	pos := 1 + end + 1
	if pos+4+8+1+2+1+2+2 > len(p) {
		return g, gomysql.ErrMalformPacket
	}
	g.connID = binary.LittleEndian.Uint32(p[pos:])
	pos += 4 + 8 + 1 // connection id, auth-plugin-data-part-1, filler
	g.capability = uint32(binary.LittleEndian.Uint16(p[pos:]))
	g.charset = p[pos+2]
	g.status = binary.LittleEndian.Uint16(p[pos+3:])
	g.capability |= uint32(binary.LittleEndian.Uint16(p[pos+5:])) << 16
	// Then the auth data length, 6 reserved bytes, and MariaDB's
	// extended capabilities.
	if ext := pos + 7 + 1 + 6; g.capability&gomysql.CLIENT_LONG_PASSWORD == 0 && ext+4 <= len(p) {
		g.extCapability = binary.LittleEndian.Uint32(p[ext:])
	}
	return g, nil
}

// handshakeResponse is what a client answers to the greeting.
type handshakeResponse struct {
	capability uint32
	// extCapability holds the MariaDB extended capabilities the client
	// asked for, of those the proxy offered.
	extCapability uint32
	collation     uint8
	user          string
	authData      []byte
	db            string
	plugin        string
	attrs         map[string]string
}

// errSSLRequested: the client asked for TLS, which the proxy did not offer.
var errSSLRequested = errors.New("client requested TLS")

func parseHandshakeResponse(p []byte, offered uint32) (handshakeResponse, error) {
	var r handshakeResponse
	if len(p) < 32 {
		return r, gomysql.ErrMalformPacket
	}
	r.capability = binary.LittleEndian.Uint32(p) & offered
	if binary.LittleEndian.Uint32(p)&gomysql.CLIENT_SSL != 0 && offered&gomysql.CLIENT_SSL == 0 {
		return r, errSSLRequested
	}
	if r.capability&gomysql.CLIENT_PROTOCOL_41 == 0 {
		return r, errors.New("client does not speak protocol 4.1")
	}
	r.collation = p[8]
	if offered&gomysql.CLIENT_LONG_PASSWORD == 0 && binary.LittleEndian.Uint32(p)&gomysql.CLIENT_LONG_PASSWORD == 0 {
		r.extCapability = binary.LittleEndian.Uint32(p[28:]) & proxyExtCapabilities
	}
	pos := 32
	user, n, err := cString(p[pos:])
	if err != nil {
		return r, err
	}
	r.user, pos = user, pos+n
	switch {
	case r.capability&gomysql.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA != 0:
		auth, n, ok := lenEncBytes(p[pos:])
		if !ok {
			return r, gomysql.ErrMalformPacket
		}
		r.authData, pos = auth, pos+n
	case r.capability&gomysql.CLIENT_SECURE_CONNECTION != 0:
		if pos >= len(p) || pos+1+int(p[pos]) > len(p) {
			return r, gomysql.ErrMalformPacket
		}
		l := int(p[pos])
		r.authData, pos = p[pos+1:pos+1+l], pos+1+l
	default:
		auth, n, err := cString(p[pos:])
		if err != nil {
			return r, err
		}
		r.authData, pos = []byte(auth), pos+n
	}
	if r.capability&gomysql.CLIENT_CONNECT_WITH_DB != 0 && pos < len(p) {
		db, n, err := cString(p[pos:])
		if err != nil {
			return r, err
		}
		r.db, pos = db, pos+n
	}
	if r.capability&gomysql.CLIENT_PLUGIN_AUTH != 0 && pos < len(p) {
		plugin, n, err := cString(p[pos:])
		if err != nil {
			return r, err
		}
		r.plugin, pos = plugin, pos+n
	}
	if r.capability&gomysql.CLIENT_CONNECT_ATTRS != 0 && pos < len(p) {
		r.attrs, err = parseAttrs(p[pos:])
		if err != nil {
			return r, err
		}
	}
	return r, nil
}

func cString(p []byte) (string, int, error) {
	i := bytes.IndexByte(p, 0)
	if i < 0 {
		return "", 0, gomysql.ErrMalformPacket
	}
	return string(p[:i]), i + 1, nil
}

func parseAttrs(p []byte) (map[string]string, error) {
	p, _, ok := lenEncBytes(p)
	if !ok {
		return nil, gomysql.ErrMalformPacket
	}
	attrs := map[string]string{}
	for len(p) > 0 {
		var kv [2]string
		for i := range kv {
			v, n, ok := lenEncBytes(p)
			if !ok {
				return nil, gomysql.ErrMalformPacket
			}
			kv[i], p = string(v), p[n:]
		}
		attrs[kv[0]] = kv[1]
	}
	return attrs, nil
}

// appendGreeting builds the proxy's initial handshake for a client.
func appendGreeting(b []byte, g greeting, capability uint32, salt []byte, plugin string) []byte {
	b = append(b, 10)
	b = append(b, g.version...)
	b = append(b, 0)
	b = binary.LittleEndian.AppendUint32(b, g.connID)
	b = append(b, salt[:8]...)
	b = append(b, 0)
	b = binary.LittleEndian.AppendUint16(b, uint16(capability))
	b = append(b, g.charset)
	b = binary.LittleEndian.AppendUint16(b, g.status)
	b = binary.LittleEndian.AppendUint16(b, uint16(capability>>16))
	b = append(b, byte(len(salt)+1))
	b = append(b, make([]byte, 6)...)
	b = binary.LittleEndian.AppendUint32(b, g.extCapability&proxyExtCapabilities)
	b = append(b, salt[8:]...)
	b = append(b, 0)
	b = append(b, plugin...)
	return append(b, 0)
}

// checkAuth verifies a client's scramble for plugin against the configured
// password. The proxy knows the clear password, so caching_sha2_password
// always succeeds or fails on its fast path, without TLS or RSA.
func checkAuth(plugin string, authData, salt []byte, password string) bool {
	if password == "" {
		return len(authData) == 0 || (len(authData) == 1 && authData[0] == 0)
	}
	switch plugin {
	case gomysql.AUTH_NATIVE_PASSWORD:
		return gomysql.CompareNativePassword(authData, gomysql.NativePasswordHash([]byte(password)), salt)
	case gomysql.AUTH_CACHING_SHA2_PASSWORD:
		want := gomysql.CalcCachingSha2Password(salt, []byte(password))
		return subtle.ConstantTimeCompare(authData, want) == 1
	}
	return false
}

// supportedPlugin reports whether the proxy verifies plugin itself.
func supportedPlugin(plugin string) bool {
	return plugin == gomysql.AUTH_NATIVE_PASSWORD || plugin == gomysql.AUTH_CACHING_SHA2_PASSWORD
}

// readGreeting reads the backend's initial handshake packet off a fresh
// connection.
func readGreeting(ctx context.Context, conn net.Conn) (greeting, error) {
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetReadDeadline(dl)
		defer conn.SetReadDeadline(noDeadline)
	}
	var hdr [4]byte
	if _, err := io.ReadFull(conn, hdr[:]); err != nil {
		return greeting{}, err
	}
	n := int(hdr[0]) | int(hdr[1])<<8 | int(hdr[2])<<16
	raw := make([]byte, 4+n)
	copy(raw, hdr[:])
	if _, err := io.ReadFull(conn, raw[4:]); err != nil {
		return greeting{}, err
	}
	return parseGreeting(raw)
}

// replayConn hands a packet already read from conn back to the reader
// first: the backend's greeting, consumed to learn its connection id, is
// then read again by go-mysql's client handshake.
type replayConn struct {
	net.Conn
	pending []byte
}

func (c *replayConn) Read(b []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(b, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}
