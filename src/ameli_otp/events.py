"""What each call decided, for logs, metrics and alerts (RULES R9.3, R9.4).

Give ``SecurityCodes`` (or ``AsyncSecurityCodes``) one hook or a list of them::

    from ameli_otp.events import logging_hook
    codes = SecurityCodes(backend, secret=SECRET, on_event=[logging_hook(), my_hook])

Every call that changes an account or refuses reports **one** :class:`Event` to
every hook, after the store answered and before the call returns; reads
(``inspect``, ``is_trusted_device``) and calls that change nothing report none.
A hook is called in the caller's thread (or task), must be quick, and cannot
change the result: an exception it raises is logged on the ``ameli_otp`` logger
and dropped. An event never carries the account id, a code, a fingerprint or a
token: the account appears as ``account_ref``, a keyed pseudonym (stable under
secret rotation, since it is derived from the oldest secret as record names are)
from which the account cannot be recovered without the secret.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs

from . import _rules as rules
from ._results import Issued, Reason, Refused, Verified

__all__ = ["Event", "EventKind", "Hook", "logging_hook"]


class EventKind(enum.StrEnum):
    """What happened (a ``str``: ``EventKind.CODE_ISSUED == "code_issued"``)."""

    CODE_ISSUED = "code_issued"
    CODE_REFUSED = "code_refused"  # a request refused (reason says why)
    CODE_VERIFIED = "code_verified"  # device_id set when a browser was trusted
    CODE_REJECTED = "code_rejected"  # a verification refused, malformed input included
    ACCOUNT_LOCKED = "account_locked"  # the guess that locked the account
    ACCOUNT_UNLOCKED = "account_unlocked"
    DEVICE_REVOKED = "device_revoked"
    ALL_DEVICES_REVOKED = "all_devices_revoked"
    AUTHENTICATOR_ENROLLED = "authenticator_enrolled"  # pending until confirmed (R11.1)
    AUTHENTICATOR_REMOVED = "authenticator_removed"
    RECOVERY_CODES_CREATED = "recovery_codes_created"  # a new set replaced the old (R12.1)


@attrs.frozen
class Event:
    """One decision. Figures are set where the result has them, else None.

    ``factor`` is the kind of code checked: ``"email"`` for the security codes,
    ``"authenticator"`` (R11) or ``"recovery"`` (R12);
    ``remaining`` is set for ``code_issued``; ``attempts_left`` for a wrong code;
    ``retry_after`` for refusals that have one (and ``account_locked``);
    ``device_id`` for a trusted (``code_verified``) or revoked (``device_revoked``)
    browser; ``devices_revoked`` for ``all_devices_revoked``.
    """

    kind: EventKind
    account_ref: str
    at: datetime
    factor: str = "email"
    reason: Reason | None = None
    remaining: int | None = None
    attempts_left: int | None = None
    retry_after: timedelta | None = None
    device_id: str | None = None
    devices_revoked: int | None = None
    budget: str | None = None  # the exhausted budget of a BUDGET_EXHAUSTED refusal

    def fields(self) -> dict[str, Any]:
        """The event as plain JSON-ready values (``retry_after`` in seconds, ``at`` ISO 8601),
        None fields left out: what ``logging_hook`` puts in ``extra``."""
        out: dict[str, Any] = {"kind": str(self.kind), "account_ref": self.account_ref}
        out["at"] = self.at.isoformat()
        out["factor"] = self.factor
        names = ("reason", "remaining", "attempts_left", "device_id", "devices_revoked", "budget")
        for name in names:
            value = getattr(self, name)
            if value is not None:
                out[name] = str(value) if name == "reason" else value
        if self.retry_after is not None:
            out["retry_after"] = self.retry_after.total_seconds()
        return out


Hook = Callable[[Event], object]

_log = logging.getLogger("ameli_otp")


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


class Emitter:
    """The hooks of one facade; ``bool(emitter)`` is False when there are none.

    The builders below turn a call's result into its one event; the facades call
    them only when there is a hook (no work at all otherwise).
    """

    __slots__ = ("_hooks", "_ref")

    def __init__(self, on_event: object, ref: Callable[[str], str]) -> None:
        if on_event is None:
            hooks: tuple[Hook, ...] = ()
        elif callable(on_event):
            hooks = (on_event,)
        elif isinstance(on_event, Iterable) and not isinstance(on_event, str | bytes):
            hooks = tuple(on_event)
            for i, hook in enumerate(hooks):
                if not callable(hook):
                    raise TypeError(f"on_event[{i}] must be callable, not {type(hook).__name__}")
        else:
            raise TypeError(
                f"on_event must be a callable or a list of them, not {type(on_event).__name__}"
            )
        self._hooks = hooks
        self._ref = ref

    def __bool__(self) -> bool:
        return bool(self._hooks)

    def emit(self, event: Event) -> None:
        """Give ``event`` to every hook; a hook that raises is logged and skipped."""
        for hook in self._hooks:
            try:
                hook(event)
            except Exception:
                _log.exception("ameli_otp event hook %r failed on %s", hook, event.kind)

    def _event(self, kind: EventKind, account: str, now: int, **fields: Any) -> None:
        self.emit(Event(kind, self._ref(account), _at(now), **fields))

    # -- one builder per call ------------------------------------------------------------------
    def requested(self, account: str, now: int, result: Issued | Refused) -> None:
        """``request_code``: ``code_issued`` or ``code_refused``."""
        if isinstance(result, Issued):
            self._event(EventKind.CODE_ISSUED, account, now, remaining=result.remaining)
        else:
            self._refused(EventKind.CODE_REFUSED, account, now, result)

    def verified(
        self,
        account: str,
        now: int,
        kind: int,
        result: Verified | Refused,
        device: str | None,
        factor: str = "email",
    ) -> None:
        """``verify_code`` (and the checks of the other factors, R11, R12): ``code_verified``,
        ``account_locked`` (the locking guess) or ``code_rejected``; ``kind`` is the store's
        outcome kind (-1: malformed input)."""
        if isinstance(result, Verified):
            self._event(EventKind.CODE_VERIFIED, account, now, factor=factor, device_id=device)
        elif kind == rules.LOCKED_NOW:
            self._refused(EventKind.ACCOUNT_LOCKED, account, now, result, factor)
        else:
            self._refused(EventKind.CODE_REJECTED, account, now, result, factor)

    def _refused(
        self, kind: EventKind, account: str, now: int, result: Refused, factor: str = "email"
    ) -> None:
        self._event(
            kind,
            account,
            now,
            factor=factor,
            reason=result.reason,
            attempts_left=result.attempts_left,
            retry_after=result.retry_after,
            budget=result.budget,
        )

    def changed(self, kind: EventKind, account: str, now: int, factor: str) -> None:
        """An enrollment, a removal, a new set of recovery codes (R11.1, R12.1)."""
        self._event(kind, account, now, factor=factor)

    def unlocked(self, account: str, now: int) -> None:
        """``unlock`` that lifted something: ``account_unlocked``."""
        self._event(EventKind.ACCOUNT_UNLOCKED, account, now)

    def revoked(self, account: str, now: int, device: str) -> None:
        """``forget_device`` / ``forget_device_id`` that revoked a trust."""
        self._event(EventKind.DEVICE_REVOKED, account, now, device_id=device)

    def all_revoked(self, account: str, now: int, count: int) -> None:
        """``forget_all_devices`` that revoked at least one trust."""
        self._event(EventKind.ALL_DEVICES_REVOKED, account, now, devices_revoked=count)


# -- ready sinks ---------------------------------------------------------------------------------
def logging_hook(logger: logging.Logger | None = None, level: int = logging.INFO) -> Hook:
    """A hook that logs one record per event (R9.4) on ``logger`` (``ameli_otp.events``).

    The message is one line, ``"<kind> account_ref=<ref> reason=<reason> ..."``; the
    same fields are in the record's ``extra`` under the key ``ameli_otp`` (a dict, see
    :meth:`Event.fields`), for JSON formatters. ``account_locked`` is logged at
    ``WARNING`` (a wave of them is what an operator alerts on), the rest at ``level``.
    """
    log = logging.getLogger("ameli_otp.events") if logger is None else logger
    loud = {EventKind.ACCOUNT_LOCKED}

    def hook(event: Event) -> None:
        fields = event.fields()
        text = " ".join(f"{k}={v}" for k, v in fields.items() if k not in ("kind", "at"))
        log.log(
            logging.WARNING if event.kind in loud else level,
            "%s %s",
            event.kind,
            text,
            extra={"ameli_otp": fields},
        )

    return hook
