"""Authenticator apps and recovery codes (RULES R11, R12), the methods of the facade.

This file is the source of ``_async_second_factors.py``, which ``tools/gen_async.py``
writes from it, as ``_facade.py`` is the source of ``_async_facade.py``. Each
method is: prepare (``_factors_core``), the store (one call; an authenticator
check first reads the enrollment, so that the app can derive its secret and find
the code's step: the decision itself is the one atomic call after it), result
(``_factors``).
"""

from __future__ import annotations

from . import _factors as factors
from ._core import MALFORMED_KIND, CodesCore
from ._factors_core import FactorCall, FactorsCore
from ._results import Enrollment, Reason, Refused, Verified
from ._rules import MALFORMED
from ._store import Store
from .events import Emitter, EventKind

__all__ = ["SecondFactors"]

_AUTHENTICATOR = "authenticator"
_RECOVERY = "recovery"


class SecondFactors:
    """R11 and R12 on ``SecurityCodes`` (a base class of it: see its docstring)."""

    __slots__ = ()
    _core: CodesCore
    _events: Emitter
    _factors: FactorsCore
    _store: Store

    def enroll_authenticator(self, account: str, *, name: str, issuer: str = "ameli") -> Enrollment:
        """Start enrolling an authenticator app (R11.1): a new secret, shown once.

        ``name`` is the label the app shows under ``issuer`` (an e-mail address or a
        display name: not the social security number, which would end up in the phone and
        the QR code). The enrollment is pending until :meth:`confirm_authenticator` gets a
        valid code from it, for ``code_ttl``; a new enrollment replaces a pending one.
        """
        ak, now, ref, enrollment = self._factors.prepare_enroll(account, issuer, name)
        self._store.totp_enroll(ak, now, self._core.limits, ref)
        if self._events:
            self._events.changed(EventKind.AUTHENTICATOR_ENROLLED, ak, now, _AUTHENTICATOR)
        return enrollment

    def confirm_authenticator(self, account: str, code: str) -> Verified | Refused:
        """Confirm the pending enrollment with a code from the app (R11.1).

        It becomes the account's authenticator (replacing a confirmed one), and the code's
        step counts as used (R11.2). ``NO_AUTHENTICATOR`` if nothing is pending (or it was
        replaced, or is older than ``code_ttl``); a wrong code counts as a failure (R11.3).
        """
        call = self._factors.prepare_totp(account, code, False, None)
        if call.code is None:
            return self._result(call, MALFORMED_KIND, MALFORMED, _AUTHENTICATOR)
        pending, _ = self._store.totp_read(call.account)
        ref, step = self._factors.step(call, pending)
        outcome = self._store.totp_confirm(call.account, call.now, self._core.limits, ref, step)
        return self._checked(call, outcome, Reason.NO_AUTHENTICATOR, _AUTHENTICATOR)

    def verify_authenticator(
        self,
        account: str,
        code: str,
        *,
        remember_device: bool = False,
        fingerprint: str | None = None,
    ) -> Verified | Refused:
        """Check a code of the account's authenticator app (R11.2, R11.3).

        Six digits (spaces, tabs and ``-`` ignored), the current 30-second step and
        ``Policy.totp_drift`` steps either side. A step accepted once, and every earlier
        one, gives ``CODE_REUSED`` (not counted as a failure); a wrong code counts in the
        account's consecutive failures and the lock (``attempts_left``: what is left
        before the lock). On success, ``remember_device`` trusts this browser (R3).
        """
        call = self._factors.prepare_totp(account, code, remember_device, fingerprint)
        if call.code is None:
            return self._result(call, MALFORMED_KIND, MALFORMED, _AUTHENTICATOR)
        _, confirmed = self._store.totp_read(call.account)
        ref, step = self._factors.step(call, confirmed)
        outcome = self._store.totp_verify(
            call.account, call.now, self._core.limits, ref, step, call.device
        )
        return self._checked(call, outcome, Reason.NO_AUTHENTICATOR, _AUTHENTICATOR)

    def remove_authenticator(self, account: str) -> bool:
        """Remove the account's authenticator, and a pending enrollment (R11.1).

        True if there was either. Recovery codes are kept (:meth:`new_recovery_codes`
        replaces them).
        """
        core = self._core
        ak, now = core.account(account), core.now()
        removed = self._store.totp_remove(ak, now, core.limits)
        if removed and self._events:
            self._events.changed(EventKind.AUTHENTICATOR_REMOVED, ak, now, _AUTHENTICATOR)
        return removed

    def new_recovery_codes(self, account: str) -> tuple[str, ...]:
        """Ten new recovery codes (R12.1), shown once as ``XXXXX-XXXXX``; they replace the old.

        The store keeps their keyed hashes only.
        """
        ak, shown, hashes = self._factors.new_recovery_codes(account)
        self._store.recovery_replace(ak, hashes)
        if self._events:
            self._events.changed(EventKind.RECOVERY_CODES_CREATED, ak, self._core.now(), _RECOVERY)
        return shown

    def use_recovery_code(
        self,
        account: str,
        code: str,
        *,
        remember_device: bool = False,
        fingerprint: str | None = None,
    ) -> Verified | Refused:
        """Log in with a recovery code (R12.2): each works once.

        Separators (spaces, tabs, ``-``) and case are ignored. :class:`Verified` says how
        many codes are left (``recovery_codes_left``); a wrong code counts as a failure
        (R2.6); ``NO_RECOVERY_CODES`` when none is left.
        """
        call = self._factors.prepare_recovery(account, code, remember_device, fingerprint)
        if call.code is None:
            return self._result(call, MALFORMED_KIND, MALFORMED, _RECOVERY)
        outcome = self._store.recovery_use(
            call.account,
            call.now,
            self._core.limits,
            self._factors.recovery_candidates(call),
            call.device,
        )
        return self._checked(call, outcome, Reason.NO_RECOVERY_CODES, _RECOVERY)

    def _checked(
        self, call: FactorCall, outcome: tuple[int, int], missing: Reason, factor: str
    ) -> Verified | Refused:
        result = factors.factor_result(
            outcome, call.now, self._core.limits, call.token, missing, factor == _RECOVERY
        )
        return self._result(call, outcome[0], result, factor)

    def _result(
        self, call: FactorCall, kind: int, result: Verified | Refused, factor: str
    ) -> Verified | Refused:
        if self._events:
            device = call.device if result.ok else None
            self._events.verified(call.account, call.now, kind, result, device, factor)
        return result
