-- issue_code.lua: request_code (R1, and R2.6: a locked account gets no code).
-- KEYS[1]  the account's state (hash: h code hash, t issued ms, f code failures,
--          w the window (see _lib.lua), n consecutive failures, l last failure ms,
--          u locked until ms, d:<device id> trust granted at ms)
-- KEYS[2]  the account's replay record (R8.1, see _lib.lua)
-- ARGV[1]  now, ms since the epoch
-- ARGV[2]  code_window, ms
-- ARGV[3]  max_unused_codes
-- ARGV[4]  this request's id (48 random bits, made by the caller: a replay carries it again)
-- ARGV[5]  the new code's keyed hash (bytes)
-- ARGV[6]  expiry slack, ms
-- returns  outcome(kind, value), see _lib.lua:
--          (0, entries counting after)  issued: the code replaces the previous one
--          (1, oldest counting entry's issue time)  refused, too many codes: nothing changed
--          (2, lock end)  refused, the account is locked: nothing changed
--          a replay of an issuing request returns its first outcome and changes nothing
local st = KEYS[1]
local now = tonumber(ARGV[1])
local first = replayed(KEYS[2], ARGV[4])
if first then
    return first
end
local s = redis.call('HMGET', st, 'u', 'w')
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
local i = n
while i > 0 and times[i] > now do  -- the clock went back: keep the entries sorted
    entries[i + 1] = entries[i]
    i = i - 1
end
entries[i + 1] = packed_time(now)
-- R1.6: the new code replaces the previous one, whose entry still counts; failures stay
local issued = outcome(0, n + 1)
redis.call('HSET', st, 'h', ARGV[5], 't', ARGV[1], 'f', 0, 'w', table.concat(entries, ','))
keep(st, window + slack)
remember(KEYS[2], ARGV[4], issued, slack)
return issued
