"""The exceptions ameli_otp raises for store failures.

Programming errors (bad arguments) raise the builtin ``TypeError`` and
``ValueError``; refusals (too many codes, wrong code, ...) are results, never
exceptions.
"""

from __future__ import annotations

__all__ = ["BackendError", "ConfigurationError", "StoreFullError"]


class BackendError(Exception):
    """The store could not carry out an operation.

    The base of every store failure ameli_otp raises. The library fails closed:
    when this is raised, no code was accepted and no request was allowed. The
    original exception, if any, is chained as ``__cause__``.
    """


class StoreFullError(BackendError):
    """A bounded store is full of live records and refuses to evict one.

    Evicting a live record would silently reset someone's limit or lock, so a
    full :class:`~ameli_otp.MemoryBackend` refuses new records instead.
    """


class ConfigurationError(ValueError):
    """A store was set up in a way that cannot keep the rules (RULES R8.2, R8.4).

    Raised before the operation touches anything: a Redis server whose
    ``maxmemory-policy`` may evict keys (an attacker who fills memory would lift
    locks and limits), or a :class:`~ameli_otp.MemoryBackend` used in a child
    process after ``fork`` (each process would enforce its own limits). The
    message names the setting and how to fix it.
    """
