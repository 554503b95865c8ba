package main

import (
	"fmt"
	"maps"
	"net/http"
	"os"
	"strings"
	"sync/atomic"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/portcullis/portcullis/pkg/httpsig"
)

// signedComponents are the components each pre-signed request covers
// (test/load/configs/hmac.yaml requires them).
var signedComponents = []string{httpsig.ComponentMethod, httpsig.ComponentTargetURI, "content-digest"}

// maxPool bounds the pre-signed requests, whatever -n says (about 200 bytes each).
const maxPool = 2_000_000

// signature is what differs between two pre-signed requests.
type signature struct{ input, value string }

// signedPool hands out distinct pre-signed CheckRequests, each once. The body and
// the headers every request shares are stored once.
type signedPool struct {
	method, path string
	body         []byte
	headers      map[string]string // without the signature fields
	sigs         []signature
	used         atomic.Int64
}

// newSignedPool signs min(-n, maxPool) requests for method c.path with body, each
// with its own nonce, before any load is sent.
func newSignedPool(c config, method string, body []byte, headers map[string]string) (*signedPool, error) {
	secret, err := os.ReadFile(c.hmacSecretFile)
	if err != nil {
		return nil, fmt.Errorf("hmac secret: %w", err)
	}
	key, err := httpsig.NewHMACKey(c.hmacKeyID, secret)
	if err != nil {
		return nil, fmt.Errorf("hmac key: %w", err)
	}
	signer, err := httpsig.NewSigner(key, httpsig.SignerOptions{Components: signedComponents})
	if err != nil {
		return nil, fmt.Errorf("hmac signer: %w", err)
	}
	n := min(c.maxRequests, maxPool)
	if n <= 0 {
		return nil, fmt.Errorf("-n must be positive to pre-sign requests")
	}
	p := &signedPool{method: method, path: c.path, body: body, headers: maps.Clone(headers),
		sigs: make([]signature, n)}
	for i := range p.sigs {
		m, err := p.sign(signer)
		if err != nil {
			return nil, err
		}
		if i == 0 {
			p.headers["content-digest"] = m.Header.Get("Content-Digest")
		}
		p.sigs[i] = signature{input: m.Header.Get("Signature-Input"), value: m.Header.Get("Signature")}
	}
	return p, nil
}

// sign signs one message as the server will see it: the CheckRequest's scheme,
// host, path and headers.
func (p *signedPool) sign(signer *httpsig.Signer) (*httpsig.Message, error) {
	rawPath, rawQuery, _ := strings.Cut(p.path, "?")
	m := &httpsig.Message{Method: p.method, Scheme: checkScheme, Authority: checkHost,
		RawPath: rawPath, RawQuery: rawQuery, Header: make(http.Header, len(p.headers)+3), Body: p.body}
	for k, v := range p.headers {
		m.Header.Set(k, v)
	}
	if err := signer.Sign(m); err != nil {
		return nil, fmt.Errorf("pre-sign: %w", err)
	}
	return m, nil
}

// next returns the next unused signed request, or errExhausted.
func (p *signedPool) next() (*authv3.CheckRequest, error) {
	i := p.used.Add(1) - 1
	if i >= int64(len(p.sigs)) {
		return nil, errExhausted
	}
	h := make(map[string]string, len(p.headers)+2)
	maps.Copy(h, p.headers)
	h["signature-input"] = p.sigs[i].input
	h["signature"] = p.sigs[i].value
	return checkRequest(p.method, p.path, h, p.body), nil
}
