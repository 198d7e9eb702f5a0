package proxy

import "testing"

// TestStateTracker follows sessions statement by statement: each case is
// the texts a session runs (as queries or prepared, which the tracker sees
// alike), then whether its hot statements may still be merged.
func TestStateTracker(t *testing.T) {
	tests := []struct {
		name     string
		eligible bool
		stmts    []string
		want     bool
	}{
		{"fresh session", true, nil, true},
		{"not the merge user", false, nil, false},
		{"reads keep merging", true, []string{"SELECT @@sql_mode", "SELECT * FROM inventory", "SHOW VARIABLES LIKE 'sql_mode'"}, true},
		{"hot update text", true, []string{"UPDATE inventory SET stock = stock - 1 WHERE sku_id = 1"}, true},
		{"set autocommit", true, []string{"SET autocommit=0", "set AUTOCOMMIT = 1"}, true},
		{"set names", true, []string{"SET NAMES utf8mb4 COLLATE utf8mb4_general_ci"}, true},
		{"set character set", true, []string{"SET CHARACTER SET utf8mb4", "SET CHARSET latin1"}, true},
		{"set charset variables", true, []string{"SET character_set_client = utf8mb4, collation_connection = utf8mb4_bin"}, true},
		{"set user variables", true, []string{"SET @a = 1, @b := 2", "set @@session.autocommit=1"}, true},
		{"set session autocommit", true, []string{"SET SESSION autocommit = 1", "SET LOCAL autocommit = 1", "SET @@local.autocommit = 1"}, true},
		{"leading whitespace", true, []string{"  \n\tSET NAMES utf8mb4"}, true},
		{"set sql_mode", true, []string{"SET sql_mode = ''"}, false},
		{"set session sql_mode", true, []string{"SET SESSION sql_mode = 'TRADITIONAL'"}, false},
		{"set @@sql_mode", true, []string{"set @@sql_mode = ''"}, false},
		{"set @@session.sql_mode", true, []string{"SET @@SESSION.sql_mode = ''"}, false},
		{"harmless then harmful assignment", true, []string{"SET autocommit = 1, sql_mode = ''"}, false},
		{"set in a multi-statement", true, []string{"SELECT 1; SET sql_mode = ''"}, false},
		{"statement time limit", true, []string{"SET max_statement_time = 1"}, false},
		{"read-only transaction", true, []string{"SET TRANSACTION READ ONLY"}, false},
		{"session read-only transactions", true, []string{"SET SESSION TRANSACTION READ ONLY"}, false},
		{"temporary table", true, []string{"CREATE TEMPORARY TABLE inventory (sku_id INT PRIMARY KEY, stock INT)"}, false},
		{"lock tables", true, []string{"LOCK TABLES inventory WRITE"}, false},
		{"global read lock", true, []string{"FLUSH TABLES WITH READ LOCK"}, false},
		{"xa transaction", true, []string{"XA START 'x'"}, false},
		{"stays off after harmless statements", true, []string{"SET sql_mode = ''", "SET NAMES utf8mb4", "SELECT 1"}, false},
		{"update that sets columns", true, []string{"UPDATE t SET sql_mode = 1 WHERE id = 1"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := newStateTracker(tt.eligible)
			for _, q := range tt.stmts {
				st.note([]byte(q))
			}
			if st.mergeable != tt.want {
				t.Errorf("after %q: mergeable = %v, want %v", tt.stmts, st.mergeable, tt.want)
			}
		})
	}
}

// TestStateTrackerReset: COM_RESET_CONNECTION restores the defaults, so a
// session that stopped merging merges again, unless its user is not the
// merge user.
func TestStateTrackerReset(t *testing.T) {
	tests := []struct {
		name     string
		eligible bool
		stmts    []string
		want     bool
	}{
		{"after sql_mode", true, []string{"SET sql_mode = ''"}, true},
		{"after a temporary table", true, []string{"CREATE TEMPORARY TABLE x (a INT)"}, true},
		{"untouched", true, nil, true},
		{"not the merge user", false, []string{"SET sql_mode = ''"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := newStateTracker(tt.eligible)
			for _, q := range tt.stmts {
				st.note([]byte(q))
			}
			st.reset()
			if st.mergeable != tt.want {
				t.Errorf("reset after %q: mergeable = %v, want %v", tt.stmts, st.mergeable, tt.want)
			}
			st.note([]byte("SET sql_mode = ''"))
			if st.mergeable {
				t.Error("mergeable after SET sql_mode following the reset")
			}
		})
	}
}

// TestIsSingleSelect: the queries dispatch lets skip the state checks are
// single SELECTs only; a second statement, or another first one, goes
// through them.
func TestIsSingleSelect(t *testing.T) {
	for q, want := range map[string]bool{
		"SELECT stock FROM inventory WHERE sku_id = 1": true,
		" \n\tselect * FROM users":                     true,
		"SELECT 1; SET sql_mode = ''":                  false,
		"SELECT 1;":                                    false,
		"/* app */ SELECT 1":                           false,
		"SET sql_mode = ''":                            false,
		"UPDATE inventory SET stock = 0":               false,
		"SELECT":                                       false,
		"USE shop":                                     false,
	} {
		if got := isSingleSelect([]byte(q)); got != want {
			t.Errorf("isSingleSelect(%q) = %v, want %v", q, got, want)
		}
	}
}
