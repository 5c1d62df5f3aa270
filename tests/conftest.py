"""The table of stores every conformance test runs against (after limits' ALL_STORAGES).

A test that takes ``harness`` (or ``codes`` / ``limiter``) runs once per store kind
of ``tests.harness.KINDS``: memory, redis, cluster, and the async face of each.
The Redis servers are started once per session, on free loopback ports, only
when a test needs them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ameli_otp import SecurityCodes, SlidingWindowLimiter
from ameli_otp.testing import FakeClock
from tests import servers
from tests.harness import KINDS, Harness, make_harness


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock, far from the real time (R5: only this clock counts)."""
    return FakeClock()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[servers.Server]:
    """A standalone server of our own for the whole session."""
    with servers.standalone() as server:
        yield server


@pytest.fixture(scope="session")
def redis_url(redis_server: servers.Server) -> str:
    """The URL of the session's standalone server."""
    return f"redis://127.0.0.1:{redis_server.port}/0"


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[list[servers.Server]]:
    """A 3-master Redis Cluster of our own for the whole session."""
    with servers.cluster() as nodes:
        yield nodes


@pytest.fixture(scope="session")
def cluster_url(redis_cluster: list[servers.Server]) -> str:
    """The URL of one node of the session's cluster."""
    return f"redis://127.0.0.1:{redis_cluster[0].port}/0"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tests that run on a Redis kind, so ``-m "not redis"`` skips them."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        params = callspec.params if callspec else {}
        kind = params.get("harness", params.get("sync_harness"))
        if isinstance(kind, str) and not kind.startswith("memory"):
            item.add_marker(pytest.mark.redis)


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
