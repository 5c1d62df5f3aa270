"""The table of stores every conformance test runs against (after limits' ALL_STORAGES).

A test that takes ``harness`` (or ``codes`` / ``limiter``) runs once per store kind:
memory, and once they exist redis, cluster and the async faces. Async faces are
driven through :class:`tests.harness.SyncFace`, so one test body serves all.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ameli_otp import SecurityCodes, SlidingWindowLimiter
from ameli_otp.testing import FakeClock
from tests.harness import KINDS, Harness, make_harness


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock, two months away from the real time (R5: only this clock counts)."""
    return FakeClock()


@pytest.fixture(params=KINDS)
def harness(request: pytest.FixtureRequest, clock: FakeClock) -> Iterator[Harness]:
    """One store kind of the table, empty, with the test's clock."""
    with make_harness(request.param, clock, request) as h:
        yield h


@pytest.fixture
def codes(harness: Harness) -> SecurityCodes:
    """``SecurityCodes`` with the default policy on the harness's store."""
    return harness.codes()


@pytest.fixture
def limiter(harness: Harness) -> SlidingWindowLimiter:
    """A 5-per-hour ``SlidingWindowLimiter`` on the harness's store."""
    return harness.limiter()
