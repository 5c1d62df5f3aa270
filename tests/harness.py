"""How the tests build each kind of store; see ``conftest.py``.

Kinds: ``memory``, ``redis`` (a standalone server), ``cluster`` (3 masters), and
the same three through the async face (``-async``), driven by :class:`SyncFace`
so that one test body serves every kind. Redis kinds use the session's own
servers (``tests/servers.py``), or the server of ``AMELI_OTP_REDIS_URL`` for
the standalone kinds. Every harness works under a prefix of its own and
deletes only its own keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import os
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster

from ameli_otp import (
    AsyncMemoryBackend,
    AsyncRedisBackend,
    AsyncSecurityCodes,
    AsyncSlidingWindowLimiter,
    MemoryBackend,
    Policy,
    RedisBackend,
    SecurityCodes,
    SlidingWindowLimiter,
)
from ameli_otp.testing import FakeClock

SECRET = b"test-secret-0123456789abcdef-0123456789"
OTHER_SECRET = b"other-secret-0123456789abcdef-012345678"

ALL_KINDS = ["memory", "memory-async", "redis", "redis-async", "cluster", "cluster-async"]
#: every store kind the conformance tests run against (AMELI_OTP_KINDS=a,b narrows it)
KINDS = [k for k in os.environ.get("AMELI_OTP_KINDS", ",".join(ALL_KINDS)).split(",") if k]
REDIS_URL_ENV = "AMELI_OTP_REDIS_URL"


class SyncFace:
    """Drives an async facade from sync test code: each coroutine runs on the harness's loop."""

    def __init__(self, target: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._target = target
        self._loop = loop

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if not inspect.iscoroutinefunction(attr):
            return attr

        def run(*args: Any, **kwargs: Any) -> Any:
            return self._loop.run_until_complete(attr(*args, **kwargs))

        return run


class Harness:
    """One store kind: builds facades on one fresh store and dumps what it holds."""

    def __init__(self, kind: str, clock: FakeClock, env: _Env) -> None:
        self.kind = kind
        self.clock = clock
        self.env = env
        self.is_async = kind.endswith("-async")
        self.backend: Any = env.backend()

    def codes(
        self,
        *,
        policy: Policy | None = None,
        secret: Any = SECRET,
        clock: Any = None,
        on_event: Any = None,
        budgets: Any = None,
    ) -> SecurityCodes:
        """A ``SecurityCodes`` (or a driven ``AsyncSecurityCodes``) on this harness's store."""
        cls: Any = AsyncSecurityCodes if self.is_async else SecurityCodes
        codes = cls(
            self.backend,
            secret=secret,
            policy=policy,
            clock=clock or self.clock,
            on_event=on_event,
            budgets=budgets,
        )
        return self._face(codes)

    def limiter(
        self,
        *,
        limit: int = 5,
        window: timedelta = timedelta(hours=1),
        secret: Any = None,
        namespace: str = "limiter",
    ) -> SlidingWindowLimiter:
        """A ``SlidingWindowLimiter`` (or its driven async twin) on this harness's store."""
        cls: Any = AsyncSlidingWindowLimiter if self.is_async else SlidingWindowLimiter
        limiter = cls(
            self.backend,
            limit=limit,
            window=window,
            clock=self.clock,
            secret=secret,
            namespace=namespace,
        )
        return self._face(limiter)

    def _face(self, obj: Any) -> Any:
        return SyncFace(obj, self.env.loop) if self.is_async else obj

    def fresh(self) -> Harness:
        """Another harness of the same kind and clock on a new, empty store (or prefix).

        For hypothesis, which needs a clean store per example.
        """
        return Harness(self.kind, self.clock, self.env)

    def dump(self) -> bytes:
        """Every key and value the store holds, as bytes (for privacy tests)."""
        return self.env.dump(self.backend)


class _Env:
    """What the harnesses of one test share: the loop, the clients, the prefixes."""

    def __init__(self, kind: str, request: pytest.FixtureRequest) -> None:
        self.kind = kind
        base = kind.removesuffix("-async")
        self.loop = asyncio.new_event_loop() if kind.endswith("-async") else None
        self.sync_client: Any = None
        self.async_client: Any = None
        self.prefix = f"ameli-otp-test-{uuid.uuid4().hex[:12]}"
        self._n = itertools.count()
        if base == "redis":
            url = os.environ.get(REDIS_URL_ENV) or request.getfixturevalue("redis_url")
            self.sync_client = redis.Redis.from_url(url)
            if self.loop:
                self.async_client = redis.asyncio.Redis.from_url(url)
        elif base == "cluster":
            url = request.getfixturevalue("cluster_url")
            self.sync_client = redis.cluster.RedisCluster.from_url(url)
            if self.loop:
                self.async_client = redis.asyncio.cluster.RedisCluster.from_url(url)

    def backend(self) -> Any:
        prefix = f"{self.prefix}-{next(self._n)}"
        if self.sync_client is None:
            return AsyncMemoryBackend() if self.loop else MemoryBackend()
        if self.async_client is not None:
            return AsyncRedisBackend(self.async_client, prefix=prefix)
        return RedisBackend(self.sync_client, prefix=prefix)

    def dump(self, backend: Any) -> bytes:
        if self.sync_client is None:
            memory = backend.sync if isinstance(backend, AsyncMemoryBackend) else backend
            return str(memory.dump()).encode()
        out = []
        client = self.sync_client
        for key in sorted(client.scan_iter(match=f"{backend.prefix}:*")):
            kind = client.type(key)
            if kind == b"zset":
                value: Any = client.zrange(key, 0, -1, withscores=True)
            elif kind == b"hash":
                value = sorted(client.hgetall(key).items())
            else:
                value = client.dump(key)
            out.append(key + b" " + kind + b" " + repr(value).encode() + b" ")
            out.append(bytes(client.dump(key) or b""))
        return b"\n".join(out)

    def close(self) -> None:
        if self.sync_client is not None:
            keys = list(self.sync_client.scan_iter(match=f"{self.prefix}-*"))
            for key in keys:  # one by one: keys of a cluster live in many slots
                self.sync_client.delete(key)
            self.sync_client.close()
        if self.loop is not None:
            if self.async_client is not None:
                self.loop.run_until_complete(self.async_client.aclose())
            self.loop.close()


@contextlib.contextmanager
def make_harness(kind: str, clock: FakeClock, request: pytest.FixtureRequest) -> Iterator[Harness]:
    """A harness of ``kind`` on a fresh, empty store."""
    if kind not in ALL_KINDS:
        raise ValueError(f"unknown store kind {kind!r}")
    env = _Env(kind, request)
    try:
        yield Harness(kind, clock, env)
    finally:
        env.close()
