package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
)

const (
	e2eHMACSecret = "e2e-partner-secret-7c1d0f5a9b3e"
	// The published GitHub test vector (docs.github.com, "Testing the webhook payload
	// validation"); the same data is in ../shared/conformance/httpsig/webhook_vectors.json.
	githubSecret    = "It's a Secret to Everybody"
	githubBody      = "Hello, World!"
	githubSignature = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
)

const hmacConfig = `upstream: {url: http://127.0.0.1:1}
providers:
  hmac:
    - name: partners
      clients:
        - subject: billing
          scopes: [orders:write]
          keys: [{id: billing-2025, secret: env:E2E_HMAC_SECRET}]
      body_limit: 1024
    - name: github
      scheme: github
      clients: [{subject: github-webhooks, keys: [{id: github, secret: env:E2E_GITHUB_SECRET}]}]
policies:
  signed: {authenticate: [{hmac: {provider: partners}}]}
  hooks: {authenticate: [{hmac: {provider: github}}]}
routes:
  - {name: api, policy: signed, match: {path: {prefix: /api/}}}
  - {name: hooks, policy: hooks, match: {path: {exact: /hooks/github}, methods: [POST]}}
`

// seen is one request the upstream received.
type seen struct {
	header http.Header
	body   string
}

// bodyRecorder is an upstream that records each request's headers and body.
func bodyRecorder(t *testing.T) (*httptest.Server, chan seen) {
	ch := make(chan seen, 64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		select {
		case ch <- seen{r.Header.Clone(), string(b)}:
		default:
		}
		_, _ = io.WriteString(w, "upstream ok")
	}))
	t.Cleanup(srv.Close)
	return srv, ch
}

// signCLI runs `portcullis sign` and returns the headers it prints (the lines before
// the blank line) and its curl line.
func signCLI(t *testing.T, args ...string) (http.Header, string) {
	t.Helper()
	code, out, errs := runCLI(t, append([]string{"sign"}, args...)...)
	if code != 0 {
		t.Fatalf("sign %v: exit %d: %s", args, code, errs)
	}
	h := http.Header{}
	block, curl, ok := strings.Cut(out, "\n\n")
	if !ok || !strings.HasPrefix(curl, "curl ") {
		t.Fatalf("sign output:\n%s", out)
	}
	for _, line := range strings.Split(block, "\n") {
		name, value, ok := strings.Cut(line, ": ")
		if !ok {
			t.Fatalf("sign header line %q", line)
		}
		h.Add(name, value)
	}
	return h, curl
}

// send makes the request with the headers and returns status, deny reason and response.
func send(t *testing.T, method, url string, h http.Header, body string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var deny struct{ Reason string }
	_ = json.Unmarshal(b, &deny)
	return resp, deny.Reason
}

func TestHMACProxy(t *testing.T) {
	t.Setenv("E2E_HMAC_SECRET", e2eHMACSecret)
	t.Setenv("E2E_GITHUB_SECRET", githubSecret)
	cfg := filepath.Join(t.TempDir(), "portcullis.yaml")
	if err := os.WriteFile(cfg, []byte(hmacConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	up, got := bodyRecorder(t)
	s := startSidecar(t, cfg, up.URL)
	url := "http://" + s.proxy + "/api/orders?region=eu"
	body := `{"order":42,"note":"it's signed"}`
	key := []string{"--key-id", "billing-2025", "--secret", "env:E2E_HMAC_SECRET"}

	h, curl := signCLI(t, append(key, "POST", url, body)...)
	if !strings.Contains(curl, "--data-binary") || strings.Contains(curl, e2eHMACSecret) {
		t.Fatalf("curl line: %s", curl)
	}
	resp, reason := send(t, "POST", url, h, body)
	if resp.StatusCode != 200 {
		t.Fatalf("signed request: %d %s", resp.StatusCode, reason)
	}
	u := recv(t, got)
	if u.header.Get("X-Portcullis-Auth") != "hmac" || u.header.Get("X-Portcullis-Subject") != "billing" ||
		u.header.Get("X-Portcullis-Key-Id") != "billing-2025" || u.body != body {
		t.Fatalf("upstream saw %v %q", u.header, u.body)
	}

	// The same request again, byte for byte: a replay.
	if resp, reason := send(t, "POST", url, h, body); resp.StatusCode != 401 || reason != "hmac.replay" {
		t.Fatalf("replay: %d %s", resp.StatusCode, reason)
	}
	h, _ = signCLI(t, append(key, "POST", url, body)...)
	if resp, reason := send(t, "POST", url, h, strings.Replace(body, "42", "43", 1)); resp.StatusCode != 401 || reason != "hmac.digest_mismatch" {
		t.Fatalf("tampered body: %d %s", resp.StatusCode, reason)
	}
	old := strconv.FormatInt(time.Now().Add(-10*time.Minute).Unix(), 10)
	h, _ = signCLI(t, append(key, "--created", old, "POST", url, body)...)
	if resp, reason := send(t, "POST", url, h, body); resp.StatusCode != 401 || reason != "hmac.expired" {
		t.Fatalf("expired: %d %s", resp.StatusCode, reason)
	}
	big := strings.Repeat("x", 2000) // over body_limit: the proxy reads 1025 bytes and stops
	h, _ = signCLI(t, append(key, "POST", url, big)...)
	if resp, reason := send(t, "POST", url, h, big); resp.StatusCode != 401 || reason != "hmac.body_truncated" {
		t.Fatalf("body over the limit: %d %s", resp.StatusCode, reason)
	}
	resp, reason = send(t, "POST", url, nil, body)
	if resp.StatusCode != 401 || reason != "auth.missing" || resp.Header.Get("Www-Authenticate") != "Signature" {
		t.Fatalf("no signature: %d %s %v", resp.StatusCode, reason, resp.Header)
	}

	// GitHub's published vector on a webhook route, and the same signature on another body.
	hook := "http://" + s.proxy + "/hooks/github"
	gh := http.Header{"X-Hub-Signature-256": {githubSignature}}
	if resp, reason := send(t, "POST", hook, gh, githubBody); resp.StatusCode != 200 {
		t.Fatalf("github vector: %d %s", resp.StatusCode, reason)
	}
	if u := recv(t, got); u.header.Get("X-Portcullis-Subject") != "github-webhooks" || u.body != githubBody {
		t.Fatalf("upstream saw %v %q", u.header, u.body)
	}
	if resp, reason := send(t, "POST", hook, gh, "Hello, World?"); resp.StatusCode != 401 || reason != "hmac.bad_signature" {
		t.Fatalf("github tampered: %d %s", resp.StatusCode, reason)
	}
	gh, _ = signCLI(t, "--scheme", "github", "--secret", "env:E2E_GITHUB_SECRET", "POST", hook, "{}")
	if gh.Get("X-Hub-Signature-256") == "" {
		t.Fatalf("github preset: %v", gh)
	}
	if resp, reason := send(t, "POST", hook, gh, "{}"); resp.StatusCode != 200 {
		t.Fatalf("github preset: %d %s", resp.StatusCode, reason)
	}
	recv(t, got)
	select {
	case u := <-got:
		t.Fatalf("a denied request reached the upstream: %v", u.header)
	default:
	}
	for _, secret := range []string{e2eHMACSecret, githubSecret} {
		if strings.Contains(s.logs.String(), secret) {
			t.Fatalf("a secret appears in the logs")
		}
	}
}

// Through Envoy's ext_authz API: the body arrives as raw_body (pack_as_bytes); a body
// Envoy truncated (allow_partial_message) cannot be verified and is denied.
func TestHMACExtAuthz(t *testing.T) {
	t.Setenv("E2E_HMAC_SECRET", e2eHMACSecret)
	t.Setenv("E2E_GITHUB_SECRET", githubSecret)
	cfg := filepath.Join(t.TempDir(), "portcullis.yaml")
	if err := os.WriteFile(cfg, []byte(hmacConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	up, _ := bodyRecorder(t)
	s := startSidecar(t, cfg, up.URL)
	cc, err := grpc.NewClient(s.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	client := authv3.NewAuthorizationClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	body := []byte("\x00\x01 binary payload \xff")
	check := func(partial bool, sent []byte) *authv3.CheckResponse {
		t.Helper()
		h, _ := signCLI(t, "--key-id", "billing-2025", "--secret", "env:E2E_HMAC_SECRET",
			"POST", "https://api.example.com/api/orders", "@"+writeTemp(t, body))
		headers := map[string]string{"content-length": strconv.Itoa(len(body))}
		for k, v := range h {
			headers[strings.ToLower(k)] = v[0]
		}
		if partial {
			headers["x-envoy-auth-partial-body"] = "true"
		}
		req := checkRequest("/api/orders", headers)
		req.Attributes.Request.Http.Method = "POST"
		req.Attributes.Request.Http.RawBody = sent
		resp, err := client.Check(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}

	resp := check(false, body)
	if codes.Code(resp.Status.Code) != codes.OK {
		t.Fatalf("signed raw_body: %v", resp)
	}
	set := map[string]string{}
	for _, h := range resp.GetOkResponse().GetHeaders() {
		set[h.Header.Key] = h.Header.Value
	}
	if set["x-portcullis-auth"] != "hmac" || set["x-portcullis-subject"] != "billing" {
		t.Fatalf("identity headers: %v", set)
	}
	resp = check(true, body[:8])
	denied := resp.GetDeniedResponse()
	if codes.Code(resp.Status.Code) == codes.OK || denied.GetStatus().GetCode() != 401 ||
		!strings.Contains(denied.GetBody(), `"reason":"hmac.body_truncated"`) ||
		!strings.Contains(denied.GetBody(), "too large to verify") {
		t.Fatalf("partial body: %v", resp)
	}
}

func recv(t *testing.T, ch chan seen) seen {
	t.Helper()
	select {
	case s := <-ch:
		return s
	case <-time.After(5 * time.Second):
		t.Fatal("upstream saw no request")
		return seen{}
	}
}

func writeTemp(t *testing.T, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "body")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
