-- totp_confirm.lua: the first code of a pending enrollment confirms it (R11.1, _factors.confirm).
-- KEYS[1]  the account's state (hash, fields as in issue_code.lua)
-- KEYS[2]  the account's replay record (R8.1, see _lib.lua)
-- KEYS[3]  the account's authenticator (hash, fields as in totp_read.lua)
-- ARGV[1]  now, ms since the epoch
-- ARGV[2]  the ref the caller derived the secret from ('' for none)
-- ARGV[3]  the step the typed code matched, or -1 (_factors.NO_MATCH)
-- ARGV[4]  code_ttl, ms
-- ARGV[5]  lockout, ms
-- ARGV[6]  max_failed_attempts
-- ARGV[7]  expiry slack, ms
-- ARGV[8]  this request's id (a replay carries it again)
-- returns  outcome(kind, value), the outcomes of _factors.confirm:
--          (0, 0) confirmed   (2, lock end) locked   (3, 0) nothing pending (another one,
--          or one older than code_ttl)   (5, failures) wrong code
--          (7, lock end) this guess locked the account
local st, q, a = KEYS[1], KEYS[2], KEYS[3]
local now, ref, step = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local ttl, slack, id = tonumber(ARGV[4]), tonumber(ARGV[7]), ARGV[8]
local first = replayed(q, id)
if first then
    return first
end
local s = redis.call('HMGET', st, 'u', 'n', 'l')
local lock = tonumber(s[1] or '0')
if now < lock then
    return outcome(2, lock)
end
local p = redis.call('HMGET', a, 'p', 'c')
if not p[1] or p[1] ~= ref or now >= tonumber(p[2]) + ttl then
    return outcome(3, 0)
end
local decided
if step < 0 then
    decided = failed(st, now, s[2], s[3], tonumber(ARGV[5]), tonumber(ARGV[6]), slack)
else
    redis.call('HSET', a, 'e', ref, 'k', step)
    redis.call('HDEL', a, 'p', 'c')
    redis.call('HDEL', st, 'n', 'l')
    decided = outcome(0, 0)
end
settle_authenticator(a, now, ttl, slack)
remember(q, id, decided, slack)
return decided
