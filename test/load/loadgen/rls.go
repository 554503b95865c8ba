package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
)

// parseDescriptor parses one -desc flag: "key=value" entries separated by commas,
// as Envoy's rate_limits actions produce them (hierarchical, in order).
func parseDescriptor(s string) (*ratelimitv3.RateLimitDescriptor, error) {
	d := &ratelimitv3.RateLimitDescriptor{}
	for part := range strings.SplitSeq(s, ",") {
		k, v, ok := strings.Cut(part, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("bad descriptor entry %q in %q: want key=value", part, s)
		}
		d.Entries = append(d.Entries, &ratelimitv3.RateLimitDescriptor_Entry{Key: k, Value: strings.TrimSpace(v)})
	}
	return d, nil
}

// rlsRequest builds the RateLimitRequest of the rls mode.
func rlsRequest(c config) (*rlsv3.RateLimitRequest, error) {
	if c.domain == "" || len(c.descs) == 0 {
		return nil, errors.New("rls mode needs -domain and at least one -desc")
	}
	req := &rlsv3.RateLimitRequest{Domain: c.domain, HitsAddend: uint32(min(c.hits, 1<<32-1))}
	for _, s := range c.descs {
		d, err := parseDescriptor(s)
		if err != nil {
			return nil, err
		}
		req.Descriptors = append(req.Descriptors, d)
	}
	return req, nil
}

func newRLSDoer(c config) (doer, func(), error) {
	req, err := rlsRequest(c)
	if err != nil {
		return nil, nil, err
	}
	conns, closeAll, err := dialConns(c.target, c.conns)
	if err != nil {
		return nil, nil, err
	}
	clients := make([]rlsv3.RateLimitServiceClient, len(conns))
	for i, cc := range conns {
		clients[i] = rlsv3.NewRateLimitServiceClient(cc)
	}
	var rr atomic.Uint64
	return func(ctx context.Context) error {
		resp, err := clients[rr.Add(1)%uint64(len(clients))].ShouldRateLimit(ctx, req)
		if err != nil {
			return err
		}
		if ok := resp.GetOverallCode() == rlsv3.RateLimitResponse_OK; ok != (c.expect == 200) {
			return fmt.Errorf("overall code %v", resp.GetOverallCode())
		}
		return nil
	}, closeAll, nil
}
