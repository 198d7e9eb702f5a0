package proxy

import (
	"errors"
	"io"
	"net"
	"testing"
)

// TestPacketIOTagsSide: every error a packetIO returns names the side of
// its connection and still unwraps to the cause.
func TestPacketIOTagsSide(t *testing.T) {
	ops := []struct {
		name  string
		do    func(p *packetIO) error
		cause error
	}{
		{"read from a closed peer", func(p *packetIO) error { _, err := p.readPacket(nil, 0); return err }, io.EOF},
		{"raw read from a closed peer", func(p *packetIO) error { _, err := p.readRaw(nil); return err }, io.EOF},
		{"write to a closed peer", func(p *packetIO) error {
			if err := p.writePacket([]byte{1}); err != nil {
				return err
			}
			return p.flush()
		}, io.ErrClosedPipe},
	}
	sides := []struct {
		name string
		side side
	}{{"client", clientSide}, {"backend", backendSide}}
	for _, sd := range sides {
		for _, op := range ops {
			t.Run(sd.name+"/"+op.name, func(t *testing.T) {
				a, b := net.Pipe()
				b.Close()
				defer a.Close()
				err := op.do(newPacketIO(a, sd.side))
				var ce *clientError
				var be *backendError
				if errors.As(err, &ce) != (sd.side == clientSide) || errors.As(err, &be) != (sd.side == backendSide) {
					t.Errorf("%v (%T) is not tagged as a %s error", err, err, sd.name)
				}
				if !errors.Is(err, op.cause) {
					t.Errorf("%v does not unwrap to %v", err, op.cause)
				}
			})
		}
	}
}
