package valkeystore

import "github.com/valkey-io/valkey-go"

// gcraScript makes one GCRA decision atomically on the server, mirroring store.GCRA.
//
// Time is the server's (TIME), in microseconds, so replicas with skewed clocks agree;
// Redis 7 and Valkey replicate scripts by effects, so calling TIME before a write is
// allowed. The TAT is stored rounded up to a whole microsecond (stricter by at most
// 1µs per request) and expires when the key becomes idle.
//
// KEYS[1] the limit key; ARGV[1] emission interval in nanoseconds; ARGV[2] burst;
// ARGV[3] cost. Returns {allowed 0|1, remaining, retry_after_us, reset_after_us}.
const gcraSource = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1]) / 1000
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local tau = burst * interval
local base = tonumber(redis.call('GET', KEYS[1]) or 0) or 0
if base < now then base = now end
local function remaining(tat)
  local r = math.floor((now + tau - tat) / interval + 1e-9)
  if r < 0 then return 0 end
  return r
end
if cost > burst then
  local reset = base - now
  return {0, remaining(base), math.ceil(math.max(reset, interval)), math.ceil(reset)}
end
local nxt = base + cost * interval
local allow_at = nxt - tau
if now < allow_at then
  return {0, remaining(base), math.ceil(allow_at - now), math.ceil(base - now)}
end
local stored = math.ceil(nxt)
if stored > now then
  redis.call('SET', KEYS[1], string.format('%.0f', stored), 'PX', math.ceil((stored - now) / 1000))
end
return {1, remaining(nxt), 0, stored - now}
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
