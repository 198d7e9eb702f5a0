package bench

import (
	"bufio"
	"context"
	"io"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestHAProxyConfig(t *testing.T) {
	cfg := haproxyConfig("127.0.0.1:4406", "127.0.0.1:3306", 8192)
	for _, want := range []string{
		"nbthread 1",
		"maxconn 8192",
		"mode tcp",
		"bind 127.0.0.1:4406",
		"server db 127.0.0.1:3306",
		"timeout client 1h",
	} {
		if !strings.Contains(cfg, want) {
			t.Errorf("config lacks %q:\n%s", want, cfg)
		}
	}
	// No health checks: a check connection would count as an aborted
	// connect on the server.
	if strings.Contains(cfg, " check") {
		t.Errorf("config has health checks:\n%s", cfg)
	}
}

// echoServer sends back every byte it receives: enough to see bytes cross
// a relay both ways.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

// roundTrip sends a line through addr and returns the answer.
func roundTrip(t *testing.T, addr, line string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		t.Fatal(err)
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(got, "\n")
}

func TestRelays(t *testing.T) {
	tests := []struct {
		name, kind string
		wantPID    bool
	}{
		{"builtin", RelayBuiltin, false},
		{"haproxy", RelayHAProxy, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.kind == RelayHAProxy {
				if _, err := exec.LookPath("haproxy"); err != nil {
					t.Skip("haproxy not on PATH (apt-get install haproxy); the built-in relay is tested")
				}
			}
			backend := echoServer(t)
			r, err := StartRelay(context.Background(), tt.kind, backend, testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = r.Stop() })
			if (r.PID() != 0) != tt.wantPID {
				t.Errorf("PID %d, want a process: %v", r.PID(), tt.wantPID)
			}
			t.Logf("relay: %s on %s", r.Name, r.Addr)
			// A connection held open across Stop must not keep it waiting.
			held, err := net.Dial("tcp", r.Addr)
			if err != nil {
				t.Fatal(err)
			}
			defer held.Close()
			for _, line := range []string{"hello", strings.Repeat("x", 100000)} {
				if got := roundTrip(t, r.Addr, line); got != line {
					t.Fatalf("through the relay: got %d bytes, want %d", len(got), len(line))
				}
			}
			if err := r.Stop(); err != nil {
				t.Fatal(err)
			}
			if err := r.Stop(); err != nil {
				t.Fatalf("second Stop: %v", err)
			}
			if c, err := net.DialTimeout("tcp", r.Addr, time.Second); err == nil {
				c.Close()
				t.Error("relay still accepting after Stop")
			}
		})
	}
}
