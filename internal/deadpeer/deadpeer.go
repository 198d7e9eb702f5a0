// Package deadpeer bounds how long a TCP connection to the database server
// stays open once the server's host has stopped answering: a network cut,
// a host or container that vanished, a firewall that drops packets. Such
// a connection is not refused or reset; without a bound a statement
// waiting on it waits until TCP gives up (Go's default keepalive: about
// 2.5 minutes; data never acknowledged: the kernel's retransmissions,
// about 15 minutes on Linux).
//
// Dialer's connections are closed by the kernel when the peer has
// acknowledged nothing for about the bound, whether they are idle, wait
// for an answer (keepalive probes, from half the bound on) or have data
// in flight (TCP_USER_TIMEOUT, Linux). A statement that runs long on a
// server whose host still answers is not affected: the host's kernel
// answers the probes. Exception: on Linux a server that stops reading for
// longer than the bound while the connection has data to send (its
// receive window stays closed, e.g. a LOAD DATA stream during a long
// lock wait) counts as dead too.
package deadpeer

import (
	"net"
	"time"
)

// Default is the bound used when none is configured.
const Default = 30 * time.Second

// probes is the number of keepalive probes sent from half the bound on;
// Linux closes at the bound itself (TCP_USER_TIMEOUT), elsewhere after the
// last probe goes unanswered.
const probes = 5

// Dialer returns a dialer with the given connect timeout (0: none) whose
// connections are closed once the peer has acknowledged nothing for about
// after; 0 keeps Go's and the kernel's defaults. Bounds under two seconds
// are rounded up to whole seconds for the keepalive probes.
func Dialer(timeout, after time.Duration) *net.Dialer {
	d := &net.Dialer{Timeout: timeout}
	if after <= 0 {
		return d
	}
	idle := max(time.Second, after/2)
	d.KeepAliveConfig = net.KeepAliveConfig{
		Enable:   true,
		Idle:     idle,
		Interval: max(time.Second, (after-idle)/probes),
		Count:    probes,
	}
	d.Control = userTimeout(after)
	return d
}
