-- unlock.lua: lift a lock and clear the failure count (R2.7), saying whether it changed anything.
-- KEYS[1]  the account's state (hash, fields as in issue_code.lua)
-- KEYS[2]  the account's replay record (R8.1, see _lib.lua)
-- ARGV[1]  now, ms since the epoch
-- ARGV[2]  lockout, ms
-- ARGV[3]  this request's id (a replay carries it again)
-- ARGV[4]  how long the replay record is kept, ms
-- returns  1 if a lock or a failure count that still counted was lifted, else 0
local first = replayed(KEYS[2], ARGV[3])
if first then
    return first
end
local s = redis.call('HMGET', KEYS[1], 'u', 'n', 'l')
local now = tonumber(ARGV[1])
local changed = now < tonumber(s[1] or '0')
    or (tonumber(s[2] or '0') > 0 and now < tonumber(s[3] or '0') + tonumber(ARGV[2]))
redis.call('HDEL', KEYS[1], 'u', 'n', 'l')
if changed then
    remember(KEYS[2], ARGV[3], 1, tonumber(ARGV[4]))
    return 1
end
return 0
