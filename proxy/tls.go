package proxy

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
)

// crSSLConnectionError is the client error for a TLS connection that
// could not be made (CR_SSL_CONNECTION_ERROR).
const crSSLConnectionError = 2026

// tlsConfigs builds the TLS configurations of cfg: towards clients (nil
// without a certificate) and towards the backend (nil when off).
func tlsConfigs(cfg Config) (client, backend *tls.Config, err error) {
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, nil, fmt.Errorf("tls certificate: %w", err)
		}
		client = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	if cfg.BackendTLS != BackendTLSOff {
		backend = &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true}
		if cfg.BackendCA != "" {
			pem, err := os.ReadFile(cfg.BackendCA)
			if err != nil {
				return nil, nil, fmt.Errorf("backend ca: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, nil, fmt.Errorf("backend ca %s: no PEM certificate", cfg.BackendCA)
			}
			host, _, _ := net.SplitHostPort(cfg.Backend)
			backend.InsecureSkipVerify, backend.RootCAs, backend.ServerName = false, pool, host
		}
	}
	return client, backend, nil
}

// backendTLSFor returns the TLS configuration for a backend connection
// whose greeting is g: nil for a plain connection. It fails when TLS is
// required and the server does not offer it.
func (s *Server) backendTLSFor(g greeting) (*tls.Config, error) {
	switch {
	case s.backendTLS == nil:
		return nil, nil
	case g.capability&gomysql.CLIENT_SSL != 0:
		return s.backendTLS, nil
	case s.cfg.BackendTLS == BackendTLSRequired:
		return nil, gomysql.NewError(crSSLConnectionError,
			fmt.Sprintf("SSL connection error: the server %s does not offer TLS (hotrow: --backend-tls=required)", s.cfg.Backend))
	}
	return nil, nil
}

// isSSLRequest reports whether a client's first answer is an SSLRequest:
// the 32 bytes a handshake response starts with, CLIENT_SSL set.
func isSSLRequest(pkt []byte) bool {
	return len(pkt) == 32 && pkt[1]&byte(gomysql.CLIENT_SSL>>8) != 0
}

// upgradeClient runs the server side of a client's TLS handshake after its
// SSLRequest, and returns the session's new connection and packet stream,
// whose sequence numbers go on where p's left off. Bytes of the client's
// TLS hello already read into p's buffer are handed to TLS first.
func upgradeClient(conn net.Conn, p *packetIO, cfg *tls.Config) (*tls.Conn, *packetIO, error) {
	tc := tls.Server(&bufferedConn{Conn: conn, r: p.r}, cfg)
	if err := tc.Handshake(); err != nil {
		return nil, nil, clientSide.tag(fmt.Errorf("tls handshake: %w", err))
	}
	np := newPacketIO(tc, clientSide)
	np.seq = p.seq
	return tc, np, nil
}

// bufferedConn reads through a buffered reader of its connection.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(b []byte) (int, error) { return c.r.Read(b) }

// errInsecureTransport: a client did not upgrade to TLS and RequireTLS is
// set.
var errInsecureTransport = errors.New("client did not use TLS, which is required")

// insecureTransportError is what such a client hears: what the server
// behind the proxy says with require_secure_transport=ON. MariaDB denies
// access (1045, as to a wrong password); MySQL sends 3159.
func insecureTransportError(g greeting, user, host string, usingPassword bool) *gomysql.MyError {
	if strings.Contains(g.version, "MariaDB") {
		using := "YES"
		if !usingPassword {
			using = "NO"
		}
		return gomysql.NewDefaultError(gomysql.ER_ACCESS_DENIED_ERROR, user, host, using)
	}
	return &gomysql.MyError{Code: erSecureTransportRequired, State: "HY000",
		Message: "Connections using insecure transport are prohibited while --require_secure_transport=ON."}
}

// erSecureTransportRequired is MySQL's ER_SECURE_TRANSPORT_REQUIRED.
const erSecureTransportRequired = 3159
