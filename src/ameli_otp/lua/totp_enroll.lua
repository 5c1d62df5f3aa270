-- totp_enroll.lua: a new pending enrollment, replacing a pending one (R11.1, _factors.enroll).
-- KEYS[1]  the account's authenticator (hash, fields as in totp_read.lua)
-- KEYS[2]  the account's replay record (R8.1, see _lib.lua)
-- ARGV[1]  now, ms since the epoch
-- ARGV[2]  the new enrollment's ref
-- ARGV[3]  code_ttl, ms: how long the enrollment waits for its first code
-- ARGV[4]  expiry slack, ms
-- ARGV[5]  this request's id (a replay carries it again)
-- returns  1; a replay changes nothing
if replayed(KEYS[2], ARGV[5]) then
    return 1
end
local a = KEYS[1]
redis.call('HSET', a, 'p', ARGV[2], 'c', ARGV[1])
settle_authenticator(a, tonumber(ARGV[1]), tonumber(ARGV[3]), tonumber(ARGV[4]))
remember(KEYS[2], ARGV[5], 1, tonumber(ARGV[4]))
return 1
