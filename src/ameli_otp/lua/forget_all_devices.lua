-- forget_all_devices.lua: revoke every device of an account (R3.3).
-- KEYS[1]  the account's state (hash; d:<device id> = trust granted at, ms)
-- ARGV[1]  now, ms since the epoch
-- ARGV[2]  device_trust_ttl, ms
-- ARGV[3]  this request's id (R8.1: a replay returns the first answer)
-- returns  the number of devices that were trusted (granted and not expired)
local st = KEYS[1]
local r = redis.call('HGET', st, 'r')
local first = replayed(r, ARGV[3])
if first then
    return first
end
local now, trust = tonumber(ARGV[1]), tonumber(ARGV[2])
local fields = redis.call('HGETALL', st)
local names, trusted = {}, 0
for i = 1, #fields, 2 do
    if string.sub(fields[i], 1, 2) == 'd:' then
        names[#names + 1] = fields[i]
        if now < tonumber(fields[i + 1]) + trust then
            trusted = trusted + 1
        end
    end
end
if trusted > 0 then  -- recorded first: the HDEL below can then never empty (delete) the key
    redis.call('HSET', st, 'r', remembered(r, ARGV[3], trusted))
end
if #names > 0 then
    redis.call('HDEL', st, unpack(names))
end
return trusted
