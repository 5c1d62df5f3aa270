"""How the tests build each kind of store; see ``conftest.py``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from ameli_otp import MemoryBackend, Policy, SecurityCodes, SlidingWindowLimiter
from ameli_otp.testing import FakeClock

SECRET = b"test-secret-0123456789abcdef-0123456789"
OTHER_SECRET = b"other-secret-0123456789abcdef-012345678"

#: every store kind the conformance tests run against
KINDS = ["memory"]


class Harness:
    """One store kind: builds facades on one fresh store and dumps what it holds."""

    def __init__(self, kind: str, clock: FakeClock, backend: Any) -> None:
        self.kind = kind
        self.clock = clock
        self.backend = backend

    def codes(
        self, *, policy: Policy | None = None, secret: Any = SECRET, clock: Any = None
    ) -> SecurityCodes:
        """A ``SecurityCodes`` on this harness's store (the test's clock by default)."""
        return SecurityCodes(
            self.backend, secret=secret, policy=policy, clock=clock or self.clock
        )

    def limiter(
        self,
        *,
        limit: int = 5,
        window: timedelta = timedelta(hours=1),
        secret: Any = None,
        namespace: str = "limiter",
    ) -> SlidingWindowLimiter:
        """A ``SlidingWindowLimiter`` on this harness's store."""
        return SlidingWindowLimiter(
            self.backend,
            limit=limit,
            window=window,
            clock=self.clock,
            secret=secret,
            namespace=namespace,
        )

    def fresh(self) -> Harness:
        """Another harness of the same kind and clock on a new, empty store (or namespace).

        For hypothesis, which needs a clean store per example.
        """
        if isinstance(self.backend, MemoryBackend):
            return Harness(self.kind, self.clock, MemoryBackend())
        raise NotImplementedError(self.kind)  # pragma: no cover - each kind has its own

    def dump(self) -> bytes:
        """Every key and value the store holds, as bytes (for privacy tests)."""
        if isinstance(self.backend, MemoryBackend):
            return self.backend.dump().encode()
        raise NotImplementedError(self.kind)  # pragma: no cover - each kind has its dump


@contextlib.contextmanager
def make_harness(kind: str, clock: FakeClock, request: pytest.FixtureRequest) -> Iterator[Harness]:
    """A harness of ``kind`` on a fresh, empty store."""
    if kind == "memory":
        yield Harness(kind, clock, MemoryBackend())
        return
    raise ValueError(f"unknown store kind {kind!r}")  # pragma: no cover
