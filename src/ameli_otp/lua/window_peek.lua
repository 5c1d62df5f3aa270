-- window_peek.lua: what a hit would see now, changing nothing.
-- KEYS[1]  the window (sorted set)
-- ARGV[1]  now, ms since the epoch
-- ARGV[2]  window length, ms
-- returns  {entries counting now, issue time of the oldest counting entry or 0}
local cut = '(' .. (tonumber(ARGV[1]) - tonumber(ARGV[2]))
local n = redis.call('ZCOUNT', KEYS[1], cut, '+inf')
if n == 0 then
    return {0, 0}
end
local oldest = redis.call('ZRANGEBYSCORE', KEYS[1], cut, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
return {n, tonumber(oldest[2])}
