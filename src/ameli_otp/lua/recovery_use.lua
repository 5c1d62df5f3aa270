-- recovery_use.lua: a recovery code works once (R12.2, R3.1; _factors.use_recovery).
-- KEYS[1]  the account's state (hash, fields as in issue_code.lua)
-- KEYS[2]  the account's replay record (R8.1, see _lib.lua)
-- KEYS[3]  the account's recovery codes (set of keyed hashes)
-- ARGV[1]  now, ms since the epoch
-- ARGV[2]  lockout, ms
-- ARGV[3]  max_failed_attempts
-- ARGV[4]  expiry slack, ms
-- ARGV[5]  this request's id (a replay carries it again)
-- ARGV[6]  device id to trust on success, or '' for none
-- ARGV[7]  device_trust_ttl, ms
-- ARGV[8]  max_trusted_devices
-- ARGV[9..] the typed code's keyed hash under every secret
-- returns  outcome(kind, value), the outcomes of _factors.use_recovery:
--          (0, codes left) used   (2, lock end) locked   (3, 0) no code left
--          (5, failures) wrong code   (7, lock end) this guess locked the account
local st, q, r = KEYS[1], KEYS[2], KEYS[3]
local now, slack, id = tonumber(ARGV[1]), tonumber(ARGV[4]), ARGV[5]
local first = replayed(q, id)
if first then
    return first
end
local s = redis.call('HMGET', st, 'u', 'n', 'l')
local lock = tonumber(s[1] or '0')
if now < lock then
    return outcome(2, lock)
end
if redis.call('SCARD', r) == 0 then
    return outcome(3, 0)
end
local decided
for i = 9, #ARGV do
    if not decided and redis.call('SREM', r, ARGV[i]) == 1 then
        redis.call('HDEL', st, 'n', 'l')
        if ARGV[6] ~= '' then
            trust_device(st, now, tonumber(ARGV[7]), tonumber(ARGV[8]), ARGV[6], slack)
        end
        decided = outcome(0, redis.call('SCARD', r))
    end
end
if not decided then
    decided = failed(st, now, s[2], s[3], tonumber(ARGV[2]), tonumber(ARGV[3]), slack)
end
remember(q, id, decided, slack)
return decided
