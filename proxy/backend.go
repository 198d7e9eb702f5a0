package proxy

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"net"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	pingcap "github.com/pingcap/errors"

	"github.com/hotrow/hotrow/internal/deadpeer"
)

var noDeadline time.Time

// backendConn is a session's pinned connection to the server, past its
// handshake, used as a raw packet stream.
type backendConn struct {
	*packetIO
	connID uint32
	status uint16 // status flags of the handshake's OK packet
}

// dialBackend opens a TCP connection to the backend and reads its greeting;
// the handshake is finished by authBackend once the client has logged in.
// The connection closes once the server's host has answered nothing for
// deadAfter (package deadpeer).
func dialBackend(ctx context.Context, addr string, deadAfter time.Duration) (net.Conn, greeting, error) {
	conn, err := deadpeer.Dialer(0, deadAfter).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, greeting{}, err
	}
	g, err := readGreeting(ctx, conn)
	if err != nil {
		conn.Close()
		return nil, greeting{}, err
	}
	return conn, g, nil
}

// backendOptionalCaps are the client capabilities that change what the
// server sends; the backend connection asks for exactly the ones the client
// negotiated with the proxy, so packets pass through unchanged.
var backendOptionalCaps = []uint32{
	gomysql.CLIENT_FOUND_ROWS, gomysql.CLIENT_IGNORE_SPACE, gomysql.CLIENT_MULTI_STATEMENTS,
	gomysql.CLIENT_MULTI_RESULTS, gomysql.CLIENT_PS_MULTI_RESULTS, gomysql.CLIENT_LOCAL_FILES,
}

// authBackend completes the backend handshake on conn (whose greeting g was
// already read) with the client's credentials, database, collation,
// capabilities and connection attributes.
//
// With tlsCfg the connection is upgraded to TLS first; the session's packet
// stream then runs over TLS. The client's collation and CLIENT_INTERACTIVE
// still reach the server (go-mysql sends the response it has just written
// as the SSLRequest, which collationConn rewrote in place), its MariaDB
// extended capabilities do not, so the caller offers the client none.
func authBackend(ctx context.Context, conn net.Conn, g greeting, tlsCfg *tls.Config, u User, resp handshakeResponse) (*backendConn, error) {
	rc := &collationConn{replayConn: replayConn{Conn: conn, pending: g.raw}, collation: resp.collation,
		interactive: resp.capability&gomysql.CLIENT_INTERACTIVE != 0, extCapability: resp.extCapability}
	dialer := func(context.Context, string, string) (net.Conn, error) { return rc, nil }
	configure := func(c *client.Conn) error {
		for _, flag := range backendOptionalCaps {
			if resp.capability&flag != 0 {
				if err := c.SetCapability(flag); err != nil {
					return err
				}
			} else {
				c.UnsetCapability(flag)
			}
		}
		// Layout-changing capabilities the proxy does not parse.
		c.UnsetCapability(gomysql.CLIENT_DEPRECATE_EOF)
		c.UnsetCapability(gomysql.CLIENT_QUERY_ATTRIBUTES)
		c.UnsetCapability(gomysql.CLIENT_SESSION_TRACK)
		c.UnsetCapability(gomysql.CLIENT_COMPRESS)
		attrs := map[string]string{"_proxy": "hotrow"}
		for k, v := range resp.attrs {
			attrs[k] = v
		}
		c.SetAttributes(attrs)
		if tlsCfg != nil {
			c.SetTLSConfig(tlsCfg.Clone())
		}
		return nil
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	db := resp.db
	if db == "" {
		db = u.DefaultSchema
	}
	c, err := client.ConnectWithDialer(ctx, "tcp", "", u.Name, u.Password, db, dialer, configure)
	if err != nil {
		return nil, pingcap.Cause(err)
	}
	_ = conn.SetDeadline(noDeadline)
	status := uint16(0)
	if c.IsAutoCommit() {
		status |= statusAutocommit
	}
	// After a TLS upgrade, go-mysql's connection is the *tls.Conn over rc.
	// Without one, rc has replayed the greeting and rewritten its one
	// write: the session uses conn itself.
	var stream net.Conn = rc
	switch {
	case tlsCfg != nil:
		stream = c.Conn.Conn
	case len(rc.pending) == 0:
		stream = conn
	}
	return &backendConn{packetIO: newPacketIO(stream, backendSide), connID: g.connID, status: status}, nil
}

// collationConn rewrites the handshake response that go-mysql's client
// writes, so the backend session gets exactly the client's collation id
// (go-mysql only knows MySQL's collation names), CLIENT_INTERACTIVE (the
// session's wait_timeout is then interactive_timeout) and MariaDB
// extended capabilities (go-mysql knows neither).
type collationConn struct {
	replayConn
	collation     uint8
	interactive   bool
	extCapability uint32
	written       bool
}

func (c *collationConn) Write(b []byte) (int, error) {
	// The first write is the handshake response: 4-byte header, 4 bytes
	// capabilities, 4 bytes max packet size, the collation id, 19 reserved
	// bytes, then MariaDB's extended capabilities, read by the server when
	// CLIENT_LONG_PASSWORD (CLIENT_MYSQL) is clear.
	if !c.written && len(b) >= 36 {
		c.written = true
		b[12] = c.collation
		caps := binary.LittleEndian.Uint32(b[4:])
		if c.interactive {
			caps |= gomysql.CLIENT_INTERACTIVE
		}
		if c.extCapability != 0 {
			caps &^= gomysql.CLIENT_LONG_PASSWORD
			binary.LittleEndian.PutUint32(b[32:], c.extCapability)
		}
		binary.LittleEndian.PutUint32(b[4:], caps)
	}
	return c.Conn.Write(b)
}
