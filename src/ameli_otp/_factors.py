"""The rules of the other factors (RULES R11, R12), in one pure module.

Authenticator apps (TOTP) and recovery codes, beside the e-mailed codes of
``_rules.py``, under the same rules of this file: no clock, no store, ``now`` in
integer milliseconds as an argument; the memory store applies these transitions
under its lock, the Redis store runs their Lua twins (``lua/totp_*.lua``,
``lua/recovery_*.lua``), which return the same outcome tuples.

What is shared with the e-mailed codes is *called*, not copied: the lock and the
consecutive failures (``_rules.add_failure``, R11.3, R12.2) and the trust of a
browser on success (``_rules.add_device``). The outcome kinds are those of
``_rules`` (one vocabulary), plus :data:`REUSED`.

The app, not the store, turns a typed authenticator code into a *step* (the
30-second step whose code it is, computed with pyotp in ``_factors_core.py``):
the store only learns "step s" or "no step matched" (:data:`NO_MATCH`), and keeps
the last accepted step, so that a step accepted once, and every earlier one, is
refused from then on (R11.2) in the same atomic operation that accepts it.
"""

from __future__ import annotations

from datetime import timedelta

from ._policy import Limits
from ._results import Reason, Refused, Verified
from ._rules import (
    LOCKED,
    LOCKED_NOW,
    NO_CODE,
    VERIFIED,
    WRONG_CODE,
    Account,
    add_device,
    add_failure,
)

__all__ = [
    "NO_MATCH",
    "RECOVERY_CODES",
    "REUSED",
    "STEP_MS",
    "Factors",
    "confirm",
    "enroll",
    "factor_result",
    "pending",
    "remove",
    "replace_recovery",
    "use_recovery",
    "verify_totp",
]

#: the outcome of a code whose step was already accepted (R11.2), value 0; the other
#: kinds are those of _rules: VERIFIED (value: recovery codes left), LOCKED, LOCKED_NOW,
#: NO_CODE (nothing to check against), WRONG_CODE (value: the account's consecutive
#: failures)
REUSED = 10
NO_MATCH = -1  # the step sent for a code that matched no step of the drift window
STEP_MS = 30_000  # R11.2: 30-second steps (RFC 6238's default, what every app uses)
RECOVERY_CODES = 10  # R12.1: codes per set


class Factors:
    """What an account keeps of its other factors (never reclaimed while it holds one).

    An authenticator is known by its *ref*: the id of the key it was derived under and
    a random nonce (``_keys``): never the secret itself (R11.4).
    """

    __slots__ = ("confirmed", "last_step", "pending", "pending_at", "recovery")

    def __init__(self) -> None:
        self.pending: str | None = None  # ref of an enrollment waiting for its first code
        self.pending_at = 0  # when it was made (ms): it expires after code_ttl
        self.confirmed: str | None = None  # ref of the account's authenticator
        self.last_step = 0  # the last step accepted from it (R11.2); 0 before any
        self.recovery: set[bytes] = set()  # keyed hashes of the unused recovery codes

    def __bool__(self) -> bool:
        """Whether anything is kept (a store may drop an empty record)."""
        return self.pending is not None or self.confirmed is not None or bool(self.recovery)


def _failed(acct: Account, now: int, lim: Limits) -> tuple[int, int]:
    """A wrong code of another factor (R11.3, R12.2): the same count and lock as e-mail."""
    if add_failure(acct, now, lim):
        return LOCKED_NOW, acct.lock_until
    return WRONG_CODE, acct.failures


def _succeeded(acct: Account, now: int, lim: Limits, device: str | None) -> None:
    acct.failures = 0  # consecutive failures: a success ends the run (R2.5)
    if device is not None:
        add_device(acct, now, lim, device)


def enroll(f: Factors, now: int, ref: str) -> None:
    """R11.1: a new pending enrollment, replacing a pending one (a confirmed one stays)."""
    f.pending = ref
    f.pending_at = now


def confirm(
    acct: Account, f: Factors, now: int, lim: Limits, ref: str, step: int
) -> tuple[int, int]:
    """R11.1: the first valid code of pending enrollment ``ref`` makes it the authenticator.

    ``ref`` is the pending enrollment the caller derived the secret from (another one
    made since is NO_CODE: the code was checked against a secret that is no longer the
    one pending). A pending enrollment older than ``code_ttl`` is no enrollment: NO_CODE,
    whether the store has forgotten it yet or not. The confirming step counts as accepted
    (R11.2). A confirmed authenticator replaced this way is gone.
    """
    if now < acct.lock_until:
        return LOCKED, acct.lock_until
    if not pending(f, now, lim) or f.pending != ref:
        return NO_CODE, 0
    if step == NO_MATCH:
        return _failed(acct, now, lim)
    f.confirmed, f.last_step, f.pending = ref, step, None
    _succeeded(acct, now, lim, None)
    return VERIFIED, 0


def verify_totp(
    acct: Account, f: Factors, now: int, lim: Limits, ref: str, step: int, device: str | None
) -> tuple[int, int]:
    """R11.2, R11.3: a code of the confirmed authenticator ``ref``, as the step it matched.

    Checked in this order: the lock; no authenticator (or another one since); no step
    matched (a wrong code, counted); a step at or before the last accepted one
    (:data:`REUSED`, not counted: the person typed a code that was good); else success,
    and the step becomes the last accepted.
    """
    if now < acct.lock_until:
        return LOCKED, acct.lock_until
    if f.confirmed is None or f.confirmed != ref:
        return NO_CODE, 0
    if step == NO_MATCH:
        return _failed(acct, now, lim)
    if step <= f.last_step:
        return REUSED, 0
    f.last_step = step
    _succeeded(acct, now, lim, device)
    return VERIFIED, 0


def pending(f: Factors, now: int, lim: Limits) -> bool:
    """R11.1: whether ``f`` has a pending enrollment that has not expired."""
    return f.pending is not None and now < f.pending_at + lim.code_ttl


def remove(f: Factors, now: int, lim: Limits) -> bool:
    """R11.1: remove the authenticator (and a pending enrollment); whether there was one
    (a pending enrollment that expired does not count)."""
    had = f.confirmed is not None or pending(f, now, lim)
    f.confirmed = f.pending = None
    f.last_step = 0
    return had


def replace_recovery(f: Factors, hashes: tuple[bytes, ...]) -> None:
    """R12.1: a new set of recovery codes replaces the old one."""
    f.recovery = set(hashes)


def use_recovery(
    acct: Account,
    f: Factors,
    now: int,
    lim: Limits,
    candidates: tuple[bytes, ...],
    device: str | None,
) -> tuple[int, int]:
    """R12.2: a recovery code, as its keyed hash under every secret; value: codes left.

    The lock first; an account with no code left is NO_CODE (nothing to guess
    against, not counted); a hash of the set is used up; a wrong code is counted.
    """
    if now < acct.lock_until:
        return LOCKED, acct.lock_until
    if not f.recovery:
        return NO_CODE, 0
    for candidate in candidates:
        if candidate in f.recovery:  # keyed hashes: a lookup leaks nothing (R4.4)
            f.recovery.discard(candidate)
            _succeeded(acct, now, lim, device)
            return VERIFIED, len(f.recovery)
    return _failed(acct, now, lim)


_MS = timedelta(milliseconds=1)
_REFUSED = {REUSED: Refused(Reason.CODE_REUSED)}


def factor_result(
    outcome: tuple[int, int],
    now: int,
    lim: Limits,
    token: str | None,
    missing: Reason,
    recovery: bool = False,
) -> Verified | Refused:
    """The public result of an outcome above; ``missing`` is the reason of NO_CODE.

    A wrong code's ``attempts_left`` is what is left before the lock (these factors have
    no per-code attempts); ``recovery``: a success says how many codes are left.
    """
    kind, value = outcome
    if kind == VERIFIED:
        return Verified(device_token=token, recovery_codes_left=value if recovery else None)
    if kind == NO_CODE:
        return Refused(missing)
    if kind == WRONG_CODE:
        return Refused(Reason.WRONG_CODE, attempts_left=lim.max_failed_attempts - value)
    if kind in (LOCKED, LOCKED_NOW):
        return Refused(Reason.ACCOUNT_LOCKED, retry_after=_MS * (value - now))
    refused = _REFUSED.get(kind)
    if refused is None:
        raise ValueError(f"unknown factor outcome {outcome!r}")
    return refused
