-- issue_code.lua: request_code (R1, R2.6: a locked account gets no code, R10.1-R10.2).
-- KEYS[1]  the account's state (hash: h code hash, t issued ms, f code failures,
--          w the window (see _lib.lua), n consecutive failures, l last failure ms,
--          u locked until ms, d:<device id> trust granted at ms; with the sending rules
--          on: y the day's issue times (packed as w), i the last issue time ms)
-- KEYS[2]  the account's replay record (R8.1, see _lib.lua)
-- ARGV[1]  now, ms since the epoch
-- ARGV[2]  code_window, ms
-- ARGV[3]  max_unused_codes
-- ARGV[4]  this request's id (48 random bits, made by the caller: a replay carries it again)
-- ARGV[5]  the new code's keyed hash (bytes)
-- ARGV[6]  expiry slack, ms
-- ARGV[7]  max_codes_per_day (0: off)
-- ARGV[8]  resend_interval, ms (0: off)
-- ARGV[9]  the day of max_codes_per_day, ms
-- ARGV[10] how long a rule may need an issue (_rules.issue_span), ms
-- returns  outcome(kind, value), see _lib.lua; checked in this order (_rules.issue):
--          (2, lock end)  refused, the account is locked: nothing changed
--          (1, oldest counting entry's issue time)  refused, too many codes: nothing changed
--          (9, oldest issue time of the day)  refused, daily limit: nothing changed
--          (8, last issue time)  refused, too soon after the last code: nothing changed
--          (0, entries counting after)  issued: the code replaces the previous one
--          a replay of an issuing request returns its first outcome and changes nothing
local st = KEYS[1]
local now = tonumber(ARGV[1])
local first = replayed(KEYS[2], ARGV[4])
if first then
    return first
end
local s = redis.call('HMGET', st, 'u', 'w', 'y', 'i')
local lock = tonumber(s[1] or '0')
if now < lock then
    return outcome(2, lock)
end
local window, slack = tonumber(ARGV[2]), tonumber(ARGV[6])
local entries, times = entries_counting(s[2], now - window)
local n = #entries
if n >= tonumber(ARGV[3]) then
    return outcome(1, times[1])
end
local per_day, resend = tonumber(ARGV[7]), tonumber(ARGV[8])
local day, day_times
if per_day > 0 then
    day, day_times = entries_counting(s[3], now - tonumber(ARGV[9]))
    if #day >= per_day then
        return outcome(9, day_times[1])
    end
end
local last = tonumber(s[4] or '0')
if resend > 0 and last ~= 0 and now < last + resend then
    return outcome(8, last)
end
-- R1.6: the new code replaces the previous one, whose entry still counts; failures stay
local issued = outcome(0, n + 1)
redis.call('HSET', st, 'h', ARGV[5], 't', ARGV[1], 'f', 0, 'w', entry_added(entries, times, now))
if per_day > 0 then
    redis.call('HSET', st, 'y', entry_added(day, day_times, now))
end
if resend > 0 then
    redis.call('HSET', st, 'i', ARGV[1])
end
keep(st, tonumber(ARGV[10]) + slack)
remember(KEYS[2], ARGV[4], issued, slack)
return issued
