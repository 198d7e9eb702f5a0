package proxy

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// requireTool returns the path of a command-line tool, skipping the test
// when it is missing (failing under CI=true, which installs it).
func requireTool(t *testing.T, names ...string) string {
	t.Helper()
	for _, name := range names {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not installed", names[0])
	}
	t.Skipf("%s not installed", names[0])
	return ""
}

// runCLI runs the mariadb command-line client against tg with stdin and
// extra arguments, and returns its normalized stdout and stderr.
func runCLI(t *testing.T, bin string, tg target, stdin string, args ...string) (string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	host, port, _ := strings.Cut(tg.addr, ":")
	base := []string{"--no-defaults", "--protocol=TCP", "--skip-ssl", "-h", host, "-P", port,
		"-u", tg.db.User, "-D", tg.db.Name}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	cmd.Env = append(os.Environ(), "MYSQL_PWD="+tg.db.Password)
	cmd.Stdin = strings.NewReader(strings.ReplaceAll(stdin, "<db>", tg.db.Name))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil && ctx.Err() != nil {
		t.Fatalf("%s: mariadb: %v", tg.name, err)
	}
	return tg.normalize(stdout.String()), tg.normalize(stderr.String())
}

// cliScript is run by the mariadb client from stdin, with --force so that
// errors are reported and the script goes on.
const cliScript = `SELECT 1, 'a', NULL, 2.5, -0.0e0, X'41';
CREATE TABLE c (id INT PRIMARY KEY, v VARCHAR(20), d DATETIME(6), t TIME, j JSON, b BLOB, u BIGINT UNSIGNED, bt BIT(4));
INSERT INTO c VALUES (1, 'x\ty', '2020-01-01 00:00:00.5', '-01:02:03', '{"a": [1]}', x'00ff', 18446744073709551615, b'1010'),
	(2, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
SELECT * FROM c ORDER BY id;
USE information_schema
SELECT DATABASE();
USE <db>
LOAD DATA LOCAL INFILE '<file>' INTO TABLE c FIELDS TERMINATED BY ',' (id, v);
SELECT COUNT(*), SUM(id) FROM c;
SET sql_mode = '';
INSERT INTO c (id, v) VALUES (10, REPEAT('z', 30));
SHOW WARNINGS;
DELIMITER //
CREATE PROCEDURE p() BEGIN SELECT 1 AS one; SELECT id FROM c WHERE id < 3 ORDER BY id; END //
DELIMITER ;
CALL p();
BEGIN; INSERT INTO c (id) VALUES (20); SELECT @@in_transaction; ROLLBACK;
SELECT COUNT(*) FROM c WHERE id = 20;
SELECT * FROM nosuch;
SELEC 1;
INSERT INTO c (id) VALUES (1);
SELECT 'end';
`

// TestMariadbCLI compares the mariadb client's batch output directly and
// through the proxy: -e, a script on stdin, column metadata, LOAD DATA
// LOCAL INFILE, USE (COM_INIT_DB) and errors.
func TestMariadbCLI(t *testing.T) {
	t.Parallel()
	bin := requireTool(t, "mariadb", "mysql")
	direct, proxied, _ := targets(t)
	file := filepath.Join(t.TempDir(), "rows.csv")
	var csv strings.Builder
	for i := 100; i < 600; i++ {
		fmt.Fprintf(&csv, "%d,%s\n", i, strings.Repeat("r", i%17))
	}
	if err := os.WriteFile(file, []byte(csv.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	script := strings.ReplaceAll(cliScript, "<file>", file)
	runs := []struct {
		name  string
		stdin string
		args  []string
	}{
		{"execute", "", []string{"-B", "-N", "-e", "SELECT 1 + 1, 'x', NULL; SELECT @@autocommit, DATABASE() = '<db>'"}},
		{"script batch", script, []string{"-B", "-N", "--force", "--local-infile=1"}},
		{"script with metadata and warnings", script, []string{"--batch", "--column-type-info", "--show-warnings", "--force", "--local-infile=1", "-vvv"}},
		{"script as tables", script, []string{"--table", "--force", "--local-infile=1"}},
		{"local infile refused", "LOAD DATA LOCAL INFILE '" + file + "' INTO TABLE c;\nSELECT 'after';\n", []string{"-B", "--force", "--local-infile=0"}},
		{"bad database", "SELECT 1;\n", []string{"-B", "-D", "nosuchdb"}},
		{"wrong password", "SELECT 1;\n", []string{"-B", "--password=wrong"}},
		{"unknown user", "SELECT 1;\n", []string{"-B", "-u", "nobody"}},
	}
	for _, run := range runs {
		t.Run(run.name, func(t *testing.T) {
			var outs [2][2]string
			for i, tg := range []target{direct, proxied} {
				// -vvv prints timings: drop them.
				args := make([]string, len(run.args))
				for j, a := range run.args {
					args[j] = strings.ReplaceAll(a, "<db>", tg.db.Name)
				}
				stdout, stderr := runCLI(t, bin, tg, run.stdin, args...)
				outs[i] = [2]string{dropTimings(stdout), stderr}
				tg.db.Exec(t, "DROP TABLE IF EXISTS c", "DROP PROCEDURE IF EXISTS p")
			}
			if outs[0][0] == "" && outs[0][1] == "" {
				t.Fatal("no output")
			}
			compareLines(t, strings.Split(outs[0][0], "\n"), strings.Split(outs[1][0], "\n"))
			compareLines(t, strings.Split(outs[0][1], "\n"), strings.Split(outs[1][1], "\n"))
		})
	}
}

// dropTimings removes the "(0.001 sec)" parts of verbose output.
func dropTimings(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if j := strings.LastIndex(l, " ("); j >= 0 && strings.HasSuffix(l, " sec)") {
			lines[i] = l[:j]
		}
	}
	return strings.Join(lines, "\n")
}
