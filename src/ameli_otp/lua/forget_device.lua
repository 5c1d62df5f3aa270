-- forget_device.lua: revoke one device of an account (R3.3).
-- KEYS[1]  the account's state (hash)
-- ARGV[1]  device id
-- returns  1 if it was trusted, else 0
return redis.call('HDEL', KEYS[1], 'd:' .. ARGV[1])
