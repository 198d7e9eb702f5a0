package binlog

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
)

// Sink delivers messages downstream. The consumer calls Deliver from one
// goroutine at a time per sink, with messages in binlog order.
type Sink interface {
	// Name identifies the sink in logs and metrics, e.g. "jsonl:/tmp/o.jsonl".
	Name() string
	// Deliver sends msgs in order and returns nil only once the destination
	// has acknowledged every one of them durably. After an error any subset
	// may have arrived: the consumer delivers the same messages (same ids)
	// again, with backoff.
	Deliver(ctx context.Context, msgs []Message) error
	// Close releases the sink's resources; it is idempotent.
	Close() error
}

// SinkOptions are the settings shared by every kind of sink.
type SinkOptions struct {
	Logger *slog.Logger
	// WebhookSecret signs http sinks' requests (Standard Webhooks,
	// HMAC-SHA256); empty: unsigned.
	WebhookSecret []byte
}

// sinkFactory opens a sink from the part of its spec after "kind:".
type sinkFactory func(ctx context.Context, arg string, opts SinkOptions) (Sink, error)

// sinkKinds maps a spec's kind to its factory; each sink's file registers
// itself in init.
var sinkKinds = map[string]sinkFactory{}

// OpenSink opens a sink from its spec: "stdout", "jsonl:PATH", "http:URL",
// "nats:URL/SUBJECT" or "kafka:BROKERS/TOPIC".
func OpenSink(ctx context.Context, spec string, opts SinkOptions) (Sink, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	kind, arg, _ := strings.Cut(spec, ":")
	f, ok := sinkKinds[kind]
	if !ok {
		kinds := make([]string, 0, len(sinkKinds))
		for k := range sinkKinds {
			kinds = append(kinds, k)
		}
		sort.Strings(kinds)
		return nil, fmt.Errorf("sink %q: unknown kind %q (want one of %s)", spec, kind, strings.Join(kinds, ", "))
	}
	return f(ctx, arg, opts)
}
