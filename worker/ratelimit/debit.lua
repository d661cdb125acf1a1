-- Force-consume n tokens (into debt, floored at -max_debt); mirrors bucket.debit.
-- KEYS[1] bucket hash {tokens, ts, granted}
-- ARGV: rate_per_s, capacity, max_debt, n
local rate = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local max_debt = tonumber(ARGV[3])
local n = tonumber(ARGV[4])

local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local st = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(st[1])
local ts = tonumber(st[2])
if tokens == nil or ts == nil then
  tokens = capacity
  ts = now
end
tokens = math.min(capacity, tokens + math.max(0, now - ts) * rate)
tokens = math.max(-max_debt, tokens - n)

redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens),
  'ts', string.format('%.17g', now))
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity + max_debt) / rate * 1000) + 1000)
return 1
