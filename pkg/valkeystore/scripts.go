package valkeystore

import (
	"math"

	"github.com/valkey-io/valkey-go"
)

// gcraScript makes a batch of GCRA decisions for one key atomically on the server,
// mirroring store.GCRA applied to each cost in order at one instant: an admitted cost
// advances the TAT, a refused one changes nothing, exactly as that many sequential
// single decisions at the same time would. A batch of one is a single decision.
//
// Time is the server's (TIME), read once per batch, in microseconds, so replicas with
// skewed clocks agree; Redis 7 and Valkey replicate scripts by effects, so calling TIME
// before a write is allowed. The script works on d, the TAT relative to now: Lua
// numbers are doubles, and an absolute time in microseconds (~1.8e15) has a spacing of
// 0.25µs, so adding a sub-microsecond cost to it would be lost (a limit faster than
// 4M/s never advanced its TAT that way). The TAT is kept rounded up to a whole
// microsecond after every admission (stricter by at most 1µs per request: one key
// admits at most 1M/s), written once at the end, and expires when the key is idle.
//
// The reply is only d before and after the batch: the client replays the same
// arithmetic from the first (replay) to get each decision's result, and checks that it
// ends at the second. A reply of 4 integers per decision made the server's and the
// client's work grow with the batch (~1.5µs per decision in the server alone here);
// this way a batch of 20 costs about what a single decision does.
//
// KEYS[1] the limit key; ARGV[1] emission interval in nanoseconds; ARGV[2] burst;
// ARGV[3..] the costs in arrival order as runs: cost, count, cost, count, ... Returns
// {d0, d1}: the relative TAT in microseconds before and after the batch (integers).
const gcraSource = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1]) / 1000
local burst = tonumber(ARGV[2])
local tau = burst * interval
local d0 = (tonumber(redis.call('GET', KEYS[1]) or 0) or 0) - now
if d0 < 0 then d0 = 0 end
local d = d0
for i = 3, #ARGV, 2 do
  local cost = tonumber(ARGV[i])
  if cost <= burst then
    local step = cost * interval
    for _ = 1, tonumber(ARGV[i+1]) do
      local nxt = d + step
      if nxt > tau then break end
      d = math.ceil(nxt)
    end
  end
end
if d > d0 then
  redis.call('SET', KEYS[1], string.format('%.0f', now + d), 'PX', math.ceil(d / 1000))
end
return {d0, d}
`

// replay computes what gcraScript decided for each of costs, starting from the
// relative TAT d0 (µs) the script read, with the script's double arithmetic in the
// same order (the float64 conversions keep the compiler from fusing a multiply-add,
// which would round differently). It writes {allowed 0|1, remaining, retry_after_us,
// reset_after_us} per cost to res and returns the TAT it ends at, which must equal the
// script's d1.
func replay(intervalNs int64, burst uint64, d0 float64, costs []uint64, res [][4]int64) float64 {
	interval := float64(intervalNs) / 1000
	b := float64(burst)
	tau := float64(b * interval)
	remaining := func(x float64) int64 {
		return max(int64(math.Floor((tau-x)/interval+1e-9)), 0)
	}
	d := d0
	for i, cost := range costs {
		c := float64(cost)
		nxt := d + float64(c*interval)
		switch {
		case c > b:
			res[i] = [4]int64{0, remaining(d), int64(math.Ceil(max(d, interval))), int64(math.Ceil(d))}
		case nxt > tau:
			res[i] = [4]int64{0, remaining(d), int64(math.Ceil(nxt - tau)), int64(math.Ceil(d))}
		default:
			d = math.Ceil(nxt)
			res[i] = [4]int64{1, remaining(nxt), 0, int64(d)}
		}
	}
	return d
}

// incrSource increments a counter and starts its window on the first increment
// (atomically: never INCR then EXPIRE from the client). KEYS[1] the counter; ARGV[1]
// the window in milliseconds.
const incrSource = `
local n = redis.call('INCR', KEYS[1])
if n == 1 or redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return n
`

// banSource bans KEYS[1] until ARGV[1] (Unix milliseconds, the stored value) for
// ARGV[2] milliseconds, unless a ban that ends later is in place: a ban is never
// shortened, also when two escalations arrive out of order.
const banSource = `
local cur = tonumber(redis.call('GET', KEYS[1]) or 0) or 0
if tonumber(ARGV[1]) > cur then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
return 1
`

var (
	gcraScript = valkey.NewLuaScript(gcraSource)
	incrScript = valkey.NewLuaScript(incrSource)
	banScript  = valkey.NewLuaScript(banSource)
)
