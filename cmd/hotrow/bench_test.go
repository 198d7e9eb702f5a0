package main

import (
	"strings"
	"testing"
)

func TestParseCounts(t *testing.T) {
	tests := []struct {
		in   string
		want []int
		err  bool
	}{
		{"256", []int{256}, false},
		{"1, 16,64", []int{1, 16, 64}, false},
		{"0", nil, true},
		{"16,x", nil, true},
		{"", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseCounts(tt.in)
			if (err != nil) != tt.err || len(got) != len(tt.want) {
				t.Fatalf("parseCounts(%q) = %v, %v", tt.in, got, err)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("parseCounts(%q) = %v, want %v", tt.in, got, tt.want)
				}
			}
		})
	}
}

func TestRedactDSNs(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"separate value", []string{"--direct", "root:s3cret@tcp(db:3306)/", "--clients", "16"}, "--direct root:xxx@tcp(db:3306)/ --clients 16"},
		{"inline value", []string{"-proxy=app:pw@tcp(127.0.0.1:6033)/"}, "-proxy=app:xxx@tcp(127.0.0.1:6033)/"},
		{"no password", []string{"--direct", "root@tcp(db:3306)/"}, "--direct root@tcp(db:3306)/"},
		{"other flags", []string{"--scenario", "hot", "--json", "a:b@c"}, "--scenario hot --json a:b@c"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := redactDSNs(tt.args)
			if got != tt.want {
				t.Errorf("redactDSNs = %q, want %q", got, tt.want)
			}
			if strings.Contains(got, "s3cret") {
				t.Error("password leaked")
			}
		})
	}
}
