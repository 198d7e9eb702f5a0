package binlog

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// httpSink posts batches of events to a webhook ("http:URL", URL being
// http:// or https://), following the Standard Webhooks spec
// (https://www.standardwebhooks.com).
//
// One Deliver is one POST: the body is a JSON array of the batch's events
// in binlog order, Content-Type application/json. Headers:
//
//   - webhook-id: "msg_" + hex of the first 16 bytes of SHA-256 over the
//     batch's message ids, each followed by "\n". Redelivering the same
//     messages gives the same webhook-id, so a receiver can drop a batch it
//     has already processed; a batch that differs by any id gets another.
//     Every event in the body also carries its own stable "id", the
//     receiver's finer idempotency key (a retried batch may be cut
//     differently by the consumer).
//   - webhook-timestamp: unix seconds of this attempt (a retry gets a new
//     timestamp and so a new signature, as the spec wants).
//   - webhook-signature: "v1," + base64(HMAC-SHA256(secret,
//     id + "." + timestamp + "." + body)), only when SinkOptions has a
//     WebhookSecret. The secret is either "whsec_" + base64 of the key
//     (the spec's form) or the key's raw bytes.
//
// Acknowledged means the receiver answered the POST with a 2xx status:
// Deliver returns nil then and only then. A transport error, a timeout
// (httpTimeout per request, or the context's deadline), any other status,
// redirects included (they are not followed: a 301/302/303 would turn the
// POST into a bodiless GET whose 2xx acknowledges nothing) are errors, and
// the consumer sends the batch again. Delivery is thus at-least-once, in
// order within and across batches (one request in flight per sink); the
// receiver dedups by webhook-id or by event id.
type httpSink struct {
	url    string // as configured
	name   string // with any password redacted
	secret []byte // nil: unsigned
	client *http.Client
	now    func() time.Time

	closeOnce sync.Once
}

// httpTimeout bounds one request, answer and body included.
const httpTimeout = 30 * time.Second

// httpErrorBody caps how much of an error answer's body lands in the error.
const httpErrorBody = 256

func init() { sinkKinds["http"] = openHTTPSink }

func openHTTPSink(ctx context.Context, arg string, opts SinkOptions) (Sink, error) {
	u, err := url.Parse(arg)
	if err != nil {
		return nil, fmt.Errorf("sink http:%s: %w", arg, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("sink http:%s: want an http:// or https:// URL", u.Redacted())
	}
	if u.Host == "" {
		return nil, fmt.Errorf("sink http:%s: URL has no host", u.Redacted())
	}
	secret, err := webhookKey(opts.WebhookSecret)
	if err != nil {
		return nil, fmt.Errorf("sink http:%s: %w", u.Redacted(), err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	return &httpSink{
		url:    arg,
		name:   "http:" + u.Redacted(),
		secret: secret,
		client: &http.Client{
			Transport: tr,
			Timeout:   httpTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
		now: time.Now,
	}, nil
}

// webhookKey turns a configured secret into the HMAC key: "whsec_" +
// base64 is decoded, anything else is the key itself; empty means unsigned.
func webhookKey(secret []byte) ([]byte, error) {
	if len(secret) == 0 {
		return nil, nil
	}
	s, ok := strings.CutPrefix(string(secret), "whsec_")
	if !ok {
		return bytes.Clone(secret), nil
	}
	key, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("webhook secret: whsec_ form but not base64: %w", err)
	}
	if len(key) == 0 {
		return nil, errors.New("webhook secret: whsec_ form with an empty key")
	}
	return key, nil
}

func (s *httpSink) Name() string { return s.name }

// webhookID is the batch's stable id (see httpSink).
func webhookID(msgs []Message) string {
	h := sha256.New()
	for _, m := range msgs {
		io.WriteString(h, m.ID)
		h.Write([]byte{'\n'})
	}
	return "msg_" + hex.EncodeToString(h.Sum(nil)[:16])
}

// webhookSignature is the Standard Webhooks v1 signature of one request.
func webhookSignature(key []byte, id, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, key)
	io.WriteString(mac, id)
	mac.Write([]byte{'.'})
	io.WriteString(mac, timestamp)
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// httpBody is the JSON array of the messages' events.
func httpBody(msgs []Message) ([]byte, error) {
	n := 2
	for _, m := range msgs {
		n += len(m.Data) + 1
	}
	body := make([]byte, 0, n)
	body = append(body, '[')
	for i, m := range msgs {
		if !json.Valid(m.Data) {
			return nil, fmt.Errorf("message %s: data is not valid JSON", m.ID)
		}
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, m.Data...)
	}
	return append(body, ']'), nil
}

// Deliver makes one POST of msgs and returns nil only on a 2xx answer.
func (s *httpSink) Deliver(ctx context.Context, msgs []Message) error {
	if len(msgs) == 0 {
		return nil
	}
	body, err := httpBody(msgs)
	if err != nil {
		return fmt.Errorf("%s: %w", s.name, err)
	}
	id := webhookID(msgs)
	ts := strconv.FormatInt(s.now().Unix(), 10)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s: %w", s.name, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "hotrow")
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", ts)
	if s.secret != nil {
		req.Header.Set("webhook-signature", webhookSignature(s.secret, id, ts, body))
	}
	resp, err := s.client.Do(req)
	if err != nil {
		// The client's errors name the method and URL; only say which
		// batch, and redact: *url.Error carries the URL as configured.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("%s: POST %d messages (%s): %w", s.name, len(msgs), id, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		// Drain (bounded) so the connection is reused; the status alone
		// acknowledges.
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		return nil
	}
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, httpErrorBody))
	msg := strings.TrimSpace(string(snippet))
	if msg != "" {
		msg = ": " + strconv.Quote(msg)
	}
	return fmt.Errorf("%s: POST %d messages (%s): status %s%s", s.name, len(msgs), id, resp.Status, msg)
}

// Close drops the sink's idle connections; it is idempotent.
func (s *httpSink) Close() error {
	s.closeOnce.Do(s.client.CloseIdleConnections)
	return nil
}
