-- bifrost_limits_v1: a pool's token buckets (GCRA) in Redis, one atomic
-- step per call, on the server's clock (docs/architecture.md §10).
--
-- Exact on Lua 5.1's doubles: a bucket's theoretical arrival time (tat) is a
-- pair (w, r) meaning w + r/limit in the bucket's time unit (µs, ms or s,
-- chosen by bifrost so that burst·period < 2^51 in it), with 0 <= r < limit.
-- Every value stays an integer below 2^53, so no operation rounds (x / d
-- may; divmod corrects it).
--
-- KEYS: the buckets (one hash tag: one slot on a Cluster), then for a take
-- with `max_in_flight` the set of leases.
-- ARGV[1]: 'take' | 'adjust' | 'observe' | 'level'.
-- ARGV[2]: now in µs (tests), or '' for the server's TIME.
-- ARGV[3]: how many buckets (KEYS[1..n]).
-- Then six per bucket: limit, period (in units), burst, unit (µs per unit),
-- n (adjust: signed delta; observe: remaining; else 0), m (observe: the
-- reset, in units; else 0). A take then lists its jobs (see below).
--
-- Leases (`max_in_flight` across the fleet): a sorted set of members
-- scored by their expiry (server ms). A take first drops the expired ones;
-- with fewer than max left it adds its member, else it takes nothing.
--
-- A stored bucket is "w r limit unit"; no key means full. A key written
-- with another limit or unit (a config change, another bifrost version in a
-- rolling deploy) is read as its tat rounded up.
--
-- Replies: take {jobs taken, used..., [leases held], [why the next job
-- was not taken: 0 wait... (per claim of that job) | -1 i (claim i exceeds
-- its burst) | 2 ms (every lease is held; ms until the first expires)]};
-- the others {1, used...}.
-- `used` and `wait` are two integers per bucket (whole units, fraction
-- over limit): how far the tat is ahead of now, and how long a refused
-- bucket needs before it fits (0 0 for one that fits).

local function divmod(x, d)
  local q = math.floor(x / d)
  local r = x - q * d
  while r < 0 do q = q - 1; r = r + d end
  while r >= d do q = q + 1; r = r - d end
  return q, r
end

local function add(w, r, dw, dr, limit)
  w, r = w + dw, r + dr
  if r >= limit then w, r = w + 1, r - limit end
  return w, r
end

local function sub(w, r, dw, dr, limit)
  w, r = w - dw, r - dr
  if r < 0 then w, r = w - 1, r + limit end
  return w, r
end

local function le(w1, r1, w2, r2)
  return w1 < w2 or (w1 == w2 and r1 <= r2)
end

local now_us
if ARGV[2] ~= '' then
  now_us = tonumber(ARGV[2])
else
  local t = redis.call('TIME')
  now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
end

local op = ARGV[1]
local n_buckets = tonumber(ARGV[3])
local b = {}
for i = 1, n_buckets do
  local a = 3 + (i - 1) * 6
  local limit, period, burst, unit = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
  local now = divmod(now_us, unit)
  local kw, kr = divmod(burst * period, limit)
  -- The stored tat, no earlier than now, no later than two bursts ahead.
  local w, r = now, 0
  local v = redis.call('GET', KEYS[i])
  if v then
    local sw, sr, sl, su = string.match(v, '^(%d+) (%d+) (%d+) (%d+)$')
    if sw then
      sw, sr, sl, su = tonumber(sw), tonumber(sr), tonumber(sl), tonumber(su)
      if sl ~= limit or su ~= unit then
        if sr > 0 then sw = sw + 1 end
        local q, rem = divmod(sw * su, unit)
        if rem > 0 then q = q + 1 end
        sw, sr = q, 0
      end
      if sw >= now then w, r = sw, sr end
    end
  end
  -- (A foreign value is held to what these ops can write: two bursts
  -- and a day's reset ahead.)
  local mw, mr = add(now + divmod(86400000000, unit) + 2, 0, 2 * kw, 2 * kr, limit)
  if not le(w, r, mw, mr) then w, r = mw, mr end
  b[i] = { key = KEYS[i], limit = limit, period = period, burst = burst, unit = unit, now = now,
           kw = kw, kr = kr, w = w, r = r, n = tonumber(ARGV[a + 5]), m = tonumber(ARGV[a + 6]) }
end

local function save(x)
  if x.w < x.now or (x.w == x.now and x.r == 0) then
    redis.call('DEL', x.key)
    return
  end
  local v = string.format('%d %d %d %d', x.w, x.r, x.limit, x.unit)
  if ARGV[2] ~= '' then
    -- A test's clock: the server's expiry would not match it.
    redis.call('SET', x.key, v)
    return
  end
  -- Expires when the bucket is full again (no key reads as full).
  local ms, rem = divmod((x.w - x.now + 1) * x.unit, 1000)
  if rem > 0 then ms = ms + 1 end
  redis.call('SET', x.key, v, 'PX', ms + 1)
end

local function used(out)
  for i = 1, n_buckets do
    local x = b[i]
    out[#out + 1] = x.w - x.now
    out[#out + 1] = x.r
  end
  return out
end

if op == 'take' then
  -- After the buckets: the jobs, in queue order, each its claims as
  -- (bucket number, units) pairs, and with leases (KEYS[n+1]) max and
  -- ttl first and a member per job. Jobs are taken in order while they
  -- fit; the first that does not fit stops the batch, so a later job
  -- never overtakes an earlier one.
  local p = 4 + 6 * n_buckets
  local njobs = tonumber(ARGV[p])
  p = p + 1
  local lease = nil
  if #KEYS > n_buckets then
    lease = { key = KEYS[n_buckets + 1], max = tonumber(ARGV[p]), ttl = tonumber(ARGV[p + 1]) }
    p = p + 2
    lease.now_ms = math.floor(now_us / 1000)
    redis.call('ZREMRANGEBYSCORE', lease.key, '-inf', lease.now_ms)
    lease.held = redis.call('ZCARD', lease.key)
  end
  local taken, stop = 0, nil
  for _ = 1, njobs do
    local c = tonumber(ARGV[p])
    p = p + 1
    local claims = {}
    for k = 1, c do
      claims[k] = { i = tonumber(ARGV[p]), n = tonumber(ARGV[p + 1]) }
      p = p + 2
    end
    local member = nil
    if lease then
      member = ARGV[p]
      p = p + 1
    end
    if stop == nil then
      local waits, short, never = {}, false, nil
      for k = 1, c do
        local x, n = b[claims[k].i], claims[k].n
        if n > x.burst then
          never = k - 1
          break
        end
        local cw, cr = divmod(n * x.period, x.limit)
        local nw, nr = add(x.w, x.r, cw, cr, x.limit)
        local lw, lr = add(x.now, 0, x.kw, x.kr, x.limit)
        if le(nw, nr, lw, lr) then
          claims[k].nw, claims[k].nr = nw, nr
          waits[#waits + 1] = 0
          waits[#waits + 1] = 0
        else
          short = true
          local dw, dr = sub(nw, nr, lw, lr, x.limit)
          waits[#waits + 1] = dw
          waits[#waits + 1] = dr
        end
      end
      if never then
        stop = { -1, never }
      elseif short then
        table.insert(waits, 1, 0)
        stop = waits
      elseif lease and lease.held >= lease.max then
        local first = redis.call('ZRANGE', lease.key, 0, 0, 'WITHSCORES')
        local ms = 1
        if first[2] then ms = math.max(1, tonumber(first[2]) - lease.now_ms) end
        stop = { 2, ms }
      else
        for k = 1, c do
          local x = b[claims[k].i]
          x.w, x.r, x.dirty = claims[k].nw, claims[k].nr, true
        end
        if lease then
          redis.call('ZADD', lease.key, lease.now_ms + lease.ttl, member)
          lease.held = lease.held + 1
        end
        taken = taken + 1
      end
    end
  end
  for i = 1, n_buckets do
    if b[i].dirty then save(b[i]) end
  end
  -- The set goes when its last lease has expired.
  if lease and taken > 0 then redis.call('PEXPIRE', lease.key, lease.ttl + 1000) end
  local out = used({ taken })
  if lease then out[#out + 1] = lease.held end
  if stop then
    for k = 1, #stop do out[#out + 1] = stop[k] end
  end
  return out
elseif op == 'adjust' then
  for i = 1, n_buckets do
    local x = b[i]
    if x.n > 0 then
      -- A charge after the fact: debt, at most two bursts ahead.
      local cw, cr = divmod(math.min(x.n, 2 * x.burst) * x.period, x.limit)
      x.w, x.r = add(x.w, x.r, cw, cr, x.limit)
      local mw, mr = add(x.now, 0, 2 * x.kw, 2 * x.kr, x.limit)
      if not le(x.w, x.r, mw, mr) then x.w, x.r = mw, mr end
    elseif x.n < 0 then
      local cw, cr = divmod(math.min(-x.n, 3 * x.burst) * x.period, x.limit)
      x.w, x.r = sub(x.w, x.r, cw, cr, x.limit)
      if x.w < x.now then x.w, x.r = x.now, 0 end
    end
    save(x)
  end
  return used({ 1 })
elseif op == 'observe' then
  for i = 1, n_buckets do
    local x = b[i]
    local left = math.min(x.n, x.burst)
    local cw, cr = divmod((x.burst - left) * x.period, x.limit)
    local fw, fr = add(x.now, 0, cw, cr, x.limit)
    if left == 0 then
      -- Nothing before the reset: one unit fits at now + m.
      local bw, br = add(x.now + x.m, 0, x.kw, x.kr, x.limit)
      local ow, orr = divmod(x.period, x.limit)
      bw, br = sub(bw, br, ow, orr, x.limit)
      if le(fw, fr, bw, br) then fw, fr = bw, br end
    end
    if le(x.w, x.r, fw, fr) then x.w, x.r = fw, fr end
    save(x)
  end
  return used({ 1 })
elseif op == 'level' then
  return used({ 1 })
end
return redis.error_reply('bifrost_limits_v1: unknown op')
