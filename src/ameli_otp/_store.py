"""The store protocol: the few atomic primitives every backend implements.

Each primitive is sized to one rule step and is atomic: the memory store runs
it under one short lock, the Redis store as one Lua script (one round trip).
Keys arrive already hashed (``account`` is a keyed hash of the account id,
``key`` a limiter key, hashed when the limiter has a secret); times are integer
milliseconds from the caller's clock; durations come from
:class:`~ameli_otp._policy.Limits`. The outcomes are those of
:mod:`ameli_otp._rules`, which holds every decision.

:class:`AsyncStore` is the same contract with coroutines.
"""

from __future__ import annotations

from typing import Protocol

from ._policy import Limits
from ._status import Raw

__all__ = ["AsyncStore", "Store"]


class Store(Protocol):
    """The synchronous store contract (see the module docstring)."""

    def window_hit(
        self, key: str, now: int, window: int, limit: int
    ) -> tuple[bool, int, str | None]:
        """``_rules.window_hit`` on ``key``: ``(allowed, count after | oldest, entry id)``."""
        ...

    def window_peek(self, key: str, now: int, window: int) -> tuple[int, int]:
        """``_rules.window_count`` on ``key``: ``(counting, oldest counting or 0)``."""
        ...

    def window_release(self, key: str, entry: str) -> None:
        """Remove ``entry`` from ``key``'s window; unknown entries do nothing."""
        ...

    def window_reset(self, key: str) -> None:
        """Forget ``key``'s window."""
        ...

    def issue_code(
        self, account: str, now: int, limits: Limits, code_hash: bytes
    ) -> tuple[int, int]:
        """``_rules.issue``: ``(kind, value)``."""
        ...

    def verify_code(
        self,
        account: str,
        now: int,
        limits: Limits,
        candidates: tuple[bytes, ...],
        device: str | None,
    ) -> tuple[int, int]:
        """``_rules.verify`` (and, on success, trust ``device`` if given): ``(kind, value)``."""
        ...

    def device_trusted(self, account: str, now: int, trust_ttl: int, device: str) -> bool:
        """``_rules.device_trusted``."""
        ...

    def forget_device(self, account: str, now: int, trust_ttl: int, device: str) -> bool:
        """``_rules.forget_device``: revoke one device; whether it was trusted."""
        ...

    def forget_all_devices(self, account: str, now: int, trust_ttl: int) -> int:
        """``_rules.forget_all_devices``: revoke every device; how many were trusted."""
        ...

    def unlock(self, account: str, now: int, lockout: int) -> bool:
        """``_rules.unlock``: whether a lock or a counting failure was lifted."""
        ...

    def inspect(self, account: str) -> Raw:
        """The account's fields as they are (``_status.EMPTY`` if none), changing nothing."""
        ...

    # -- the other factors (R11, R12; rules in _factors) -------------------------------------
    def totp_read(self, account: str) -> tuple[str | None, str | None]:
        """``(pending ref, confirmed ref)`` of the account's authenticator, changing nothing."""
        ...

    def totp_enroll(self, account: str, now: int, limits: Limits, ref: str) -> None:
        """``_factors.enroll``."""
        ...

    def totp_confirm(
        self, account: str, now: int, limits: Limits, ref: str, step: int
    ) -> tuple[int, int]:
        """``_factors.confirm``: ``(kind, value)``."""
        ...

    def totp_verify(
        self, account: str, now: int, limits: Limits, ref: str, step: int, device: str | None
    ) -> tuple[int, int]:
        """``_factors.verify_totp`` (and, on success, trust ``device`` if given)."""
        ...

    def totp_remove(self, account: str, now: int, limits: Limits) -> bool:
        """``_factors.remove``: whether there was an authenticator (or a live pending one)."""
        ...

    def recovery_replace(self, account: str, hashes: tuple[bytes, ...]) -> None:
        """``_factors.replace_recovery``."""
        ...

    def recovery_use(
        self,
        account: str,
        now: int,
        limits: Limits,
        candidates: tuple[bytes, ...],
        device: str | None,
    ) -> tuple[int, int]:
        """``_factors.use_recovery``: ``(kind, value)``, value the codes left on success."""
        ...


class AsyncStore(Protocol):
    """The asynchronous store contract: :class:`Store` with coroutines."""

    async def window_hit(
        self, key: str, now: int, window: int, limit: int
    ) -> tuple[bool, int, str | None]: ...
    async def window_peek(self, key: str, now: int, window: int) -> tuple[int, int]: ...
    async def window_release(self, key: str, entry: str) -> None: ...
    async def window_reset(self, key: str) -> None: ...
    async def issue_code(
        self, account: str, now: int, limits: Limits, code_hash: bytes
    ) -> tuple[int, int]: ...
    async def verify_code(
        self,
        account: str,
        now: int,
        limits: Limits,
        candidates: tuple[bytes, ...],
        device: str | None,
    ) -> tuple[int, int]: ...
    async def device_trusted(self, account: str, now: int, trust_ttl: int, device: str) -> bool: ...
    async def forget_device(self, account: str, now: int, trust_ttl: int, device: str) -> bool: ...
    async def forget_all_devices(self, account: str, now: int, trust_ttl: int) -> int: ...
    async def unlock(self, account: str, now: int, lockout: int) -> bool: ...
    async def inspect(self, account: str) -> Raw: ...
    async def totp_read(self, account: str) -> tuple[str | None, str | None]: ...
    async def totp_enroll(self, account: str, now: int, limits: Limits, ref: str) -> None: ...
    async def totp_confirm(
        self, account: str, now: int, limits: Limits, ref: str, step: int
    ) -> tuple[int, int]: ...
    async def totp_verify(
        self, account: str, now: int, limits: Limits, ref: str, step: int, device: str | None
    ) -> tuple[int, int]: ...
    async def totp_remove(self, account: str, now: int, limits: Limits) -> bool: ...
    async def recovery_replace(self, account: str, hashes: tuple[bytes, ...]) -> None: ...
    async def recovery_use(
        self,
        account: str,
        now: int,
        limits: Limits,
        candidates: tuple[bytes, ...],
        device: str | None,
    ) -> tuple[int, int]: ...
