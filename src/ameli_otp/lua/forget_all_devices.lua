-- forget_all_devices.lua: revoke every device of an account (R3.3).
-- KEYS[1]  the account's state (hash)
-- returns  the number of devices revoked
local n = 0
for _, name in ipairs(redis.call('HKEYS', KEYS[1])) do
    if string.sub(name, 1, 2) == 'd:' then
        n = n + redis.call('HDEL', KEYS[1], name)
    end
end
return n
