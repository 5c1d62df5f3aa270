-- totp_verify.lua: a code of the confirmed authenticator, as its step (R11.2, R11.3, R3.1;
-- _factors.verify_totp). The step was found by the caller (pyotp), within the drift window.
-- KEYS[1]  the account's state (hash, fields as in issue_code.lua)
-- KEYS[2]  the account's replay record (R8.1, see _lib.lua)
-- KEYS[3]  the account's authenticator (hash, fields as in totp_read.lua)
-- ARGV[1]  now, ms since the epoch
-- ARGV[2]  the ref the caller derived the secret from ('' for none)
-- ARGV[3]  the step the typed code matched, or -1 (_factors.NO_MATCH)
-- ARGV[4]  lockout, ms
-- ARGV[5]  max_failed_attempts
-- ARGV[6]  expiry slack, ms
-- ARGV[7]  this request's id (a replay carries it again)
-- ARGV[8]  device id to trust on success, or '' for none
-- ARGV[9]  device_trust_ttl, ms
-- ARGV[10] max_trusted_devices
-- returns  outcome(kind, value), the outcomes of _factors.verify_totp:
--          (0, 0) verified   (2, lock end) locked   (3, 0) no authenticator (or another)
--          (5, failures) wrong code   (7, lock end) this guess locked the account
--          (10, 0) this step, or a later one, was already accepted: refused, not counted
--          Accepting a step and refusing it and every earlier one from then on is this
--          one script: M concurrent verifications of one code give one success.
local st, q, a = KEYS[1], KEYS[2], KEYS[3]
local now, ref, step = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local slack, id = tonumber(ARGV[6]), ARGV[7]
local first = replayed(q, id)
if first then
    return first
end
local s = redis.call('HMGET', st, 'u', 'n', 'l')
local lock = tonumber(s[1] or '0')
if now < lock then
    return outcome(2, lock)
end
local e = redis.call('HMGET', a, 'e', 'k')
if not e[1] or e[1] ~= ref then
    return outcome(3, 0)
end
local decided
if step < 0 then
    decided = failed(st, now, s[2], s[3], tonumber(ARGV[4]), tonumber(ARGV[5]), slack)
elseif step <= tonumber(e[2]) then
    return outcome(10, 0)
else
    redis.call('HSET', a, 'k', step)
    redis.call('HDEL', st, 'n', 'l')
    if ARGV[8] ~= '' then
        trust_device(st, now, tonumber(ARGV[9]), tonumber(ARGV[10]), ARGV[8], slack)
    end
    decided = outcome(0, 0)
end
remember(q, id, decided, slack)
return decided
