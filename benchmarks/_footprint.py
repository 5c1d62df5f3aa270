"""Memory per account: bytes in the memory store (tracemalloc) and in Redis (MEMORY USAGE).

The account measured is the one of the issue: 5 codes in the window (only the last one
active: each request replaces the code), one trusted device and a failure count. It is
built through the public API: a code verified with ``remember_device=True`` (its entry
is released, R1.4), five more codes, then one wrong guess.
"""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Callable
from typing import Any

from ameli_otp import MemoryBackend, SecurityCodes, SlidingWindowLimiter

from ._subjects import FINGERPRINT, LIMIT, WINDOW, deque_floor, keys, wrong_code

__all__ = ["build_account", "memory_store_bytes", "redis_bytes"]


def build_account(codes: SecurityCodes, account: str) -> None:
    """5 codes in the window, the last one active, a trusted device, one failure."""
    r = codes.request_code(account)
    assert r.ok, r
    v = codes.verify_code(account, r.code, remember_device=True, fingerprint=FINGERPRINT)
    assert v.ok, v
    for _ in range(LIMIT):
        r = codes.request_code(account)
        assert r.ok, r
    assert r.remaining == 0, r
    w = codes.verify_code(account, wrong_code(r.code))
    assert not w.ok, w


def _traced(build: Callable[[], Any], n: int) -> float:
    """Bytes per item that ``build()`` leaves allocated (what it returns is kept)."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = build()
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    del kept
    return (after - before) / n


def memory_store_bytes(n: int, secret: bytes) -> dict[str, Any]:
    """tracemalloc over ``n`` accounts (and ``n`` limiter keys of 5 entries) per store."""
    accounts = keys("mem", n)
    lim_keys = keys("lim", n)

    def ours_account() -> Any:
        backend = MemoryBackend()
        codes = SecurityCodes(backend, secret=secret)
        for a in accounts:
            build_account(codes, a)
        return backend

    def ours_limiter() -> Any:
        lim = SlidingWindowLimiter(MemoryBackend(), limit=LIMIT, window=WINDOW)
        for k in lim_keys:
            for _ in range(LIMIT):
                lim.hit(k)
        return lim

    def limits_moving() -> Any:
        from limits import RateLimitItemPerHour
        from limits.storage import storage_from_string
        from limits.strategies import MovingWindowRateLimiter

        item = RateLimitItemPerHour(LIMIT)
        lim = MovingWindowRateLimiter(storage_from_string("memory://"))
        for k in lim_keys:
            for _ in range(LIMIT):
                lim.hit(item, k)
        return lim

    def floor() -> Any:
        hit, _, logs = deque_floor()
        for k in lim_keys:
            for _ in range(LIMIT):
                hit(k)
        return logs

    return {
        "accounts": n,
        "ours_account_bytes": round(_traced(ours_account, n), 1),
        "ours_limiter_key_bytes": round(_traced(ours_limiter, n), 1),
        "limits_moving_key_bytes": round(_traced(limits_moving, n), 1),
        "floor_deque_key_bytes": round(_traced(floor, n), 1),
        "method": "tracemalloc: bytes still allocated after building the accounts, "
        "over their number (the account ids themselves are not counted)",
    }


def _usage(client: Any, pattern: str) -> tuple[int, dict[str, int]]:
    """(number of keys, bytes by key kind) of the keys matching ``pattern``."""
    total: dict[str, int] = {}
    count = 0
    for key in client.scan_iter(match=pattern, count=1000):
        name = key.decode() if isinstance(key, bytes) else key
        kind = "account" if name.endswith(":s") else "key"
        used = client.execute_command("MEMORY USAGE", key, "SAMPLES", 0) or 0
        total[kind] = total.get(kind, 0) + int(used)
        count += 1
    return count, total


def redis_bytes(client: Any, url: str, n: int, secret: bytes) -> dict[str, Any]:
    """``MEMORY USAGE`` summed over each account's keys, averaged over ``n`` accounts.

    ``client`` is a sync ``redis.Redis`` of a standalone server; ``url`` its URL for
    ``limits``. Uses prefixes and namespaces of its own.
    """
    from limits import RateLimitItemPerHour
    from limits.storage import storage_from_string
    from limits.strategies import MovingWindowRateLimiter

    from ameli_otp import RedisBackend

    codes = SecurityCodes(RedisBackend(client, prefix="bench-mem"), secret=secret)
    for a in keys("mem", n):
        build_account(codes, a)
    nkeys, by_kind = _usage(client, "bench-mem:*")
    account = by_kind.get("account", 0) / n

    lim = SlidingWindowLimiter(RedisBackend(client, prefix="bench-lim"), limit=LIMIT, window=WINDOW)
    item = RateLimitItemPerHour(LIMIT, namespace="MEM")
    mw = MovingWindowRateLimiter(storage_from_string(url))
    lim_keys = keys("lim", n)
    for k in lim_keys:
        for _ in range(LIMIT):
            lim.hit(k)
            mw.hit(item, k)
    mw.storage.storage.close()
    _, ours_lim = _usage(client, "bench-lim:*")
    _, limits_lim = _usage(client, "LIMITS:MEM/*")
    return {
        "accounts": n,
        "keys_per_account": round(nkeys / n, 2),
        "ours_account_bytes": round(account, 1),
        "ours_limiter_key_bytes": round(sum(ours_lim.values()) / n, 1),
        "limits_moving_key_bytes": round(sum(limits_lim.values()) / n, 1),
        "method": "MEMORY USAGE key SAMPLES 0 of each account's key (one hash: window "
        "and state), averaged over the accounts",
    }
