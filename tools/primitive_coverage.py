"""A pytest plugin for the CI matrix: fail unless every store kind that ran called every primitive.

    python -m pytest -p tools.primitive_coverage tests/test_rules.py

The matrix cells (``.ci/matrix.sh``) run a lean selection of the suite; this plugin
is what keeps that selection honest as the tests change. It counts, per store kind
(memory, memory-async, redis, redis-async, cluster, cluster-async), the calls of the
primitives of ``ameli_otp._store.Store`` on the four backends, and at the end of
the session fails it if a kind that had tests selected missed one. Nothing it wraps
changes what a primitive does or returns.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
from collections import defaultdict
from typing import Any

import pytest

import ameli_otp
from ameli_otp._store import Store

PRIMITIVES = sorted(name for name in vars(Store) if not name.startswith("_"))
BACKENDS = (
    ameli_otp.MemoryBackend,
    ameli_otp.AsyncMemoryBackend,
    ameli_otp.RedisBackend,
    ameli_otp.AsyncRedisBackend,
)

_called: defaultdict[str, set[str]] = defaultdict(set)
_expected: set[str] = set()
_inside = contextvars.ContextVar("inside_a_counted_call", default=False)
_missing = pytest.StashKey[dict[str, list[str]]]()


def _kind(backend: Any) -> str:
    """The harness's name for the kind of store ``backend`` is (``tests/harness.py``)."""
    is_async = isinstance(backend, ameli_otp.AsyncMemoryBackend | ameli_otp.AsyncRedisBackend)
    suffix = "-async" if is_async else ""
    if isinstance(backend, ameli_otp.MemoryBackend | ameli_otp.AsyncMemoryBackend):
        return "memory" + suffix
    cluster = "Cluster" in type(getattr(backend, "client", None)).__name__
    return ("cluster" if cluster else "redis") + suffix


def _count(backend: Any, name: str) -> contextvars.Token[bool]:
    """Count a call, unless it is made by another counted call (AsyncMemoryBackend's own)."""
    if not _inside.get():
        _called[_kind(backend)].add(name)
    return _inside.set(True)


def _counted(name: str, method: Any) -> Any:
    if inspect.iscoroutinefunction(method):

        @functools.wraps(method)
        async def counted_async(self: Any, *args: Any, **kwargs: Any) -> Any:
            outer = _count(self, name)
            try:
                return await method(self, *args, **kwargs)
            finally:
                _inside.reset(outer)

        return counted_async

    @functools.wraps(method)
    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        outer = _count(self, name)
        try:
            return method(self, *args, **kwargs)
        finally:
            _inside.reset(outer)

    return counted


def pytest_configure(config: pytest.Config) -> None:
    for backend in BACKENDS:
        for name in PRIMITIVES:
            setattr(backend, name, _counted(name, getattr(backend, name)))


def pytest_collection_finish(session: pytest.Session) -> None:
    """The kinds that have at least one selected test (``harness`` parameters)."""
    for item in session.items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        kind = params.get("harness", params.get("sync_harness"))
        if isinstance(kind, str):
            _expected.add(kind)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if exitstatus != 0 or not _expected:
        return  # failed or interrupted already, or no conformance test selected
    missing = {k: sorted(set(PRIMITIVES) - _called[k]) for k in sorted(_expected)}
    missing = {k: m for k, m in missing.items() if m}
    session.config.stash[_missing] = missing
    if missing:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if _missing not in config.stash:
        return
    missing = config.stash[_missing]
    kinds = ", ".join(sorted(_expected))
    if missing:
        for kind, names in missing.items():
            terminalreporter.write_line(f"primitive coverage: {kind} never called {names}")
        terminalreporter.write_line("primitive coverage: FAILED: this selection misses a primitive")
    else:
        terminalreporter.write_line(
            f"primitive coverage: all {len(PRIMITIVES)} store primitives called on {kinds}"
        )
