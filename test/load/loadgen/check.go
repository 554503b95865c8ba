package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// checkHost and checkScheme are the authority and scheme every CheckRequest carries;
// signed requests cover the target URI built from them.
const (
	checkHost   = "api.example.com"
	checkScheme = "http"
)

// parseHeaders turns -H flags into lowercase names (as Envoy sends them) and values.
func parseHeaders(flags []string) (map[string]string, error) {
	out := make(map[string]string, len(flags))
	for _, h := range flags {
		k, v, ok := strings.Cut(h, ":")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("bad header %q: want 'Name: value'", h)
		}
		k = strings.ToLower(strings.TrimSpace(k))
		if prev, dup := out[k]; dup {
			v = prev + "," + strings.TrimSpace(v)
		}
		out[k] = strings.TrimSpace(v)
	}
	return out, nil
}

func newHTTPDoer(c config) (doer, func(), error) {
	headers, err := parseHeaders(c.headers)
	if err != nil {
		return nil, nil, err
	}
	hdr := http.Header{}
	for k, v := range headers {
		hdr.Set(k, v)
	}
	tr := &http.Transport{MaxIdleConnsPerHost: c.concurrency * 2, DisableCompression: true}
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.target, nil)
		if err != nil {
			return err
		}
		req.Header = hdr.Clone()
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.expect {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}, tr.CloseIdleConnections, nil
}

// dialConns opens n gRPC client connections to target (calls round-robin over them).
func dialConns(target string, n int) ([]*grpc.ClientConn, func(), error) {
	conns := make([]*grpc.ClientConn, 0, max(n, 1))
	closeAll := func() {
		for _, cc := range conns {
			cc.Close()
		}
	}
	for range max(n, 1) {
		cc, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.ForceCodecV2(newClientCodec())))
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("dial %s: %w", target, err)
		}
		conns = append(conns, cc)
	}
	return conns, closeAll, nil
}

func newCheckDoer(c config) (doer, func(), error) {
	headers, err := parseHeaders(c.headers)
	if err != nil {
		return nil, nil, err
	}
	headers["x-request-id"] = "b1b2c3d4-0000-4000-8000-000000000001"
	method := c.method
	var body []byte
	if c.bodyBytes > 0 {
		body = []byte(strings.Repeat("x", c.bodyBytes))
		headers["content-length"] = strconv.Itoa(c.bodyBytes)
		headers["content-type"] = "application/octet-stream"
		if method == "" {
			method = http.MethodPost
		}
	}
	if method == "" {
		method = http.MethodGet
	}
	next := func() (*authv3.CheckRequest, error) { return nil, nil }
	if c.hmacKeyID != "" {
		pool, err := newSignedPool(c, method, body, headers)
		if err != nil {
			return nil, nil, err
		}
		next = pool.next
	} else {
		req := checkRequest(method, c.path, headers, body)
		next = func() (*authv3.CheckRequest, error) { return req, nil }
	}
	conns, closeAll, err := dialConns(c.target, c.conns)
	if err != nil {
		return nil, nil, err
	}
	clients := make([]authv3.AuthorizationClient, len(conns))
	for i, cc := range conns {
		clients[i] = authv3.NewAuthorizationClient(cc)
	}
	var rr atomic.Uint64
	return func(ctx context.Context) error {
		req, err := next()
		if err != nil {
			return err
		}
		resp, err := clients[rr.Add(1)%uint64(len(clients))].Check(ctx, req)
		if err != nil {
			return err
		}
		if code := resp.GetStatus().GetCode(); (code == 0) != (c.expect == 200) {
			return fmt.Errorf("check status %d: %s", code, deniedReason(resp))
		}
		return nil
	}, closeAll, nil
}

// deniedReason is the denial's body (Portcullis's JSON error), for the first-error line.
func deniedReason(resp *authv3.CheckResponse) string {
	if d := resp.GetDeniedResponse(); d != nil {
		return fmt.Sprintf("%d %s", d.GetStatus().GetCode(), d.GetBody())
	}
	return resp.GetStatus().GetMessage()
}

// checkRequest builds the CheckRequest Envoy sends for method and path with headers
// (lowercase names) and, when body is not nil, the body as raw_body (pack_as_bytes).
// body is shared, never copied: requests only read it.
func checkRequest(method, path string, headers map[string]string, body []byte) *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 40000}}}}},
		Request: &authv3.AttributeContext_Request{
			Time: timestamppb.New(time.Now()),
			Http: &authv3.AttributeContext_HttpRequest{
				Id: "1234", Method: method, Path: path, Host: checkHost, Scheme: checkScheme,
				Protocol: "HTTP/1.1", Headers: headers, Size: int64(len(body)), RawBody: body,
			},
		},
	}}
}
