"""The Lua scripts that move money. Each runs atomically and touches one account's keys.

Amounts go back to Python as integer replies (a Lua number becomes one), never through
``tostring``, which switches to exponent notation from about 1e14 (a $100,000 balance).
"""

from __future__ import annotations

# KEYS: key record, account, holds, hold expiries, rpm counter, tpm counter, hold info
# ARGV: now, model, hold, hold id, hold ttl, seconds left in this minute,
#       lease id, smallest lease, largest lease, lease ttl (smallest lease 0: no lease),
#       whether the process's lease already covers this request (1/0),
#       deadline (unix seconds; 0: none), what to charge if the request never reports
# Past its deadline the call does nothing: the translator has stopped waiting and answered
# 503 (Redis stalled), so no hold may be placed for a request that was refused.
# A key without rate limits may lease: up to half the available balance (at most the
# largest lease) moves into the process's lease hold, and this request and the next are
# admitted against it in the process; a lease that covers the request is only renewed.
# Otherwise this request gets a hold of its own.
ADMIT = """
local deadline = tonumber(ARGV[12] or '0')
if deadline > 0 then
  local t = redis.call('TIME')
  if tonumber(t[1]) + tonumber(t[2]) / 1000000 > deadline then return {'late'} end
end
local k = redis.call('HMGET', KEYS[1], 'id', 'revoked', 'expires_at', 'models', 'rpm', 'tpm')
if not k[1] then return {'unknown'} end
if k[2] == '1' then return {'revoked'} end
local now = tonumber(ARGV[1])
local exp = tonumber(k[3] or '0') or 0
if exp > 0 and now >= exp then return {'expired'} end
local models = k[4] or ''
if models ~= '' then
  local allowed = false
  for m in string.gmatch(models, '[^,]+') do
    if m == ARGV[2] then allowed = true; break end
  end
  if not allowed then return {'forbidden'} end
end
local rpm = tonumber(k[5] or '0') or 0
if rpm > 0 then
  local n = redis.call('INCR', KEYS[5])
  if n == 1 then redis.call('EXPIRE', KEYS[5], 61) end
  if n > rpm then return {'rate_limited', ARGV[6]} end
end
local tpm = tonumber(k[6] or '0') or 0
if tpm > 0 and tonumber(redis.call('GET', KEYS[6]) or '0') >= tpm then
  return {'rate_limited', ARGV[6]}
end
local a = redis.call('HMGET', KEYS[2], 'balance', 'held')
local available = (tonumber(a[1] or '0') or 0) - (tonumber(a[2] or '0') or 0)
local hold = tonumber(ARGV[3])
if available < hold or available < 0 then return {'insufficient', available} end
local smallest = tonumber(ARGV[8])
if rpm == 0 and tpm == 0 and smallest > 0 then
  local lease = math.min(tonumber(ARGV[9]), math.floor(available / 2))
  if lease < smallest then lease = 0 end
  if lease > 0 or (ARGV[11] == '1' and redis.call('HEXISTS', KEYS[3], ARGV[7]) == 1) then
    if lease > 0 then
      redis.call('HINCRBY', KEYS[2], 'held', lease)
      redis.call('HINCRBY', KEYS[3], ARGV[7], lease)
    end
    redis.call('ZADD', KEYS[4], now + tonumber(ARGV[10]), ARGV[7])
    return {'lease', k[1], lease, k[3] or '0', models}
  end
end
-- HSETNX: a call the client retried (its reply lost to a failover or a timeout) holds once
if hold > 0 and redis.call('HSETNX', KEYS[3], ARGV[4], hold) == 1 then
  redis.call('HINCRBY', KEYS[2], 'held', hold)
  redis.call('ZADD', KEYS[4], now + tonumber(ARGV[5]), ARGV[4])
  redis.call('HSET', KEYS[7], ARGV[4], (ARGV[13] or '0') .. ' ' .. ARGV[2] .. ' ' .. k[1])
end
return {'ok', k[1]}
"""

# Takes up to `amount` out of a lease's hold (KEYS[1] account, KEYS[2] holds, KEYS[3] hold
# expiries), never below zero; a lease emptied is removed. Returns what was taken.
_TAKE_FROM_LEASE = """
local function take_from_lease(lease, amount)
  local held = tonumber(redis.call('HGET', KEYS[2], lease) or '0')
  local taken = math.min(amount, held)
  if taken <= 0 then return 0 end
  if held - taken <= 0 then
    redis.call('HDEL', KEYS[2], lease)
    redis.call('ZREM', KEYS[3], lease)
  else
    redis.call('HINCRBY', KEYS[2], lease, -taken)
  end
  redis.call('HINCRBY', KEYS[1], 'held', -taken)
  return taken
end
"""

# KEYS: account, holds, hold expiries   ARGV: lease id, amount
# What a process gives back of its lease (never more than the lease still holds).
RETURN_LEASE = _TAKE_FROM_LEASE + """
return take_from_lease(ARGV[1], tonumber(ARGV[2]))
"""

# KEYS: account, holds, hold expiries, ledger, recent requests stream, keys' last use, hold info,
#       then for each event: its done marker, its usage day hash, its key's tpm counter, its
#       reaped marker
# ARGV: done ttl, then for each event SETTLE_ARGS values (Settlement.of): the serialized event (what
#       the recent requests keep), its time (unix seconds, "%.3f"), its id, model, key id, lease
#       (empty: none), and seven integers in one string, space-separated: cost, failed (1 when its
#       status is >= 400 or it is not complete, else 0), usage input, cache read, cache write,
#       output, reasoning (0 when unset). Fewer, larger arguments: each costs the settler to send.
# Settles a batch of one account's metering events; each is applied once (its done marker),
# in order: hold released, cost charged, ledger and recent requests written. An event admitted
# against a lease placed no hold of its own (its cost comes out of the lease's hold: what the
# batch's events of each lease cost is taken once, as far as that hold still holds). Usage, tpm
# counters and last use are added up in the batch and written once per field. An event that
# comes after the reaper gave up on it (its reaped marker: what the reaper charged) is charged the
# difference and not counted again. Usage days expire, and ledger entries are trimmed
# (approximately: XTRIM MINID ~, whole stream nodes, whenever the batch charged), KEEP_DAYS after
# they were written. Per event the script makes the calls it must (4 for an event of a lease) and
# little else: docs/performance.md, "Settlement and the access log".
# The events were checked by the caller (Settlement.of); returns 'ok' or 'duplicate' per event.
SETTLE_ARGS = 7
KEEP_DAYS = 400  # usage aggregates and ledger entries (docs/billing.md, "What is kept")
SETTLE = _TAKE_FROM_LEASE + """
local ttl = ARGV[1]
local charged = false
local names = {'requests', 'input', 'cache_read', 'cache_write', 'output', 'reasoning', 'cost', 'failed'}
local out, usage, usage_order, tpm, tpm_order, last, leases, lease_order = {}, {}, {}, {}, {}, {}, {}, {}
local fields = {}  -- "model|" or "key|model|" -> its eight usage field names, made once a batch
local function slot(t, order, key)  -- t[key], a table made (and key remembered in order) on first use
  local v = t[key]
  if not v then v = {}; t[key] = v; order[#order + 1] = key end
  return v
end
local function add_usage(h, prefix, v)
  local f = fields[prefix]
  if not f then
    f = {}
    for j = 1, 8 do f[j] = prefix .. names[j] end
    fields[prefix] = f
  end
  for j = 1, 8 do
    if v[j] ~= 0 then h[f[j]] = (h[f[j]] or 0) + v[j] end
  end
end
local per = """ + str(SETTLE_ARGS) + """
for i = 0, (#ARGV - 1) / per - 1 do
  local a = 1 + per * i
  local k = 7 + 4 * i
  if not redis.call('SET', KEYS[k + 1], '1', 'NX', 'EX', ttl) then
    out[#out + 1] = 'duplicate'
  else
    local ts, id, model, key, lease = ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5], ARGV[a + 6]
    if model == '' then model = '-' end
    if key == '' then key = '-' end
    local cost, failed, input, cread, cwrite, output, reasoning =
      string.match(ARGV[a + 7], '^(%-?%d+) (%-?%d+) (%-?%d+) (%-?%d+) (%-?%d+) (%-?%d+) (%-?%d+)$')
    cost, failed = tonumber(cost), tonumber(failed)
    input, cread, cwrite = tonumber(input), tonumber(cread), tonumber(cwrite)
    output, reasoning = tonumber(output), tonumber(reasoning)
    if lease == '' then
      local hold = tonumber(redis.call('HGET', KEYS[2], id) or '0')
      if hold > 0 then
        redis.call('HDEL', KEYS[2], id)
        redis.call('ZREM', KEYS[3], id)
        redis.call('HDEL', KEYS[7], id)
        redis.call('HINCRBY', KEYS[1], 'held', -hold)
      end
    elseif cost > 0 then
      local l = slot(leases, lease_order, lease)
      l.n = (l.n or 0) + cost
    end
    local reaped = redis.call('GET', KEYS[k + 4])
    local charge = cost - (tonumber(reaped) or 0)
    if reaped then redis.call('DEL', KEYS[k + 4]) end
    if charge ~= 0 then  -- HINCRBY by -0 is refused ('-0' is not an integer to Redis)
      local balance = redis.call('HINCRBY', KEYS[1], 'balance', -charge)
      local kind = charge > 0 and 'charge' or 'adjust'
      if reaped then
        redis.call('XADD', KEYS[4], '*', 'type', kind, 'amount', -charge, 'balance', balance, 'ref', id,
                   'model', model, 'key', key, 'ts', ts, 'reason', 'settled after the reaper recorded it')
      else
        redis.call('XADD', KEYS[4], '*', 'type', kind, 'amount', -charge, 'balance', balance, 'ref', id,
                   'model', model, 'key', key, 'ts', ts)
      end
      charged = true
    end
    local v = {reaped and 0 or 1, input, cread, cwrite, output, reasoning, charge, failed}
    local u = slot(usage, usage_order, KEYS[k + 2])
    add_usage(u, model .. '|', v)
    add_usage(u, key .. '|' .. model .. '|', v)
    local tokens = input + cread + cwrite + output + reasoning
    if tokens ~= 0 then
      local c = slot(tpm, tpm_order, KEYS[k + 3])
      c.n = (c.n or 0) + tokens
    end
    redis.call('XADD', KEYS[5], 'MAXLEN', '~', 1000, '*', 'pb', ARGV[a + 1])
    if key ~= '-' and (last[key] == nil or tonumber(ts) > tonumber(last[key])) then last[key] = ts end
    out[#out + 1] = 'ok'
  end
end
for _, lease in ipairs(lease_order) do take_from_lease(lease, leases[lease].n) end
for _, h in ipairs(usage_order) do
  for field, n in pairs(usage[h]) do redis.call('HINCRBY', h, field, n) end
  redis.call('EXPIRE', h, 60 * 60 * 24 * """ + str(KEEP_DAYS) + """)
end
for _, c in ipairs(tpm_order) do
  redis.call('INCRBY', c, tpm[c].n)
  redis.call('EXPIRE', c, 61)
end
for key, ts in pairs(last) do
  if tonumber(ts) > tonumber(redis.call('HGET', KEYS[6], key) or '0') then redis.call('HSET', KEYS[6], key, ts) end
end
if charged then
  local min = tonumber(redis.call('TIME')[1]) - 60 * 60 * 24 * """ + str(KEEP_DAYS) + """
  redis.call('XTRIM', KEYS[4], 'MINID', '~', string.format('%d', min * 1000))
end
return out
"""

# KEYS: account, holds, hold expiries, hold info, ledger, usage day hash, reaped marker
# ARGV: hold id, now, reaped marker ttl, now as "%.3f"
# Releases a hold past its expiry. A request's hold (not a lease) leaves a record: the ledger
# entry 'reaped' (charging what admission said to charge for a request that never reports:
# 0, or its estimated prompt), the usage counts it as a request, and the reaped marker lets
# its event, should it still come, be charged only the difference. Returns the hold released.
RELEASE_EXPIRED = """
local due = redis.call('ZSCORE', KEYS[3], ARGV[1])
if not due or tonumber(due) > tonumber(ARGV[2]) then return 0 end
local hold = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
if hold > 0 then redis.call('HINCRBY', KEYS[1], 'held', -hold) end
local info = redis.call('HGET', KEYS[4], ARGV[1])
if info then
  redis.call('HDEL', KEYS[4], ARGV[1])
  local charge, model, key = string.match(info, '^(%d+) (%S+) (%S+)$')
  charge = tonumber(charge) or 0
  model, key = model or '-', key or '-'
  local balance = tonumber(redis.call('HGET', KEYS[1], 'balance') or '0')
  if charge > 0 then balance = redis.call('HINCRBY', KEYS[1], 'balance', -charge) end
  redis.call('XADD', KEYS[5], '*', 'type', 'reaped', 'amount', charge > 0 and -charge or 0, 'balance', balance,
             'ref', ARGV[1],
             'model', model, 'key', key, 'ts', ARGV[4], 'reason', 'the request never reported its usage')
  for _, f in ipairs({model .. '|', key .. '|' .. model .. '|'}) do
    redis.call('HINCRBY', KEYS[6], f .. 'requests', 1)
    redis.call('HINCRBY', KEYS[6], f .. 'reaped', 1)
    if charge > 0 then redis.call('HINCRBY', KEYS[6], f .. 'cost', charge) end
  end
  redis.call('EXPIRE', KEYS[6], 60 * 60 * 24 * """ + str(KEEP_DAYS) + """)
  redis.call('SET', KEYS[7], charge, 'EX', ARGV[3])
end
return hold
"""

# KEYS: account, ledger, done marker   ARGV: amount, type, ref, reason, ts
CREDIT = """
if not redis.call('SET', KEYS[3], '1', 'NX') then return {'duplicate'} end
local balance = redis.call('HINCRBY', KEYS[1], 'balance', ARGV[1])
redis.call('XADD', KEYS[2], '*', 'type', ARGV[2], 'amount', ARGV[1], 'balance', balance,
           'ref', ARGV[3], 'reason', ARGV[4], 'ts', ARGV[5])
return {'ok', balance}
"""
