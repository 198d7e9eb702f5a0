package proxy

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// pymysqlScript prints one line per observation; PyMySQL speaks the text
// protocol and interpolates parameters itself.
const pymysqlScript = `
import os, pymysql
conn = pymysql.connect(host=os.environ["H"], port=int(os.environ["P"]), user=os.environ["U"],
                       password=os.environ["PW"], database=os.environ["DB"], autocommit=True)
cur = conn.cursor()
def show(*args):
    print(*[repr(a) for a in args])
def run(sql, args=None, many=False):
    try:
        n = cur.executemany(sql, args) if many else cur.execute(sql, args)
        show(sql, n, cur.rowcount, cur.lastrowid, cur.description, cur.fetchall())
    except pymysql.MySQLError as e:
        show(sql, type(e).__name__, e.args)
run("CREATE TABLE py (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(10) UNIQUE, price DECIMAL(8,2), at DATETIME(3), data BLOB)")
run("INSERT INTO py (name, price, at, data) VALUES (%s, %s, %s, %s)", ("a'b", "1.25", "2024-01-02 03:04:05.678", b"\x00\x01"))
run("INSERT INTO py (name, price) VALUES (%s, %s)", [("c", 2), ("d", None), ("e", 3.5)], many=True)
run("SELECT * FROM py WHERE name IN %s ORDER BY id", (("a'b", "d"),))
run("SELECT id, name FROM py WHERE price > %(p)s ORDER BY id", {"p": 1})
run("INSERT INTO py (name) VALUES (%s)", ("c",))
run("SELEC 1")
conn.autocommit(False)
run("INSERT INTO py (name) VALUES ('rolled')")
conn.rollback()
run("INSERT INTO py (name) VALUES ('kept')")
conn.commit()
run("SELECT name FROM py WHERE name IN ('rolled', 'kept')")
conn.autocommit(True)
conn.ping()
conn.select_db("information_schema")
run("SELECT DATABASE()")
conn.close()
`

// TestPyMySQL runs PyMySQL directly and through the proxy.
func TestPyMySQL(t *testing.T) {
	t.Parallel()
	python := pythonWithPyMySQL(t)
	direct, proxied, _ := targets(t)
	var outs [2]string
	for i, tg := range []target{direct, proxied} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		host, port, _ := strings.Cut(tg.addr, ":")
		cmd := exec.CommandContext(ctx, python, "-c", pymysqlScript)
		cmd.Env = append(os.Environ(), "H="+host, "P="+port, "U="+tg.db.User, "PW="+tg.db.Password, "DB="+tg.db.Name)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v\n%s", tg.name, err, stderr.String())
		}
		outs[i] = tg.normalize(string(out))
	}
	if !strings.Contains(outs[0], "(('kept',),)") {
		t.Fatalf("unexpected output:\n%s", outs[0])
	}
	compareLines(t, strings.Split(outs[0], "\n"), strings.Split(outs[1], "\n"))
}

// pythonWithPyMySQL finds a Python that imports pymysql (Debian's
// python3-pymysql installs it for /usr/bin/python3).
func pythonWithPyMySQL(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"python3", "/usr/bin/python3"} {
		if exec.Command(p, "-c", "import pymysql").Run() == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("pymysql not installed (apt-get install -y python3-pymysql)")
	}
	t.Skip("pymysql not installed (apt-get install -y python3-pymysql)")
	return ""
}
