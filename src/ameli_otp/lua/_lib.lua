-- _lib.lua: helpers prepended to every ameli_otp script (not a script on its own).
--
-- The Lua twins of ameli_otp/_rules.py: the decisions made here must stay those of
-- _rules.py (the same outcome tuples), and tests/test_model.py holds both to one model.
-- Times are integer milliseconds from the caller's clock (ARGV); the server's clock is
-- never read. PEXPIRE only reclaims memory, always with slack past the last moment a
-- rule could need a key.

-- Every decision script returns ONE integer, value * 16 + kind (kind in 0..15): an integer
-- reply is one line to read where a {kind, value} table is three. Exact while |value| < 2^49
-- (ms: ~17,000 years), Lua numbers being doubles. Python: kind = r & 15, value = r >> 4.
local function outcome(kind, value)
    return value * 16 + kind
end

-- Keep key for at least ms more milliseconds (never shortens its life).
local function keep(key, ms)
    if redis.call('PTTL', key) < ms then
        redis.call('PEXPIRE', key, ms)
    end
end

-- R8.1, a retried call changes nothing twice. A client may send a script again when the reply
-- was lost (redis-py retries by default). Each call that changes an account (or resets a
-- limiter key) carries a request id (ARGV, 48 random bits in 8 characters), and its KEYS[2] is
-- the replay record of that account: a hash of request id -> what the request decided,
-- written with the change and kept `horizon` ms (the expiry slack) after its last write. A
-- replay finds its id there and returns the first outcome without changing anything. A
-- replay comes within seconds (a timeout, a reconnection); the record lives a minute.
-- (Its expiry is the server's own clock: it guards against replays, no rule depends on it.)

-- the outcome recorded for request id, or nil
local function replayed(q, id)
    local first = redis.call('HGET', q, id)
    if first then
        return tonumber(first)
    end
    return nil
end

-- record what request id decided
local function remember(q, id, decided, horizon)
    redis.call('HSET', q, id, decided)
    redis.call('PEXPIRE', q, horizon)
end

-- R2.6, R11.3, R12.2: one more consecutive failure on the account state st, whose fields n
-- (failures) and l (last failure, ms) were read as n and l; failures none was added to for
-- lockout are forgotten first (the twin of _rules.add_failure). Returns the lock end if this
-- failure locked the account (the count starts again from zero), else false and the failures.
local function add_failure(st, now, n, l, lockout, most, slack)
    local failures = tonumber(n or '0')
    if failures > 0 and now >= tonumber(l or '0') + lockout then
        failures = 0
    end
    failures = failures + 1
    if failures >= most then
        redis.call('HSET', st, 'u', now + lockout, 'n', 0, 'l', now)
        keep(st, lockout + slack)
        return now + lockout, 0
    end
    redis.call('HSET', st, 'n', failures, 'l', now)
    keep(st, lockout + slack)
    return false, failures
end

-- R3.1: trust device (its id) on st from now; expired trusts are forgotten, and past most
-- (max_trusted_devices) the oldest grant goes (R9.1) (the twin of _rules.add_device)
local function trust_device(st, now, trust, most, device, slack)
    local fields = redis.call('HGETALL', st)
    local live = {}
    for i = 1, #fields, 2 do
        local name = fields[i]
        if string.sub(name, 1, 2) == 'd:' then
            local granted = tonumber(fields[i + 1])
            if now >= granted + trust then
                redis.call('HDEL', st, name)
            else
                live[#live + 1] = {granted, name}
            end
        end
    end
    if #live >= most then
        table.sort(live, function(a, b)
            return a[1] < b[1] or (a[1] == b[1] and a[2] < b[2])
        end)
        for i = 1, #live - most + 1 do
            redis.call('HDEL', st, live[i][2])
        end
    end
    redis.call('HSET', st, 'd:' .. device, now)
    keep(st, trust + slack)
end

-- a wrong code of another factor (R11.3, R12.2): outcome (5, failures) or (7, lock end)
local function failed(st, now, n, l, lockout, most, slack)
    local lock_end, failures = add_failure(st, now, n, l, lockout, most, slack)
    if lock_end then
        return outcome(7, lock_end)
    end
    return outcome(5, failures)
end

-- Keep an authenticator hash as long as what it holds: for ever with a confirmed
-- authenticator, else until its pending enrollment expires (plus slack); an empty hash is gone.
local function settle_authenticator(a, now, ttl, slack)
    local f = redis.call('HMGET', a, 'e', 'c')
    if f[1] then
        redis.call('PERSIST', a)
    elseif f[2] then
        redis.call('PEXPIRE', a, math.max(tonumber(f[2]) + ttl - now, 0) + slack)
    end
end

-- An account's window is the field w of its state hash: the issue times of its codes that
-- may still count, sorted, comma-separated, each in hexadecimal ('-' in front if negative):
-- five fit in 64 bytes, so the hash keeps Redis's compact (listpack) encoding. One key per
-- account, and no sorted set for five entries. A code's entry is its issue time (field t):
-- verifying the code removes one occurrence of that time.
local function packed_time(t)
    if t < 0 then
        return '-' .. string.format('%x', -t)
    end
    return string.format('%x', t)
end

local function unpacked_time(x)
    if string.sub(x, 1, 1) == '-' then
        return -tonumber(string.sub(x, 2), 16)
    end
    return tonumber(x, 16)
end

-- the entries of w that still count (t > cut), packed, and their times, in order
local function entries_counting(w, cut)
    local entries, times = {}, {}
    if w then
        for x in string.gmatch(w, '[^,]+') do
            local t = unpacked_time(x)
            if t > cut then
                entries[#entries + 1] = x
                times[#times + 1] = t
            end
        end
    end
    return entries, times
end

-- the packed entries with the time t added in order (the clock may have gone back)
local function entry_added(entries, times, t)
    local i = #entries
    while i > 0 and times[i] > t do
        entries[i + 1] = entries[i]
        i = i - 1
    end
    entries[i + 1] = packed_time(t)
    return table.concat(entries, ',')
end

-- w without one occurrence of the time t, or nil if nothing is left
local function entry_released(w, t)
    local mine, entries, found = packed_time(t), {}, false
    for x in string.gmatch(w or '', '[^,]+') do
        if x == mine and not found then
            found = true
        else
            entries[#entries + 1] = x
        end
    end
    if #entries == 0 then
        return nil
    end
    return table.concat(entries, ',')
end

-- A limiter window is a sorted set: member = entry id, score = issue time (ms). An entry made at
-- t counts at every now with now < t + window. The entry id is made by the caller, once per call:
-- a replay of the same call (R8.1) finds its own member and adds nothing.
-- returns 1, entries counting after (added) or 0, issue time of the oldest counting (refused)
local function window_hit(key, now, window, limit, member, slack)
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
    local n = redis.call('ZCARD', key)
    if n >= limit then
        if redis.call('ZSCORE', key, member) then
            return 1, n  -- a replay of a hit that was allowed: its entry is already counted
        end
        local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
        return 0, tonumber(oldest[2])
    end
    -- ZADD answers 0 for a member already there: a replay counts its entry once
    local added = redis.call('ZADD', key, now, member)
    -- Every write keeps the key until its own now + window + slack and never shortens it:
    -- so an entry from before the clock went back (the newest) keeps the time it set.
    keep(key, window + slack)
    return 1, n + added
end
