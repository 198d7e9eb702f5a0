package proxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

// TestSockIO: raw socket calls read and write like net.Conn: data, writes
// larger than the socket buffers (waiting until writable), a deadline,
// the peer's close, and the connection's own close, with net.Conn's errors.
func TestSockIO(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<20) // 16 MiB
	echoed := make(chan []byte, 1)
	timedOut := make(chan struct{}) // the peer closes only after the deadline's check
	checked := sync.OnceFunc(func() { close(timedOut) })
	defer checked()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			echoed <- nil
			return
		}
		defer c.Close()
		got := make([]byte, len(big))
		_, err = io.ReadFull(c, got)
		if err == nil {
			_, err = c.Write([]byte("ok"))
		}
		if err != nil {
			got = nil
		}
		echoed <- got
		<-timedOut
	}()
	c, s := dialSockIO(t, ln.Addr().String())

	if n, err := s.Write(big); n != len(big) || err != nil {
		t.Fatalf("Write of %d bytes = %d, %v", len(big), n, err)
	}
	if !bytes.Equal(<-echoed, big) {
		t.Fatal("the peer did not read what was written")
	}
	b := make([]byte, 10)
	if n, err := io.ReadFull(s, b[:2]); err != nil || string(b[:n]) != "ok" {
		t.Fatalf("Read = %q, %v", b[:n], err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	_, err = s.Read(b)
	checked()
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past the deadline: %v, want a timeout", err)
	}
	_ = c.SetReadDeadline(noDeadline)
	if _, err := s.Read(b); err != io.EOF {
		t.Fatalf("Read after the peer's close: %v, want io.EOF", err)
	}
	c.Close()
	_, rerr := s.Read(b)
	_, werr := s.Write(b)
	for _, err := range []error{rerr, werr} {
		var oe *net.OpError
		if !errors.Is(err, net.ErrClosed) || !errors.As(err, &oe) || oe.Addr == nil {
			t.Errorf("after Close: %v, want net.Conn's error for a closed connection", err)
		}
	}
}

// TestSockIOConcurrent: a read and a write may run at the same time, as
// on a net.Conn (the peer echoes what it reads).
func TestSockIOConcurrent(t *testing.T) {
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
		_, _ = io.Copy(c, c)
	}()
	_, s := dialSockIO(t, ln.Addr().String())
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<20) // 16 MiB: more than the socket buffers
	written := make(chan error, 1)
	go func() {
		_, err := s.Write(big)
		written <- err
	}()
	got := make([]byte, len(big))
	if _, err := io.ReadFull(s, got); err != nil {
		t.Fatal(err)
	}
	if err := <-written; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, big) {
		t.Fatal("read back something else than was written")
	}
}

// TestSockIOAwaitReply: with awaitReply, Write returns once the peer's
// reply is readable; a write larger than the socket buffers finishes as a
// plain one; a read deadline ends the wait without failing the write.
func TestSockIOAwaitReply(t *testing.T) {
	for _, tc := range []struct {
		name     string
		size     int
		reply    bool
		deadline bool
	}{
		{name: "small", size: 4, reply: true},
		{name: "larger than the socket buffers", size: 16 << 20, reply: true},
		{name: "deadline", size: 4, deadline: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			const delay = 20 * time.Millisecond
			go func() {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				if _, err := io.ReadFull(c, make([]byte, tc.size)); err != nil || !tc.reply {
					time.Sleep(time.Second)
					return
				}
				time.Sleep(delay)
				_, _ = c.Write([]byte("ok"))
			}()
			c, s := dialSockIO(t, ln.Addr().String())
			start := time.Now()
			if tc.deadline {
				_ = c.SetReadDeadline(start.Add(delay))
			}
			s.awaitReply = true
			if n, err := s.Write(make([]byte, tc.size)); n != tc.size || err != nil {
				t.Fatalf("Write of %d bytes = %d, %v", tc.size, n, err)
			}
			if took := time.Since(start); took < delay {
				t.Errorf("Write returned after %v, before the reply (%v)", took, delay)
			}
			b := make([]byte, 2)
			_, err = io.ReadFull(s, b)
			switch {
			case tc.deadline && !errors.Is(err, os.ErrDeadlineExceeded):
				t.Errorf("Read after the wait's deadline: %v, want a timeout", err)
			case !tc.deadline && (err != nil || string(b) != "ok"):
				t.Errorf("Read = %q, %v, want the reply", b, err)
			}
		})
	}
}

// dialSockIO dials addr and returns the connection (closed at cleanup)
// and its sockIO.
func dialSockIO(t *testing.T, addr string) (net.Conn, *sockIO) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	s, err := newSockIO(c.(*net.TCPConn))
	if err != nil {
		t.Fatal(err)
	}
	return c, s
}
