-- recovery_replace.lua: a new set of recovery codes replaces the old (R12.1).
-- KEYS[1]  the account's recovery codes (a set of their keyed hashes; it never expires)
-- KEYS[2]  the account's replay record (R8.1, see _lib.lua)
-- ARGV[1]  this request's id (a replay carries it again: it must not bring back used codes)
-- ARGV[2]  how long the replay record is kept, ms
-- ARGV[3..] the keyed hashes of the new codes
-- returns  1
if replayed(KEYS[2], ARGV[1]) then
    return 1
end
redis.call('DEL', KEYS[1])
redis.call('SADD', KEYS[1], unpack(ARGV, 3))
remember(KEYS[2], ARGV[1], 1, tonumber(ARGV[2]))
return 1
