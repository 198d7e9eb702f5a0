package proxy

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// sockIO reads and writes a TCP connection's non-blocking socket with raw
// system calls, waiting in Go's network poller like net.Conn does.
//
// Why not net.Conn's Read and Write: each of their system calls enters and
// leaves the scheduler's syscall state, which on a proxy that spends its
// time in short socket calls costs more than the calls' user-space work,
// and worse, keeps the runtime's sysmon thread awake: the first system
// call after all Ps went idle wakes it (a futex), it then polls every
// 20 µs, and it hands off the P of a write that runs the receiver's TCP
// stack on loopback for longer than that to another thread. A socket call
// on a non-blocking descriptor never blocks, so the raw calls are safe;
// deadlines, Close and readiness waits still go through the poller
// (syscall.RawConn).
type sockIO struct {
	conn *net.TCPConn
	rc   syscall.RawConn
	// The current call's buffer and outcome, apart for reads and writes,
	// which may run at the same time as on a net.Conn. readFD and writeFD
	// are bound once: a closure per call would be an allocation.
	r, w        sockCall
	read, write func(fd uintptr) bool
	// awaitReply makes Write return only once the socket is readable
	// (writeAwaiting); wrote tells writeThenWait its write is done.
	awaitReply, wrote bool
	writeThenWait     func(fd uintptr) bool
}

// sockCall is one Read or Write in progress.
type sockCall struct {
	buf   []byte
	n     int
	errno syscall.Errno
}

func newSockIO(c *net.TCPConn) (*sockIO, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	s := &sockIO{conn: c, rc: rc}
	s.read, s.write, s.writeThenWait = s.readFD, s.writeFD, s.writeThenWaitFD
	return s, nil
}

func (s *sockIO) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	s.r = sockCall{buf: b}
	err := s.rc.Read(s.read)
	c := s.r
	s.r.buf = nil
	switch {
	case err != nil:
		return 0, s.opError("read", err)
	case c.errno != 0:
		return 0, s.opError("read", os.NewSyscallError("read", c.errno))
	case c.n == 0:
		return 0, io.EOF
	}
	return c.n, nil
}

// readFD makes one read(2); false asks the poller to wait until the socket
// is readable.
func (s *sockIO) readFD(fd uintptr) bool {
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&s.r.buf[0])), uintptr(len(s.r.buf)))
		switch e {
		case 0:
			s.r.n = int(n)
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		s.r.errno = e
		return true
	}
}

func (s *sockIO) Write(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	s.w = sockCall{buf: b}
	var err error
	if s.awaitReply {
		err = s.writeAwaiting()
	} else {
		err = s.rc.Write(s.write)
	}
	c := s.w
	s.w.buf = nil
	switch {
	case err != nil:
		return c.n, s.opError("write", err)
	case c.errno != 0:
		return c.n, s.opError("write", os.NewSyscallError("write", c.errno))
	}
	return c.n, nil
}

// writeFD writes the rest of the buffer; false asks the poller to wait
// until the socket is writable.
func (s *sockIO) writeFD(fd uintptr) bool {
	for s.w.n < len(s.w.buf) {
		rest := s.w.buf[s.w.n:]
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&rest[0])), uintptr(len(rest)))
		switch e {
		case 0:
			s.w.n += int(n)
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			s.w.errno = e
			return true
		}
	}
	return true
}

// writeAwaiting writes s.w inside a wait for readability, for a request
// whose reply comes on this socket: a read right after the write would
// almost always find the socket empty, a system call and a trip through
// the poller for nothing. The poller forgets readiness that came before a
// wait begins, but the reply cannot come before its request is written,
// so it is not missed. A write the socket's buffer cannot take at once
// ends as a plain Write. Once written, a failed wait (closed, deadline)
// is not the write's error: the next read meets it.
func (s *sockIO) writeAwaiting() error {
	s.wrote = false
	_ = s.rc.Read(s.writeThenWait) // fails before the write too when closed: so does rc.Write
	if s.wrote || s.w.errno != 0 {
		return nil
	}
	return s.rc.Write(s.write)
}

// writeThenWaitFD writes s.w, then asks the poller to wait until the
// socket is readable; true once it is, or when the write could not finish.
func (s *sockIO) writeThenWaitFD(fd uintptr) bool {
	if s.wrote {
		return true
	}
	if !s.writeFD(fd) || s.w.errno != 0 {
		return true
	}
	s.wrote = true
	return false
}

// opError describes a failure as net.Conn's Read and Write do (with the
// addresses), rather than as the raw call that met it.
func (s *sockIO) opError(op string, err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) {
		err = oe.Err
	}
	return &net.OpError{Op: op, Net: "tcp", Source: s.conn.LocalAddr(), Addr: s.conn.RemoteAddr(), Err: err}
}
