-- bifrost_leases_v1: renew or release one process's `max_in_flight`
-- leases (docs/architecture.md §10; taken by redis_script.lua's 'take').
--
-- KEYS[1]: the set of leases (members scored by their expiry, server ms).
-- ARGV[1]: 'renew' | 'release'; ARGV[2]: the ttl in ms; ARGV[3..]: members.
-- Renew moves the expiry of each member still in the set to now + ttl and
-- answers how many were; a member already expired is not brought back
-- (its holder was taken for dead). Release removes the members.

if ARGV[1] == 'release' then
  local gone = 0
  for i = 3, #ARGV do
    gone = gone + redis.call('ZREM', KEYS[1], ARGV[i])
  end
  return gone
end
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
local kept = 0
for i = 3, #ARGV do
  if redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    redis.call('ZADD', KEYS[1], 'XX', now_ms + ttl, ARGV[i])
    kept = kept + 1
  end
end
if kept > 0 then redis.call('PEXPIRE', KEYS[1], ttl + 1000) end
return kept
