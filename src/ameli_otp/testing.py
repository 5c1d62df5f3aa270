"""Helpers for testing a login flow built on ameli_otp (after ``structlog.testing``).

:class:`FakeClock` is a clock you move by hand; the hypothesis strategies make
accounts, codes, fingerprints and policies for property-based tests.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

__all__ = ["FakeClock"]

_MS = timedelta(milliseconds=1)


class FakeClock:
    """A clock for ``clock=``: returns seconds since the epoch, moves only when told.

    Time is kept in whole milliseconds, so every edge of the rules is exact.
    Thread-safe. ``FakeClock()`` starts at 2025-02-01 00:00:00 UTC.
    """

    def __init__(self, start: float | datetime = 1_738_368_000.0) -> None:
        self._lock = threading.Lock()
        self._ms = self._to_ms(start)

    @staticmethod
    def _to_ms(when: float | datetime) -> int:
        if isinstance(when, datetime):
            if when.tzinfo is None:
                raise ValueError("start must be an aware datetime (naive times are ambiguous)")
            return round(when.timestamp() * 1000)
        if isinstance(when, bool) or not isinstance(when, int | float):
            raise TypeError(f"start must be seconds or a datetime, not {type(when).__name__}")
        return round(when * 1000)

    def __call__(self) -> float:
        return self._ms / 1000

    @property
    def ms(self) -> int:
        """The current time in integer milliseconds."""
        return self._ms

    def now(self) -> datetime:
        """The current time as an aware UTC datetime."""
        return datetime.fromtimestamp(self._ms / 1000, tz=UTC)

    def advance(self, delta: timedelta | float = 0.0, /, **kwargs: float) -> None:
        """Move forward (or back, with a negative delta) by ``delta`` seconds or a timedelta.

        Keyword arguments are those of ``timedelta``: ``advance(minutes=15)``.
        """
        if isinstance(delta, timedelta):
            step = delta
        elif isinstance(delta, bool) or not isinstance(delta, int | float):
            raise TypeError(f"delta must be seconds or a timedelta, not {type(delta).__name__}")
        else:
            step = timedelta(seconds=delta)
        step += timedelta(**kwargs)
        with self._lock:
            self._ms += round(step / _MS)

    def set(self, when: float | datetime) -> None:
        """Jump to ``when`` (seconds since the epoch or an aware datetime)."""
        ms = self._to_ms(when)
        with self._lock:
            self._ms = ms
