-- inspect.lua: every field of an account (R9.1), changing nothing; Python reads them
-- (_redis_common.raw_status) and _status.account_status applies the rules of time.
-- KEYS[1]  the account's state (hash, fields as in issue_code.lua)
-- KEYS[2]  the account's authenticator (hash, fields as in totp_read.lua)
-- KEYS[3]  the account's recovery codes (set)
-- returns  {the state as HGETALL gives it: {field, value, ...}, 1 if an authenticator is
--          confirmed else 0, the number of unused recovery codes}
local confirmed = 0
if redis.call('HEXISTS', KEYS[2], 'e') == 1 then
    confirmed = 1
end
return {redis.call('HGETALL', KEYS[1]), confirmed, redis.call('SCARD', KEYS[3])}
