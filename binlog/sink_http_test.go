package binlog

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// sinkTestMessages makes n messages of events on table t, keys cycling over
// nkeys keys, ids prefix:0 .. prefix:n-1.
func sinkTestMessages(prefix, table string, n, nkeys int) []Message {
	msgs := make([]Message, n)
	for i := range msgs {
		ev := Event{
			ID:          fmt.Sprintf("%s:%d", prefix, i),
			Kind:        KindOrder,
			Table:       table,
			Key:         fmt.Sprintf("sku-%d", i%nkeys),
			Quantity:    "1",
			StockAfter:  json.Number(strconv.Itoa(1000 - i)),
			CommittedAt: int64(1_700_000_000_000_000 + i),
			Source:      Source{File: "binlog.000001", Pos: uint32(4 + i), ServerID: 1},
		}
		data, err := json.Marshal(ev)
		if err != nil {
			panic(err)
		}
		msgs[i] = Message{ID: ev.ID, Key: ev.Table + "/" + ev.Key, Data: data, Committed: time.UnixMicro(ev.CommittedAt)}
	}
	return msgs
}

// loopbackHTTPServer is an httptest server listening on 127.0.0.1 only.
func loopbackHTTPServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &httptest.Server{Listener: l, Config: &http.Server{Handler: h}}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// verifyStandardWebhook checks a request as a Standard Webhooks receiver
// does, written from the spec rather than from the sink: secret "whsec_" +
// base64 key, signed content "id.timestamp.body", HMAC-SHA256, header a
// space-separated list of "v1,<base64>", timestamp within 5 minutes.
func verifyStandardWebhook(secret string, h http.Header, body []byte, now time.Time) error {
	id, ts, sigs := h.Get("Webhook-Id"), h.Get("Webhook-Timestamp"), h.Get("Webhook-Signature")
	if id == "" || ts == "" || sigs == "" {
		return errors.New("missing required headers")
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("bad timestamp %q", ts)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return fmt.Errorf("timestamp %s too far from now", ts)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return err
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "." + string(body)))
	want := mac.Sum(nil)
	for _, s := range strings.Fields(sigs) {
		version, sig, ok := strings.Cut(s, ",")
		if !ok || version != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(sig)
		if err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return errors.New("no matching signature")
}

type webhookCall struct {
	header http.Header
	body   []byte
}

// webhookRecorder records the requests it gets and answers with status(n) for
// the n-th (from 0).
type webhookRecorder struct {
	mu     sync.Mutex
	calls  []webhookCall
	status func(n int) int
}

func (r *webhookRecorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	n := len(r.calls)
	r.calls = append(r.calls, webhookCall{req.Header.Clone(), body})
	r.mu.Unlock()
	code := http.StatusOK
	if r.status != nil {
		code = r.status(n)
	}
	if code >= 300 && code < 400 {
		w.Header().Set("Location", "/elsewhere")
	}
	w.WriteHeader(code)
	fmt.Fprintf(w, "answer %d", n)
}

func (r *webhookRecorder) Calls() []webhookCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]webhookCall(nil), r.calls...)
}

func openTestHTTPSink(t *testing.T, url string, secret []byte) *httpSink {
	t.Helper()
	s, err := OpenSink(context.Background(), "http:"+url, SinkOptions{WebhookSecret: secret})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s.(*httpSink)
}

func TestHTTPSinkSignedBatch(t *testing.T) {
	key := []byte("a key of some thirty-two bytes!!")
	whsec := "whsec_" + base64.StdEncoding.EncodeToString(key)
	msgs := sinkTestMessages("b-1", "shop.inventory", 5, 2)
	// Both forms of the secret give a signature the receiver accepts.
	for _, secret := range [][]byte{[]byte(whsec), key} {
		rec := &webhookRecorder{}
		srv := loopbackHTTPServer(t, rec)
		s := openTestHTTPSink(t, srv.URL+"/hook", secret)
		if err := s.Deliver(context.Background(), msgs); err != nil {
			t.Fatal(err)
		}
		calls := rec.Calls()
		if len(calls) != 1 {
			t.Fatalf("%d requests, want one per Deliver", len(calls))
		}
		c := calls[0]
		if err := verifyStandardWebhook(whsec, c.header, c.body, time.Now()); err != nil {
			t.Fatalf("secret %q: receiver rejects the request: %v", secret, err)
		}
		if ct := c.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q", ct)
		}
		var got []Event
		if err := json.Unmarshal(c.body, &got); err != nil {
			t.Fatalf("body is not a JSON array of events: %v\n%s", err, c.body)
		}
		if len(got) != len(msgs) {
			t.Fatalf("%d events, want %d", len(got), len(msgs))
		}
		for i, ev := range got {
			if ev.ID != msgs[i].ID {
				t.Errorf("event %d: id %q, want %q (order)", i, ev.ID, msgs[i].ID)
			}
		}
		// A tampered body fails verification.
		tampered := append([]byte(nil), c.body...)
		tampered[len(tampered)-2] ^= 1
		if verifyStandardWebhook(whsec, c.header, tampered, time.Now()) == nil {
			t.Error("tampered body verified")
		}
	}
}

func TestHTTPSinkUnsigned(t *testing.T) {
	rec := &webhookRecorder{}
	srv := loopbackHTTPServer(t, rec)
	s := openTestHTTPSink(t, srv.URL, nil)
	if err := s.Deliver(context.Background(), sinkTestMessages("b", "shop.inventory", 2, 1)); err != nil {
		t.Fatal(err)
	}
	c := rec.Calls()[0]
	if _, ok := c.header["Webhook-Signature"]; ok {
		t.Errorf("signature header without a secret: %q", c.header.Get("Webhook-Signature"))
	}
	if c.header.Get("Webhook-Id") == "" || c.header.Get("Webhook-Timestamp") == "" {
		t.Errorf("id and timestamp headers missing: %v", c.header)
	}
}

func TestHTTPSinkWebhookIDStable(t *testing.T) {
	a := sinkTestMessages("b", "shop.inventory", 3, 1)
	b := sinkTestMessages("b", "shop.inventory", 3, 1)
	if webhookID(a) != webhookID(b) {
		t.Error("same ids, different webhook-id")
	}
	if webhookID(a) == webhookID(a[:2]) || webhookID(a[:1]) == webhookID(a[1:2]) {
		t.Error("different batches, same webhook-id")
	}
	// The ids' boundaries count: "a\nb" is not "a" + "b".
	if webhookID([]Message{{ID: "ab"}}) == webhookID([]Message{{ID: "a"}, {ID: "b"}}) {
		t.Error("ab and a,b share a webhook-id")
	}
}

// TestHTTPSinkRetryAfter500 plays the consumer: the same batch is
// delivered again until Deliver returns nil; the receiver fails three
// times, then everything is acknowledged and arrived, with one webhook-id.
func TestHTTPSinkRetryAfter500(t *testing.T) {
	rec := &webhookRecorder{status: func(n int) int {
		if n < 3 {
			return http.StatusInternalServerError
		}
		return http.StatusNoContent
	}}
	srv := loopbackHTTPServer(t, rec)
	s := openTestHTTPSink(t, srv.URL, []byte("secret"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	batches := [][]Message{sinkTestMessages("b-1", "shop.inventory", 4, 2), sinkTestMessages("b-2", "shop.inventory", 3, 2)}
	var errs int
	for _, batch := range batches {
		for attempt := 0; ; attempt++ {
			err := s.Deliver(ctx, batch)
			if err == nil {
				break
			}
			if !strings.Contains(err.Error(), "500") {
				t.Errorf("error does not give the status: %v", err)
			}
			errs++
			if attempt == 10 {
				t.Fatalf("still failing after %d attempts: %v", attempt, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if errs != 3 {
		t.Errorf("%d errors, want 3 (one per 500)", errs)
	}
	calls := rec.Calls()
	if len(calls) != 5 {
		t.Fatalf("%d requests, want 5", len(calls))
	}
	// The first batch was sent 4 times under one webhook-id; the second
	// once, under another.
	id := calls[0].header.Get("Webhook-Id")
	for _, c := range calls[1:4] {
		if got := c.header.Get("Webhook-Id"); got != id {
			t.Errorf("redelivery webhook-id %q, want %q", got, id)
		}
	}
	if calls[4].header.Get("Webhook-Id") == id {
		t.Error("second batch reuses the first's webhook-id")
	}
	// What the receiver acknowledged: every message, in order.
	var ids []string
	for _, c := range calls[3:] {
		var evs []Event
		if err := json.Unmarshal(c.body, &evs); err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			ids = append(ids, ev.ID)
		}
	}
	var want []string
	for _, b := range batches {
		for _, m := range b {
			want = append(want, m.ID)
		}
	}
	if strings.Join(ids, " ") != strings.Join(want, " ") {
		t.Errorf("acknowledged %v, want %v", ids, want)
	}
}

func TestHTTPSinkNon2xxIsError(t *testing.T) {
	for _, code := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect,
		http.StatusBadRequest, http.StatusNotFound, http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusServiceUnavailable} {
		rec := &webhookRecorder{status: func(int) int { return code }}
		srv := loopbackHTTPServer(t, rec)
		s := openTestHTTPSink(t, srv.URL, nil)
		err := s.Deliver(context.Background(), sinkTestMessages("b", "shop.inventory", 1, 1))
		if err == nil {
			t.Errorf("status %d: Deliver returned nil", code)
			continue
		}
		if !strings.Contains(err.Error(), strconv.Itoa(code)) {
			t.Errorf("status %d: error does not say it: %v", code, err)
		}
		if n := len(rec.Calls()); n != 1 {
			t.Errorf("status %d: %d requests (redirect followed?), want 1", code, n)
		}
	}
	// 2xx other than 200 acknowledge.
	for _, code := range []int{http.StatusOK, http.StatusCreated, http.StatusAccepted, http.StatusNoContent} {
		srv := loopbackHTTPServer(t, &webhookRecorder{status: func(int) int { return code }})
		s := openTestHTTPSink(t, srv.URL, nil)
		if err := s.Deliver(context.Background(), sinkTestMessages("b", "shop.inventory", 1, 1)); err != nil {
			t.Errorf("status %d: %v", code, err)
		}
	}
}

func TestHTTPSinkTransportErrorAndTimeout(t *testing.T) {
	msgs := sinkTestMessages("b", "shop.inventory", 2, 1)

	// Nobody listening.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	s := openTestHTTPSink(t, "http://"+addr+"/hook", nil)
	if err := s.Deliver(context.Background(), msgs); err == nil {
		t.Error("Deliver to a closed port returned nil")
	}

	// A receiver slower than the request timeout.
	release := make(chan struct{})
	srv := loopbackHTTPServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer close(release)
	s = openTestHTTPSink(t, srv.URL, nil)
	s.client.Timeout = 200 * time.Millisecond
	start := time.Now()
	if err := s.Deliver(context.Background(), msgs); err == nil {
		t.Error("Deliver past the timeout returned nil")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("timeout took %v", d)
	}

	// The context's deadline counts too.
	s.client.Timeout = httpTimeout
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := s.Deliver(ctx, msgs); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Deliver past the context's deadline: %v", err)
	}
}

func TestHTTPSinkOpen(t *testing.T) {
	ctx := context.Background()
	for _, spec := range []string{"http:ftp://127.0.0.1/x", "http:127.0.0.1:8080/hook", "http:http://", "http:http://%zz"} {
		if s, err := OpenSink(ctx, spec, SinkOptions{}); err == nil {
			s.Close()
			t.Errorf("%q: no error", spec)
		}
	}
	if _, err := OpenSink(ctx, "http:http://127.0.0.1:1/hook", SinkOptions{WebhookSecret: []byte("whsec_!!notbase64")}); err == nil {
		t.Error("bad whsec_ secret: no error")
	}
	s, err := OpenSink(ctx, "http:https://user:pw@127.0.0.1:1/hook", SinkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(s.Name(), "pw") {
		t.Errorf("name shows the password: %s", s.Name())
	}
	if err := s.Deliver(ctx, nil); err != nil {
		t.Errorf("empty Deliver: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Error(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestHTTPSinkInvalidJSON(t *testing.T) {
	rec := &webhookRecorder{}
	srv := loopbackHTTPServer(t, rec)
	s := openTestHTTPSink(t, srv.URL, nil)
	err := s.Deliver(context.Background(), []Message{{ID: "x", Data: []byte("{not json")}})
	if err == nil {
		t.Error("invalid JSON delivered")
	}
	if n := len(rec.Calls()); n != 0 {
		t.Errorf("%d requests for an invalid batch", n)
	}
}
