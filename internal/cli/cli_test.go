package cli

import (
	"flag"
	"io"
	"testing"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		done     bool
		err      bool
		wantList string
	}{
		{"flags", []string{"--name", "a", "--name=b"}, false, false, "a,b"},
		{"none", nil, false, false, ""},
		{"help", []string{"--help"}, true, false, ""},
		{"unknown flag", []string{"--nope"}, true, true, ""},
		{"positional argument", []string{"--name", "a", "extra"}, true, true, "a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			var list ListFlag
			fs.Var(&list, "name", "repeatable")
			done, err := ParseFlags(fs, tt.args)
			if done != tt.done || (err != nil) != tt.err || list.String() != tt.wantList {
				t.Fatalf("ParseFlags(%q) = %v, %v, list %q; want %v, error %v, list %q",
					tt.args, done, err, list.String(), tt.done, tt.err, tt.wantList)
			}
		})
	}
}
