//go:build !linux

package deadpeer

import (
	"syscall"
	"time"
)

// userTimeout is Linux only; elsewhere the keepalive probes alone bound
// an idle or waiting connection.
func userTimeout(time.Duration) func(network, address string, c syscall.RawConn) error {
	return nil
}
