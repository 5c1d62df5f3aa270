"""What the support desk sees (RULES R9.1): an account's state, read, never changed.

Rules of this file (as in ``_rules.py``): pure, ``now`` is an argument, no store
and no clock. Each store reads an account in one atomic step and hands over its
raw fields as a :class:`Raw`; :func:`account_status` applies the rules of time to
them (a lock that has ended, failures forgotten after ``lockout``, entries that
stopped counting, devices whose trust has ended) and builds the public
:class:`AccountStatus`, the same way for every store.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import NamedTuple

import attrs

from ._policy import DAY_MS, Limits
from ._rules import Account, entry_time

__all__ = [
    "EMPTY",
    "AccountStatus",
    "CodeStatus",
    "Raw",
    "TrustedDevice",
    "account_status",
    "raw_of",
]


@attrs.frozen
class CodeStatus:
    """The active code of an account, never the code itself.

    ``expires_at`` may be in the past: an expired code stays the active one (it
    answers ``EXPIRED``) until its hour has passed (RULES R2.3).
    """

    issued_at: datetime
    expires_at: datetime
    attempts_left: int


@attrs.frozen
class TrustedDevice:
    """One trusted browser: a short opaque id (no fingerprint, no token), and its trust."""

    device_id: str
    granted_at: datetime
    expires_at: datetime


@attrs.frozen
class AccountStatus:
    """An account as the rules see it now (``SecurityCodes.inspect``).

    ``locked_until`` is None when not locked; ``next_code_at`` is None when a code
    may be asked for now, else when the next one will be allowed (the lock's end, or
    when the oldest counting code leaves the window, whichever is later); ``devices``
    lists the trusted browsers, oldest grant first (expired and revoked ones are not
    listed); ``authenticator`` says whether an authenticator app is confirmed (R11) and
    ``recovery_codes_left`` how many recovery codes are unused (R12).
    """

    locked_until: datetime | None
    consecutive_failures: int
    codes_counting: int
    next_code_at: datetime | None
    active_code: CodeStatus | None
    devices: tuple[TrustedDevice, ...]
    authenticator: bool = False  # R11: a confirmed authenticator app
    recovery_codes_left: int = 0  # R12: unused recovery codes


class Raw(NamedTuple):
    """An account's fields as a store holds them (times in ms; 0: never)."""

    lock_until: int
    failures: int
    last_failure: int
    window: tuple[int, ...]  # issue times of the entries, any order, counting or not
    code_issued: int | None  # the active code, if the account has one
    code_failures: int
    devices: tuple[tuple[str, int], ...]  # (device id, trust granted at)
    day: tuple[int, ...] = ()  # R10.2: issue times of the day (kept when the rule is on)
    last_issued: int = 0  # R10.1: the last issue time (kept when the rule is on; 0: none)
    authenticator: bool = False  # R11: a confirmed authenticator
    recovery_codes: int = 0  # R12: unused recovery codes


EMPTY = Raw(0, 0, 0, (), None, 0, ())


def raw_of(acct: Account) -> Raw:
    """The :class:`Raw` fields of the memory store's account state."""
    code = acct.code
    return Raw(
        lock_until=acct.lock_until,
        failures=acct.failures,
        last_failure=acct.last_failure,
        window=tuple(entry_time(e) for e in acct.window),
        code_issued=None if code is None else code.issued,
        code_failures=0 if code is None else code.failures,
        devices=tuple(acct.devices.items()),
        day=tuple(acct.day),
        last_issued=acct.last_issued,
    )


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def account_status(raw: Raw, now: int, lim: Limits) -> AccountStatus:
    """The :class:`AccountStatus` of an account whose fields are ``raw``, at ``now``."""
    locked = now < raw.lock_until
    failures = raw.failures
    if locked or (failures and now >= raw.last_failure + lim.lockout):  # R2.6
        failures = 0
    cut = now - lim.code_window
    counting = sorted(t for t in raw.window if t > cut)  # R1.2
    # When a request will be allowed: once every rule that would refuse it now has ended
    # (the lock, the hour R1.3, the day R10.2, the resend interval R10.1); a lockout
    # shorter than code_window, say, can end while the window is still full.
    ends = [raw.lock_until] if locked else []
    if len(counting) >= lim.max_unused_codes:
        ends.append(counting[0] + lim.code_window)
    if lim.max_codes_per_day:
        day = sorted(t for t in raw.day if t > now - DAY_MS)
        if len(day) >= lim.max_codes_per_day:
            ends.append(day[0] + DAY_MS)
    if lim.resend_interval and raw.last_issued and now < raw.last_issued + lim.resend_interval:
        ends.append(raw.last_issued + lim.resend_interval)
    next_code = max(ends) if ends else None
    code = None
    if raw.code_issued is not None and now < raw.code_issued + lim.code_window:  # R2.3
        code = CodeStatus(
            issued_at=_at(raw.code_issued),
            expires_at=_at(raw.code_issued + lim.code_ttl),
            attempts_left=lim.max_attempts_per_code - raw.code_failures,
        )
    devices = tuple(
        TrustedDevice(device_id=d, granted_at=_at(t), expires_at=_at(t + lim.device_trust_ttl))
        for t, d in sorted((t, d) for d, t in raw.devices if now < t + lim.device_trust_ttl)
    )
    return AccountStatus(
        locked_until=_at(raw.lock_until) if locked else None,
        consecutive_failures=failures,
        codes_counting=len(counting),
        next_code_at=None if next_code is None else _at(next_code),
        active_code=code,
        devices=devices,
        authenticator=raw.authenticator,
        recovery_codes_left=raw.recovery_codes,
    )
