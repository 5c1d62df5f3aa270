"""From the raw floor to ``SlidingWindowLimiter.hit`` on Redis, one step at a time.

Each step adds one thing to the one before, on the same connection and workload
(the allowed path, 10,000 keys round-robin), so that the gap between the floor and
ours splits into: the arguments, the Lua work, our store's call, and our facade. The
steps use the library's private key names and script text (``ameli_otp._redis_common``):
a diagnostic, not an API.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any

from ameli_otp import SlidingWindowLimiter

from ._measure import Chunk
from ._subjects import LIMIT, WINDOW, LimiterSubject, allowed_chunks, keys, same_chunks

__all__ = ["STEPS", "ladder_factories"]

STEPS = {
    "L0_return1": "EVALSHA `return 1`, no key, no argument (the floor)",
    "L1_return1_our_args": "+ our KEYS and ARGV (1 key, 5 arguments)",
    "L2_window_hit_lua": "+ the real window_hit.lua (raw EVALSHA, our arguments)",
    "L3_store": "+ our store: RedisBackend.window_hit (entry id, error mapping, reply decoding)",
    "L4_ours_hit": "+ our facade: SlidingWindowLimiter.hit (key, clock, Decision)",
}


def ladder_factories(
    client: Any, lim: SlidingWindowLimiter, size: int, n: int
) -> dict[str, Callable[[str], Iterator[Chunk]]]:
    """One chunk factory per step (``tag -> chunks``), for a standalone sync client.

    ``lim`` is our limiter on ``client`` (default prefix and namespace): its ``reset``
    keeps the allowed path allowed and its key names are the ones the steps use.
    """
    from ameli_otp import RedisBackend
    from ameli_otp._redis_common import SLACK_MS, SOURCES, KeyNames

    names = KeyNames("ameli-otp")
    store = RedisBackend(client)
    window_ms = int(WINDOW.total_seconds() * 1000)
    sha1 = client.script_load("return 1")
    sha2 = client.script_load(SOURCES["window_hit"])
    evalsha = client.evalsha
    fixed = [int(time.time() * 1000), window_ms, LIMIT, "AbCdEfGh", SLACK_MS]

    def limiter_key(key: str) -> str:
        return f"limiter:{key}"

    def redis_key(key: str) -> str:
        return names.window(limiter_key(key))[0]

    def l0(_: str) -> Any:
        return evalsha(sha1, 0)

    def l1(key: str) -> Any:
        return evalsha(sha1, 1, redis_key(key), *fixed)

    def l2(key: str) -> Any:
        now = int(time.time() * 1000)
        entry = secrets.token_urlsafe(6)
        return evalsha(sha2, 1, redis_key(key), now, window_ms, LIMIT, entry, SLACK_MS)

    def l3(key: str) -> Any:
        return store.window_hit(limiter_key(key), int(time.time() * 1000), window_ms, LIMIT)

    def allowed_reply(r: Any) -> bool:
        return int(r) & 7 == 1  # outcome(1, n): see lua/_lib.lua

    def subject(hit: Callable[[str], Any], allowed: Callable[[Any], bool]) -> LimiterSubject:
        return LimiterSubject("ladder", hit, allowed, lim.reset, lambda _: None, set())

    return {
        "L0_return1": lambda t: same_chunks(l0, keys(f"{t}L0", n), size),
        "L1_return1_our_args": lambda t: same_chunks(l1, keys(f"{t}L1", n), size),
        "L2_window_hit_lua": lambda t: allowed_chunks(
            subject(l2, allowed_reply), keys(f"{t}L2", n), size
        ),
        "L3_store": lambda t: allowed_chunks(
            subject(l3, lambda r: r[0] is True), keys(f"{t}L3", n), size
        ),
        "L4_ours_hit": lambda t: allowed_chunks(
            subject(lim.hit, lambda d: d.allowed), keys(f"{t}L4", n), size
        ),
    }
