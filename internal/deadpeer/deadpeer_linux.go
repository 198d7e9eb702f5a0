package deadpeer

import (
	"strings"
	"syscall"
	"time"
)

// tcpUserTimeout is TCP_USER_TIMEOUT, the same on every Linux architecture
// (package syscall names it only for some).
const tcpUserTimeout = 0x12

// userTimeout sets TCP_USER_TIMEOUT before the connect: the kernel closes
// the connection once data it sent stays unacknowledged for after, and
// once keepalive probes stay unanswered that long (instead of counting
// probes).
func userTimeout(after time.Duration) func(network, address string, c syscall.RawConn) error {
	ms := int(after / time.Millisecond)
	return func(network, _ string, c syscall.RawConn) error {
		if !strings.HasPrefix(network, "tcp") {
			return nil // a Unix socket has no TCP options
		}
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, tcpUserTimeout, ms)
		}); err != nil {
			return err
		}
		return serr
	}
}
