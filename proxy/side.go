package proxy

// side is the end of the proxy a connection faces. Each packetIO knows its
// side and tags every error it returns with it, so call sites never decide
// where an error came from.
type side uint8

const (
	clientSide  side = iota // the application's connection
	backendSide             // a session's pinned connection to the server
)

// clientError marks a failure on the client connection, as opposed to one
// on the backend connection (*backendError): the client is gone or broke
// the protocol, so nothing more is sent to it.
type clientError struct{ err error }

func (e *clientError) Error() string { return "client: " + e.err.Error() }
func (e *clientError) Unwrap() error { return e.err }

// tag wraps a non-nil err as an error of side s.
func (s side) tag(err error) error {
	switch {
	case err == nil:
		return nil
	case s == backendSide:
		return &backendError{err: err}
	default:
		return &clientError{err: err}
	}
}
