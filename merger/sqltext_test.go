package merger

import "testing"

func TestAppendInterpolated(t *testing.T) {
	tests := []struct {
		name, query string
		args        []any
		nbe         bool
		want        string
	}{
		{"ints", "UPDATE t SET s = s - ? WHERE k = ? AND s >= ?", []any{int64(3), uint64(18446744073709551615), int64(-1)}, false,
			"UPDATE t SET s = s - 3 WHERE k = 18446744073709551615 AND s >= -1"},
		{"string escapes", "UPDATE t SET n = ? WHERE k = ?", []any{"it's \\ \x00\n", []byte("b")}, false,
			`UPDATE t SET n = 'it''s \\ \0\n' WHERE k = 'b'`},
		{"no backslash escapes", "UPDATE t SET n = ? WHERE k = ?", []any{"a\\'b", nil}, true,
			`UPDATE t SET n = 'a\''b' WHERE k = NULL`},
		{"double", "UPDATE t SET s = s - ? WHERE k = 1", []any{1.5}, false, "UPDATE t SET s = s - 1.5e+00 WHERE k = 1"},
		{"markers in quotes and comments stay", "UPDATE `a?` SET n = '?' /* ? */ WHERE k = ? -- ?\n", []any{int64(7)}, false,
			"UPDATE `a?` SET n = '?' /* ? */ WHERE k = 7 -- ?\n"},
		{"escaped quote inside string", `UPDATE t SET n = 'x\'?' WHERE k = ?`, []any{int64(1)}, false,
			`UPDATE t SET n = 'x\'?' WHERE k = 1`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(appendInterpolated(nil, tc.query, tc.args, tc.nbe)); got != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestParseInfo(t *testing.T) {
	tests := []struct {
		info             string
		matched, changed uint64
		ok               bool
	}{
		{"Rows matched: 1  Changed: 0  Warnings: 0", 1, 0, true},
		{"Rows matched: 12  Changed: 7  Warnings: 2", 12, 7, true},
		{"Filas encontradas: 3  Cambiadas: 3  Avisos: 0", 3, 3, true},
		{"", 0, 0, false},
	}
	for _, tc := range tests {
		m, c, ok := parseInfo(tc.info)
		if m != tc.matched || c != tc.changed || ok != tc.ok {
			t.Errorf("parseInfo(%q) = %d, %d, %v; want %d, %d, %v", tc.info, m, c, ok, tc.matched, tc.changed, tc.ok)
		}
	}
}

func TestTrimStatement(t *testing.T) {
	for in, want := range map[string]string{
		"UPDATE t SET a = 1;  \n": "UPDATE t SET a = 1",
		"UPDATE t SET a = 1":      "UPDATE t SET a = 1",
		";;":                      "",
	} {
		if got := trimStatement(in); got != want {
			t.Errorf("trimStatement(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestValidate(t *testing.T) {
	base := DefaultConfig()
	base.DSN = "u:p@tcp(127.0.0.1:3306)/"
	if err := base.Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	tests := map[string]func(*Config){
		"bad dsn":         func(c *Config) { c.DSN = "::nope" },
		"no meta schema":  func(c *Config) { c.MetaSchema = "" },
		"bad instance id": func(c *Config) { c.InstanceID = "a b" },
		"long instance":   func(c *Config) { c.InstanceID = string(make([]byte, 49)) },
		"max batch":       func(c *Config) { c.MaxBatch = 0 },
		"queue total":     func(c *Config) { c.MaxQueueTotal = c.MaxQueue - 1 },
		"pool":            func(c *Config) { c.PoolSize = 0 },
		"resolve":         func(c *Config) { c.ResolveTimeout = 0 },
		"retention":       func(c *Config) { c.MarkerRetention = c.ResolveTimeout },
	}
	for name, mutate := range tests {
		t.Run(name, func(t *testing.T) {
			c := base
			mutate(&c)
			if err := c.Validate(); err == nil {
				t.Fatal("Validate accepted it")
			}
		})
	}
}
