package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
)

// maxPayloadChunk is the largest payload one protocol packet carries; a
// logical packet of that length or more continues in the next packet.
const maxPayloadChunk = 1<<24 - 1

// errPacketTooLarge: a client sent more than Config.MaxPacketSize.
var errPacketTooLarge = errors.New("packet larger than max_allowed_packet")

// errSequence: a packet arrived with an unexpected sequence number.
var errSequence = errors.New("packet out of order")

// packetIO reads and writes MySQL protocol packets on one connection. Reads
// are buffered; writes are buffered until Flush, so that a whole response
// leaves in one write system call. Every error it returns is tagged with
// the connection's side (*clientError or *backendError).
type packetIO struct {
	conn net.Conn
	sock *sockIO // conn's socket, nil unless conn is a plain TCP connection
	side side
	r    *bufio.Reader
	w    *bufio.Writer
	seq  uint8
	hdr  [4]byte
}

func newPacketIO(conn net.Conn, s side) *packetIO {
	// A plain TCP connection's socket is read and written directly
	// (sockIO); TLS and other connections through their own methods.
	var rw io.ReadWriter = conn
	var sock *sockIO
	if tc, ok := conn.(*net.TCPConn); ok {
		if sio, err := newSockIO(tc); err == nil {
			rw, sock = sio, sio
		}
	}
	return &packetIO{
		conn: conn,
		sock: sock,
		side: s,
		r:    bufio.NewReaderSize(rw, 16<<10),
		w:    bufio.NewWriterSize(rw, 16<<10),
	}
}

// readPacket reads one logical packet (joining continuation packets) into
// buf[:0] and returns it. It fails with errPacketTooLarge past limit bytes
// (0: no limit) and with errSequence when the sequence number is not the
// expected one.
func (p *packetIO) readPacket(buf []byte, limit int) ([]byte, error) {
	buf = buf[:0]
	for {
		if err := p.readFull(p.hdr[:]); err != nil {
			return nil, p.side.tag(err)
		}
		n := int(p.hdr[0]) | int(p.hdr[1])<<8 | int(p.hdr[2])<<16
		if p.hdr[3] != p.seq {
			return nil, p.side.tag(fmt.Errorf("%w: got sequence %d, want %d", errSequence, p.hdr[3], p.seq))
		}
		p.seq++
		if limit > 0 && len(buf)+n > limit {
			return nil, p.side.tag(errPacketTooLarge)
		}
		start := len(buf)
		buf = slices.Grow(buf, n)[:start+n]
		if err := p.readFull(buf[start:]); err != nil {
			return nil, p.side.tag(err)
		}
		if n < maxPayloadChunk {
			return buf, nil
		}
	}
}

// readFull fills b from the reader. When the reader holds b's bytes
// already, as it does for all but the first of a response's packets, they
// are copied out directly: cheaper than io.ReadFull's calls, which remain
// for the rest.
func (p *packetIO) readFull(b []byte) error {
	if p.r.Buffered() >= len(b) {
		buffered, _ := p.r.Peek(len(b))
		copy(b, buffered)
		_, _ = p.r.Discard(len(b))
		return nil
	}
	_, err := io.ReadFull(p.r, b)
	return err
}

// writePacket buffers payload as one logical packet, splitting it into
// protocol packets as needed. Call flush to send.
func (p *packetIO) writePacket(payload []byte) error {
	for {
		n := min(len(payload), maxPayloadChunk)
		// Appended to the writer's own buffer: a local array would
		// escape through Write and cost an allocation per packet.
		hdr := append(p.w.AvailableBuffer(), byte(n), byte(n>>8), byte(n>>16), p.seq)
		p.seq++
		if _, err := p.w.Write(hdr); err != nil {
			return p.side.tag(err)
		}
		if _, err := p.w.Write(payload[:n]); err != nil {
			return p.side.tag(err)
		}
		payload = payload[n:]
		if n < maxPayloadChunk {
			return nil
		}
	}
}

// rawPacket is one protocol packet as read off the wire, header included.
type rawPacket struct {
	buf []byte // header and payload
	// more reports a payload of maxPayloadChunk bytes: the logical packet
	// continues in the next protocol packet.
	more bool
}

func (r rawPacket) payload() []byte { return r.buf[4:] }

// readRaw reads one protocol packet with its header into buf[:0], for
// forwarding it unchanged; it checks and advances the sequence number.
func (p *packetIO) readRaw(buf []byte) (rawPacket, error) {
	if cap(buf) < 4 {
		buf = make([]byte, 4, 1024)
	}
	buf = buf[:4]
	if err := p.readFull(buf); err != nil {
		return rawPacket{}, p.side.tag(err)
	}
	n := int(buf[0]) | int(buf[1])<<8 | int(buf[2])<<16
	if buf[3] != p.seq {
		return rawPacket{}, p.side.tag(fmt.Errorf("%w: got sequence %d, want %d", errSequence, buf[3], p.seq))
	}
	p.seq++
	if cap(buf) < 4+n {
		nb := make([]byte, 4+n)
		copy(nb, buf)
		buf = nb
	}
	buf = buf[:4+n]
	if err := p.readFull(buf[4:]); err != nil {
		return rawPacket{}, p.side.tag(err)
	}
	return rawPacket{buf: buf, more: n == maxPayloadChunk}, nil
}

// writeRaw buffers a packet read by readRaw on another connection. Both
// connections' sequence numbers advance in step.
func (p *packetIO) writeRaw(r rawPacket) error {
	p.seq = r.buf[3] + 1
	_, err := p.w.Write(r.buf)
	return p.side.tag(err)
}

func (p *packetIO) flush() error { return p.side.tag(p.w.Flush()) }

// flushAwaitingReply sends what is buffered, a request that gets a reply,
// and returns once the reply can be read (sockIO.writeAwaiting), unless
// bytes read earlier are still buffered.
func (p *packetIO) flushAwaitingReply() error {
	if p.sock == nil || p.r.Buffered() > 0 {
		return p.flush()
	}
	p.sock.awaitReply = true
	err := p.w.Flush()
	p.sock.awaitReply = false
	return p.side.tag(err)
}

// resetSeq starts a new command exchange.
func (p *packetIO) resetSeq() { p.seq = 0 }
