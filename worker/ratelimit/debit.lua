-- Force-consume n tokens (into debt, floored at -max_debt); mirrors bucket.debit.
-- KEYS[1] bucket hash {tokens, ts_us, granted}
-- ARGV: rate_per_s, capacity, max_debt, n
local rate = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local max_debt = tonumber(ARGV[3])
local n = tonumber(ARGV[4])

local t = redis.call('TIME')
-- Microseconds since the epoch: an integer a double holds exactly, so elapsed time is exact.
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local st = redis.call('HMGET', KEYS[1], 'tokens', 'ts_us')
local tokens = tonumber(st[1])
local ts_us = tonumber(st[2])
if tokens == nil or ts_us == nil then
  tokens = capacity
  ts_us = now_us
end
tokens = math.min(capacity, tokens + math.max(0, now_us - ts_us) / 1000000 * rate)
tokens = math.max(-max_debt, tokens - n)

redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens),
  'ts_us', string.format('%.0f', now_us))
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity + max_debt) / rate * 1000) + 1000)
return 1
