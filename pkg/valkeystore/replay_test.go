package valkeystore

import (
	"context"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/portcullis/portcullis/test/redisharness"
	"github.com/valkey-io/valkey-go"
)

// perDecisionSource is the GCRA script as it was before its reply was compacted: it
// returns {allowed, remaining, retry_after_us, reset_after_us} for every cost, computed
// by Redis's Lua. It is the reference replay must reproduce, with the server's clock
// replaced by ARGV[3] so that both start from the same d0. It does not write.
const perDecisionSource = `
local now = tonumber(ARGV[3])
local interval = tonumber(ARGV[1]) / 1000
local burst = tonumber(ARGV[2])
local tau = burst * interval
local d = (tonumber(redis.call('GET', KEYS[1]) or 0) or 0) - now
if d < 0 then d = 0 end
local function remaining(x)
  local r = math.floor((tau - x) / interval + 1e-9)
  if r < 0 then return 0 end
  return r
end
local out = {}
local o = 0
for i = 4, #ARGV do
  local cost = tonumber(ARGV[i])
  local nxt = d + cost * interval
  if cost > burst then
    out[o+1], out[o+2], out[o+3], out[o+4] = 0, remaining(d), math.ceil(math.max(d, interval)), math.ceil(d)
  elseif nxt > tau then
    out[o+1], out[o+2], out[o+3], out[o+4] = 0, remaining(d), math.ceil(nxt - tau), math.ceil(d)
  else
    d = math.ceil(nxt)
    out[o+1], out[o+2], out[o+3], out[o+4] = 1, remaining(nxt), 0, d
  end
  o = o + 4
end
return out
`

// TestReplayMatchesPerDecisionScript checks every field of every decision replay
// computes against Redis's Lua doing the same arithmetic, over random limits across the
// whole valid range (1 ns to ~2^61 ns intervals, bursts up to the tolerance cap), costs
// from 0 to MaxUint64, and stored TATs absent, past, inside and beyond the tolerance.
// TestScriptAndReplayAgree only sees the final TAT; this sees the refused decisions'
// remaining, retry and reset too (a fused multiply-add in replay, as arm64 or GOAMD64=v3
// would make without the float64 conversion, changes retry_after by 1 µs at such
// values).
func TestReplayMatchesPerDecisionScript(t *testing.T) {
	const maxToleranceNs = math.MaxInt64 / 4 // store.Limit.Valid's cap on Burst·T
	s := newStore(t, redisharness.Start(t), nil)
	ctx := context.Background()
	ref := valkey.NewLuaScript(perDecisionSource)
	rng := rand.New(rand.NewPCG(5, 6))
	const now = int64(1_763_000_000_000_000) // µs, a 2025 instant
	key := s.key("rl", "replay:ref")
	for i := range 1000 {
		interval := max(int64(1), int64(rng.Float64()*math.Exp2(float64(rng.IntN(62)))))
		burst := uint64(1 + rng.IntN(8))
		if rng.IntN(2) == 0 { // a large burst, within the tolerance cap
			burst = 1 + rng.Uint64N(max(1, uint64(maxToleranceNs/interval)))
		}
		burst = min(burst, uint64(maxToleranceNs/interval))
		tau := float64(float64(burst) * (float64(interval) / 1000))
		var stored int64 // 0: absent
		switch rng.IntN(4) {
		case 1:
			stored = now - 1 - rng.Int64N(1e9) // in the past
		case 2:
			stored = now + int64(rng.Float64()*tau) // inside the tolerance
		case 3:
			stored = now + int64(tau) + rng.Int64N(1e6) // beyond it
		}
		costs := make([]uint64, 1+rng.IntN(12))
		for j := range costs {
			switch rng.IntN(6) {
			case 0:
				costs[j] = 0
			case 1:
				costs[j] = burst + uint64(rng.IntN(2))
			case 2:
				costs[j] = math.MaxUint64
			case 3:
				costs[j] = rng.Uint64N(burst + 1)
			default:
				costs[j] = 1
			}
		}
		if stored == 0 {
			err := s.c.Do(ctx, s.c.B().Del().Key(key).Build()).Error()
			if err != nil {
				t.Fatal(err)
			}
		} else if err := s.c.Do(ctx, s.c.B().Set().Key(key).Value(strconv.FormatInt(stored, 10)).Build()).Error(); err != nil {
			t.Fatal(err)
		}
		args := []string{strconv.FormatInt(interval, 10), strconv.FormatUint(burst, 10), strconv.FormatInt(now, 10)}
		for _, c := range costs {
			args = append(args, strconv.FormatUint(c, 10))
		}
		want, err := ref.Exec(ctx, s.c, []string{key}, args).AsIntSlice()
		if err != nil || len(want) != 4*len(costs) {
			t.Fatalf("reference script: %v %v", want, err)
		}
		got := make([][4]int64, len(costs))
		replay(interval, burst, float64(max(stored-now, 0)), costs, got)
		for j := range costs {
			if w := [4]int64(want[4*j : 4*j+4]); got[j] != w {
				t.Fatalf("trial %d: interval %d ns, burst %d, stored %d (now %d), costs %v: decision %d replayed %v, Lua %v",
					i, interval, burst, stored, now, costs, j, got[j], w)
			}
		}
	}
}
