package proxy

import (
	"fmt"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
)

// forward sends the client's command to the backend and relays the
// response with relay (nil: the command has no response).
func (s *session) forward(pkt []byte, relay func() error) error {
	s.be.resetSeq()
	if err := s.be.writePacket(pkt); err != nil {
		return s.lostBackend(err)
	}
	var err error
	if relay == nil {
		err = s.be.flush()
	} else {
		err = s.be.flushAwaitingReply()
	}
	if err != nil {
		return s.lostBackend(err)
	}
	if relay == nil {
		return nil
	}
	s.client.seq = s.be.seq
	if err := relay(); err != nil {
		return err
	}
	return s.flushClient()
}

// lostBackend tells the client the backend went away (2013, as a direct
// connection would report) and returns err, a *backendError, which ends
// the session.
func (s *session) lostBackend(err error) error {
	_ = s.writeErr(toMySQLError(err))
	return err
}

// flushClient sends what the session buffered for the client.
func (s *session) flushClient() error { return s.client.flush() }

// relayed describes one logical packet relayed from backend to client.
type relayed struct {
	header  byte
	payload []byte // first protocol packet's payload; valid until the next relay
	large   bool   // the logical packet spanned several protocol packets
}

// relay copies one logical packet from the backend to the client.
func (s *session) relay() (relayed, error) {
	raw, err := s.be.readRaw(s.rawBuf)
	if err != nil {
		return relayed{}, s.lostBackendMidResponse(err)
	}
	s.rawBuf = raw.buf
	if s.holdInfile {
		// The first packet of a result: a request for a local file is
		// held back for relayResult to decide on.
		s.holdInfile = false
		if p := raw.payload(); !raw.more && len(p) > 0 && p[0] == headerLocalInfile {
			return relayed{header: headerLocalInfile, payload: p}, nil
		}
	}
	if err := s.client.writeRaw(raw); err != nil {
		return relayed{}, err
	}
	r := relayed{payload: raw.payload(), large: raw.more}
	if len(r.payload) == 0 {
		return r, fmt.Errorf("backend sent an empty packet: %w", gomysql.ErrMalformPacket)
	}
	r.header = r.payload[0]
	for raw.more {
		if raw, err = s.be.readRaw(s.conBuf); err != nil {
			return relayed{}, s.lostBackendMidResponse(err)
		}
		s.conBuf = raw.buf
		if err := s.client.writeRaw(raw); err != nil {
			return relayed{}, err
		}
	}
	return r, nil
}

// lostBackendMidResponse ends the session when the backend fails while
// its response is being relayed; a client that has heard nothing yet of
// this response gets a 2013 error.
func (s *session) lostBackendMidResponse(err error) error {
	if s.client.w.Buffered() == 0 {
		s.client.seq = s.be.seq
		return s.lostBackend(err)
	}
	return err
}

func (s *session) isEOF(r relayed) bool { return !r.large && isEOF(r.payload) }

// relayReply relays a one-packet reply (OK, ERR or EOF) and reports
// whether it was OK, noting the status flags.
func (s *session) relayReply() (bool, error) {
	r, err := s.relay()
	if err != nil {
		return false, err
	}
	switch {
	case r.header == headerOK:
		if ok, err := parseOK(r.payload); err == nil {
			s.status = ok.status
		}
		return true, nil
	case s.isEOF(r):
		s.status = eofStatus(r.payload)
	}
	return false, nil
}

func (s *session) relayReplyOnly() error {
	_, err := s.relayReply()
	return err
}

// relayUntilEOF relays packets up to and including an EOF or ERR
// (COM_FIELD_LIST, COM_STMT_FETCH).
func (s *session) relayUntilEOF() error {
	for {
		r, err := s.relay()
		if err != nil {
			return err
		}
		if r.header == headerErr && !r.large {
			return nil
		}
		if s.isEOF(r) {
			s.status = eofStatus(r.payload)
			return nil
		}
	}
}

// relayResult relays the response to COM_QUERY or COM_STMT_EXECUTE: OK,
// ERR, a LOCAL INFILE exchange or a result set, repeated while the server
// flags more results (multi-statements, stored procedures).
func (s *session) relayResult() error {
	defer func() { s.infileQuery, s.holdInfile = nil, false }()
	for {
		s.holdInfile = true
		r, err := s.relay()
		if err != nil {
			return err
		}
		switch {
		case r.header == headerOK && !r.large:
			ok, err := parseOK(r.payload)
			if err != nil {
				return fmt.Errorf("backend OK packet: %w", err)
			}
			s.status = ok.status
			if ok.status&statusMoreResults == 0 {
				return nil
			}
		case r.header == headerErr && !r.large:
			return nil
		case r.header == headerLocalInfile && !r.large:
			// At most one file per command, and only the one the
			// client's LOAD DATA LOCAL statement names.
			query := s.infileQuery
			s.infileQuery = nil
			if !localInfileAllowed(s.capability, query, string(r.payload[1:])) {
				return s.refuseInfile(string(r.payload[1:]))
			}
			if err := s.client.writeRaw(rawPacket{buf: s.rawBuf}); err != nil {
				return err
			}
			if err := s.relayInfile(); err != nil {
				return err
			}
		default:
			more, err := s.relayResultSet(r)
			if err != nil || !more {
				return err
			}
		}
	}
}

// relayResultSet relays a result set after its column-count packet and
// reports whether another result follows.
func (s *session) relayResultSet(first relayed) (bool, error) {
	cols, _, ok := lenEncInt(first.payload)
	if !ok || first.large {
		return false, fmt.Errorf("backend column count: %w", gomysql.ErrMalformPacket)
	}
	for range cols {
		if _, err := s.relay(); err != nil {
			return false, err
		}
	}
	// Column definitions end with an EOF; with a cursor (COM_STMT_EXECUTE)
	// the rows come later through COM_STMT_FETCH.
	eof, err := s.relay()
	if err != nil {
		return false, err
	}
	if !s.isEOF(eof) {
		return false, fmt.Errorf("backend result set: no EOF after columns: %w", gomysql.ErrMalformPacket)
	}
	if st := eofStatus(eof.payload); st&statusCursorExists != 0 {
		s.status = st
		return false, nil
	}
	for {
		r, err := s.relay()
		if err != nil {
			return false, err
		}
		if r.header == headerErr && !r.large {
			return false, nil
		}
		if s.isEOF(r) {
			s.status = eofStatus(r.payload)
			return s.status&statusMoreResults != 0, nil
		}
	}
}

// relayInfile passes the file a client sends for LOAD DATA LOCAL INFILE
// to the backend, packet by packet, up to the empty packet that ends it.
func (s *session) relayInfile() error {
	if err := s.flushClient(); err != nil {
		return err
	}
	s.client.seq = s.be.seq
	for {
		raw, err := s.client.readRaw(s.cmdBuf)
		if err != nil {
			return fmt.Errorf("local infile: %w", err)
		}
		s.cmdBuf = raw.buf
		if err := s.be.writeRaw(raw); err != nil {
			return err
		}
		if len(raw.payload()) == 0 {
			break
		}
	}
	if err := s.be.flush(); err != nil {
		return err
	}
	s.client.seq = s.be.seq
	return nil
}
