-- totp_remove.lua: remove the authenticator and a pending enrollment (R11.1, _factors.remove).
-- KEYS[1]  the account's authenticator (hash, fields as in totp_read.lua)
-- KEYS[2]  the account's replay record (R8.1, see _lib.lua)
-- ARGV[1]  now, ms since the epoch
-- ARGV[2]  code_ttl, ms
-- ARGV[3]  this request's id (a replay carries it again)
-- ARGV[4]  how long the replay record is kept, ms
-- returns  1 if there was a confirmed authenticator or a pending enrollment not expired, else 0
local first = replayed(KEYS[2], ARGV[3])
if first then
    return first
end
local a = redis.call('HMGET', KEYS[1], 'e', 'c')
local had = a[1] or (a[2] and tonumber(ARGV[1]) < tonumber(a[2]) + tonumber(ARGV[2]))
redis.call('DEL', KEYS[1])
if had then
    remember(KEYS[2], ARGV[3], 1, tonumber(ARGV[4]))
    return 1
end
return 0
