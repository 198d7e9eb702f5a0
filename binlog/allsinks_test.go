package binlog

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// flakyWebhook answers 500 to its first failures requests, then 200,
// recording the events of every acknowledged body (a JSON array).
type flakyWebhook struct {
	failures int

	mu       sync.Mutex
	requests int
	refused  int
	events   []Event
	bad      []string // bodies that did not decode
}

func (h *flakyWebhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.requests++
	if err != nil || h.requests <= h.failures {
		h.refused++
		http.Error(w, "down for a moment", http.StatusInternalServerError)
		return
	}
	var evs []Event
	if err := json.Unmarshal(body, &evs); err != nil {
		h.bad = append(h.bad, string(body))
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	h.events = append(h.events, evs...)
	w.WriteHeader(http.StatusOK)
}

func (h *flakyWebhook) snapshot() ([]Event, int, int, []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Event(nil), h.events...), h.requests, h.refused, append([]string(nil), h.bad...)
}

// natsStreamEvents reads stream ORDERS back with an ordered consumer,
// decoding each message into an Event and checking it against its
// Nats-Msg-Id header.
func natsStreamEvents(t *testing.T, js jetstream.JetStream) []Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, msgs, err := natsStream(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var out []Event
	for uint64(len(out)) < msgs {
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d messages of the stream", len(out), msgs)
		}
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			var ev Event
			if err := json.Unmarshal(m.Data(), &ev); err != nil {
				t.Fatalf("message %d: %v", len(out), err)
			}
			if id := m.Headers().Get(jetstream.MsgIDHeader); id != ev.ID {
				t.Errorf("message %d: header id %q, event id %q", len(out), id, ev.ID)
			}
			out = append(out, ev)
		}
		if err := batch.Error(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// natsStream is stream ORDERS and the number of messages it holds.
func natsStream(ctx context.Context, js jetstream.JetStream) (jetstream.Stream, uint64, error) {
	st, err := js.Stream(ctx, "ORDERS")
	if err != nil {
		return nil, 0, err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return nil, 0, err
	}
	return st, info.State.Msgs, nil
}

// natsStoredMsgs is the number of messages in stream ORDERS, 0 on error.
func natsStoredMsgs(js jetstream.JetStream) uint64 {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, n, _ := natsStream(ctx, js)
	return n
}

func distinctIDs(evs []Event) map[string]bool {
	ids := make(map[string]bool, len(evs))
	for _, ev := range evs {
		ids[ev.ID] = true
	}
	return ids
}

// waitSinkEvents polls read until its events hold n distinct ids, for at
// most timeout, and returns the last read.
func waitSinkEvents(t *testing.T, name string, n int, timeout time.Duration, read func() []Event) []Event {
	t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		evs := read()
		got := len(distinctIDs(evs))
		if got >= n {
			t.Logf("sink %s: %d distinct ids after waiting %v", name, got, time.Since(start).Round(time.Millisecond))
			return evs
		}
		if time.Now().After(deadline) {
			t.Fatalf("sink %s: timed out with %d distinct ids of %d", name, got, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestEverySinkGetsEveryDeduction runs one consumer with four sinks at once
// (jsonl, an http webhook that fails its first requests, NATS JetStream
// stopped and restarted during the load, Kafka) under a flash sale of
// merged deductions plus direct ones on the same hot table, and checks that
// each sink holds exactly the ledger rows and the direct changes: every id
// once or more with the same contents, no other id, quantities adding up to
// each row's change, and the four sets of ids equal.
func TestEverySinkGetsEveryDeduction(t *testing.T) {
	start := time.Now()
	f := newFeedFixture(t, "INT")
	l := newLoad(t, f, 3, 1_000_000)

	hook := &flakyWebhook{failures: 3}
	web := loopbackHTTPServer(t, hook)

	natsDir := t.TempDir()
	nsrv := startNATS(t, natsDir, 0)
	natsTestStream(t, nsrv)
	natsPort := nsrv.Addr().(*net.TCPAddr).Port
	if host := nsrv.Addr().(*net.TCPAddr).IP; !host.IsLoopback() {
		t.Fatalf("nats listens on %s", host)
	}

	kc := startKafka(t, 1)
	if !strings.HasPrefix(web.URL, "http://127.0.0.1:") {
		t.Fatalf("webhook at %s", web.URL)
	}

	f.cfg.Sinks = []string{
		"jsonl:" + f.out,
		"http:" + web.URL + "/orders",
		"nats:" + nsrv.ClientURL() + "/orders",
		"kafka:" + kafkaSpec(kc, "orders"),
	}
	_, errc := f.start(t)

	// The NATS outage: once the stream holds some events, stop the server,
	// keep it down for a while, and bring it back on the same port and
	// store, all while the load runs.
	loadDone := make(chan struct{})
	type outageResult struct {
		srv                               *natsserver.Server
		err                               error
		before                            uint64 // messages in the stream when stopped
		stoppedDuringLoad, backDuringLoad bool
	}
	outage := make(chan outageResult, 1)
	go func() {
		var res outageResult
		defer func() { outage <- res }()
		// (No t.Fatal off the test's goroutine: errors end the wait.)
		if nc, err := nats.Connect(nsrv.ClientURL()); err == nil {
			if js, err := jetstream.New(nc); err == nil {
				deadline := time.Now().Add(60 * time.Second)
				for time.Now().Before(deadline) {
					if n := natsStoredMsgs(js); n >= 100 {
						res.before = n
						break
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
			nc.Close()
		}
		select {
		case <-loadDone:
		default:
			res.stoppedDuringLoad = true
		}
		stopNATS(nsrv)
		time.Sleep(1500 * time.Millisecond) // the sink reconnects every second
		select {
		case <-loadDone:
		default:
			res.backDuringLoad = true
		}
		res.srv, res.err = runNATS(natsDir, natsPort)
	}()

	loadStart := time.Now()
	direct := l.run(t, 16, 4, 300)
	close(loadDone)
	loadTime := time.Since(loadStart)
	o := <-outage
	if o.err != nil {
		t.Fatalf("the nats server did not come back: %v", o.err)
	}
	t.Cleanup(func() { stopNATS(o.srv) })
	if !o.stoppedDuringLoad || !o.backDuringLoad {
		t.Errorf("the nats outage was not within the load (stopped during it: %v, back during it: %v): make the load longer", o.stoppedDuringLoad, o.backDuringLoad)
	}
	want := l.ledgerRows(t) + direct
	t.Logf("load took %v: %d ledger rows + %d direct changes = %d events; nats stopped with %d messages stored", loadTime, want-direct, direct, want, o.before)
	if o.before == 0 || o.before >= uint64(want) {
		t.Errorf("nats stopped with %d of %d messages stored: not mid-run", o.before, want)
	}

	js := natsJS(t, o.srv)
	const timeout = 90 * time.Second
	got := map[string][]Event{}
	waitStart := time.Now()
	got["jsonl"] = f.waitIDs(t, want)
	t.Logf("sink jsonl: all ids after waiting %v", time.Since(waitStart).Round(time.Millisecond))
	got["http"] = waitSinkEvents(t, "http", want, timeout, func() []Event {
		evs, _, _, _ := hook.snapshot()
		return evs
	})
	got["nats"] = waitSinkEvents(t, "nats", want, timeout, func() []Event {
		if natsStreamMsgs(t, js) < uint64(want) {
			return nil
		}
		return natsStreamEvents(t, js)
	})
	got["kafka"] = waitSinkEvents(t, "kafka", want, timeout, func() []Event {
		n := kafkaRecordCount(t, kc)
		if n < want {
			return nil
		}
		var evs []Event
		for _, r := range consumeKafka(t, kc, n) {
			var ev Event
			if err := json.Unmarshal(r.Value, &ev); err != nil {
				t.Fatalf("kafka record at offset %d: %v", r.Offset, err)
			}
			if id := kafkaRecordID(r); id != ev.ID {
				t.Errorf("kafka offset %d: header id %q, event id %q", r.Offset, id, ev.ID)
			}
			if string(r.Key) != ev.Table+"/"+ev.Key {
				t.Errorf("kafka offset %d: key %q for event %s", r.Offset, r.Key, ev.ID)
			}
			evs = append(evs, ev)
		}
		return evs
	})
	// Anything past the expected set would arrive right behind it: give it
	// the time to, then read every sink again.
	time.Sleep(500 * time.Millisecond)
	got["jsonl"] = readEvents(t, f.out)
	got["http"], _, _, _ = hook.snapshot()
	got["nats"] = natsStreamEvents(t, js)

	_, requests, refused, bad := hook.snapshot()
	if refused != hook.failures {
		t.Errorf("webhook refused %d requests, want %d", refused, hook.failures)
	}
	if len(bad) > 0 {
		t.Errorf("webhook bodies that are not a JSON array of events: %q", bad)
	}
	t.Logf("webhook: %d requests, %d refused", requests, refused)

	wantIDs := distinctIDs(got["jsonl"])
	names := []string{"jsonl", "http", "nats", "kafka"}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			evs := got[name]
			t.Logf("%s: %d events, %d distinct", name, len(evs), len(distinctIDs(evs)))
			l.check(t, evs, direct)
			if ids := distinctIDs(evs); !sameIDs(ids, wantIDs) {
				t.Errorf("%s: %d ids, jsonl %d; only in %s: %v; only in jsonl: %v", name, len(ids), len(wantIDs), name, idsMinus(ids, wantIDs), idsMinus(wantIDs, ids))
			}
		})
	}

	select {
	case err := <-errc:
		t.Fatalf("consumer stopped: %v", err)
	default:
	}
	t.Logf("test took %v", time.Since(start))
}

func sameIDs(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for id := range a {
		if !b[id] {
			return false
		}
	}
	return true
}

func idsMinus(a, b map[string]bool) []string {
	var out []string
	for id := range a {
		if !b[id] {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	if len(out) > 10 {
		out = append(out[:10], "...")
	}
	return out
}
