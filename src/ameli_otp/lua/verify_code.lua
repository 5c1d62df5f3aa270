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
    if ARGV[10] ~= '' then
        trust_device(st, now, tonumber(ARGV[7]), tonumber(ARGV[11]), ARGV[10], slack)
    end
    return outcome(0, 0)
end
local code_failures = tonumber(s[4]) + 1
local lock_end = add_failure(st, now, s[6], s[7], lockout, tonumber(ARGV[5]), slack)
if lock_end then
    redis.call('HDEL', st, 'h', 't', 'f')
    remember(KEYS[2], id, outcome(7, lock_end), slack)
    return outcome(7, lock_end)
end
if code_failures >= tonumber(ARGV[4]) then
    redis.call('HDEL', st, 'h', 't', 'f')
    remember(KEYS[2], id, outcome(6, 0), slack)
    return outcome(6, 0)
end
local wrong = outcome(5, code_failures)
redis.call('HSET', st, 'f', code_failures)
remember(KEYS[2], id, wrong, slack)
return wrong
