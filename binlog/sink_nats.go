package binlog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// natsSink publishes events to a NATS JetStream stream
// ("nats:URL/SUBJECT", e.g. "nats:nats://127.0.0.1:4222/orders"; URL may
// be a comma-separated list of servers and carry user:password; SUBJECT is
// everything after the last "/" and names one subject, no wildcards).
//
// Each message is one NATS message on SUBJECT whose data is the event's
// JSON, with header Nats-Msg-Id = the event's id: the stream drops a
// message whose id it has already stored within its duplicates window
// (StreamConfig.Duplicates, 2 minutes by default), so a redelivered batch is
// stored once. A redelivery later than the window is stored again: past
// it, consumers of the stream dedup by the event's "id" themselves.
//
// The sink does not create streams: one must listen on SUBJECT (opening the
// sink checks, and fails saying so if none does), with the retention,
// replicas and duplicates window the operator wants.
//
// Deliver publishes the batch asynchronously, in order, on one connection
// (up to natsWindow messages in flight), and returns nil only once every
// message has a PubAck from the stream: acknowledged means stored by the
// stream (on its replicas, as the stream is configured). A publish error, an
// error ack, no ack within natsAckTimeout, a lost connection, or the
// context's end are errors; the sink does not retry itself (except the
// client's two quick retries of a publish that met no responder) and
// publishes nothing while disconnected (no reconnect buffer), so a failed
// Deliver leaves nothing queued to arrive behind the consumer's retry.
// Messages of one Deliver reach the stream in order; after a failure that
// stored some of them, the retry stores the missing ones after those, so
// within a failed-then-retried batch the stream's order may differ from the
// binlog's (each event carries its source position and commit time).
type natsSink struct {
	name    string
	subject string
	stream  string // the stream that listened on subject at open
	nc      *nats.Conn
	js      jetstream.JetStream
	log     *slog.Logger

	closeOnce sync.Once
}

const (
	// natsAckTimeout bounds the wait for one window's acks.
	natsAckTimeout = 10 * time.Second
	// natsConnectTimeout bounds connecting and the stream check at open.
	natsConnectTimeout = 10 * time.Second
	// natsWindow is how many messages may await their ack at once.
	natsWindow = 1024
)

func init() { sinkKinds["nats"] = openNATSSink }

// parseNATSArg splits "URL/SUBJECT" at the last "/".
func parseNATSArg(arg string) (servers, subject string, err error) {
	i := strings.LastIndexByte(arg, '/')
	if i < 0 {
		return "", "", errors.New("want nats:URL/SUBJECT")
	}
	servers, subject = arg[:i], arg[i+1:]
	if servers == "" || strings.HasSuffix(servers, "/") {
		return "", "", errors.New("want nats:URL/SUBJECT (no server URL)")
	}
	if subject == "" {
		return "", "", errors.New("want nats:URL/SUBJECT (no subject)")
	}
	if strings.ContainsAny(subject, " \t\r\n*>") || strings.HasPrefix(subject, ".") ||
		strings.HasSuffix(subject, ".") || strings.Contains(subject, "..") {
		return "", "", fmt.Errorf("subject %q: want one literal subject", subject)
	}
	return servers, subject, nil
}

// redactNATSServers hides the passwords of a comma-separated server list.
func redactNATSServers(servers string) string {
	parts := strings.Split(servers, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil && u.User != nil {
			parts[i] = u.Redacted()
		}
	}
	return strings.Join(parts, ",")
}

func openNATSSink(ctx context.Context, arg string, opts SinkOptions) (Sink, error) {
	servers, subject, err := parseNATSArg(arg)
	if err != nil {
		return nil, fmt.Errorf("sink nats:%s: %w", redactNATSServers(arg), err)
	}
	name := "nats:" + redactNATSServers(servers) + "/" + subject
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("sink", name)
	nc, err := nats.Connect(servers,
		nats.Name("hotrow binlog sink"),
		nats.Timeout(natsConnectTimeout),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.ReconnectBufSize(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats reconnected", "server", nc.ConnectedUrlRedacted())
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("%s: connect: %w", name, err)
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(natsAckTimeout))
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	cctx, cancel := context.WithTimeout(ctx, natsConnectTimeout)
	defer cancel()
	stream, err := js.StreamNameBySubject(cctx, subject)
	if err != nil {
		nc.Close()
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, fmt.Errorf("%s: no JetStream stream listens on subject %q; the sink does not create streams: add one whose subjects include it", name, subject)
		}
		return nil, fmt.Errorf("%s: looking up the stream of subject %q: %w", name, subject, err)
	}
	log.Debug("nats sink open", "stream", stream)
	return &natsSink{name: name, subject: subject, stream: stream, nc: nc, js: js, log: log}, nil
}

func (s *natsSink) Name() string { return s.name }

// Deliver publishes msgs and returns nil only once each has its PubAck.
func (s *natsSink) Deliver(ctx context.Context, msgs []Message) error {
	for len(msgs) > 0 {
		n := min(len(msgs), natsWindow)
		if err := s.deliverWindow(ctx, msgs[:n]); err != nil {
			return err
		}
		msgs = msgs[n:]
	}
	return nil
}

func (s *natsSink) deliverWindow(ctx context.Context, msgs []Message) error {
	if st := s.nc.Status(); st != nats.CONNECTED {
		return fmt.Errorf("%s: not connected (%s)", s.name, st)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", s.name, err)
	}
	futures := make([]jetstream.PubAckFuture, 0, len(msgs))
	for _, m := range msgs {
		msg := &nats.Msg{Subject: s.subject, Data: m.Data, Header: nats.Header{}}
		msg.Header.Set(jetstream.MsgIDHeader, m.ID)
		f, err := s.js.PublishMsgAsync(msg)
		if err != nil {
			return s.wrap(m.ID, err)
		}
		futures = append(futures, f)
	}
	timer := time.NewTimer(natsAckTimeout)
	defer timer.Stop()
	for i, f := range futures {
		select {
		case ack := <-f.Ok():
			if ack == nil {
				return fmt.Errorf("%s: message %s: empty ack", s.name, msgs[i].ID)
			}
		case err := <-f.Err():
			return s.wrap(msgs[i].ID, err)
		case <-ctx.Done():
			return fmt.Errorf("%s: waiting for the ack of message %s: %w", s.name, msgs[i].ID, ctx.Err())
		case <-timer.C:
			return fmt.Errorf("%s: no ack for message %s within %v", s.name, msgs[i].ID, natsAckTimeout)
		}
	}
	return nil
}

// wrap explains a publish error about message id.
func (s *natsSink) wrap(id string, err error) error {
	if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) {
		return fmt.Errorf("%s: message %s: no stream answered on subject %q (stream %q gone? the sink does not create streams): %w", s.name, id, s.subject, s.stream, err)
	}
	return fmt.Errorf("%s: message %s: %w", s.name, id, err)
}

// Close closes the connection; it is idempotent.
func (s *natsSink) Close() error {
	s.closeOnce.Do(s.nc.Close)
	return nil
}
