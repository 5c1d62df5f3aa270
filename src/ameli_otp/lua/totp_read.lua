-- totp_read.lua: the account's authenticator enrollments, changing nothing (R11).
-- KEYS[1]  the account's authenticator (hash: p pending ref, c when it was made (ms),
--          e the confirmed ref, k the last accepted step; a ref names the key and the
--          nonce the app derives the secret from: never the secret, R11.4)
-- returns  {pending ref or false, confirmed ref or false}
return redis.call('HMGET', KEYS[1], 'p', 'e')
