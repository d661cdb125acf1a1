-- The send gate of one lane, atomically, on the server's clock.
-- Mirrors worker/ratelimit/window.py (trim, trusted, reserve, give_back, permit, confirm,
-- count_stale, record_send, observe); keep them in step. The contract suite runs both.
-- KEYS[1] sends ZSET (score: expiry)   KEYS[2] ghosts ZSET (score: expiry)
-- KEYS[3] reservations ZSET (score: expiry)
-- KEYS[4] gate HASH {epoch, seeded, probe_until, last_slot, seq, permits, deferred, stale}
-- KEYS[5] pause key
-- ARGV: op, limit, window_s, margin_s, lead_s, reservation_ttl_s, hold_s, then the op's own
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
local hold = tonumber(ARGV[7])
local span = window + margin
local sends, ghosts, resv, gate, pause = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]

local function fmt(x) return string.format('%.17g', x) end

local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000

-- trim
redis.call('ZREMRANGEBYSCORE', sends, '-inf', fmt(now))
redis.call('ZREMRANGEBYSCORE', ghosts, '-inf', fmt(now))
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

local function alive_at(at)
  local above = '(' .. fmt(at)
  return redis.call('ZCOUNT', sends, above, '+inf') + redis.call('ZCOUNT', ghosts, above, '+inf')
end

local function opening(slots)  -- window._opening_s; nil when slots < 1
  if slots < 1 then return nil end
  local n_ghosts = redis.call('ZCARD', ghosts)
  local index = redis.call('ZCARD', sends) + n_ghosts - slots
  if index < 0 then return -math.huge end
  if n_ghosts == 0 then
    return tonumber(redis.call('ZRANGE', sends, index, index, 'WITHSCORES')[2])
  end
  -- The slots-th newest expiry of both sets: the newest `slots` of each, merged.
  local merged = {}
  for _, key in ipairs({sends, ghosts}) do
    local rows = redis.call('ZREVRANGE', key, 0, slots - 1, 'WITHSCORES')
    for i = 2, #rows, 2 do merged[#merged + 1] = tonumber(rows[i]) end
  end
  table.sort(merged, function(a, b) return a > b end)
  return merged[slots]
end

local function expire_later(key, expiry)
  local ms = math.ceil((expiry - now) * 1000) + 1000
  if redis.call('PTTL', key) < ms then redis.call('PEXPIRE', key, ms) end
end

local function add(key, prefix, expiry)
  local id = prefix .. redis.call('HINCRBY', gate, 'seq', 1)
  redis.call('ZADD', key, fmt(expiry), id)
  expire_later(key, expiry)
  return id
end

local function paused_s()
  local ms = redis.call('PTTL', pause)
  if ms > 0 then return ms / 1000 end
  return 0
end

if op == 'reserve' then
  local want = tonumber(ARGV[8])
  local p = paused_s()
  if p > 0 then return {0, fmt(p)} end
  local granted, wait
  if not is_trusted then
    local probing = probe_until > now or redis.call('ZCARD', resv) > 0
    local full = alive_at(now) >= limit
    if probing or full then granted = 0 else granted = math.min(want, 1) end
    if granted == want then wait = 0 else wait = POLL_S end
  else
    local slots = limit - redis.call('ZCARD', resv)
    granted = math.max(0, math.min(want, slots - alive_at(now + lead)))
    wait = 0
    if granted < want then
      local opens = opening(slots - granted)
      if opens == nil then wait = MAX_WAIT_HINT_S else wait = opens - lead - now end
      wait = math.min(math.max(wait, 0.001), MAX_WAIT_HINT_S)
    end
  end
  for _ = 1, granted do add(resv, 'r', now + resv_ttl) end
  return {granted, fmt(wait)}
elseif op == 'give_back' then
  local n = tonumber(ARGV[8])
  if n > 0 then
    redis.call('ZPOPMIN', resv, n)
    if ARGV[9] == '1' then redis.call('HINCRBY', gate, 'deferred', n) end
  end
  return 1
elseif op == 'permit' then
  -- Returns {entry id or '', the slot (granted) or the wait (refused), the server's now,
  -- 1 if the permit is the untrusted lane's probe}.
  local max_wait = tonumber(ARGV[8])
  local p = paused_s()
  if p > 0 then return {'', fmt(p), fmt(now), 0} end
  if not is_trusted and probe_until > now then return {'', fmt(POLL_S), fmt(now), 0} end
  local slot = math.max(now, tonumber(redis.call('HGET', gate, 'last_slot') or '0'))
  if alive_at(slot) >= limit then slot = math.max(slot, opening(limit)) end
  if slot - now > max_wait or (not is_trusted and slot > now) then
    return {'', fmt(slot - now), fmt(now), 0}
  end
  if not is_trusted then redis.call('HSET', gate, 'probe_until', fmt(now + PROBE_TTL_S)) end
  local id = add(sends, 's', slot + hold + span)
  redis.call('HSET', gate, 'last_slot', fmt(slot))
  redis.call('ZPOPMIN', resv, 1)
  redis.call('HINCRBY', gate, 'permits', 1)
  return {id, fmt(slot), fmt(now), is_trusted and 0 or 1}
elseif op == 'confirm' then
  local id = ARGV[8]
  local held = tonumber(redis.call('ZSCORE', sends, id))
  if held ~= nil then
    redis.call('ZADD', sends, fmt(math.min(held, tonumber(ARGV[9]) + span)), id)
  end
  return 1
elseif op == 'stale' then
  redis.call('HINCRBY', gate, 'stale', 1)
  redis.call('HSET', gate, 'probe_until', '0')
  return 1
elseif op == 'record' then
  add(sends, 's', now + span)
  return 1
elseif op == 'observe' then
  redis.call('HSET', gate, 'probe_until', '0')
  if ARGV[9] == '' or is_trusted then return 0 end
  local sent_at = tonumber(ARGV[8])
  local counted = tonumber(ARGV[9])
  local reset = tonumber(ARGV[10])
  local here = redis.call('ZCOUNT', sends, '(' .. fmt(sent_at), fmt(sent_at + margin + span))
  local ghosted = redis.call('ZCOUNT', ghosts, '(' .. fmt(sent_at), '+inf')
  local missing = math.min(limit, counted - here - ghosted)
  local refill = window
  if reset ~= nil then refill = math.min(math.max(reset, 0), window) end
  for _ = 1, missing do add(ghosts, 'g', now + refill) end
  redis.call('HSET', gate, 'seeded', '1')
  return math.max(0, missing)
elseif op == 'snapshot' then
  return {alive_at(now), redis.call('ZCARD', resv), is_trusted and 1 or 0,
    fmt(paused_s()), tonumber(redis.call('HGET', gate, 'permits') or '0'),
    tonumber(redis.call('HGET', gate, 'deferred') or '0'),
    tonumber(redis.call('HGET', gate, 'stale') or '0')}
end
return redis.error_reply('unknown gate op ' .. tostring(op))
