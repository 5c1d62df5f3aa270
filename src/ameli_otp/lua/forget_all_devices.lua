-- forget_all_devices.lua: revoke every device of an account (R3.3).
-- KEYS[1]  the account's state (hash; d:<device id> = trust granted at, ms)
-- KEYS[2]  the account's replay record (R8.1, see _lib.lua)
-- ARGV[1]  now, ms since the epoch
-- ARGV[2]  device_trust_ttl, ms
-- ARGV[3]  this request's id (a replay carries it again)
-- ARGV[4]  how long the replay record is kept, ms
-- returns  the number of devices that were trusted (granted and not expired)
local first = replayed(KEYS[2], ARGV[3])
if first then
    return first
end
local now, trust = tonumber(ARGV[1]), tonumber(ARGV[2])
local fields = redis.call('HGETALL', KEYS[1])
local names, trusted = {}, 0
for i = 1, #fields, 2 do
    if string.sub(fields[i], 1, 2) == 'd:' then
        names[#names + 1] = fields[i]
        if now < tonumber(fields[i + 1]) + trust then
            trusted = trusted + 1
        end
    end
end
if #names > 0 then
    redis.call('HDEL', KEYS[1], unpack(names))
end
if trusted > 0 then
    remember(KEYS[2], ARGV[3], trusted, tonumber(ARGV[4]))
end
return trusted
