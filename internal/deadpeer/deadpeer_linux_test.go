package deadpeer

import (
	"net"
	"syscall"
	"testing"
	"time"
)

// TestDialerSocketOptions: the socket options of a dialled connection are
// the ones the bound promises, and 0 leaves Go's defaults.
func TestDialerSocketOptions(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, tc := range []struct {
		after                      time.Duration
		user, idle, intvl, cnt, ka int
	}{
		{after: 30 * time.Second, user: 30000, idle: 15, intvl: 3, cnt: 5, ka: 1},
		{after: 3 * time.Second, user: 3000, idle: 2, intvl: 1, cnt: 5, ka: 1},
		{after: 0, user: 0, idle: 15, intvl: 15, cnt: 9, ka: 1}, // Go's defaults
	} {
		c, err := Dialer(time.Second, tc.after).Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		raw, err := c.(*net.TCPConn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]int{}
		_ = raw.Control(func(fd uintptr) {
			for name, opt := range map[string][2]int{
				"TCP_USER_TIMEOUT": {syscall.IPPROTO_TCP, tcpUserTimeout},
				"TCP_KEEPIDLE":     {syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE},
				"TCP_KEEPINTVL":    {syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL},
				"TCP_KEEPCNT":      {syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT},
				"SO_KEEPALIVE":     {syscall.SOL_SOCKET, syscall.SO_KEEPALIVE},
			} {
				v, err := syscall.GetsockoptInt(int(fd), opt[0], opt[1])
				if err != nil {
					t.Errorf("%s: %v", name, err)
				}
				got[name] = v
			}
		})
		c.Close()
		want := map[string]int{"TCP_USER_TIMEOUT": tc.user, "TCP_KEEPIDLE": tc.idle, "TCP_KEEPINTVL": tc.intvl,
			"TCP_KEEPCNT": tc.cnt, "SO_KEEPALIVE": tc.ka}
		for name, v := range want {
			if got[name] != v {
				t.Errorf("after %v: %s = %d, want %d", tc.after, name, got[name], v)
			}
		}
	}
}

// TestSlowAnswerIsNotDead: a peer that answers only after three times the
// bound, its host acknowledging everything meanwhile (a long statement),
// keeps the connection.
func TestSlowAnswerIsNotDead(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		if _, err := c.Read(make([]byte, 1)); err != nil {
			return
		}
		time.Sleep(3 * time.Second)
		_, _ = c.Write([]byte{'y'})
	}()
	c, err := Dialer(time.Second, time.Second).Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte{'x'}); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b := make([]byte, 1)
	if _, err := c.Read(b); err != nil || b[0] != 'y' {
		t.Fatalf("read %q: %v, want the late answer", b, err)
	}
}
