-- unlock.lua: lift a lock and clear the failure count (R2.7).
-- KEYS[1]  the account's state (hash)
-- returns  the number of fields cleared
return redis.call('HDEL', KEYS[1], 'u', 'n', 'l')
