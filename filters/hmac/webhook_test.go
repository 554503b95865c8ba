package hmac

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/pkg/engine"
)

var hookSecret = []byte("webhook-secret-webhook-secret-00")

func newHook(t *testing.T, scheme Scheme, mod func(*Options)) *Authenticator {
	t.Helper()
	o := Options{Scheme: scheme, Now: clock, Clients: []Client{
		{Subject: "github", Keys: []Key{{ID: "gh-1", Secret: hookSecret}, {ID: "gh-2", Secret: secretNew}}},
	}}
	if mod != nil {
		mod(&o)
	}
	a, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func webhookRequest(headers map[string]string, body string) *engine.Request {
	r := &engine.Request{Method: "POST", Scheme: "https", Host: "hooks.example.com", RawPath: "/hook",
		Header: http.Header{}, Body: []byte(body), HasBody: true}
	for k, v := range headers {
		r.Header.Set(k, v)
	}
	return r
}

func TestWebhookSchemes(t *testing.T) {
	body := `{"event":"push"}`
	ts := now.Unix()
	tss := strconv.FormatInt(ts, 10)
	stale := strconv.FormatInt(ts-600, 10)
	tests := []struct {
		name    string
		scheme  Scheme
		headers map[string]string
		body    string
		reason  string // "" verifies
	}{
		{"github", SchemeGitHub, map[string]string{"X-Hub-Signature-256": SignGitHub(hookSecret, []byte(body))}, body, ""},
		{"github rotated key", SchemeGitHub, map[string]string{"X-Hub-Signature-256": SignGitHub(secretNew, []byte(body))}, body, ""},
		{"github uppercase hex", SchemeGitHub, map[string]string{"X-Hub-Signature-256": "sha256=" + strings.ToUpper(strings.TrimPrefix(SignGitHub(hookSecret, []byte(body)), "sha256="))}, body, ""},
		{"github tampered", SchemeGitHub, map[string]string{"X-Hub-Signature-256": SignGitHub(hookSecret, []byte(body))}, body + " ", ReasonBadSignature},
		{"github sha1", SchemeGitHub, map[string]string{"X-Hub-Signature-256": "sha1=0123456789abcdef0123456789abcdef01234567"}, body, ReasonMalformed},
		{"github short hex", SchemeGitHub, map[string]string{"X-Hub-Signature-256": "sha256=abcd"}, body, ReasonMalformed},
		{"stripe", SchemeStripe, map[string]string{"Stripe-Signature": SignStripe(hookSecret, ts, []byte(body))}, body, ""},
		{"stripe extra v1 and v0", SchemeStripe, map[string]string{"Stripe-Signature": SignStripe(hookSecret, ts, []byte(body)) + ",v1=" + strings.Repeat("0", 64) + ",v0=abc"}, body, ""},
		{"stripe stale", SchemeStripe, map[string]string{"Stripe-Signature": SignStripe(hookSecret, ts-600, []byte(body))}, body, ReasonExpired},
		{"stripe future", SchemeStripe, map[string]string{"Stripe-Signature": SignStripe(hookSecret, ts+600, []byte(body))}, body, ReasonExpired},
		{"stripe no t", SchemeStripe, map[string]string{"Stripe-Signature": "v1=" + strings.Repeat("0", 64)}, body, ReasonMalformed},
		{"stripe two t", SchemeStripe, map[string]string{"Stripe-Signature": "t=1,t=2,v1=" + strings.Repeat("0", 64)}, body, ReasonMalformed},
		{"stripe short v1 ignored", SchemeStripe, map[string]string{"Stripe-Signature": strings.Replace(SignStripe(hookSecret, ts, []byte(body)), ",", ",v1=deadbeef,", 1)}, body, ""},
		{"stripe only bad v1", SchemeStripe, map[string]string{"Stripe-Signature": "t=" + tss + ",v1=deadbeef"}, body, ReasonMalformed},
		{"stripe too many v1", SchemeStripe, map[string]string{"Stripe-Signature": "t=" + tss + strings.Repeat(",v1="+strings.Repeat("0", 64), maxCandidates+1)}, body, ReasonMalformed},
		{"stripe t changed", SchemeStripe, map[string]string{"Stripe-Signature": strings.Replace(SignStripe(hookSecret, ts, []byte(body)), tss, strconv.FormatInt(ts+1, 10), 1)}, body, ReasonBadSignature},
		{"slack", SchemeSlack, map[string]string{"X-Slack-Signature": SignSlack(hookSecret, ts, []byte(body)), "X-Slack-Request-Timestamp": tss}, body, ""},
		{"slack stale", SchemeSlack, map[string]string{"X-Slack-Signature": SignSlack(hookSecret, ts-600, []byte(body)), "X-Slack-Request-Timestamp": stale}, body, ReasonExpired},
		{"slack no timestamp", SchemeSlack, map[string]string{"X-Slack-Signature": SignSlack(hookSecret, ts, []byte(body))}, body, ReasonMalformed},
		{"slack timestamp not a number", SchemeSlack, map[string]string{"X-Slack-Signature": SignSlack(hookSecret, ts, []byte(body)), "X-Slack-Request-Timestamp": "-1"}, body, ReasonMalformed},
		{"generic", SchemeGeneric, map[string]string{"X-Signature": SignGeneric(hookSecret, ts, "POST", "/hook", []byte(body)), "X-Timestamp": tss}, body, ""},
		{"generic other path", SchemeGeneric, map[string]string{"X-Signature": SignGeneric(hookSecret, ts, "POST", "/admin", []byte(body)), "X-Timestamp": tss}, body, ReasonBadSignature},
		{"generic other method", SchemeGeneric, map[string]string{"X-Signature": SignGeneric(hookSecret, ts, "PUT", "/hook", []byte(body)), "X-Timestamp": tss}, body, ReasonBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newHook(t, tt.scheme, nil)
			id, err := a.Authenticate(context.Background(), webhookRequest(tt.headers, tt.body))
			if tt.reason != "" {
				wantDenial(t, err, tt.reason, false)
				return
			}
			if err != nil {
				t.Fatalf("authenticate: %v", err)
			}
			if id.Subject != "github" || id.Method != engine.AuthHMAC || (id.KeyID != "gh-1" && id.KeyID != "gh-2") {
				t.Fatalf("identity %+v", id)
			}
		})
	}
}

func TestWebhookBodyAndCredentials(t *testing.T) {
	a := newHook(t, SchemeGitHub, nil)
	if _, err := a.Authenticate(context.Background(), webhookRequest(nil, "x")); !errors.Is(err, engine.ErrNoCredentials) {
		t.Fatalf("no header: %v", err)
	}
	sig := map[string]string{"X-Hub-Signature-256": SignGitHub(hookSecret, []byte("x"))}
	r := webhookRequest(sig, "x")
	r.HasBody, r.Body = false, nil
	_, err := a.Authenticate(context.Background(), r)
	wantDenial(t, err, ReasonBodyMissing, false)
	r = webhookRequest(sig, "x")
	r.BodyTruncated = true
	_, err = a.Authenticate(context.Background(), r)
	wantDenial(t, err, ReasonBodyTruncated, false)
	r = webhookRequest(sig, "x")
	r.Header.Add("X-Hub-Signature-256", sig["X-Hub-Signature-256"])
	_, err = a.Authenticate(context.Background(), r)
	wantDenial(t, err, ReasonMalformed, false)
}

func TestWebhookReplay(t *testing.T) {
	body := "payload"
	ts := now.Unix()
	a := newHook(t, SchemeSlack, nil)
	h := map[string]string{"X-Slack-Signature": SignSlack(hookSecret, ts, []byte(body)), "X-Slack-Request-Timestamp": strconv.FormatInt(ts, 10)}
	if _, err := a.Authenticate(context.Background(), webhookRequest(h, body)); err != nil {
		t.Fatal(err)
	}
	_, err := a.Authenticate(context.Background(), webhookRequest(h, body))
	wantDenial(t, err, ReasonReplay, false)

	// GitHub: off by default, opt-in window; a re-cased hex signature is the same.
	gh := map[string]string{"X-Hub-Signature-256": SignGitHub(hookSecret, []byte(body))}
	a = newHook(t, SchemeGitHub, nil)
	for range 2 {
		if _, err := a.Authenticate(context.Background(), webhookRequest(gh, body)); err != nil {
			t.Fatalf("github without replay window: %v", err)
		}
	}
	a = newHook(t, SchemeGitHub, func(o *Options) { o.GitHubReplayWindow = time.Hour })
	if _, err := a.Authenticate(context.Background(), webhookRequest(gh, body)); err != nil {
		t.Fatal(err)
	}
	upper := map[string]string{"X-Hub-Signature-256": "sha256=" + strings.ToUpper(gh["X-Hub-Signature-256"][7:])}
	_, err = a.Authenticate(context.Background(), webhookRequest(upper, body))
	wantDenial(t, err, ReasonReplay, false)
}

func TestWebhookHeaderOverride(t *testing.T) {
	a := newHook(t, SchemeGeneric, func(o *Options) { o.Header, o.TimestampHeader = "x-acme-signature", "x-acme-time" })
	ts := now.Unix()
	r := webhookRequest(map[string]string{
		"X-Acme-Signature": SignGeneric(hookSecret, ts, "POST", "/hook?a=1", []byte("b")),
		"X-Acme-Time":      strconv.FormatInt(ts, 10),
	}, "b")
	r.RawQuery = "a=1"
	if _, err := a.Authenticate(context.Background(), r); err != nil {
		t.Fatal(err)
	}
}

func TestMemoryOnceSet(t *testing.T) {
	cur := now
	s := NewMemoryOnceSet(3, func() time.Time { return cur })
	ctx := context.Background()
	once := func(key string, ttl time.Duration) (bool, error) { return s.Once(ctx, key, ttl) }
	if first, _ := once("a", time.Minute); !first {
		t.Fatal("a not first")
	}
	if first, _ := once("a", time.Minute); first {
		t.Fatal("a first twice")
	}
	once("b", time.Minute)
	once("c", 2*time.Minute)
	if _, err := once("d", time.Minute); !errors.Is(err, ErrReplaySetFull) {
		t.Fatalf("full set: %v", err)
	}
	cur = cur.Add(time.Minute) // a and b expire
	if first, err := once("a", time.Minute); !first || err != nil {
		t.Fatalf("expired a: %v %v", first, err)
	}
	if first, err := once("d", time.Minute); !first || err != nil {
		t.Fatalf("d after expiry: %v %v", first, err)
	}
	if first, _ := once("c", time.Minute); first {
		t.Fatal("live c forgotten")
	}
	if s.Len() != 3 {
		t.Fatalf("len %d", s.Len())
	}
	// Growth keeps order across the ring's wrap.
	big := NewMemoryOnceSet(1000, func() time.Time { return cur })
	for i := range 1000 {
		if first, err := big.Once(ctx, strconv.Itoa(i), time.Minute); !first || err != nil {
			t.Fatalf("%d: %v %v", i, first, err)
		}
	}
	for i := range 1000 {
		if first, _ := big.Once(ctx, strconv.Itoa(i), time.Minute); first {
			t.Fatalf("%d forgotten", i)
		}
	}
}
