-- window_release.lua: that entry stops counting (R1.4); an unknown entry does nothing.
-- KEYS[1]  the window (sorted set)
-- ARGV[1]  the entry id
-- returns  1 if an entry was removed, else 0
return redis.call('ZREM', KEYS[1], ARGV[1])
