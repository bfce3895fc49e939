-- bifrost_health_v1: provider health shared by the fleet through the
-- limits store (docs/architecture.md §10).
--
-- KEYS[1]: the provider's health prefix `{<prefix><provider>}:health`
-- (keys below are KEYS[1] .. suffix, one hash tag). ARGV[1]: op;
-- ARGV[2]: the channel every process listens on; ARGV[3]: the provider.
--
-- 'cooldown' i ms: key i was rejected (401/403): cooling down for ms.
-- 'open' ms: the breaker opened for ms.
-- 'closed': a probe succeeded; the breaker closed (the probe lock goes).
-- 'probe' holder ms: take the one half-open probe of the fleet for ms
--   (1 if taken or already this holder's, else 0).
-- 'read' n: {open ms left, cooldown ms left of keys 0..n-1} (0: none).
-- Each state lives in a key with that expiry, and every change is also
-- published so that listening processes apply it at once.

local base, channel, provider = KEYS[1], ARGV[2], ARGV[3]
local op = ARGV[1]
if op == 'cooldown' then
  redis.call('SET', base .. ':cooldown:' .. ARGV[4], '1', 'PX', ARGV[5])
  redis.call('PUBLISH', channel, 'cooldown ' .. provider .. ' ' .. ARGV[4] .. ' ' .. ARGV[5])
  return 1
elseif op == 'open' then
  redis.call('SET', base .. ':open', '1', 'PX', ARGV[4])
  redis.call('PUBLISH', channel, 'open ' .. provider .. ' ' .. ARGV[4])
  return 1
elseif op == 'closed' then
  redis.call('DEL', base .. ':open', base .. ':probe')
  redis.call('PUBLISH', channel, 'closed ' .. provider)
  return 1
elseif op == 'probe' then
  local held = redis.call('GET', base .. ':probe')
  if held and held ~= ARGV[4] then return 0 end
  redis.call('SET', base .. ':probe', ARGV[4], 'PX', ARGV[5])
  return 1
elseif op == 'read' then
  local out = { math.max(0, redis.call('PTTL', base .. ':open')) }
  for i = 0, tonumber(ARGV[4]) - 1 do
    out[#out + 1] = math.max(0, redis.call('PTTL', base .. ':cooldown:' .. i))
  end
  return out
end
return redis.error_reply('bifrost_health_v1: unknown op')
