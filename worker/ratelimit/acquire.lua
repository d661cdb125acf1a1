-- Take up to `want` tokens from a token bucket, atomically, on the server's clock.
-- Mirrors worker/ratelimit/bucket.py (refill, whole_tokens, take); keep them in step.
-- KEYS[1] bucket hash {tokens, ts_us, granted}   KEYS[2] pause key (alive while paused)
-- ARGV: rate_per_s, capacity, max_debt, want
-- Returns {granted, wait_s as a string} (Lua numbers would be truncated to integers).
local rate = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local max_debt = tonumber(ARGV[3])
local want = tonumber(ARGV[4])
local SLACK = 1e-6  -- bucket.WHOLE_TOKEN_SLACK

local pause_ms = redis.call('PTTL', KEYS[2])
if pause_ms > 0 then
  return {0, string.format('%.17g', pause_ms / 1000)}
end

local t = redis.call('TIME')
-- Microseconds since the epoch: an integer a double holds exactly, so elapsed time is exact.
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local st = redis.call('HMGET', KEYS[1], 'tokens', 'ts_us', 'granted')
local tokens = tonumber(st[1])
local ts_us = tonumber(st[2])
local granted_total = tonumber(st[3]) or 0
if tokens == nil or ts_us == nil then
  -- New key or lost state: a full bucket, never more.
  tokens = capacity
  ts_us = now_us
end
-- Refill; a clock that went backwards credits nothing.
tokens = math.min(capacity, tokens + math.max(0, now_us - ts_us) / 1000000 * rate)

local whole = math.max(0, math.floor(tokens + SLACK))
local granted = math.min(want, whole)
tokens = tokens - granted
local wait = 0
if granted < want and math.floor(tokens + SLACK) < 1 then
  wait = (1 - tokens) / rate
end

redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens),
  'ts_us', string.format('%.0f', now_us), 'granted', granted_total + granted)
-- Idle this long, the bucket is full whatever its state: expiry loses nothing.
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity + max_debt) / rate * 1000) + 1000)
return {granted, string.format('%.17g', wait)}
