-- verify_code.lua: verify_code after the format check (R2.2-R2.6), trusting a device (R3.1).
-- KEYS[1]  the account's state (hash, fields as in issue_code.lua)
-- KEYS[2]  the account's replay record (R8.1, see _lib.lua)
-- ARGV[1]  now, ms since the epoch
-- ARGV[2]  code_window, ms
-- ARGV[3]  code_ttl, ms
-- ARGV[4]  max_attempts_per_code
-- ARGV[5]  max_failed_attempts
-- ARGV[6]  lockout, ms
-- ARGV[7]  device_trust_ttl, ms
-- ARGV[8]  expiry slack, ms
-- ARGV[9]  this request's id (48 random bits, made by the caller: a replay carries it again)
-- ARGV[10] device id to trust on success, or '' for none
-- ARGV[11] max_trusted_devices
-- ARGV[12..] the typed code's keyed hash under every secret
-- returns  outcome(kind, value) (see _lib.lua), the outcomes of _rules.verify:
--          (0, 0) verified   (2, lock end) locked   (3, 0) no code   (4, 0) expired
--          (5, code failures) wrong code   (6, 0) too many attempts (code burned)
--          (7, lock end) this guess locked the account (code burned)
--          a replay of a request that changed the account returns its first outcome and
--          changes nothing (R8.1): a guess counts once, a consumed code answers verified
local st = KEYS[1]
local now = tonumber(ARGV[1])
local lockout, slack = tonumber(ARGV[6]), tonumber(ARGV[8])
local id = ARGV[9]
local first = replayed(KEYS[2], id)
if first then
    return first
end
local s = redis.call('HMGET', st, 'u', 'h', 't', 'f', 'w', 'n', 'l')
local lock = tonumber(s[1] or '0')
if now < lock then
    return outcome(2, lock)
end
local hash = s[2]
if not hash then
    return outcome(3, 0)
end
local issued = tonumber(s[3])
if now >= issued + tonumber(ARGV[2]) then
    redis.call('HDEL', st, 'h', 't', 'f')
    return outcome(3, 0)
end
if now >= issued + tonumber(ARGV[3]) then
    return outcome(4, 0)
end
local failures = tonumber(s[6] or '0')
if failures > 0 and now >= tonumber(s[7] or '0') + lockout then
    failures = 0
end
local matched = false
for i = 12, #ARGV do
    if ARGV[i] == hash then
        matched = true
    end
end
if matched then
    remember(KEYS[2], id, outcome(0, 0), slack)
    local w = entry_released(s[5], issued)  -- R2.5: a used code stops counting (R1.4)
    if w then
        redis.call('HDEL', st, 'h', 't', 'f', 'n', 'l')
        redis.call('HSET', st, 'w', w)
    else
        redis.call('HDEL', st, 'h', 't', 'f', 'n', 'l', 'w')
    end
    local device = ARGV[10]
    if device ~= '' then
        -- forget expired trusts; past max_trusted_devices, the oldest grant goes (R9.1)
        local trust, most = tonumber(ARGV[7]), tonumber(ARGV[11])
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
    return outcome(0, 0)
end
local code_failures = tonumber(s[4]) + 1
failures = failures + 1
if failures >= tonumber(ARGV[5]) then
    redis.call('HDEL', st, 'h', 't', 'f')
    redis.call('HSET', st, 'u', now + lockout, 'n', 0, 'l', now)
    keep(st, lockout + slack)
    remember(KEYS[2], id, outcome(7, now + lockout), slack)
    return outcome(7, now + lockout)
end
if code_failures >= tonumber(ARGV[4]) then
    redis.call('HDEL', st, 'h', 't', 'f')
    redis.call('HSET', st, 'n', failures, 'l', now)
    keep(st, lockout + slack)  -- after the writes: HDEL may have emptied (deleted) the key
    remember(KEYS[2], id, outcome(6, 0), slack)
    return outcome(6, 0)
end
local wrong = outcome(5, code_failures)
redis.call('HSET', st, 'f', code_failures, 'n', failures, 'l', now)
keep(st, lockout + slack)
remember(KEYS[2], id, wrong, slack)
return wrong
