"""ameli_otp: the security-code rules of the ameli login page, exact, atomic and private.

See ``RULES.md`` (docs/rules.md) for the rules and README.md to start.
"""

from __future__ import annotations

from ._errors import BackendError, StoreFullError
from ._facade import SecurityCodes, SlidingWindowLimiter
from ._memory import MemoryBackend
from ._policy import Policy
from ._results import Decision, Issued, Reason, Refused, Verified

__all__ = [
    "BackendError",
    "Decision",
    "Issued",
    "MemoryBackend",
    "Policy",
    "Reason",
    "Refused",
    "SecurityCodes",
    "SlidingWindowLimiter",
    "StoreFullError",
    "Verified",
]

__version__ = "0.1.0"
