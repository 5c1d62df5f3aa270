-- forget_device.lua: revoke one device of an account (R3.3, R9.2).
-- KEYS[1]  the account's state (hash; d:<device id> = trust granted at, ms)
-- KEYS[2]  the account's replay record (R8.1, see _lib.lua)
-- ARGV[1]  now, ms since the epoch
-- ARGV[2]  device_trust_ttl, ms
-- ARGV[3]  device id
-- ARGV[4]  this request's id (a replay carries it again)
-- ARGV[5]  how long the replay record is kept, ms
-- returns  1 if the device was trusted (granted and not expired), else 0
local first = replayed(KEYS[2], ARGV[4])
if first then
    return first
end
local field = 'd:' .. ARGV[3]
local granted = redis.call('HGET', KEYS[1], field)
redis.call('HDEL', KEYS[1], field)
if granted and tonumber(ARGV[1]) < tonumber(granted) + tonumber(ARGV[2]) then
    remember(KEYS[2], ARGV[4], 1, tonumber(ARGV[5]))
    return 1
end
return 0
