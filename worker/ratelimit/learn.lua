-- Remember a limit reported by the gateway; only lowers (compared in requests per second).
-- An equal limit extends the TTL; a higher one is ignored until the lower one expires.
-- KEYS[1] learned hash {limit, window_s}
-- ARGV: limit, window_s, ttl_ms
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local ttl_ms = tonumber(ARGV[3])
local old = redis.call('HMGET', KEYS[1], 'limit', 'window_s')
local old_limit = tonumber(old[1])
local old_window = tonumber(old[2])
if old_limit == nil or old_window == nil or limit * old_window < old_limit * window then
  redis.call('HSET', KEYS[1], 'limit', ARGV[1], 'window_s', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ttl_ms)
elseif limit * old_window == old_limit * window then
  if redis.call('PTTL', KEYS[1]) < ttl_ms then
    redis.call('PEXPIRE', KEYS[1], ttl_ms)
  end
end
return 1
