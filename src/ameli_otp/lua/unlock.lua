-- unlock.lua: lift a lock and clear the failure count (R2.7), saying whether it changed anything.
-- KEYS[1]  the account's state (hash, fields as in issue_code.lua)
-- ARGV[1]  now, ms since the epoch
-- ARGV[2]  lockout, ms
-- ARGV[3]  this request's id (R8.1: a replay returns the first answer)
-- returns  1 if a lock or a failure count that still counted was lifted, else 0
local st = KEYS[1]
local s = redis.call('HMGET', st, 'r', 'u', 'n', 'l')
local first = replayed(s[1], ARGV[3])
if first then
    return first
end
local now = tonumber(ARGV[1])
local changed = now < tonumber(s[2] or '0')
    or (tonumber(s[3] or '0') > 0 and now < tonumber(s[4] or '0') + tonumber(ARGV[2]))
if changed then  -- recorded first: the HDEL below can then never empty (delete) the key
    redis.call('HSET', st, 'r', remembered(s[1], ARGV[3], 1))
end
redis.call('HDEL', st, 'u', 'n', 'l')
return changed and 1 or 0
