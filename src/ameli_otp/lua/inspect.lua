-- inspect.lua: every field of an account (R9.1), changing nothing; Python reads them
-- (_redis_common.raw_status) and _status.account_status applies the rules of time.
-- KEYS[1]  the account's state (hash, fields as in issue_code.lua)
-- returns  the hash as HGETALL gives it: {field, value, field, value, ...}
return redis.call('HGETALL', KEYS[1])
