-- window_hit.lua: count one hit in a sliding window unless `limit` entries count (R1.2-R1.3).
-- KEYS[1]  the window (sorted set: member = entry id, score = issue time in ms)
-- ARGV[1]  now, ms since the epoch (the caller's clock)
-- ARGV[2]  window length, ms
-- ARGV[3]  limit: entries allowed to count at once
-- ARGV[4]  the new entry's id (random, made by the caller)
-- ARGV[5]  expiry slack, ms
-- returns  outcome(1, entries counting after this one) when allowed,
--          outcome(0, issue time of the oldest counting entry, ms) when refused (nothing added)
local ok, value = window_hit(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]),
    tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5]))
return outcome(ok, value)
