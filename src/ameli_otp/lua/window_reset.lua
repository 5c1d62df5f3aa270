-- window_reset.lua: forget a window.
-- KEYS[1]  the window (sorted set)
-- returns  1 if it existed, else 0
return redis.call('DEL', KEYS[1])
