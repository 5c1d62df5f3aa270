"""One case in a process of its own, for py-spy (``benchmarks._profile.pyspy``).

``python -m benchmarks._spy --store memory|redis --op hit_allowed|request_code
[--port P] [--seconds S]``: the calls run inside ``loop_timed``, the untimed
preparation outside it, so that the sampler keeps only the former.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Iterator
from typing import Any

from ameli_otp import MemoryBackend, SecurityCodes, SlidingWindowLimiter

from ._measure import Chunk
from ._subjects import LIMIT, WINDOW, LimiterSubject, allowed_chunks, keys, ours_fill


def loop_timed(chunk: Chunk, items: Any) -> None:
    """The measured calls of one chunk (what py-spy keeps)."""
    fn = chunk.fn
    if chunk.star:
        for x in items:
            fn(*x)
    else:
        for x in items:
            fn(x)


def run(chunks: Iterator[Chunk], seconds: float) -> None:
    """Walk the chunks for ``seconds``."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        c = next(chunks)
        items = c.prepare() if c.prepare is not None else c.items
        loop_timed(c, items)
        if c.after is not None:
            c.after()


def main() -> None:
    """Parse the arguments and run the case."""
    p = argparse.ArgumentParser()
    p.add_argument("--store", choices=["memory", "redis"], required=True)
    p.add_argument("--op", choices=["hit_allowed", "request_code"], required=True)
    p.add_argument("--port", type=int)
    p.add_argument("--seconds", type=float, default=3.0)
    a = p.parse_args()
    if a.store == "memory":
        backend: Any = MemoryBackend()
    else:
        import redis

        from ameli_otp import RedisBackend

        backend = RedisBackend(redis.Redis(port=a.port), prefix="bench-spy")
    if a.op == "hit_allowed":
        lim = SlidingWindowLimiter(backend, limit=LIMIT, window=WINDOW)
        subject = LimiterSubject(
            "ours", lim.hit, lambda d: d.allowed, lim.reset, ours_fill(lim.hit), set()
        )
        chunks = allowed_chunks(subject, keys("spy", 10_000), 256 if a.store == "memory" else 64)
    else:
        from ._subjects import CodesDriver

        secret = os.urandom(32)
        codes = SecurityCodes(backend, secret=secret)
        driver = CodesDriver(codes, codes, SecurityCodes(MemoryBackend(), secret=secret), {})
        chunks = driver.request("spy", keys("", 10_000), 64)
    run(chunks, a.seconds)


if __name__ == "__main__":
    main()
