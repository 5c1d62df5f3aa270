-- issue_code.lua: request_code (R1, and R2.6: a locked account gets no code).
-- KEYS[1]  the account's window (sorted set)
-- KEYS[2]  the account's state (hash: h code hash, t issued ms, f code failures,
--          e code's entry id, n consecutive failures, l last failure ms, u locked until ms,
--          d:<device id> trust granted at ms)
-- ARGV[1]  now, ms since the epoch
-- ARGV[2]  code_window, ms
-- ARGV[3]  max_unused_codes
-- ARGV[4]  the new entry's id
-- ARGV[5]  the new code's keyed hash (bytes)
-- ARGV[6]  expiry slack, ms
-- returns  outcome(kind, value), see _lib.lua:
--          (0, entries counting after)  issued: the code replaces the previous one
--          (1, oldest counting entry's issue time)  refused, too many codes: nothing changed
--          (2, lock end)  refused, the account is locked: nothing changed
local now = tonumber(ARGV[1])
local lock = tonumber(redis.call('HGET', KEYS[2], 'u') or '0')
if now < lock then
    return outcome(2, lock)
end
local window, slack = tonumber(ARGV[2]), tonumber(ARGV[6])
local ok, value = window_hit(KEYS[1], now, window, tonumber(ARGV[3]), ARGV[4], slack)
if ok == 0 then
    return outcome(1, value)
end
redis.call('HSET', KEYS[2], 'h', ARGV[5], 't', now, 'f', 0, 'e', ARGV[4])
keep(KEYS[2], window + slack)
return outcome(0, value)
