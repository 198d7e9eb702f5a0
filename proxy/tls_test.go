package proxy

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-sql-driver/mysql"

	"github.com/hotrow/hotrow/internal/localdb"
	"github.com/hotrow/hotrow/internal/testdb"
)

// testCert is a self-signed certificate for 127.0.0.1 and localhost,
// written to PEM files.
type testCert struct {
	certFile, keyFile string
	pool              *x509.CertPool // holding the certificate as a CA
}

func newTestCert(t testing.TB) testCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "hotrow test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c := testCert{certFile: filepath.Join(dir, "cert.pem"), keyFile: filepath.Join(dir, "key.pem"), pool: x509.NewCertPool()}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.WriteFile(c.certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	c.pool.AppendCertsFromPEM(certPEM)
	return c
}

var tlsConfigSeq atomic.Int64

// registerTLS registers cfg with go-sql-driver under a fresh name.
func registerTLS(t testing.TB, cfg *tls.Config) string {
	t.Helper()
	name := fmt.Sprintf("hotrow-test-%d", tlsConfigSeq.Add(1))
	if err := mysql.RegisterTLSConfig(name, cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mysql.DeregisterTLSConfig(name) })
	return name
}

// TestClientTLS: clients upgrade to TLS after the SSLRequest, with
// go-sql-driver (skip-verify and a custom CA, both auth plugins), the
// mariadb CLI and PyMySQL; --require-tls refuses plain clients as the
// server's require_secure_transport does.
func TestClientTLS(t *testing.T) {
	t.Parallel()
	cert := newTestCert(t)
	db := testdb.New(t)
	withTLS := func(c *Config) { c.TLSCert, c.TLSKey = cert.certFile, cert.keyFile }
	p := startProxy(t, db, withTLS)
	sha2 := startProxy(t, db, withTLS, func(c *Config) { c.AuthPlugin = gomysql.AUTH_CACHING_SHA2_PASSWORD })
	required := startProxy(t, db, withTLS, func(c *Config) { c.RequireTLS = true })

	var handshakes atomic.Int32
	verified := registerTLS(t, &tls.Config{RootCAs: cert.pool, ServerName: "127.0.0.1",
		VerifyConnection: func(tls.ConnectionState) error { handshakes.Add(1); return nil }})
	tests := []struct {
		name, addr, tls string
	}{
		{"skip-verify", p.addr, "skip-verify"},
		{"custom CA", p.addr, verified},
		{"custom CA, caching_sha2_password", sha2.addr, verified},
		{"custom CA, TLS required", required.addr, verified},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := handshakes.Load()
			pool := open(t, db, tt.addr, func(c *mysql.Config) { c.TLSConfig = tt.tls })
			var got string
			if err := pool.QueryRow("SELECT CONCAT(DATABASE(), ':', 1+1)").Scan(&got); err != nil {
				t.Fatal(err)
			}
			if want := db.Name + ":2"; got != want {
				t.Fatalf("got %q, want %q", got, want)
			}
			if tt.tls != "skip-verify" && handshakes.Load() == before {
				t.Fatal("no verified TLS handshake")
			}
		})
	}
	t.Run("plain client, TLS offered", func(t *testing.T) {
		if err := open(t, db, p.addr).Ping(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("plain client, TLS required", func(t *testing.T) {
		// As MariaDB with require_secure_transport=ON answers (checked by
		// TestRequireSecureTransportLikeServer): access denied.
		my := mysqlErr(t, open(t, db, required.addr).Ping())
		if my.Number != gomysql.ER_ACCESS_DENIED_ERROR {
			t.Fatalf("got %v, want 1045", my)
		}
		t.Logf("plain client: %v", my)
	})
	t.Run("mariadb CLI", func(t *testing.T) {
		bin := requireTool(t, "mariadb", "mysql")
		for _, addr := range []string{p.addr, required.addr} {
			out, stderr := runCLITLS(t, bin, target{name: "proxy", db: db, addr: addr}, "status")
			if !strings.Contains(out, "Cipher in use is") {
				t.Fatalf("no TLS cipher in the CLI's status:\n%s\n%s", out, stderr)
			}
		}
	})
	t.Run("pymysql", func(t *testing.T) {
		python := pythonWithPyMySQL(t)
		script := `import pymysql, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[6])
c = pymysql.connect(host=sys.argv[1], port=int(sys.argv[2]), user=sys.argv[3], password=sys.argv[4], database=sys.argv[5], ssl=ctx)
cur = c.cursor(); cur.execute("SELECT 1+1"); print(cur.fetchone()[0])
`
		host, port, _ := net.SplitHostPort(required.addr)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, python, "-c", script, host, port, db.User, db.Password, db.Name, cert.certFile).CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "2" {
			t.Fatalf("pymysql: %v: %s", err, out)
		}
	})
}

// runCLITLS runs the mariadb client over TLS (certificate not verified)
// against tg with -e stmt.
func runCLITLS(t *testing.T, bin string, tg target, stmt string) (string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	host, port, _ := net.SplitHostPort(tg.addr)
	cmd := exec.CommandContext(ctx, bin, "--no-defaults", "--protocol=TCP", "--ssl", "--ssl-verify-server-cert=off",
		"-h", host, "-P", port, "-u", tg.db.User, "-D", tg.db.Name, "-e", stmt)
	cmd.Env = append(os.Environ(), "MYSQL_PWD="+tg.db.Password)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("mariadb: %v\n%s", err, stderr.String())
	}
	return stdout.String(), stderr.String()
}

// tlsServer is a local mariadbd with TLS, started once for the tests
// that need one.
func tlsServer(t *testing.T, cert testCert) *localdb.Instance {
	t.Helper()
	testdb.Shared(t) // skips without any server, as the others
	if !localdb.Installed() {
		if os.Getenv("CI") == "true" {
			t.Fatal("mariadbd not installed: cannot start a TLS server")
		}
		t.Skip("mariadbd not installed: cannot start a TLS server (HOTROW_TEST_DSN names one without TLS settings)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	in, err := localdb.Start(ctx, localdb.Options{ExtraArgs: []string{
		"--ssl-cert=" + cert.certFile, "--ssl-key=" + cert.keyFile}})
	if err != nil {
		t.Fatalf("start a TLS server: %v", err)
	}
	t.Cleanup(in.Stop)
	return in
}

// TestBackendTLS: with --backend-tls preferred the session's connection
// to a server that offers TLS is encrypted (verified with --backend-ca or
// not), and the client's collation still reaches the server; required
// refuses a server without TLS with 2026; off never uses it.
func TestBackendTLS(t *testing.T) {
	t.Parallel()
	cert := newTestCert(t)
	in := tlsServer(t, cert)
	plain := testdb.New(t)
	srv := &testdb.Server{Addr: in.Addr, User: localdb.User, Password: localdb.Password}
	tdb := &testdb.DB{Server: srv, Name: "mysql"}
	cipher := func(t *testing.T, pool *sql.DB) string {
		t.Helper()
		var name, v string
		if err := pool.QueryRow("SHOW SESSION STATUS LIKE 'Ssl_cipher'").Scan(&name, &v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tt := range []struct {
		name   string
		mutate func(*Config)
		tls    bool
	}{
		{"preferred, not verified", func(*Config) {}, true},
		{"preferred, verified", func(c *Config) { c.BackendCA = cert.certFile }, true},
		{"required, verified", func(c *Config) { c.BackendTLS, c.BackendCA = BackendTLSRequired, cert.certFile }, true},
		{"off", func(c *Config) { c.BackendTLS = BackendTLSOff }, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := startProxy(t, tdb, tt.mutate)
			pool := open(t, tdb, p.addr, func(c *mysql.Config) { c.Collation = "utf8mb4_bin" })
			if got := cipher(t, pool); (got != "") != tt.tls {
				t.Fatalf("Ssl_cipher %q, want TLS %v", got, tt.tls)
			}
			var coll string
			if err := pool.QueryRow("SELECT @@collation_connection").Scan(&coll); err != nil {
				t.Fatal(err)
			}
			if coll != "utf8mb4_bin" {
				t.Fatalf("collation_connection %q, want utf8mb4_bin", coll)
			}
			// The idle watch works over TLS too: a KILL of the idle
			// session's thread closes it, and the pool goes on.
			var id int
			if err := pool.QueryRow("SELECT CONNECTION_ID()").Scan(&id); err != nil {
				t.Fatal(err)
			}
			if _, err := tdb.Open(t).Exec(fmt.Sprintf("KILL %d", id)); err != nil {
				t.Fatal(err)
			}
			testdb.WaitFor(t, time.Second, "the killed idle session to close", func() bool { return p.sessionCount() == 0 })
			if got := cipher(t, pool); (got != "") != tt.tls {
				t.Fatalf("after KILL: Ssl_cipher %q, want TLS %v", got, tt.tls)
			}
		})
	}
	t.Run("required, server without TLS", func(t *testing.T) {
		var have string
		var name string
		if err := plain.Open(t).QueryRow("SHOW VARIABLES LIKE 'have_ssl'").Scan(&name, &have); err != nil {
			t.Fatal(err)
		}
		if have == "YES" {
			t.Skip("the shared test server offers TLS")
		}
		p := startProxy(t, plain, func(c *Config) { c.BackendTLS = BackendTLSRequired })
		my := mysqlErr(t, open(t, plain, p.addr).Ping())
		if my.Number != crSSLConnectionError {
			t.Fatalf("got %v, want 2026", my)
		}
		t.Logf("required, server without TLS: %v", my)
	})
	t.Run("wrong CA", func(t *testing.T) {
		other := newTestCert(t)
		p := startProxy(t, tdb, func(c *Config) { c.BackendCA = other.certFile })
		my := mysqlErr(t, open(t, tdb, p.addr).Ping())
		if my.Number != crSSLConnectionError {
			t.Fatalf("got %v, want 2026", my)
		}
		t.Logf("wrong CA: %v", my)
	})
}

// TestRequireSecureTransportLikeServer: a plain client of a proxy with
// --require-tls gets the error a server with require_secure_transport=ON
// gives it (MariaDB's, here), byte for byte but the port.
func TestRequireSecureTransportLikeServer(t *testing.T) {
	t.Parallel()
	cert := newTestCert(t)
	in := tlsServer(t, cert)
	tdb := &testdb.DB{Server: &testdb.Server{Addr: in.Addr, User: localdb.User, Password: localdb.Password}, Name: "mysql"}
	if _, err := tdb.Open(t).Exec("SET GLOBAL require_secure_transport = ON"); err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, tdb, func(c *Config) {
		c.TLSCert, c.TLSKey, c.RequireTLS, c.BackendTLS = cert.certFile, cert.keyFile, true, BackendTLSRequired
	})
	var got [2]string
	for i, addr := range []string{in.Addr, p.addr} {
		got[i] = describeErr(open(t, tdb, addr).Ping())
	}
	if got[0] != got[1] {
		t.Fatalf("direct: %s\nproxy:  %s", got[0], got[1])
	}
	t.Logf("both: %s", got[0])
	// A TLS client gets in, and the proxy's own backend session is
	// encrypted, as the server requires.
	if err := open(t, tdb, p.addr, func(c *mysql.Config) { c.TLSConfig = "skip-verify" }).Ping(); err != nil {
		t.Fatalf("TLS client: %v", err)
	}
}

// sha2Server is a fake MySQL 8 server whose caching_sha2_password cache
// is empty: every login takes the full authentication, which a client may
// do over TLS only, by sending its password in clear.
type sha2Server struct {
	ln   net.Listener
	cert tls.Certificate

	mu        sync.Mutex
	passwords []string // received in full authentications
}

func startSha2Server(t *testing.T, cert testCert) *sha2Server {
	t.Helper()
	kp, err := tls.LoadX509KeyPair(cert.certFile, cert.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	s := &sha2Server{cert: kp}
	s.ln = serveFakeBackend(t, 100, s.serve)
	return s
}

func (s *sha2Server) serve(conn net.Conn, id uint32) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	p := newPacketIO(conn, backendSide)
	g := greeting{version: "8.0.36-fake", connID: id, charset: 255, status: statusAutocommit}
	caps := uint32(proxyCapabilities | gomysql.CLIENT_SSL)
	if p.writePacket(appendGreeting(nil, g, caps, gomysql.RandomBuf(20), gomysql.AUTH_CACHING_SHA2_PASSWORD)) != nil || p.flush() != nil {
		return
	}
	req, err := p.readPacket(nil, 0)
	if err != nil || !isSSLRequest(req) {
		return // this server requires TLS
	}
	tc := tls.Server(&bufferedConn{Conn: conn, r: p.r}, &tls.Config{Certificates: []tls.Certificate{s.cert}})
	if tc.Handshake() != nil {
		return
	}
	seq := p.seq
	p = newPacketIO(tc, backendSide)
	p.seq = seq
	if _, err := p.readPacket(nil, 0); err != nil { // the handshake response
		return
	}
	if p.writePacket([]byte{0x01, 0x04}) != nil || p.flush() != nil { // perform full authentication
		return
	}
	pw, err := p.readPacket(nil, 0)
	if err != nil {
		return
	}
	s.mu.Lock()
	s.passwords = append(s.passwords, strings.TrimSuffix(string(pw), "\x00"))
	s.mu.Unlock()
	ok := appendOK(nil, 0, 0, statusAutocommit, 0, "")
	if string(pw) != "pw\x00" {
		ok = appendErr(nil, gomysql.NewDefaultError(gomysql.ER_ACCESS_DENIED_ERROR, "app", "127.0.0.1", "YES"))
	}
	if p.writePacket(ok) != nil || p.flush() != nil {
		return
	}
	for {
		p.resetSeq()
		cmd, err := p.readPacket(nil, 0)
		if err != nil || len(cmd) == 0 || cmd[0] == gomysql.COM_QUIT {
			return
		}
		_ = p.writePacket(appendOK(nil, 1, 0, statusAutocommit, 0, ""))
		_ = p.flush()
	}
}

// TestBackendCachingSha2FullAuth: a MySQL 8 server that asks for
// caching_sha2_password's full authentication (its cache is empty after a
// restart) gets the password in clear over the TLS backend connection, and
// the session then runs over TLS.
func TestBackendCachingSha2FullAuth(t *testing.T) {
	t.Parallel()
	cert := newTestCert(t)
	backend := startSha2Server(t, cert)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Listen, cfg.Backend = ln.Addr().String(), backend.ln.Addr().String()
	cfg.Users = []User{{Name: "app", Password: "pw"}}
	cfg.BackendTLS, cfg.BackendCA = BackendTLSRequired, cert.certFile
	srv, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(t.Context(), ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	dc := mysql.NewConfig()
	dc.User, dc.Passwd, dc.Net, dc.Addr = "app", "pw", "tcp", cfg.Listen
	pool, err := sql.Open("mysql", dc.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	res, err := pool.Exec("DO 1")
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("rows affected %d, want the fake server's 1", n)
	}
	backend.mu.Lock()
	defer backend.mu.Unlock()
	if len(backend.passwords) != 1 || backend.passwords[0] != "pw" {
		t.Fatalf("full authentications received %q", backend.passwords)
	}
}

// TestTLSHandshakeDeadline: a client that sends its SSLRequest and then
// never starts TLS, or stops in the middle of it, is closed at the
// handshake deadline like a silent one.
func TestTLSHandshakeDeadline(t *testing.T) {
	t.Parallel()
	cert := newTestCert(t)
	db := testdb.New(t)
	const deadline = time.Second
	p := startProxy(t, db, func(c *Config) {
		c.TLSCert, c.TLSKey = cert.certFile, cert.keyFile
		c.HandshakeTimeout.Duration = deadline
	})
	sslRequest := make([]byte, 4+32)
	sslRequest[0] = 32
	sslRequest[3] = 1
	binary.LittleEndian.PutUint32(sslRequest[4:], uint32(gomysql.CLIENT_PROTOCOL_41|gomysql.CLIENT_SSL|gomysql.CLIENT_SECURE_CONNECTION))
	sslRequest[12] = 45
	for _, tt := range []struct {
		name  string
		after []byte // sent after the SSLRequest
	}{
		{"no TLS hello", nil},
		{"half a TLS hello", []byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := dialSilent(t, p.addr)
			r := bufio.NewReader(c)
			if _, err := r.Peek(4); err != nil { // the greeting
				t.Fatal(err)
			}
			if _, err := c.Write(append(sslRequest, tt.after...)); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			_ = c.SetReadDeadline(start.Add(deadline + 5*time.Second))
			_, err := io.Copy(io.Discard, r)
			if took := time.Since(start); err != nil || took > deadline+2*time.Second {
				t.Fatalf("closed after %v, %v; want at the %v deadline", took, err, deadline)
			}
		})
	}
}
