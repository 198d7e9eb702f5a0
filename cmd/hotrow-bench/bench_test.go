package main

import (
	"os"
	"path/filepath"
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

// TestProxyBinary: the proxy child comes from --proxy-binary, else from
// hotrow on PATH (the test binary has no hotrow beside it).
func TestProxyBinary(t *testing.T) {
	dir := t.TempDir()
	onPath := filepath.Join(dir, "hotrow")
	if err := os.WriteFile(onPath, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, given, path, want string
		err                     bool
	}{
		{"given", "/opt/hotrow/bin/hotrow", dir, "/opt/hotrow/bin/hotrow", false},
		{"on PATH", "", dir, onPath, false},
		{"nowhere", "", t.TempDir(), "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("PATH", tt.path)
			got, err := proxyBinary(tt.given)
			if (err != nil) != tt.err || got != tt.want {
				t.Fatalf("proxyBinary(%q) = %q, %v; want %q", tt.given, got, err, tt.want)
			}
		})
	}
}

// TestBenchSidesFlag: bad --sides lists are refused before anything is
// provisioned.
func TestBenchSidesFlag(t *testing.T) {
	tests := []struct{ sides, want string }{
		{"relay,proxy", "direct is needed"},
		{"direct", "at least two sides"},
		{"direct,haproxy", "unknown side"},
	}
	for _, tt := range tests {
		t.Run(tt.sides, func(t *testing.T) {
			err := benchMain([]string{"--sides", tt.sides})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("--sides %s: %v, want an error with %q", tt.sides, err, tt.want)
			}
		})
	}
}
