package proxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
)

// streamConn is a net.Conn that reads from a byte stream (and writes
// nowhere), for driving a packetIO with arbitrary input.
type streamConn struct {
	net.Conn // nil: only Read and Write are used
	r        io.Reader
}

func (c streamConn) Read(b []byte) (int, error)  { return c.r.Read(b) }
func (c streamConn) Write(b []byte) (int, error) { return len(b), nil }

// FuzzPacketReader feeds arbitrary byte streams to the packet reader, as a
// client or a server may send them: it never panics, never returns a
// packet over the limit, tags every error with its side, and a packet it
// returns round-trips through writePacket.
func FuzzPacketReader(f *testing.F) {
	f.Add([]byte("\x01\x00\x00\x00\x0e"), uint16(1024))                     // COM_PING
	f.Add([]byte("\x05\x00\x00\x00\x03SELEC\x01\x00\x00\x01T"), uint16(64)) // wrong sequence
	f.Add([]byte("\xff\xff\xff\x00"), uint16(16))                           // over the limit
	f.Add([]byte("\x00\x00\x00\x00\x00\x00\x00\x01"), uint16(0))            // empty packets
	f.Add([]byte("\x03\x00\x00"), uint16(1024))                             // truncated header
	f.Fuzz(func(t *testing.T, stream []byte, limit uint16) {
		for _, s := range []side{clientSide, backendSide} {
			p := newPacketIO(streamConn{r: bytes.NewReader(stream)}, s)
			for range 8 {
				pkt, err := p.readPacket(nil, int(limit))
				if err != nil {
					var ce *clientError
					var be *backendError
					if (s == clientSide) != errors.As(err, &ce) || (s == backendSide) != errors.As(err, &be) {
						t.Fatalf("side %d: error %v tagged wrongly", s, err)
					}
					break
				}
				if limit > 0 && len(pkt) > int(limit) {
					t.Fatalf("packet of %d bytes past limit %d", len(pkt), limit)
				}
				var out bytes.Buffer
				w := newPacketIO(streamConn{r: bytes.NewReader(nil)}, s)
				w.w.Reset(&out)
				w.seq = p.seq - 1
				if err := w.writePacket(pkt); err != nil || w.flush() != nil {
					t.Fatal(err)
				}
				r := newPacketIO(streamConn{r: &out}, s)
				r.seq = w.seq - 1
				again, err := r.readPacket(nil, 0)
				if err != nil || !bytes.Equal(again, pkt) {
					t.Fatalf("round trip: %q, %v; want %q", again, err, pkt)
				}
			}
			raw := newPacketIO(streamConn{r: bytes.NewReader(stream)}, s)
			for range 8 {
				pkt, err := raw.readRaw(nil)
				if err != nil {
					break
				}
				n := int(pkt.buf[0]) | int(pkt.buf[1])<<8 | int(pkt.buf[2])<<16
				if len(pkt.payload()) != n || pkt.more != (n == maxPayloadChunk) {
					t.Fatalf("raw packet: header says %d bytes, got %d", n, len(pkt.payload()))
				}
			}
		}
	})
}
