-- forget_device.lua: revoke one device of an account (R3.3, R9.2).
-- KEYS[1]  the account's state (hash; d:<device id> = trust granted at, ms)
-- ARGV[1]  now, ms since the epoch
-- ARGV[2]  device_trust_ttl, ms
-- ARGV[3]  device id
-- ARGV[4]  this request's id (R8.1: a replay returns the first answer)
-- returns  1 if the device was trusted (granted and not expired), else 0
local st = KEYS[1]
local field = 'd:' .. ARGV[3]
local s = redis.call('HMGET', st, 'r', field)
local first = replayed(s[1], ARGV[4])
if first then
    return first
end
local trusted = s[2] and tonumber(ARGV[1]) < tonumber(s[2]) + tonumber(ARGV[2])
if trusted then  -- recorded first: the HDEL below can then never empty (delete) the key
    redis.call('HSET', st, 'r', remembered(s[1], ARGV[4], 1))
end
redis.call('HDEL', st, field)
return trusted and 1 or 0
