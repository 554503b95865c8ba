package valkeystore

import "github.com/valkey-io/valkey-go"

// gcraScript makes a batch of GCRA decisions for one key atomically on the server,
// mirroring store.GCRA applied to each cost in order at one instant: an admitted cost
// advances the TAT, a refused one changes nothing, exactly as that many sequential
// single decisions at the same time would. A batch of one is today's single decision.
//
// Time is the server's (TIME), read once per batch, in microseconds, so replicas with
// skewed clocks agree; Redis 7 and Valkey replicate scripts by effects, so calling TIME
// before a write is allowed. The script works on d, the TAT relative to now: Lua
// numbers are doubles, and an absolute time in microseconds (~1.8e15) has a spacing of
// 0.25µs, so adding a sub-microsecond cost to it would be lost (a limit faster than
// 4M/s never advanced its TAT before this). The TAT is kept rounded up to a whole
// microsecond after every admission (stricter by at most 1µs per request: one key
// admits at most 1M/s), written once at the end, and expires when the key is idle.
//
// KEYS[1] the limit key; ARGV[1] emission interval in nanoseconds; ARGV[2] burst;
// ARGV[3..] the costs in arrival order. Returns 4 integers per cost, in order:
// {allowed 0|1, remaining, retry_after_us, reset_after_us}.
const gcraSource = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
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
local admitted = false
for i = 3, #ARGV do
  local cost = tonumber(ARGV[i])
  local nxt = d + cost * interval
  if cost > burst then
    out[o+1], out[o+2], out[o+3], out[o+4] = 0, remaining(d), math.ceil(math.max(d, interval)), math.ceil(d)
  elseif nxt > tau then
    out[o+1], out[o+2], out[o+3], out[o+4] = 0, remaining(d), math.ceil(nxt - tau), math.ceil(d)
  else
    d = math.ceil(nxt)
    admitted = true
    out[o+1], out[o+2], out[o+3], out[o+4] = 1, remaining(nxt), 0, d
  end
  o = o + 4
end
if admitted and d > 0 then
  redis.call('SET', KEYS[1], string.format('%.0f', now + d), 'PX', math.ceil(d / 1000))
end
return out
`

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

var (
	gcraScript = valkey.NewLuaScript(gcraSource)
	incrScript = valkey.NewLuaScript(incrSource)
)
