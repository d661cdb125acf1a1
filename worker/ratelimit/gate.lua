-- The send gate of one lane, atomically, on the server's clock.
-- Mirrors worker/ratelimit/window.py (trim, trusted, reserve, give_back, permit, record_send,
-- observe); keep them in step. The contract suite runs both.
-- KEYS[1] sends ZSET (score: send time)   KEYS[2] reservations ZSET (score: expiry)
-- KEYS[3] gate HASH {epoch, seeded, probe_until, seq, permits, deferred, stale}   KEYS[4] pause key
-- ARGV: op, limit, window_s, margin_s, lead_s, reservation_ttl_s, then the op's own arguments
-- Numbers go back as strings: Lua numbers would be truncated to integers.
local PROBE_TTL_S = 10.0      -- window.PROBE_TTL_S
local POLL_S = 0.05           -- window.POLL_S
local MAX_WAIT_HINT_S = 0.25  -- window.MAX_WAIT_HINT_S
local GATE_TTL_MS = 86400000  -- the epoch outlives idle spells: an idle lane stays trusted

local op = ARGV[1]
local limit = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local margin = tonumber(ARGV[4])
local lead = tonumber(ARGV[5])
local resv_ttl = tonumber(ARGV[6])
local span = window + margin
local sends, resv, gate, pause = KEYS[1], KEYS[2], KEYS[3], KEYS[4]

local function fmt(x) return string.format('%.17g', x) end

local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000

-- trim
redis.call('ZREMRANGEBYSCORE', sends, '-inf', fmt(now - span))
redis.call('ZREMRANGEBYSCORE', resv, '-inf', fmt(now))
local g = redis.call('HMGET', gate, 'epoch', 'seeded', 'probe_until')
local epoch = tonumber(g[1])
if epoch == nil then
  epoch = now
  redis.call('HSET', gate, 'epoch', fmt(now))
end
redis.call('PEXPIRE', gate, GATE_TTL_MS)
local is_trusted = g[2] == '1' or now - epoch >= span
local probe_until = tonumber(g[3]) or 0

local function counted_at(at) return redis.call('ZCOUNT', sends, '(' .. fmt(at - span), '+inf') end

local function opening(slots)  -- window._opening_s; nil when slots < 1
  if slots < 1 then return nil end
  local index = redis.call('ZCARD', sends) - slots
  if index < 0 then return -math.huge end
  local row = redis.call('ZRANGE', sends, index, index, 'WITHSCORES')
  return tonumber(row[2]) + span
end

local function add_send(at)
  local seq = redis.call('HINCRBY', gate, 'seq', 1)
  redis.call('ZADD', sends, fmt(at), 's' .. seq)
  -- Idle one window past the newest send, the log is empty anyway.
  redis.call('PEXPIRE', sends, math.ceil((math.max(at, now) + span - now) * 1000) + 1000)
end

local function paused_s()
  local ms = redis.call('PTTL', pause)
  if ms > 0 then return ms / 1000 end
  return 0
end

if op == 'reserve' then
  local want = tonumber(ARGV[7])
  local p = paused_s()
  if p > 0 then return {0, fmt(p)} end
  local granted, wait
  if not is_trusted then
    local probing = probe_until > now or redis.call('ZCARD', resv) > 0
    local full = counted_at(now) >= limit
    if probing or full then granted = 0 else granted = math.min(want, 1) end
    if granted == want then wait = 0 else wait = POLL_S end
  else
    local slots = limit - redis.call('ZCARD', resv)
    granted = math.max(0, math.min(want, slots - counted_at(now + lead)))
    wait = 0
    if granted < want then
      local opens = opening(slots - granted)
      if opens == nil then wait = MAX_WAIT_HINT_S else wait = opens - lead - now end
      wait = math.min(math.max(wait, 0.001), MAX_WAIT_HINT_S)
    end
  end
  if granted > 0 then
    local expiry = fmt(now + resv_ttl)
    for _ = 1, granted do
      redis.call('ZADD', resv, expiry, 'r' .. redis.call('HINCRBY', gate, 'seq', 1))
    end
    redis.call('PEXPIRE', resv, math.ceil(resv_ttl * 1000) + 1000)
  end
  return {granted, fmt(wait)}
elseif op == 'give_back' then
  local n = tonumber(ARGV[7])
  if n > 0 then
    redis.call('ZPOPMIN', resv, n)
    if ARGV[8] == '1' then redis.call('HINCRBY', gate, 'deferred', n) end
  end
  return 1
elseif op == 'permit' then
  local p = paused_s()
  if p > 0 then return {0, fmt(p), fmt(now)} end
  if not is_trusted and probe_until > now then return {0, fmt(POLL_S), fmt(now)} end
  if counted_at(now) >= limit then
    return {0, fmt(math.max(0, opening(limit) - now)), fmt(now)}
  end
  if not is_trusted then redis.call('HSET', gate, 'probe_until', fmt(now + PROBE_TTL_S)) end
  add_send(now)
  redis.call('ZPOPMIN', resv, 1)
  redis.call('HINCRBY', gate, 'permits', 1)
  return {1, '0', fmt(now)}
elseif op == 'stale' then
  redis.call('HINCRBY', gate, 'stale', 1)
  redis.call('HSET', gate, 'probe_until', '0')
  return 1
elseif op == 'record' then
  add_send(now)
  return 1
elseif op == 'observe' then
  redis.call('HSET', gate, 'probe_until', '0')
  if ARGV[8] == '' then return 0 end
  local sent_at = tonumber(ARGV[7])
  local counted = tonumber(ARGV[8])
  local reset = tonumber(ARGV[9])
  local here = redis.call('ZCOUNT', sends, '(' .. fmt(sent_at - span), fmt(math.min(sent_at + margin, now)))
  local missing = math.min(limit, counted - here)
  local refill = window
  if reset ~= nil then refill = math.min(math.max(reset, 0), window) end
  for _ = 1, missing do add_send(now + refill - span) end
  redis.call('HSET', gate, 'seeded', '1')
  return math.max(0, missing)
elseif op == 'snapshot' then
  return {counted_at(now), redis.call('ZCARD', resv), is_trusted and 1 or 0,
    fmt(paused_s()), tonumber(redis.call('HGET', gate, 'permits') or '0'),
    tonumber(redis.call('HGET', gate, 'deferred') or '0'),
    tonumber(redis.call('HGET', gate, 'stale') or '0')}
end
return redis.error_reply('unknown gate op ' .. tostring(op))
