package binlog

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// startNATS runs an in-process JetStream server on 127.0.0.1 (port: 0 for
// a free one), stopped at cleanup.
func startNATS(t *testing.T, dir string, port int) *natsserver.Server {
	t.Helper()
	srv, err := runNATS(dir, port)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopNATS(srv) })
	return srv
}

// runNATS starts the server of startNATS; the caller stops it.
func runNATS(dir string, port int) (*natsserver.Server, error) {
	if port == 0 {
		port = -1
	}
	srv, err := natsserver.NewServer(&natsserver.Options{
		ServerName: "hotrow-test",
		Host:       "127.0.0.1",
		Port:       port,
		JetStream:  true,
		StoreDir:   dir,
		NoLog:      true,
		NoSigs:     true,
	})
	if err != nil {
		return nil, err
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("nats server not ready")
	}
	return srv, nil
}

func stopNATS(srv *natsserver.Server) {
	srv.Shutdown()
	srv.WaitForShutdown()
}

// natsJS connects a test client to srv.
func natsJS(t *testing.T, srv *natsserver.Server) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// natsTestStream creates stream ORDERS on subject "orders" (file storage,
// one minute duplicates window) and returns a client's JetStream handle.
func natsTestStream(t *testing.T, srv *natsserver.Server) jetstream.JetStream {
	t.Helper()
	js := natsJS(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name:       "ORDERS",
		Subjects:   []string{"orders"},
		Storage:    jetstream.FileStorage,
		Duplicates: time.Minute,
	}); err != nil {
		t.Fatal(err)
	}
	return js
}

// natsStreamMsgs is the number of messages in stream ORDERS.
func natsStreamMsgs(t *testing.T, js jetstream.JetStream) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, n, err := natsStream(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// natsStreamIDs returns the ids of the stream's messages in order
// (natsStreamEvents checks each against its Nats-Msg-Id header).
func natsStreamIDs(t *testing.T, js jetstream.JetStream) []string {
	t.Helper()
	var ids []string
	for _, ev := range natsStreamEvents(t, js) {
		ids = append(ids, ev.ID)
	}
	return ids
}

func openTestNATSSink(t *testing.T, srv *natsserver.Server, subject string) (Sink, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	s, err := OpenSink(ctx, "nats:"+srv.ClientURL()+"/"+subject, SinkOptions{})
	if err == nil {
		t.Cleanup(func() { s.Close() })
	}
	return s, err
}

func sinkMsgIDs(msgs []Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID
	}
	return out
}

func TestNATSSinkDeliverAndDedup(t *testing.T) {
	srv := startNATS(t, t.TempDir(), 0)
	js := natsTestStream(t, srv)
	s, err := openTestNATSSink(t, srv, "orders")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	msgs := sinkTestMessages("b-1", "shop.inventory", 50, 3)
	if err := s.Deliver(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	if got := natsStreamIDs(t, js); strings.Join(got, " ") != strings.Join(sinkMsgIDs(msgs), " ") {
		t.Fatalf("stream holds %v, want %v", got, sinkMsgIDs(msgs))
	}
	// The consumer delivers the same batch again (its ack was lost, say):
	// the stream dedups it.
	if err := s.Deliver(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	if n := natsStreamMsgs(t, js); n != uint64(len(msgs)) {
		t.Errorf("%d messages after redelivery, want %d", n, len(msgs))
	}
	// A redelivery overlapping the next batch stores only the new ones.
	next := append(append([]Message(nil), msgs[40:]...), sinkTestMessages("b-2", "shop.inventory", 10, 3)...)
	if err := s.Deliver(ctx, next); err != nil {
		t.Fatal(err)
	}
	want := append(sinkMsgIDs(msgs), sinkMsgIDs(next[10:])...)
	if got := natsStreamIDs(t, js); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("stream holds %v, want %v", got, want)
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

func TestNATSSinkLargeBatch(t *testing.T) {
	srv := startNATS(t, t.TempDir(), 0)
	js := natsTestStream(t, srv)
	s, err := openTestNATSSink(t, srv, "orders")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	msgs := sinkTestMessages("big", "shop.inventory", 2*natsWindow+7, 5)
	if err := s.Deliver(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	if n := natsStreamMsgs(t, js); n != uint64(len(msgs)) {
		t.Errorf("%d messages, want %d", n, len(msgs))
	}
}

func TestNATSSinkNoStream(t *testing.T) {
	srv := startNATS(t, t.TempDir(), 0)
	natsTestStream(t, srv)
	_, err := openTestNATSSink(t, srv, "payments")
	if err == nil {
		t.Fatal("opened a sink on a subject no stream listens on")
	}
	if !strings.Contains(err.Error(), "does not create streams") || !strings.Contains(err.Error(), `"payments"`) {
		t.Errorf("unclear error: %v", err)
	}
}

func TestNATSSinkStreamDeleted(t *testing.T) {
	srv := startNATS(t, t.TempDir(), 0)
	js := natsTestStream(t, srv)
	s, err := openTestNATSSink(t, srv, "orders")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := js.DeleteStream(ctx, "ORDERS"); err != nil {
		t.Fatal(err)
	}
	err = s.Deliver(ctx, sinkTestMessages("b", "shop.inventory", 3, 1))
	if err == nil {
		t.Fatal("Deliver with no stream returned nil")
	}
	if !strings.Contains(err.Error(), "does not create streams") {
		t.Errorf("unclear error: %v", err)
	}
}

// TestNATSSinkServerRestart plays the consumer across an outage: with the
// server down Deliver fails (nothing acknowledged); once it is back on the
// same port and store, the retried batch arrives, once.
func TestNATSSinkServerRestart(t *testing.T) {
	dir := t.TempDir()
	srv := startNATS(t, dir, 0)
	js := natsTestStream(t, srv)
	s, err := openTestNATSSink(t, srv, "orders")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	first := sinkTestMessages("b-1", "shop.inventory", 5, 2)
	if err := s.Deliver(ctx, first); err != nil {
		t.Fatal(err)
	}

	p := srv.Addr().(*net.TCPAddr).Port
	stopNATS(srv)
	second := sinkTestMessages("b-2", "shop.inventory", 5, 2)
	start := time.Now()
	if err := s.Deliver(ctx, second); err == nil {
		t.Fatal("Deliver with the server down returned nil")
	} else {
		t.Logf("server down: %v", err)
	}
	if d := time.Since(start); d > natsAckTimeout+5*time.Second {
		t.Errorf("failing took %v", d)
	}

	srv = startNATS(t, dir, p)
	var attempts int
	for {
		attempts++
		err := s.Deliver(ctx, second)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("not delivered after %d attempts: %v", attempts, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("delivered after the restart in %d attempts", attempts)
	// The stream came back from the store, with what was stored before.
	js = natsJS(t, srv)
	want := append(sinkMsgIDs(first), sinkMsgIDs(second)...)
	if got := natsStreamIDs(t, js); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("stream holds %v, want %v", got, want)
	}
}

func TestNATSSinkSpec(t *testing.T) {
	for _, arg := range []string{"orders", "nats://127.0.0.1:4222", "nats://127.0.0.1:4222/", "/orders",
		"nats://127.0.0.1:4222/orders.*", "nats://127.0.0.1:4222/orders.>", "nats://127.0.0.1:4222/a..b"} {
		if _, _, err := parseNATSArg(arg); err == nil {
			t.Errorf("%q: no error", arg)
		}
	}
	servers, subject, err := parseNATSArg("nats://u:pw@127.0.0.1:4222,nats://127.0.0.1:4223/shop.orders")
	if err != nil || servers != "nats://u:pw@127.0.0.1:4222,nats://127.0.0.1:4223" || subject != "shop.orders" {
		t.Errorf("got %q %q %v", servers, subject, err)
	}
	if r := redactNATSServers(servers); strings.Contains(r, "pw") {
		t.Errorf("redacted: %s", r)
	}

	// Nobody listening: opening fails (quickly, on loopback).
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if s, err := OpenSink(ctx, "nats:nats://"+addr+"/orders", SinkOptions{}); err == nil {
		s.Close()
		t.Error("opened a sink to a closed port")
	}
}
