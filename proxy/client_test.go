package proxy

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-sql-driver/mysql"
	"github.com/jmoiron/sqlx"

	"github.com/hotrow/hotrow/internal/testdb"
)

// allTypesTable has a column of every common type, so that both the text
// and the binary protocol encode each of them.
const allTypesTable = `CREATE TABLE types (
	id INT AUTO_INCREMENT PRIMARY KEY,
	d DECIMAL(20,6), dt DATETIME(6), tm TIME(3), da DATE, ts TIMESTAMP(6) NULL, y YEAR,
	j JSON, b BLOB, bt BIT(12), u BIGINT UNSIGNED, i BIGINT, ti TINYINT, si SMALLINT UNSIGNED,
	mi MEDIUMINT, f FLOAT, db DOUBLE, e ENUM('small','large'), s SET('x','y','z'),
	vc VARCHAR(20) NOT NULL DEFAULT '', ch CHAR(3), tx TEXT, vb VARBINARY(8), n INT NULL)`

// scenarios run on one connection in each driver mode, directly and
// through the proxy, with the transcripts compared line by line.
var scenarios = []struct {
	name  string
	steps []step
}{
	{"values and metadata", []step{
		execStep(allTypesTable),
		execStep(`INSERT INTO types VALUES (NULL, -12345678901234.123456, '2024-02-29 23:59:59.123456',
			'-838:59:59.000', '1000-01-01', '2038-01-19 03:14:07.999999', 2155, '{"a": [1, 2.5, null, "x"]}',
			x'00ff10', b'101010101010', 18446744073709551615, -9223372036854775808, -128, 65535, -8388608,
			3.25, -1.7976931348623157e308, 'large', 'x,z', 'héllo wörld ☃', 'abc', REPEAT('t', 300),
			x'0001', NULL)`),
		execStep(`INSERT INTO types (vc) VALUES ('')`),
		execStep("INSERT INTO types (d, dt, tm, da, j, b, bt, u, f, db, e, s, vc, n) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
			"0.000001", time.Date(2001, 2, 3, 4, 5, 6, 789000000, time.UTC), "12:34:56.5", "2020-12-31",
			`{"k": "v"}`, []byte{1, 2, 3, 0}, 7, uint64(math.MaxUint64), float32(1.5), math.Pi, "small", "y", "p", nil),
		queryStep("SELECT * FROM types ORDER BY id"),
		queryStep("SELECT * FROM types WHERE id > ? ORDER BY id", 0),
		queryStep("SELECT d + 1, dt, tm, CAST(u AS CHAR), bt + 0, JSON_EXTRACT(j, '$.a[1]'), NULL, ? , ?, ? FROM types WHERE id = ?", nil, "s", 2.5, 1),
		queryStep("SELECT COUNT(*), SUM(u), AVG(f), MAX(dt), GROUP_CONCAT(vc ORDER BY id) FROM types WHERE id >= ?", 1),
		queryStep("SELECT * FROM types WHERE id = ?", -1),
	}},
	{"affected rows and insert ids", []step{
		execStep("CREATE TABLE ai (id INT AUTO_INCREMENT PRIMARY KEY, v INT)"),
		execStep("INSERT INTO ai (v) VALUES (1), (2), (3)"),
		execStep("INSERT INTO ai (v) VALUES (?)", 4),
		execStep("UPDATE ai SET v = v + 1 WHERE v >= ?", 2),
		execStep("UPDATE ai SET v = v WHERE id = 1"),
		execStep("DELETE FROM ai WHERE id = ?", 2),
		execStep("INSERT INTO ai (id, v) VALUES (1, 9) ON DUPLICATE KEY UPDATE v = 9"),
		execStep("INSERT INTO ai (id, v) VALUES (100, 0)"),
		queryStep("SELECT LAST_INSERT_ID(), ROW_COUNT()"),
		queryStep("SELECT * FROM ai ORDER BY id"),
	}},
	{"errors", []step{
		execStep("CREATE TABLE k (id INT PRIMARY KEY, name VARCHAR(10) UNIQUE)"),
		execStep("INSERT INTO k VALUES (1, 'a')"),
		execStep("INSERT INTO k VALUES (1, 'b')"),
		execStep("INSERT INTO k VALUES (?, ?)", 2, "a"),
		execStep("SELEC 1"),
		queryStep("SELECT * FROM nosuch"),
		queryStep("SELECT * FROM nosuch WHERE id = ?", 1),
		queryStep("SELECT nocol FROM k"),
		execStep("INSERT INTO k VALUES (NULL, 'c')"),
		queryStep("SELECT 1 FROM k WHERE id = (SELECT id FROM k UNION SELECT 5)"),
		execStep("SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'custom failure', MYSQL_ERRNO = 1644"),
		queryStep("SELECT * FROM k"),
	}},
	{"warnings", []step{
		execStep("SET SESSION sql_mode = ''"),
		execStep("CREATE TABLE w (id INT PRIMARY KEY, s VARCHAR(3), n TINYINT)"),
		execStep("INSERT INTO w VALUES (1, 'abcdef', 1000)"),
		queryStep("SHOW WARNINGS"),
		queryStep("SELECT @@warning_count"),
		execStep("INSERT INTO w VALUES (?, ?, ?)", 2, "ghijkl", -1000),
		queryStep("SHOW WARNINGS"),
		queryStep("SELECT * FROM w ORDER BY id"),
		queryStep("SELECT 1/0"),
		queryStep("SHOW WARNINGS"),
	}},
	{"transactions", []step{
		execStep("CREATE TABLE tx (id INT PRIMARY KEY, v INT)"),
		execStep("BEGIN"),
		execStep("INSERT INTO tx VALUES (1, 1)"),
		queryStep("SELECT @@in_transaction"),
		execStep("ROLLBACK"),
		queryStep("SELECT @@in_transaction, COUNT(*) FROM tx"),
		execStep("START TRANSACTION"),
		execStep("INSERT INTO tx VALUES (?, ?)", 2, 2),
		execStep("COMMIT"),
		execStep("SET autocommit = 0"),
		execStep("INSERT INTO tx VALUES (3, 3)"),
		queryStep("SELECT @@autocommit, @@in_transaction"),
		execStep("ROLLBACK"),
		execStep("SET autocommit = 1"),
		queryStep("SELECT * FROM tx ORDER BY id"),
	}},
	{"session state", []step{
		execStep("SET @x = 42, @s = 'kept'"),
		execStep("SET SESSION sql_mode = 'ANSI_QUOTES'"),
		execStep("SET NAMES latin1"),
		queryStep("SELECT @x, @s, @@sql_mode, @@character_set_client"),
		queryStep(`SELECT "an identifier under ANSI_QUOTES"`),
		execStep("SET NAMES utf8mb4"),
		execStep("CREATE TEMPORARY TABLE tmp (id INT, v VARCHAR(10))"),
		execStep("INSERT INTO tmp VALUES (?, ?)", 1, "temp"),
		queryStep("SELECT * FROM tmp"),
		execStep("DROP TEMPORARY TABLE tmp"),
		queryStep("SELECT * FROM tmp"),
		execStep("USE information_schema"),
		queryStep("SELECT DATABASE()"),
		queryStep("SELECT COUNT(*) > 0 FROM TABLES WHERE TABLE_SCHEMA = ?", "information_schema"),
	}},
	{"stored procedure", []step{
		execStep("CREATE TABLE sp (id INT PRIMARY KEY, v VARCHAR(10))"),
		execStep("INSERT INTO sp VALUES (1, 'one'), (2, 'two')"),
		execStep(`CREATE PROCEDURE sets(IN n INT)
			BEGIN
				SELECT id, v FROM sp WHERE id <= n ORDER BY id;
				SELECT COUNT(*) AS c FROM sp;
				UPDATE sp SET v = UPPER(v) WHERE id = n;
			END`),
		queryStep("CALL sets(2)"),
		queryStep("CALL sets(?)", 1),
		execStep("CALL sets(1)"),
		queryStep("CALL nosuch()"),
		queryStep("SELECT * FROM sp ORDER BY id"),
	}},
}

func TestDriverScenarios(t *testing.T) {
	t.Parallel()
	direct, proxied, _ := targets(t)
	for _, mode := range driverModes {
		for _, sc := range scenarios {
			t.Run(mode.name+"/"+sc.name, func(t *testing.T) {
				var transcripts [2][]string
				for i, tg := range []target{direct, proxied} {
					c := tg.conn(t, mode.mutate, func(c *mysql.Config) { c.Loc = time.UTC })
					transcripts[i] = runSteps(t, tg, c, sc.steps)
				}
				compareLines(t, transcripts[0], transcripts[1])
				// Scenarios create tables: drop them for the next mode.
				for _, tg := range []target{direct, proxied} {
					tg.db.Exec(t, "DROP TABLE IF EXISTS types, ai, k, w, tx, sp", "DROP PROCEDURE IF EXISTS sets")
				}
			})
		}
	}
}

// TestMultiStatements covers several result sets from one COM_QUERY.
func TestMultiStatements(t *testing.T) {
	t.Parallel()
	direct, proxied, _ := targets(t)
	steps := []step{
		execStep("CREATE TABLE m (id INT PRIMARY KEY); INSERT INTO m VALUES (1), (2); UPDATE m SET id = id + 10"),
		queryStep("SELECT 1 AS a; SELECT 'two' AS b, 2.5 AS c; DO 1; SELECT * FROM m ORDER BY id"),
		queryStep("SELECT 1; SELECT * FROM nosuch; SELECT 3"),
		execStep("INSERT INTO m VALUES (1); INSERT INTO m VALUES (1)"),
		queryStep("SELECT * FROM m ORDER BY id"),
	}
	var transcripts [2][]string
	for i, tg := range []target{direct, proxied} {
		c := tg.conn(t, func(c *mysql.Config) { c.MultiStatements = true })
		transcripts[i] = runSteps(t, tg, c, steps)
	}
	compareLines(t, transcripts[0], transcripts[1])
}

// TestClientFlags: capabilities the client asks for reach the backend
// session (CLIENT_FOUND_ROWS changes affected rows) and those it does not
// stay off (no CLIENT_MULTI_STATEMENTS: a multi-statement is an error).
func TestClientFlags(t *testing.T) {
	t.Parallel()
	direct, proxied, _ := targets(t)
	for _, tg := range []target{direct, proxied} {
		tg.db.Exec(t, "CREATE TABLE f (id INT PRIMARY KEY, v INT)", "INSERT INTO f VALUES (1, 1)")
	}
	tests := []struct {
		name   string
		mutate func(*mysql.Config)
		steps  []step
		want   string // in the proxy's transcript
	}{
		{"found rows", func(c *mysql.Config) { c.ClientFoundRows = true },
			[]step{execStep("UPDATE f SET v = 1 WHERE id = 1")}, "affected=1"},
		{"changed rows", func(c *mysql.Config) { c.ClientFoundRows = false },
			[]step{execStep("UPDATE f SET v = 1 WHERE id = 1")}, "affected=0"},
		{"no multi-statements", func(c *mysql.Config) { c.MultiStatements = false },
			[]step{execStep("DO 1; DO 2")}, "ERR 1064"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var transcripts [2][]string
			for i, tg := range []target{direct, proxied} {
				transcripts[i] = runSteps(t, tg, tg.conn(t, tt.mutate), tt.steps)
			}
			compareLines(t, transcripts[0], transcripts[1])
			if !strings.Contains(strings.Join(transcripts[1], "\n"), tt.want) {
				t.Errorf("want %q in\n%s", tt.want, strings.Join(transcripts[1], "\n"))
			}
		})
	}
}

// TestDriverTransactions uses database/sql's transaction API, whose
// commit and rollback the driver sends as COM_QUERY.
func TestDriverTransactions(t *testing.T) {
	t.Parallel()
	direct, proxied, _ := targets(t)
	for _, tg := range []target{direct, proxied} {
		tg.db.Exec(t, "CREATE TABLE acct (id INT PRIMARY KEY, balance INT)", "INSERT INTO acct VALUES (1, 100), (2, 0)")
	}
	ctx := context.Background()
	for _, mode := range driverModes {
		t.Run(mode.name, func(t *testing.T) {
			var transcripts [2][]string
			for i, tg := range []target{direct, proxied} {
				pool := open(t, tg.db, tg.addr, mode.mutate)
				var out []string
				for _, commit := range []bool{false, true} {
					tx, err := pool.BeginTx(ctx, nil)
					if err != nil {
						t.Fatal(err)
					}
					out = append(out, runSteps(t, tg, tx, []step{
						execStep("UPDATE acct SET balance = balance - ? WHERE id = ?", 10, 1),
						execStep("UPDATE acct SET balance = balance + ? WHERE id = ?", 10, 2),
						queryStep("SELECT @@in_transaction, balance FROM acct ORDER BY id"),
					})...)
					if commit {
						err = tx.Commit()
					} else {
						err = tx.Rollback()
					}
					out = append(out, describeQuery(ctx, pool, "SELECT balance FROM acct ORDER BY id")...)
					if err != nil {
						t.Fatalf("%s: commit=%v: %v", tg.name, commit, err)
					}
				}
				ro, err := pool.BeginTx(ctx, &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelSerializable})
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, runSteps(t, tg, ro, []step{
					queryStep("SELECT @@tx_isolation, @@in_transaction"),
					execStep("UPDATE acct SET balance = 0"),
				})...)
				if err := ro.Rollback(); err != nil {
					t.Fatal(err)
				}
				transcripts[i] = out
				tg.db.Exec(t, "UPDATE acct SET balance = 100 WHERE id = 1", "UPDATE acct SET balance = 0 WHERE id = 2")
			}
			compareLines(t, transcripts[0], transcripts[1])
		})
	}
}

type sqlxItem struct {
	ID    int64           `db:"id"`
	Name  string          `db:"name"`
	Price sql.NullFloat64 `db:"price"`
	Tags  []byte          `db:"tags"`
	Added time.Time       `db:"added"`
}

// TestSqlx runs jmoiron/sqlx's struct mapping, named and IN queries.
func TestSqlx(t *testing.T) {
	t.Parallel()
	direct, proxied, _ := targets(t)
	ctx := context.Background()
	for _, mode := range driverModes {
		t.Run(mode.name, func(t *testing.T) {
			type result struct {
				items   []sqlxItem
				one     sqlxItem
				in      []string
				missing error
				named   int64
			}
			var results [2]result
			for i, tg := range []target{direct, proxied} {
				db := sqlx.NewDb(open(t, tg.db, tg.addr, mode.mutate, func(c *mysql.Config) { c.ParseTime = true }), "mysql")
				db.MustExecContext(ctx, "DROP TABLE IF EXISTS items")
				db.MustExecContext(ctx, `CREATE TABLE items (id BIGINT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(20),
					price DOUBLE NULL, tags BLOB, added DATETIME(3))`)
				added := time.Date(2025, 5, 6, 7, 8, 9, 123000000, time.UTC)
				items := []sqlxItem{
					{Name: "apple", Price: sql.NullFloat64{Float64: 1.25, Valid: true}, Tags: []byte("fruit"), Added: added},
					{Name: "pear", Tags: []byte{}, Added: added.Add(time.Hour)},
				}
				res, err := db.NamedExecContext(ctx, "INSERT INTO items (name, price, tags, added) VALUES (:name, :price, :tags, :added)", items)
				if err != nil {
					t.Fatalf("%s: %v", tg.name, err)
				}
				r := &results[i]
				r.named, _ = res.RowsAffected()
				if err := db.SelectContext(ctx, &r.items, "SELECT * FROM items ORDER BY id"); err != nil {
					t.Fatalf("%s: %v", tg.name, err)
				}
				if err := db.GetContext(ctx, &r.one, "SELECT * FROM items WHERE name = ?", "pear"); err != nil {
					t.Fatalf("%s: %v", tg.name, err)
				}
				q, args, err := sqlx.In("SELECT name FROM items WHERE id IN (?) ORDER BY name DESC", []int{1, 2, 3})
				if err != nil {
					t.Fatal(err)
				}
				if err := db.SelectContext(ctx, &r.in, db.Rebind(q), args...); err != nil {
					t.Fatalf("%s: %v", tg.name, err)
				}
				r.missing = db.GetContext(ctx, &sqlxItem{}, "SELECT * FROM items WHERE id = ?", 99)
			}
			d, p := results[0], results[1]
			if d.missing != sql.ErrNoRows || p.missing != sql.ErrNoRows {
				t.Errorf("missing row: direct %v, proxy %v", d.missing, p.missing)
			}
			if d.named != p.named || !sameItems(d.items, p.items) || !sameItems([]sqlxItem{d.one}, []sqlxItem{p.one}) ||
				strings.Join(d.in, ",") != strings.Join(p.in, ",") || len(d.items) != 2 {
				t.Errorf("results differ\ndirect: %+v\nproxy:  %+v", d, p)
			}
		})
	}
}

func sameItems(a, b []sqlxItem) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.ID != y.ID || x.Name != y.Name || x.Price != y.Price || !bytes.Equal(x.Tags, y.Tags) || !x.Added.Equal(y.Added) {
			return false
		}
	}
	return true
}

// TestLongData sends a parameter larger than the driver's packet budget,
// which go-sql-driver/mysql streams with COM_STMT_SEND_LONG_DATA, then
// re-executes the statement with a short value.
func TestLongData(t *testing.T) {
	t.Parallel()
	direct, proxied, _ := targets(t)
	big := bytes.Repeat([]byte("0123456789abcdef"), 64<<10/16) // 64 KiB
	for i, tg := range []target{direct, proxied} {
		tg.db.Exec(t, "CREATE TABLE blobs (id INT PRIMARY KEY, data LONGBLOB, note VARCHAR(10))")
		pool := open(t, tg.db, tg.addr, func(c *mysql.Config) {
			c.InterpolateParams = false
			c.MaxAllowedPacket = 16 << 10 // long data past 16 KiB / (params + 1)
		})
		stmt, err := pool.Prepare("INSERT INTO blobs VALUES (?, ?, ?)")
		if err != nil {
			t.Fatalf("%s: %v", tg.name, err)
		}
		for id, data := range [][]byte{big, []byte("small"), nil, big[:20000]} {
			if _, err := stmt.Exec(id, data, "n"); err != nil {
				t.Fatalf("%s: insert %d: %v", tg.name, id, err)
			}
		}
		stmt.Close()
		var got []byte
		if err := pool.QueryRow("SELECT data FROM blobs WHERE id = ?", 0).Scan(&got); err != nil || !bytes.Equal(got, big) {
			t.Fatalf("%s: read back %d bytes, %v", tg.name, len(got), err)
		}
		var sum string
		if err := pool.QueryRow("SELECT GROUP_CONCAT(id, ':', COALESCE(LENGTH(data), -1), ':', MD5(data) ORDER BY id) FROM blobs").Scan(&sum); err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			var want string
			if err := open(t, direct.db, direct.addr).QueryRow("SELECT GROUP_CONCAT(id, ':', COALESCE(LENGTH(data), -1), ':', MD5(data) ORDER BY id) FROM blobs").Scan(&want); err != nil {
				t.Fatal(err)
			}
			if sum != want {
				t.Errorf("stored blobs differ\ndirect: %s\nproxy:  %s", want, sum)
			}
		}
	}
}

// TestLocalInfile loads a client file with LOAD DATA LOCAL INFILE, and
// checks a refused file reports the driver's error.
func TestLocalInfile(t *testing.T) {
	t.Parallel()
	direct, proxied, _ := targets(t)
	path := filepath.Join(t.TempDir(), "rows.csv")
	var csv strings.Builder
	for i := range 5000 {
		csv.WriteString(strings.Repeat("x", i%50))
		csv.WriteString(",")
		csv.WriteString(strings.Repeat("7", 1+i%9))
		csv.WriteString("\n")
	}
	if err := os.WriteFile(path, []byte(csv.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	mysql.RegisterLocalFile(path)
	t.Cleanup(func() { mysql.DeregisterLocalFile(path) })
	steps := []step{
		execStep("SET SESSION sql_mode = ''"),
		execStep("CREATE TABLE loaded (s VARCHAR(40), n INT)"),
		execStep("LOAD DATA LOCAL INFILE '" + path + "' INTO TABLE loaded FIELDS TERMINATED BY ','"),
		queryStep("SHOW WARNINGS LIMIT 3"),
		queryStep("SELECT COUNT(*), SUM(n), SUM(LENGTH(s)) FROM loaded"),
		execStep("LOAD DATA LOCAL INFILE '/nonexistent/file.csv' INTO TABLE loaded"),
		queryStep("SELECT COUNT(*) FROM loaded"),
		execStep("LOAD DATA LOCAL INFILE 'Reader::nosuch' INTO TABLE loaded"),
		queryStep("SELECT 'still usable'"),
	}
	var transcripts [2][]string
	for i, tg := range []target{direct, proxied} {
		transcripts[i] = runSteps(t, tg, tg.conn(t), steps)
	}
	compareLines(t, transcripts[0], transcripts[1])
}

// TestLargePackets moves values past the 16 MiB protocol packet limit
// through the proxy in both directions: a COM_QUERY and a
// COM_STMT_EXECUTE that span several packets, and rows that do, in the
// text and the binary protocol.
func TestLargePackets(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	p := startProxy(t, db)
	db.Exec(t, "CREATE TABLE big (id INT PRIMARY KEY, data LONGBLOB)")
	big := bytes.Repeat([]byte("large packet "), (17<<20)/13)
	pool := open(t, db, p.addr, func(c *mysql.Config) { c.InterpolateParams = false })
	// No arguments: the query goes as it is, one COM_QUERY.
	if _, err := pool.Exec("INSERT INTO big VALUES (0, '" + string(big) + "')"); err != nil {
		t.Fatalf("text insert: %v", err)
	}
	if _, err := pool.Exec("INSERT INTO big VALUES (?, ?)", 1, big); err != nil {
		t.Fatalf("prepared insert: %v", err)
	}
	for _, tt := range []struct {
		name  string
		query string
		args  []any
	}{
		{"text", "SELECT data FROM big WHERE id = 1", nil},
		{"binary", "SELECT data FROM big WHERE id = ?", []any{0}},
	} {
		var got []byte
		if err := pool.QueryRow(tt.query, tt.args...).Scan(&got); err != nil || !bytes.Equal(got, big) {
			t.Fatalf("%s: %d bytes back, %v", tt.name, len(got), err)
		}
	}
}

// TestNoAbortedConnections: sessions through the proxy end their backend
// connection with COM_QUIT, whether the client quit or just closed its
// socket, so the server counts no aborted clients. Not parallel: the
// counter is global.
func TestNoAbortedConnections(t *testing.T) {
	db := testdb.New(t)
	p := startProxy(t, db)
	root := testdb.Shared(t).Root(t)
	aborted := func() string {
		var name, v string
		if err := root.QueryRow("SHOW GLOBAL STATUS LIKE 'Aborted_clients'").Scan(&name, &v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	before := aborted()
	pool := open(t, db, p.addr)
	if err := pool.Ping(); err != nil {
		t.Fatal(err)
	}
	pool.Close() // COM_QUIT
	c, _ := dialRaw(t, p.addr, db.User, db.Password, db.Name)
	c.conn.Close() // no COM_QUIT
	testdb.WaitFor(t, 10*time.Second, "backend connections to close", func() bool {
		return processCount(t, root, db.User, db.Name) == 0
	})
	if after := aborted(); after != before {
		t.Errorf("Aborted_clients went from %s to %s", before, after)
	}
}

// TestInteractiveClient: a client that declares itself interactive gets
// interactive_timeout as its session's wait_timeout, as on the server. Not
// parallel: it changes a global variable.
func TestInteractiveClient(t *testing.T) {
	direct, proxied, _ := targets(t)
	root := testdb.Shared(t).Root(t)
	var saved string
	if err := root.QueryRow("SELECT @@GLOBAL.interactive_timeout").Scan(&saved); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Exec("SET GLOBAL interactive_timeout = 12345"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = root.Exec("SET GLOBAL interactive_timeout = " + saved) })
	var rows [2][]string
	for i, tg := range []target{direct, proxied} {
		for _, caps := range []uint32{0, gomysql.CLIENT_INTERACTIVE} {
			c, _ := dialRawWith(t, tg.addr, tg.db.User, tg.db.Password, tg.db.Name, gomysql.AUTH_NATIVE_PASSWORD, caps)
			c.command(comQuery("SELECT @@wait_timeout"))
			if err := c.response(respResult); err != nil {
				t.Fatal(err)
			}
			rows[i] = append(rows[i], fmt.Sprintf("capabilities %#x: %s", caps, c.log[len(c.log)-2]))
		}
	}
	compareLines(t, rows[0], rows[1])
	if want := fmt.Sprintf("%x", lenencString("12345")); !strings.HasSuffix(rows[1][1], want) {
		t.Errorf("interactive session: %s, want wait_timeout 12345", rows[1][1])
	}
}
