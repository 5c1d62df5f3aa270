-- device_trusted.lua: is this device still trusted (R3.2, R3.4)? Changes nothing.
-- KEYS[1]  the account's state (hash; d:<device id> = trust granted at, ms)
-- ARGV[1]  now, ms since the epoch
-- ARGV[2]  device_trust_ttl, ms
-- ARGV[3]  device id
-- returns  1 if granted and now < granted + device_trust_ttl, else 0
local granted = redis.call('HGET', KEYS[1], 'd:' .. ARGV[3])
if granted and tonumber(ARGV[1]) < tonumber(granted) + tonumber(ARGV[2]) then
    return 1
end
return 0
