package binlog

import (
	"encoding/json"
	"testing"
)

func TestJSONNumber(t *testing.T) {
	cases := map[string]json.Number{
		"5": "5", "-5": "-5", "0": "0", "123456789012345678901234567890": "123456789012345678901234567890",
		"1.50": "1.5", "-0.25": "-0.25", ".5": "0.5", "+5": "5", " 7 ": "7", "007": "7", "-0": "0",
		"": "", "abc": "", "1e3": "1000",
	}
	for in, want := range cases {
		got := jsonNumber(in)
		if got != want {
			t.Errorf("jsonNumber(%q) = %q, want %q", in, got, want)
		}
		if got != "" {
			if _, err := json.Marshal(struct{ N json.Number }{got}); err != nil {
				t.Errorf("jsonNumber(%q) = %q is no JSON number: %v", in, got, err)
			}
		}
	}
}
