"""ameli_otp: the security-code rules of the ameli login page, exact, atomic and private.

The rules are in docs/rules.md; README.md shows how to start. ``RedisBackend``
and ``AsyncRedisBackend`` need the ``redis`` extra (``pip install ameli-otp[redis]``)
and are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._async_facade import AsyncSecurityCodes, AsyncSlidingWindowLimiter
from ._budgets import Budget
from ._errors import BackendError, ConfigurationError, StoreFullError
from ._facade import SecurityCodes, SlidingWindowLimiter
from ._memory import AsyncMemoryBackend, MemoryBackend
from ._policy import Policy
from ._results import Decision, Enrollment, Issued, Reason, Refused, Verified
from ._status import AccountStatus, CodeStatus, TrustedDevice
from .events import Event, EventKind

if TYPE_CHECKING:
    from ._async_redis import AsyncRedisBackend
    from ._redis import RedisBackend

__all__ = [
    "AccountStatus",
    "AsyncMemoryBackend",
    "AsyncRedisBackend",
    "AsyncSecurityCodes",
    "AsyncSlidingWindowLimiter",
    "BackendError",
    "Budget",
    "CodeStatus",
    "ConfigurationError",
    "Decision",
    "Enrollment",
    "Event",
    "EventKind",
    "Issued",
    "MemoryBackend",
    "Policy",
    "Reason",
    "RedisBackend",
    "Refused",
    "SecurityCodes",
    "SlidingWindowLimiter",
    "StoreFullError",
    "TrustedDevice",
    "Verified",
]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # redis is an optional dependency: import the Redis stores only when asked for
    if name == "RedisBackend":
        from ._redis import RedisBackend

        return RedisBackend
    if name == "AsyncRedisBackend":
        from ._async_redis import AsyncRedisBackend

        return AsyncRedisBackend
    raise AttributeError(f"module 'ameli_otp' has no attribute {name!r}")
