package binlog

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// startKafka runs an in-process fake Kafka cluster (it listens on
// 127.0.0.1, random ports) with topic "orders" of the given partitions.
func startKafka(t *testing.T, partitions int32) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, "orders"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	for _, a := range c.ListenAddrs() {
		if !strings.HasPrefix(a, "127.0.0.1:") {
			t.Fatalf("fake cluster listens on %s", a)
		}
	}
	return c
}

// restartKafka starts a fresh fake cluster (empty, topic "orders" of one
// partition) on the 127.0.0.1 port of one that was closed.
func restartKafka(t *testing.T, port string) *kfake.Cluster {
	t.Helper()
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(p), kfake.SeedTopics(1, "orders"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func kafkaSpec(c *kfake.Cluster, topic string) string {
	return strings.Join(c.ListenAddrs(), ",") + "/" + topic
}

func openTestKafkaSink(t *testing.T, c *kfake.Cluster, deliveryTimeout time.Duration) *kafkaSink {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := newKafkaSink(ctx, kafkaSpec(c, "orders"), SinkOptions{}, deliveryTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// consumeKafka reads records of "orders" from the start until it has n of
// them (or fails the test after a while).
func consumeKafka(t *testing.T, c *kfake.Cluster, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(c.ListenAddrs()...),
		kgo.ConsumeTopics("orders"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for len(recs) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d records, want %d", len(recs), n)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		recs = append(recs, fs.Records()...)
	}
	return recs
}

func kafkaRecordID(r *kgo.Record) string {
	for _, h := range r.Headers {
		if h.Key == "id" {
			return string(h.Value)
		}
	}
	return ""
}

// checkKafkaRecords checks that recs hold every message of want, each with
// its key, value and id header, that each key stayed in one partition, and
// that per key the first occurrences come in want's order. It returns how
// many records were duplicates.
func checkKafkaRecords(t *testing.T, recs []*kgo.Record, want []Message) (dups int) {
	t.Helper()
	byID := make(map[string]Message, len(want))
	for _, m := range want {
		byID[m.ID] = m
	}
	seen := map[string]bool{}
	partition := map[string]int32{}
	order := map[string][]string{} // key -> ids, first occurrences, as stored
	// Records of one partition come in offset order from the consumer;
	// keys never span partitions (checked), so per key this is the
	// stored order.
	for _, r := range recs {
		id := kafkaRecordID(r)
		m, ok := byID[id]
		if !ok {
			t.Errorf("unexpected record id %q", id)
			continue
		}
		if string(r.Key) != m.Key || !bytes.Equal(r.Value, m.Data) {
			t.Errorf("record %s: key %q value %s, want %q %s", id, r.Key, r.Value, m.Key, m.Data)
		}
		if p, ok := partition[m.Key]; ok && p != r.Partition {
			t.Errorf("key %s in partitions %d and %d", m.Key, p, r.Partition)
		}
		partition[m.Key] = r.Partition
		if seen[id] {
			dups++
			continue
		}
		seen[id] = true
		order[m.Key] = append(order[m.Key], id)
	}
	wantOrder := map[string][]string{}
	for _, m := range want {
		if !seen[m.ID] {
			t.Errorf("message %s missing", m.ID)
		}
		wantOrder[m.Key] = append(wantOrder[m.Key], m.ID)
	}
	for k, ids := range wantOrder {
		if strings.Join(order[k], " ") != strings.Join(ids, " ") {
			t.Errorf("key %s: stored order %v, want %v", k, order[k], ids)
		}
	}
	return dups
}

func TestKafkaSinkDeliverOrderPerKey(t *testing.T) {
	c := startKafka(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := OpenSink(ctx, "kafka:"+kafkaSpec(c, "orders"), SinkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	msgs := sinkTestMessages("b", "shop.inventory", 200, 7)
	for i := 0; i < len(msgs); i += 50 {
		if err := s.Deliver(ctx, msgs[i:i+50]); err != nil {
			t.Fatal(err)
		}
	}
	recs := consumeKafka(t, c, len(msgs))
	if dups := checkKafkaRecords(t, recs, msgs); dups != 0 {
		t.Errorf("%d duplicates without a failure", dups)
	}
	parts := map[int32]bool{}
	for _, r := range recs {
		parts[r.Partition] = true
	}
	if len(parts) < 2 {
		t.Errorf("7 keys all in %d partition(s) of 3", len(parts))
	}

	if err := s.Close(); err != nil {
		t.Error(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := s.Deliver(ctx, msgs[:1]); err == nil {
		t.Error("Deliver after Close returned nil")
	}
}

// TestKafkaSinkProduceErrorThenRetry plays the consumer: the brokers
// refuse the first produce requests, Deliver fails and is retried with the
// same messages until it succeeds; every message is then in the topic, in
// order per key (duplicates of what was acknowledged before allowed).
func TestKafkaSinkProduceErrorThenRetry(t *testing.T) {
	c := startKafka(t, 3)
	s := openTestKafkaSink(t, c, 5*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	first := sinkTestMessages("b-1", "shop.inventory", 30, 5)
	if err := s.Deliver(ctx, first); err != nil {
		t.Fatal(err)
	}
	// Partition 0 refuses two produce requests; the others take theirs,
	// so the retries write those again.
	h := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "orders", Partitions: []int32{0}, Err: kerr.PolicyViolation, Count: 2})
	defer h.Remove()

	second := sinkTestMessages("b-2", "shop.inventory", 30, 5)
	var failures int
	for {
		err := s.Deliver(ctx, second)
		if err == nil {
			break
		}
		failures++
		if !errors.Is(err, kerr.PolicyViolation) {
			t.Logf("error: %v", err)
		}
		if failures > 20 || ctx.Err() != nil {
			t.Fatalf("not delivered after %d attempts: %v", failures, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if failures == 0 {
		t.Fatal("Deliver succeeded through the faults")
	}
	t.Logf("delivered after %d failures", failures)

	all := append(append([]Message(nil), first...), second...)
	// Wait for at least every message; duplicates may follow.
	recs := consumeKafka(t, c, len(all))
	if n := kafkaRecordCount(t, c); n > len(recs) {
		recs = consumeKafka(t, c, n)
	}
	dups := checkKafkaRecords(t, recs, all)
	t.Logf("%d records, %d duplicates", len(recs), dups)
	if dups == 0 {
		t.Error("no duplicates: the fault did not fail a batch partially")
	}
}

// deliverThroughFaults calls Deliver until it succeeds, at most 21 times,
// and returns how often it failed.
func deliverThroughFaults(ctx context.Context, t *testing.T, s *kafkaSink, msgs []Message) (failures int) {
	t.Helper()
	for {
		err := s.Deliver(ctx, msgs)
		if err == nil {
			return failures
		}
		failures++
		if failures > 20 || ctx.Err() != nil {
			t.Fatalf("not delivered after %d attempts: %v", failures, err)
		}
	}
}

// kafkaRecordCount is the number of records in "orders" (sum of the
// partitions' high watermarks).
func kafkaRecordCount(t *testing.T, c *kfake.Cluster) int {
	t.Helper()
	var n int64
	for _, p := range c.PartitionInfos("orders") {
		n += p.HighWatermark
	}
	return int(n)
}

func TestKafkaSinkBrokerDown(t *testing.T) {
	c := startKafka(t, 1)
	s := openTestKafkaSink(t, c, 2*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Deliver(ctx, sinkTestMessages("b-1", "shop.inventory", 3, 1)); err != nil {
		t.Fatal(err)
	}
	// (ListenAddrs blocks on a closed cluster: ask before.)
	port := strings.TrimPrefix(c.ListenAddrs()[0], "127.0.0.1:")
	c.Close()
	start := time.Now()
	err := s.Deliver(ctx, sinkTestMessages("b-2", "shop.inventory", 3, 1))
	if err == nil {
		t.Fatal("Deliver with the broker down returned nil")
	}
	t.Logf("broker down: %v (after %v)", err, time.Since(start))
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("failing took %v", d)
	}

	// A broker back on the same address: the retried batch arrives.
	back := restartKafka(t, port)
	second := sinkTestMessages("b-2", "shop.inventory", 3, 1)
	var attempts int
	for {
		attempts++
		err := s.Deliver(ctx, second)
		if err == nil {
			break
		}
		if attempts == 10 || ctx.Err() != nil {
			t.Fatalf("not delivered after %d attempts: %v", attempts, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("delivered after the restart in %d attempts", attempts)
	checkKafkaRecords(t, consumeKafka(t, back, len(second)), second)

	// With a long delivery timeout, the context's deadline bounds Deliver.
	c2 := startKafka(t, 1)
	s2 := openTestKafkaSink(t, c2, time.Minute)
	c2.Close()
	dctx, dcancel := context.WithTimeout(ctx, 2*time.Second)
	defer dcancel()
	start = time.Now()
	if err := s2.Deliver(dctx, sinkTestMessages("b-3", "shop.inventory", 3, 1)); err == nil {
		t.Fatal("Deliver with the broker down returned nil")
	} else {
		t.Logf("broker down, context deadline: %v (after %v)", err, time.Since(start))
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("failing took %v", d)
	}
}

func TestKafkaSinkNoTopic(t *testing.T) {
	c := startKafka(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := OpenSink(ctx, "kafka:"+kafkaSpec(c, "payments"), SinkOptions{})
	if err == nil {
		t.Fatal("opened a sink on a missing topic")
	}
	if !strings.Contains(err.Error(), "does not create topics") || !strings.Contains(err.Error(), `"payments"`) {
		t.Errorf("unclear error: %v", err)
	}
	if c.TopicInfo("payments") != nil {
		t.Error("opening the sink created the topic")
	}
}

func TestKafkaSinkSpec(t *testing.T) {
	for _, arg := range []string{"orders", "127.0.0.1:9092", "127.0.0.1:9092/", "/orders", "127.0.0.1:9092,/orders",
		"kafka://127.0.0.1:9092/orders", "127.0.0.1:9092/or ders", "127.0.0.1:9092/a/b", "127.0.0.1:9092/.."} {
		if _, _, err := parseKafkaArg(arg); err == nil {
			t.Errorf("%q: no error", arg)
		}
	}
	brokers, topic, err := parseKafkaArg("127.0.0.1:9092, 127.0.0.1:9093/shop.orders_v-1")
	if err != nil || strings.Join(brokers, " ") != "127.0.0.1:9092 127.0.0.1:9093" || topic != "shop.orders_v-1" {
		t.Errorf("got %q %q %v", brokers, topic, err)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if s, err := OpenSink(ctx, "kafka:"+addr+"/orders", SinkOptions{}); err == nil {
		s.Close()
		t.Error("opened a sink to a closed port")
	}
}

// TestKafkaSinkChunks delivers a batch larger than a chunk, first through
// faults on one partition (consumer-style retries), and checks that the
// chunks went as separate produce requests and that per key the topic
// holds the messages in order.
func TestKafkaSinkChunks(t *testing.T) {
	c := startKafka(t, 3)
	s := openTestKafkaSink(t, c, 10*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	msgs := sinkTestMessages("big", "shop.inventory", 2000, 11)
	pad := strings.Repeat("x", 400)
	var total int
	for i := range msgs {
		// Pad each event (a row image), keeping it valid JSON.
		msgs[i].Data = append(msgs[i].Data[:len(msgs[i].Data)-1], []byte(`,"after":{"note":"`+pad+`"}}`)...)
		total += len(msgs[i].Data)
	}
	if total < 2*kafkaChunkBytes {
		t.Fatalf("batch of %d bytes is not over two chunks", total)
	}
	requests := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "orders", Observe: true, Count: -1})
	defer requests.Remove()
	h := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "orders", Partitions: []int32{1}, Err: kerr.PolicyViolation, Count: 3})
	defer h.Remove()

	failures := deliverThroughFaults(ctx, t, s, msgs)
	if failures == 0 {
		t.Error("Deliver succeeded through the faults")
	}
	// Each failed attempt stopped at its first chunk's request; the last
	// one sent a request per chunk.
	if n := requests.Hits() - failures; n < 3 {
		t.Errorf("%d produce requests for a batch of over two chunks", n)
	}
	recs := consumeKafka(t, c, kafkaRecordCount(t, c))
	dups := checkKafkaRecords(t, recs, msgs)
	t.Logf("%d failures, %d produce requests, %d records, %d duplicates", failures, requests.Hits(), len(recs), dups)
}

// TestKafkaSinkFaultWhileLearningPartitions delivers through a refused
// produce request with a client that learns the topic's partitions only
// once Deliver has produced and is flushing (a new sink, or one whose
// client was replaced after a failure): the records of one partition must
// still go as one batch, or the refusal of a first part would let the
// rest be written ahead of it (what made TestKafkaSinkProduceErrorThenRetry
// fail now and then, on its retries).
func TestKafkaSinkFaultWhileLearningPartitions(t *testing.T) {
	c := startKafka(t, 3)
	s := openTestKafkaSink(t, c, 10*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// Hold the client's first metadata request a while: Deliver buffers
	// the chunk for the unknown topic and flushes before the partitions
	// are known.
	c.ControlKey(int16(kmsg.Metadata), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.DropControl()
		c.SleepControl(func() { time.Sleep(200 * time.Millisecond) })
		return nil, nil, false
	})
	h := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "orders", Partitions: []int32{0}, Err: kerr.PolicyViolation})
	defer h.Remove()

	// Many small messages: the client takes a while to partition them.
	msgs := make([]Message, kafkaChunkRecords)
	for i := range msgs {
		id := "b:" + strconv.Itoa(i)
		msgs[i] = Message{ID: id, Key: "shop.inventory/sku-" + strconv.Itoa(i%7), Data: []byte(`"` + id + `"`)}
	}
	failures := deliverThroughFaults(ctx, t, s, msgs)
	if failures == 0 {
		t.Fatal("Deliver succeeded through the fault")
	}
	recs := consumeKafka(t, c, kafkaRecordCount(t, c))
	dups := checkKafkaRecords(t, recs, msgs)
	t.Logf("%d failures, %d records, %d duplicates", failures, len(recs), dups)
}
