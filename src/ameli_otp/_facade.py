"""The public faces: ``SecurityCodes`` and ``SlidingWindowLimiter``.

This file is the source of ``_async_facade.py``, which ``tools/gen_async.py``
writes from it (``def`` -> ``async def``, store calls awaited, ``Store`` ->
``AsyncStore``, class names prefixed with ``Async``) and CI checks with
``--check``. Keep each method to: prepare (``_core``), one store call, result
(``_rules``); never edit the generated file by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta

from . import _rules as rules
from ._budgets import Budget, BudgetPlan, exhausted
from ._core import MALFORMED_KIND, CodesCore, LimiterCore, check_backend
from ._errors import BackendError
from ._factors_core import FactorsCore
from ._keys import SecretInput
from ._policy import Policy
from ._results import Decision, Issued, Refused, Verified
from ._second_factors import SecondFactors
from ._status import AccountStatus, account_status
from ._store import Store
from .events import Emitter, Hook

__all__ = ["SecurityCodes", "SlidingWindowLimiter"]


class SecurityCodes(SecondFactors):
    """The security-code rules of RULES.md over one store.

    ``backend`` is a store (``MemoryBackend()``, ``RedisBackend.from_url(url)``);
    ``secret`` is required (bytes or str of at least 32 bytes, or a list to rotate
    keys, newest first); ``policy`` defaults to ``Policy()``; ``clock`` is a callable
    returning seconds since the epoch (default: ``time.time()`` read at each call);
    ``on_event`` is a hook or a list of hooks given one :class:`~ameli_otp.events.Event`
    per decision (R9.3, :mod:`ameli_otp.events`).

    Refusals are results (:class:`Refused`); bad arguments raise ``TypeError`` or
    ``ValueError`` before anything is stored; a failing store raises ``BackendError``.

    Authenticator apps and recovery codes (R11, R12: ``enroll_authenticator``,
    ``verify_authenticator``, ``new_recovery_codes``, ``use_recovery_code``...) come from
    its base class (in ``_second_factors.py``).
    """

    __slots__ = ("_budgets", "_core", "_events", "_factors", "_store")

    def __init__(
        self,
        backend: Store,
        *,
        secret: SecretInput,
        policy: Policy | None = None,
        clock: Callable[[], float] | None = None,
        on_event: Hook | Iterable[Hook] | None = None,
        budgets: Iterable[Budget] | None = None,
    ) -> None:
        check_backend(backend, want_async=False)
        self._store = backend
        self._core = CodesCore(secret, policy, clock)
        self._factors = FactorsCore(self._core)
        self._events = Emitter(on_event, self._core.ref)
        self._budgets = BudgetPlan(budgets, self._core.keys)

    @property
    def policy(self) -> Policy:
        """The policy in force."""
        return self._core.policy

    def request_code(
        self, account: str, *, budget_keys: Mapping[str, str] | None = None
    ) -> Issued | Refused:
        """Issue a new code for ``account`` (R1, R10), to be emailed.

        ``budget_keys`` gives the key of each declared budget that has no fixed key
        (``{"ip": request.client.host}``). Returns :class:`Issued` (``code``,
        ``expires_at``, ``remaining``) or :class:`Refused` (``TOO_MANY_CODES``,
        ``ACCOUNT_LOCKED``, ``DAILY_LIMIT``, ``TOO_SOON``, or ``BUDGET_EXHAUSTED`` with
        ``budget``) with ``retry_after``.
        """
        core = self._core
        ak, now, code, code_hash = core.prepare_request(account)
        spend = self._budgets.names(budget_keys) if self._budgets else ()
        taken: list[tuple[str, str]] = []  # (budget window, entry): given back if refused
        try:
            for budget, name, window in spend:  # R10.3: take first, never over-admit
                allowed, value, entry = self._store.window_hit(name, now, window, budget.limit)
                if not allowed or entry is None:
                    result: Issued | Refused = exhausted(budget, value, window, now)
                    break
                taken.append((name, entry))
            else:
                outcome = self._store.issue_code(ak, now, core.limits, code_hash)
                result = rules.issue_result(outcome, now, core.limits, code)
        except BaseException:
            self._give_back(taken, quiet=True)  # a failed store keeps no entry it can drop
            raise
        if taken and not result.ok:
            self._give_back(taken, quiet=False)  # R10.3: a refusal leaves no entry anywhere
        if self._events:
            self._events.requested(ak, now, result)
        return result

    def _give_back(self, taken: list[tuple[str, str]], *, quiet: bool) -> None:
        for name, entry in taken:
            try:
                self._store.window_release(name, entry)
            except BackendError:
                if not quiet:
                    raise

    def verify_code(
        self,
        account: str,
        code: str,
        *,
        remember_device: bool = False,
        fingerprint: str | None = None,
    ) -> Verified | Refused:
        """Check a typed code (R2); on success, optionally trust this browser (R3).

        Spaces, tabs and ``-`` in ``code`` are ignored. Returns :class:`Verified`
        (``device_token`` set when ``remember_device=True``) or :class:`Refused`.
        ``remember_device=True`` without a ``fingerprint`` raises ``ValueError``
        before anything is read or written.
        """
        core = self._core
        call = core.prepare_verify(account, code, remember_device, fingerprint)
        if call.candidates:
            kind, value = self._store.verify_code(
                call.account, call.now, core.limits, call.candidates, call.device
            )
            result = rules.verify_result((kind, value), call.now, core.limits, call.token)
        else:  # R2.1: a typo is not a guess, and costs no round trip
            kind, result = MALFORMED_KIND, rules.MALFORMED
        if self._events:
            self._events.verified(call.account, call.now, kind, result, call.device)
        return result

    def is_trusted_device(self, account: str, token: str | None, fingerprint: str) -> bool:
        """True only if ``token`` trusts this browser for ``account`` now (R3.2).

        A missing, forged, expired, revoked or foreign token gives False, never an
        exception; it never touches the code limiter or the failure count.
        """
        prepared = self._core.prepare_trust(account, token, fingerprint)
        if prepared is None:
            return False
        ak, now, device = prepared
        return self._store.device_trusted(ak, now, self._core.limits.device_trust_ttl, device)

    def forget_device(self, account: str, token: str | None) -> bool:
        """Revoke ``token`` if it belongs to ``account`` (R3.3); True if it was trusted.

        Anything else (None, garbage, a forged token, another account's) does nothing,
        without a store round trip, and gives False.
        """
        prepared = self._core.prepare_forget(account, token)
        if prepared is None:
            return False
        return self._revoke(*prepared)

    def forget_device_id(self, account: str, device_id: str) -> bool:
        """Revoke the browser ``inspect`` lists as ``device_id`` (R9.2); True if it was trusted.

        For the support desk, when the person no longer has the browser (or its token).
        """
        prepared = self._core.prepare_forget_id(account, device_id)
        if prepared is None:
            return False
        return self._revoke(*prepared)

    def _revoke(self, ak: str, device: str) -> bool:
        core = self._core
        now = core.now()
        revoked = self._store.forget_device(ak, now, core.limits.device_trust_ttl, device)
        if revoked and self._events:
            self._events.revoked(ak, now, device)
        return revoked

    def forget_all_devices(self, account: str) -> int:
        """Revoke every trusted browser of ``account`` (R3.3); how many were trusted."""
        core = self._core
        ak, now = core.account(account), core.now()
        count = self._store.forget_all_devices(ak, now, core.limits.device_trust_ttl)
        if count and self._events:
            self._events.all_revoked(ak, now, count)
        return count

    def unlock(self, account: str) -> bool:
        """Lift a lock and clear the failure count (R2.7): for the support desk.

        True if a lock or a failure count that still counted was lifted (R9.2).
        """
        core = self._core
        ak, now = core.account(account), core.now()
        unlocked = self._store.unlock(ak, now, core.limits.lockout)
        if unlocked and self._events:
            self._events.unlocked(ak, now)
        return unlocked

    def account_ref(self, account: str) -> str:
        """The ``account_ref`` that this account's events carry (R9.3), to find them in logs.

        A keyed pseudonym: the same for every spelling of the id and under key rotation;
        the account cannot be recovered from it without the secret. No store access.
        """
        return self._core.ref(self._core.account(account))

    def inspect(self, account: str) -> AccountStatus:
        """The account as the rules see it now (R9.1): one round trip, nothing changed.

        Lock, failures, codes counting and when the next is allowed, the active code
        (never the code itself) and the trusted browsers with their ``device_id``.
        """
        core = self._core
        ak, now = core.account(account), core.now()
        return account_status(self._store.inspect(ak), now, core.limits)


class SlidingWindowLimiter:
    """At most ``limit`` hits per key in any sliding ``window`` (R1.2 to R1.4).

    ``secret`` (optional): keys are stored as keyed hashes (R4.2). ``namespace``
    keeps limiters that share a store apart (per IP, per phone number...).
    """

    __slots__ = ("_core", "_store")

    def __init__(
        self,
        backend: Store,
        *,
        limit: int,
        window: timedelta,
        clock: Callable[[], float] | None = None,
        secret: SecretInput | None = None,
        namespace: str = "limiter",
    ) -> None:
        check_backend(backend, want_async=False)
        self._store = backend
        self._core = LimiterCore(limit, window, clock, secret, namespace)

    @property
    def limit(self) -> int:
        """Hits allowed per window."""
        return self._core.limit

    @property
    def window(self) -> timedelta:
        """The window's length."""
        return timedelta(milliseconds=self._core.window)

    def hit(self, key: str) -> Decision:
        """Count one hit for ``key`` if the window allows it; a refusal adds nothing."""
        core = self._core
        name, now = core.key_now(key)
        allowed, value, entry = self._store.window_hit(name, now, core.window, core.limit)
        return rules.hit_decision(allowed, value, entry, now, core.window, core.limit)

    def peek(self, key: str) -> Decision:
        """What a hit would be told now, without adding an entry."""
        core = self._core
        name, now = core.key_now(key)
        count, oldest = self._store.window_peek(name, now, core.window)
        return rules.peek_decision(count, oldest, now, core.window, core.limit)

    def release(self, key: str, entry: str | None) -> None:
        """That entry stops counting (R1.4); unknown or released entries do nothing."""
        name, entry = self._core.key(key), self._core.entry(entry)
        if entry is not None:
            self._store.window_release(name, entry)

    def reset(self, key: str) -> None:
        """Forget ``key``'s window."""
        self._store.window_reset(self._core.key(key))
