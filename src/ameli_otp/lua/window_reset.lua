-- window_reset.lua: forget a window.
-- KEYS[1]  the window (sorted set)
-- KEYS[2]  its replay record (R8.1, see _lib.lua): a replay must not forget later entries
-- ARGV[1]  this request's id (a replay carries it again)
-- ARGV[2]  how long the replay record is kept, ms
-- returns  1 if it existed, else 0
local first = replayed(KEYS[2], ARGV[1])
if first then
    return first
end
local existed = redis.call('DEL', KEYS[1])
if existed == 1 then
    remember(KEYS[2], ARGV[1], 1, tonumber(ARGV[2]))
end
return existed
