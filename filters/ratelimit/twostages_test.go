package ratelimit

import (
	"context"
	"strings"
	"testing"
	"time"
)

// Two ratelimit stages with headers on allow both report their limits: the second
// stage used to replace the first stage's RateLimit-Policy/RateLimit fields (found by a
// second reader's review).
func TestTwoStagesHeadersOnAllow(t *testing.T) {
	m, _ := memStore()
	ip := mustNew(t, Options{Stage: "a", HeadersOnAllow: true, Limits: []LimitOptions{{Name: "per-ip", Key: []KeyPart{KeyIP}, Rate: 100, Period: time.Minute, Limiter: m}}})
	user := mustNew(t, Options{Stage: "b", HeadersOnAllow: true, Limits: []LimitOptions{{Name: "per-route", Key: []KeyPart{KeyRoute}, Rate: 1000, Period: time.Hour, Limiter: m}}})
	r := req("192.0.2.1")
	_, d := check(t, ip, r, nil)
	if err := user.Check(context.Background(), r, d); err != nil {
		t.Fatal(err)
	}
	pol := strings.Join(d.Response["Ratelimit-Policy"], ", ")
	rl := strings.Join(d.Response["Ratelimit"], ", ")
	if !strings.Contains(pol, "per-ip") || !strings.Contains(rl, "per-ip") {
		t.Errorf("after both stages: RateLimit-Policy %q, RateLimit %q: the per-ip limit's fields are gone", pol, rl)
	}
	if !strings.Contains(pol, "per-route") || len(d.Response["Ratelimit"]) != 1 {
		t.Errorf("RateLimit-Policy %q, RateLimit %q: want both limits in one field each", pol, d.Response["Ratelimit"])
	}
}
