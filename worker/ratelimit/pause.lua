-- Pause a bucket for ARGV[1] milliseconds; extends a pause, never shortens one.
-- KEYS[1] pause key
local ms = tonumber(ARGV[1])
if redis.call('PTTL', KEYS[1]) < ms then
  redis.call('SET', KEYS[1], '1', 'PX', ms)
end
return 1
