"""From the raw floor to ``SlidingWindowLimiter.hit`` on Redis, one step at a time.

Each step adds one thing to the one before, on the same connection and workload
(the allowed path, 10,000 keys round-robin), so that the gap between the floor and
ours splits into: the arguments, the reply shape, the Lua work, redis-py's
``Script`` wrapper, and our facade. The steps use the library's private key names
and script text (``ameli_otp._redis_common``): a diagnostic, not an API.
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
    "L2_return_pair": "+ our reply shape: `return {1, 5}`",
    "L3_window_hit_lua": "+ the real window_hit.lua (raw EVALSHA, our arguments)",
    "L4_script_object": "+ redis-py's Script object (register_script), as the store calls it",
    "L5_ours_hit": "+ our facade: SlidingWindowLimiter.hit (key, clock, entry id, Decision)",
}


def ladder_factories(
    client: Any, lim: SlidingWindowLimiter, size: int, n: int
) -> dict[str, Callable[[str], Iterator[Chunk]]]:
    """One chunk factory per step (``tag -> chunks``), for a standalone sync client.

    ``lim`` is our limiter on ``client`` (default prefix and namespace): its ``reset``
    keeps the allowed path allowed and its key names are the ones the steps use.
    """
    from ameli_otp._redis_common import SLACK_MS, KeyNames, script_source

    names = KeyNames("ameli-otp")
    window_ms = int(WINDOW.total_seconds() * 1000)
    sha1 = client.script_load("return 1")
    sha2 = client.script_load("return {1, 5}")
    source = script_source("window_hit")
    sha3 = client.script_load(source)
    script = client.register_script(source)
    evalsha = client.evalsha
    fixed = [int(time.time() * 1000), window_ms, LIMIT, "AbCdEfGh", SLACK_MS]

    def redis_key(key: str) -> str:
        return names.window(f"limiter:{key}")[0]

    def l0(_: str) -> Any:
        return evalsha(sha1, 0)

    def l1(key: str) -> Any:
        return evalsha(sha1, 1, redis_key(key), *fixed)

    def l2(key: str) -> Any:
        return evalsha(sha2, 1, redis_key(key), *fixed)

    def l3(key: str) -> Any:
        now = int(time.time() * 1000)
        entry = secrets.token_urlsafe(6)
        return evalsha(sha3, 1, redis_key(key), now, window_ms, LIMIT, entry, SLACK_MS)

    def l4(key: str) -> Any:
        now = int(time.time() * 1000)
        return script([redis_key(key)], [now, window_ms, LIMIT, secrets.token_urlsafe(6), SLACK_MS])

    def first_is_one(r: Any) -> bool:
        return int(r[0]) == 1

    def subject(hit: Callable[[str], Any], allowed: Callable[[Any], bool]) -> LimiterSubject:
        return LimiterSubject("ladder", hit, allowed, lim.reset, lambda _: None, set())

    return {
        "L0_return1": lambda t: same_chunks(l0, keys(f"{t}L0", n), size),
        "L1_return1_our_args": lambda t: same_chunks(l1, keys(f"{t}L1", n), size),
        "L2_return_pair": lambda t: same_chunks(l2, keys(f"{t}L2", n), size),
        "L3_window_hit_lua": lambda t: allowed_chunks(
            subject(l3, first_is_one), keys(f"{t}L3", n), size
        ),
        "L4_script_object": lambda t: allowed_chunks(
            subject(l4, first_is_one), keys(f"{t}L4", n), size
        ),
        "L5_ours_hit": lambda t: allowed_chunks(
            subject(lim.hit, lambda d: d.allowed), keys(f"{t}L5", n), size
        ),
    }
