package proxy

import (
	"database/sql"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-sql-driver/mysql"
)

func TestLocalInfileAllowed(t *testing.T) {
	const local = gomysql.CLIENT_LOCAL_FILES
	tests := []struct {
		name      string
		caps      uint32
		query     string // "<nil>": not a COM_QUERY
		requested string
		want      bool
	}{
		{"plain", local, "LOAD DATA LOCAL INFILE '/tmp/a.csv' INTO TABLE t", "/tmp/a.csv", true},
		{"lower case, spaces, comments", local, " /* c */ load\n data -- x\n local  infile\t'/tmp/a.csv' into table t", "/tmp/a.csv", true},
		{"hash comment", local, "# c\nLOAD DATA LOCAL INFILE 'a' INTO TABLE t", "a", true},
		{"low priority", local, "LOAD DATA LOW_PRIORITY LOCAL INFILE 'a' INTO TABLE t", "a", true},
		{"concurrent", local, "LOAD DATA CONCURRENT LOCAL INFILE 'a' INTO TABLE t", "a", true},
		{"xml", local, "LOAD XML LOCAL INFILE 'a.xml' INTO TABLE t", "a.xml", true},
		{"double quotes", local, `LOAD DATA LOCAL INFILE "a b" INTO TABLE t`, "a b", true},
		{"escaped quote", local, `LOAD DATA LOCAL INFILE 'it\'s' INTO TABLE t`, "it's", true},
		{"doubled quote", local, `LOAD DATA LOCAL INFILE 'it''s' INTO TABLE t`, "it's", true},
		{"backslash path, escapes on", local, `LOAD DATA LOCAL INFILE 'C:\\data\\a.csv' INTO TABLE t`, `C:\data\a.csv`, true},
		{"backslash path, NO_BACKSLASH_ESCAPES", local, `LOAD DATA LOCAL INFILE 'C:\data' INTO TABLE t`, `C:\data`, true},
		{"driver reader", local, "LOAD DATA LOCAL INFILE 'Reader::r' INTO TABLE t", "Reader::r", true},

		{"another file than named", local, "LOAD DATA LOCAL INFILE '/tmp/a.csv' INTO TABLE t", "/etc/passwd", false},
		{"not LOAD DATA", local, "SELECT 1", "/etc/passwd", false},
		{"server-side LOAD DATA", local, "LOAD DATA INFILE '/tmp/a.csv' INTO TABLE t", "/tmp/a.csv", false},
		{"LOAD DATA later in a multi-statement", local, "SELECT 1; LOAD DATA LOCAL INFILE 'a' INTO TABLE t", "a", false},
		{"prepared statement", local, "<nil>", "a", false},
		{"client did not ask for local files", 0, "LOAD DATA LOCAL INFILE 'a' INTO TABLE t", "a", false},
		{"executable comment", local, "/*!50000 LOAD DATA LOCAL INFILE 'a' INTO TABLE t */", "a", false},
		{"keyword prefix", local, "LOADX DATA LOCAL INFILE 'a' INTO TABLE t", "a", false},
		{"identifier, not LOCAL", local, "LOAD DATA LOCALS INFILE 'a' INTO TABLE t", "a", false},
		{"unterminated name", local, "LOAD DATA LOCAL INFILE 'a", "a", false},
		{"no name", local, "LOAD DATA LOCAL INFILE", "", false},
		{"empty", local, "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var q []byte
			if tt.query != "<nil>" {
				q = []byte(tt.query)
			}
			if got := localInfileAllowed(tt.caps, q, tt.requested); got != tt.want {
				t.Fatalf("localInfileAllowed(%q, %q) = %v, want %v", tt.query, tt.requested, got, tt.want)
			}
		})
	}
}

// FuzzLocalInfileAllowed: the decision never panics and never allows a
// file on a query that does not start with LOAD.
func FuzzLocalInfileAllowed(f *testing.F) {
	f.Add([]byte("LOAD DATA LOCAL INFILE 'a' INTO TABLE t"), "a")
	f.Add([]byte("/* x */ load xml local infile \"a\\\"b\""), "a\"b")
	f.Add([]byte("SELECT 1"), "/etc/passwd")
	f.Fuzz(func(t *testing.T, q []byte, requested string) {
		if localInfileAllowed(gomysql.CLIENT_LOCAL_FILES, q, requested) && !containsFold(q, "load") {
			t.Fatalf("allowed %q for %q", requested, q)
		}
	})
}

// rogueServer is a fake MySQL server that accepts any login and answers
// every query with a request for file: the "rogue server" attack on
// clients that allow local files.
type rogueServer struct {
	ln   net.Listener
	file string

	mu  sync.Mutex
	got [][]byte // the file contents it received, one per request
}

func startRogueServer(t *testing.T, file string) *rogueServer {
	t.Helper()
	r := &rogueServer{file: file}
	r.ln = serveFakeBackend(t, 1, r.serve)
	return r
}

func (r *rogueServer) serve(conn net.Conn, id uint32) {
	defer conn.Close()
	p := newPacketIO(conn, backendSide)
	g := greeting{version: "5.5.5-10.11.0-MariaDB-rogue", connID: id, charset: 45, status: statusAutocommit}
	if p.writePacket(appendGreeting(nil, g, proxyCapabilities, gomysql.RandomBuf(20), gomysql.AUTH_NATIVE_PASSWORD)) != nil || p.flush() != nil {
		return
	}
	if _, err := p.readPacket(nil, 0); err != nil { // any login will do
		return
	}
	ok := appendOK(nil, 0, 0, statusAutocommit, 0, "")
	if p.writePacket(ok) != nil || p.flush() != nil {
		return
	}
	for {
		p.resetSeq()
		cmd, err := p.readPacket(nil, 0)
		if err != nil || len(cmd) == 0 || cmd[0] == gomysql.COM_QUIT {
			return
		}
		if cmd[0] != gomysql.COM_QUERY {
			_ = p.writePacket(ok)
			_ = p.flush()
			continue
		}
		_ = p.writePacket(append([]byte{headerLocalInfile}, r.file...))
		_ = p.flush()
		var content []byte
		for {
			chunk, err := p.readPacket(nil, 0)
			if err != nil {
				return
			}
			if len(chunk) == 0 {
				break
			}
			content = append(content, chunk...)
		}
		r.mu.Lock()
		r.got = append(r.got, content)
		r.mu.Unlock()
		_ = p.writePacket(ok)
		_ = p.flush()
	}
}

// TestRogueServerFileRequest: a server that asks for a file in answer to
// a SELECT gets an empty file through hotrow, even from a client that
// allows every file; the client gets an error, and the session goes on.
func TestRogueServerFileRequest(t *testing.T) {
	t.Parallel()
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("the secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	rogue := startRogueServer(t, secret)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Listen, cfg.Backend = ln.Addr().String(), rogue.ln.Addr().String()
	cfg.Users = []User{{Name: "app", Password: "pw"}}
	srv, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(t.Context(), ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	dc := mysql.NewConfig()
	dc.User, dc.Passwd, dc.Net, dc.Addr = "app", "pw", "tcp", cfg.Listen
	dc.AllowAllFiles = true // a vulnerable client
	db, err := sql.Open("mysql", dc.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	for range 2 {
		_, err = db.Exec("SELECT 1")
		var my *mysql.MySQLError
		if !errors.As(err, &my) || my.Number != gomysql.ER_NOT_ALLOWED_COMMAND {
			t.Fatalf("got %v, want error 1148", err)
		}
	}
	t.Logf("client: %v", err)
	rogue.mu.Lock()
	defer rogue.mu.Unlock()
	if len(rogue.got) != 2 || len(rogue.got[0]) != 0 || len(rogue.got[1]) != 0 {
		t.Fatalf("the server received %q, want two empty files", rogue.got)
	}
}
