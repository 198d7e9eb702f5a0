package binlog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// kafkaSink produces events to a Kafka topic ("kafka:BROKERS/TOPIC",
// BROKERS being comma-separated host:port seeds, e.g.
// "kafka:127.0.0.1:9092,127.0.0.1:9093/orders").
//
// Each message is one record: key = Message.Key (table + "/" + key), value =
// the event's JSON, header "id" = the event's id. The default partitioner
// hashes the key, so one row's (one SKU's) events all go to one partition,
// where Kafka keeps them in the order produced.
//
// The producer is idempotent (franz-go's default) and waits for all in-sync
// replicas (acks=all). Deliver cuts the batch into chunks of at most
// kafkaChunkRecords records and kafkaChunkBytes bytes, small enough that a
// chunk's records for one partition make one record batch (the client
// flushes by hand, ProducerBatchMaxBytes being 1 MB); it produces a chunk,
// flushes it once every record is buffered in its partition (see
// deliverChunk) and waits for every record's ack before the next, and returns
// nil only once every record has been acknowledged so, i.e. written to the
// partition's in-sync replicas (as many as the topic's min.insync.replicas
// demands). Any record's failure, the context's end, or a chunk not being
// acknowledged within deliveryTimeout (kafkaDeliveryTimeout; the client
// retries internally until then) make Deliver fail. Deliver bounds that wait
// itself: with a broker gone, franz-go's idempotent producer may hold
// records it cannot yet safely fail, ignoring their timeout and context.
// After any failure the sink closes its client, abandoning whatever it still
// held, and makes a new one (a new producer id) for the next Deliver; it
// waits (up to kafkaCloseTimeout) for the old one to close, so no record of
// a failed Deliver is written behind the consumer's retry.
//
// What a failed Deliver leaves in the topic is thus the chunks before the
// failed one, and of that one whole partitions' batches (a broker appends a
// batch entirely or not at all): per key, a prefix of the messages in
// order. Idempotence only dedups the client's own internal retries, so the
// consumer's redelivery writes that prefix a second time. Delivery is
// at-least-once, per key the first occurrences are in binlog order, and
// readers dedup by the "id" header. A message too large for one batch
// (about 1 MB, or the topic's max.message.bytes) fails every time.
//
// The sink does not create topics: opening it checks that TOPIC exists
// (without asking the broker to auto-create it) and fails saying so if not.
type kafkaSink struct {
	name    string
	topic   string
	kopts   []kgo.Opt // to make a client again after a failure
	timeout time.Duration
	log     *slog.Logger

	mu     sync.Mutex
	cl     *kgo.Client
	closed bool
}

const (
	// kafkaDeliveryTimeout bounds one Deliver's wait for its acks, the
	// client's internal retries included.
	kafkaDeliveryTimeout = 30 * time.Second
	// kafkaOpenTimeout bounds the topic check at open.
	kafkaOpenTimeout = 15 * time.Second
	// kafkaCloseTimeout bounds the wait for a failed client to close.
	kafkaCloseTimeout = 10 * time.Second
	// kafkaChunkRecords and kafkaChunkBytes bound one chunk of a Deliver:
	// its records for one partition must fit in one record batch.
	kafkaChunkRecords = 4096
	kafkaChunkBytes   = 512 << 10
	// kafkaRecordOverhead is a generous estimate of a record's bytes in a
	// batch beyond its key, value and header.
	kafkaRecordOverhead = 32
)

func init() { sinkKinds["kafka"] = openKafkaSink }

func openKafkaSink(ctx context.Context, arg string, opts SinkOptions) (Sink, error) {
	return newKafkaSink(ctx, arg, opts, kafkaDeliveryTimeout)
}

// parseKafkaArg splits "BROKERS/TOPIC".
func parseKafkaArg(arg string) (brokers []string, topic string, err error) {
	list, topic, ok := strings.Cut(arg, "/")
	if !ok || list == "" || topic == "" {
		return nil, "", errors.New("want kafka:BROKERS/TOPIC")
	}
	for _, b := range strings.Split(list, ",") {
		b = strings.TrimSpace(b)
		if b == "" || strings.Contains(b, "://") {
			return nil, "", fmt.Errorf("broker %q: want host:port", b)
		}
		brokers = append(brokers, b)
	}
	if len(topic) > 249 || topic == "." || topic == ".." {
		return nil, "", fmt.Errorf("topic %q: not a valid topic name", topic)
	}
	for _, r := range topic {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return nil, "", fmt.Errorf("topic %q: not a valid topic name (letters, digits, '.', '_', '-')", topic)
		}
	}
	return brokers, topic, nil
}

func newKafkaSink(ctx context.Context, arg string, opts SinkOptions, deliveryTimeout time.Duration) (*kafkaSink, error) {
	brokers, topic, err := parseKafkaArg(arg)
	if err != nil {
		return nil, fmt.Errorf("sink kafka:%s: %w", arg, err)
	}
	name := "kafka:" + arg
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	kopts := []kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.ClientID("hotrow"),
		kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordDeliveryTimeout(deliveryTimeout),
		kgo.ProduceRequestTimeout(min(deliveryTimeout, 10*time.Second)),
		kgo.ManualFlushing(),
		kgo.MaxBufferedRecords(2 * kafkaChunkRecords),
		kgo.WithHooks(kafkaPartitionedHook{}),
	}
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	s := &kafkaSink{name: name, topic: topic, kopts: kopts, timeout: deliveryTimeout, cl: cl, log: log.With("sink", name)}
	cctx, cancel := context.WithTimeout(ctx, kafkaOpenTimeout)
	defer cancel()
	if err := s.checkTopic(cctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// checkTopic asks the cluster for the topic's metadata, without creating it.
func (s *kafkaSink) checkTopic(ctx context.Context) error {
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(s.topic)
	req.Topics = append(req.Topics, rt)
	req.AllowAutoTopicCreation = false
	resp, err := req.RequestWith(ctx, s.client())
	if err != nil {
		return fmt.Errorf("%s: asking the brokers about topic %q: %w", s.name, s.topic, err)
	}
	if len(resp.Topics) != 1 {
		return fmt.Errorf("%s: metadata answer has %d topics, want 1", s.name, len(resp.Topics))
	}
	t := resp.Topics[0]
	if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
		if errors.Is(err, kerr.UnknownTopicOrPartition) {
			return fmt.Errorf("%s: topic %q does not exist; the sink does not create topics: create it (partitions, replication, min.insync.replicas as wanted)", s.name, s.topic)
		}
		return fmt.Errorf("%s: topic %q: %w", s.name, s.topic, err)
	}
	if len(t.Partitions) == 0 {
		return fmt.Errorf("%s: topic %q has no partitions", s.name, s.topic)
	}
	s.log.Debug("kafka sink open", "partitions", len(t.Partitions))
	return nil
}

func (s *kafkaSink) Name() string { return s.name }

// client is the current client (nil once closed).
func (s *kafkaSink) client() *kgo.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cl
}

// Deliver produces msgs, chunk by chunk, and returns nil only once each
// record is acknowledged.
func (s *kafkaSink) Deliver(ctx context.Context, msgs []Message) error {
	cl := s.client()
	if cl == nil {
		return fmt.Errorf("%s: closed", s.name)
	}
	for done := 0; done < len(msgs); {
		n, size := 0, 0
		for done+n < len(msgs) && n < kafkaChunkRecords {
			m := msgs[done+n]
			sz := len(m.Key) + len(m.Data) + len("id") + len(m.ID) + kafkaRecordOverhead
			if n > 0 && size+sz > kafkaChunkBytes {
				break
			}
			n, size = n+1, size+sz
		}
		if err := s.deliverChunk(ctx, cl, msgs[done:done+n]); err != nil {
			return fmt.Errorf("%s: %d of %d messages acknowledged, then %w", s.name, done, len(msgs), err)
		}
		done += n
	}
	return nil
}

// deliverChunk produces msgs, flushes them and waits for their acks.
func (s *kafkaSink) deliverChunk(ctx context.Context, cl *kgo.Client, msgs []Message) error {
	// The records' context: franz-go fails records whose context ended
	// when it safely can; the wait below does not rely on it.
	pctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	type result struct {
		i   int
		err error
	}
	recs := make([]*kgo.Record, len(msgs))
	chunk := &kafkaChunk{pending: make(map[*kgo.Record]struct{}, len(msgs)), settled: make(chan struct{})}
	for i, m := range msgs {
		recs[i] = &kgo.Record{
			Topic:   s.topic,
			Key:     []byte(m.Key),
			Value:   m.Data,
			Headers: []kgo.RecordHeader{{Key: "id", Value: []byte(m.ID)}},
		}
		chunk.pending[recs[i]] = struct{}{}
	}
	results := make(chan result, len(msgs)) // promises never block
	cctx := context.WithValue(pctx, kafkaChunkKey{}, chunk)
	for i, rec := range recs {
		cl.Produce(cctx, rec, func(r *kgo.Record, err error) {
			chunk.settle(r) // failed without being buffered, perhaps
			results <- result{i, err}
		})
	}
	timedOut := func(state string) error {
		err := pctx.Err()
		if ctx.Err() == nil {
			err = fmt.Errorf("within %v: %w", s.timeout, err)
		} else {
			err = fmt.Errorf("when the context ended: %w", err)
		}
		s.renew(cl, err)
		return fmt.Errorf("a chunk of %d records: %s %w", len(msgs), state, err)
	}
	// A client that does not know the topic's partitions yet (a new sink,
	// or the client made after a failure) holds the records until it
	// learns them, then moves them to their partitions one by one; a
	// flush meanwhile would send a partition's records in several
	// batches. If the broker then refused the first one, franz-go would
	// fail only the records it held at that moment and write the rest
	// under a bumped producer epoch: a key's later events ahead of its
	// earlier ones. So flush only once every record is buffered (or failed).
	select {
	case <-chunk.settled:
	case <-pctx.Done():
		return timedOut("not all buffered in their partitions")
	}
	// Flush sends the chunk: per partition one batch. Its error can only
	// be the context's, which the loop below reports.
	_ = cl.Flush(pctx)
	firstFailed, failed := len(msgs), 0
	var firstErr error
	for n := 0; n < len(msgs); n++ {
		var r result
		select {
		case r = <-results:
		case <-pctx.Done():
			return timedOut(fmt.Sprintf("%d acknowledged, %d failed, the rest not acknowledged", n-failed, failed))
		}
		if r.err != nil {
			failed++
			if r.i < firstFailed {
				firstFailed, firstErr = r.i, r.err
			}
		}
	}
	if failed == 0 {
		return nil
	}
	s.renew(cl, firstErr)
	return fmt.Errorf("a chunk of %d records: %d not acknowledged, first message %s: %w", len(msgs), failed, msgs[firstFailed].ID, firstErr)
}

// kafkaChunk tracks a chunk's records until each is buffered in its
// partition or finished.
type kafkaChunk struct {
	mu      sync.Mutex
	pending map[*kgo.Record]struct{}
	settled chan struct{} // closed once pending is empty
}

// settle takes r off the chunk's pending records; calling it again is a
// no-op.
func (c *kafkaChunk) settle(r *kgo.Record) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.pending[r]; !ok {
		return
	}
	delete(c.pending, r)
	if len(c.pending) == 0 {
		close(c.settled)
	}
}

// kafkaChunkKey is the context key of a record's *kafkaChunk.
type kafkaChunkKey struct{}

// kafkaPartitionedHook settles each record the client has buffered in its
// partition (franz-go calls it under the partition's lock, once the record
// is in a batch).
type kafkaPartitionedHook struct{}

func (kafkaPartitionedHook) OnProduceRecordPartitioned(r *kgo.Record, _ int32) {
	if c, ok := r.Context.Value(kafkaChunkKey{}).(*kafkaChunk); ok {
		c.settle(r)
	}
}

// renew replaces the failed client cl with a new one and closes cl, waiting
// (bounded) so that nothing it held can be written after Deliver returns.
func (s *kafkaSink) renew(cl *kgo.Client, why error) {
	s.mu.Lock()
	if s.cl == cl && !s.closed {
		next, err := kgo.NewClient(s.kopts...)
		if err != nil {
			// The options were good at open; keep the old client.
			s.log.Error("kafka sink: new client", "err", err)
			s.mu.Unlock()
			return
		}
		s.cl = next
	}
	s.mu.Unlock()
	s.log.Warn("kafka sink: delivery failed, client replaced", "err", why)
	closeKafkaClient(cl, s.log)
}

// closeKafkaClient closes cl, waiting at most kafkaCloseTimeout.
func closeKafkaClient(cl *kgo.Client, log *slog.Logger) {
	done := make(chan struct{})
	go func() {
		cl.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(kafkaCloseTimeout):
		log.Warn("kafka sink: client still closing", "after", kafkaCloseTimeout)
	}
}

// Close closes the client (records still buffered fail); it is idempotent.
func (s *kafkaSink) Close() error {
	s.mu.Lock()
	cl := s.cl
	s.cl, s.closed = nil, true
	s.mu.Unlock()
	if cl != nil {
		closeKafkaClient(cl, s.log)
	}
	return nil
}
