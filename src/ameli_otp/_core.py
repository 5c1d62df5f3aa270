"""What the sync and async faces share: validation, hashing and the clock.

A public call is: prepare (here, pure but for the clock and the random
source) -> one store primitive -> turn the outcome into a result (in
``_rules``). The faces in ``_facade.py`` and ``_async_facade.py`` only add the
store call, with or without ``await``.
"""

from __future__ import annotations

import inspect
import re
import secrets
import time
from collections.abc import Callable
from typing import NamedTuple

from . import _rules as rules
from ._keys import Keyring
from ._policy import Policy, duration_ms, positive_int

__all__ = ["MALFORMED_KIND", "Clock", "CodesCore", "LimiterCore", "VerifyCall"]

Clock = Callable[[], float]
_FAR = 1e13  # seconds: a float reading within this is finite, so round() cannot fail
MALFORMED_KIND = -1  # the outcome kind of a malformed code, for events: no store call
DEVICE_ID = re.compile(r"[A-Za-z0-9_-]{22}")  # the nonce of a device token (_keys)


class VerifyCall(NamedTuple):
    """What ``verify_code`` sends to the store (named: ``token`` and ``device`` are both
    ``str | None`` and must not be swapped)."""

    account: str  # the record name
    now: int
    candidates: tuple[bytes, ...]  # the typed code's hash under every secret; () malformed
    token: str | None  # the device token to hand out on success
    device: str | None  # the device id the store trusts on success


def system_clock() -> float:
    """``time.time()``, looked up at each call so that freezegun can replace it."""
    return time.time()


def _check_clock(clock: object) -> Clock:
    if clock is None:
        return system_clock
    if not callable(clock):
        raise TypeError(f"clock must be a callable returning seconds, not {type(clock).__name__}")
    return clock


def check_backend(backend: object, *, want_async: bool) -> None:
    """Refuse a store of the wrong face (its calls would return coroutines, or block)."""
    issue = getattr(backend, "issue_code", None)
    if not callable(issue):
        raise TypeError(f"backend must be an ameli_otp store, not {type(backend).__name__}")
    is_async = inspect.iscoroutinefunction(issue)
    if is_async != want_async:
        face = "Async" if is_async else ""
        raise TypeError(
            f"backend {type(backend).__name__} is {'an async' if is_async else 'a sync'} store: "
            f"use it with {face}SecurityCodes and {face}SlidingWindowLimiter"
        )


class CodesCore:
    """The part of ``SecurityCodes`` that is the same for both faces."""

    __slots__ = ("_clock", "keys", "length", "limits", "policy")

    def __init__(self, secret: object, policy: object, clock: object) -> None:
        if policy is None:
            policy = Policy()
        if not isinstance(policy, Policy):
            raise TypeError(f"policy must be an ameli_otp.Policy, not {type(policy).__name__}")
        self.keys = Keyring(secret)
        self.policy = policy
        self.limits = policy.limits
        self.length = policy.code_length
        self._clock = _check_clock(clock)

    def now(self) -> int:
        """The clock, read once, in integer milliseconds (R5)."""
        return rules.clock_ms(self._clock())

    def account(self, account: object) -> str:
        """The record name of an account id: the keyed hash of its normal form (R7.1, R4.2)."""
        return self.keys.name(b"account", rules.normalize_account(account))

    def prepare_request(self, account: object) -> tuple[str, int, str, bytes]:
        """``(account key, now, new code, its keyed hash)`` for ``request_code`` (R1.1)."""
        ak = self.account(account)
        code = str(secrets.randbelow(10**self.length)).zfill(self.length)
        return ak, self.now(), code, self.keys.code_hash(ak, code)

    def prepare_verify(
        self, account: object, code: object, remember_device: object, fingerprint: object
    ) -> VerifyCall:
        """What ``verify_code`` sends to the store; ``candidates`` is empty for a malformed
        code (R2.1: then nothing is read or written, and no token is made).

        Raises on bad arguments before anything is read or written (R3.1, R7).
        """
        ak = self.account(account)
        fp = self.check_remember(remember_device, fingerprint)
        digits = rules.normalize_code(code, self.length)
        now = self.now()
        if digits is None:
            return VerifyCall(ak, now, (), None, None)
        token = device = None
        if fp is not None:
            token, device = self.keys.new_device_token(ak, fp, now)
        return VerifyCall(ak, now, self.keys.code_candidates(ak, digits), token, device)

    @staticmethod
    def check_remember(remember_device: object, fingerprint: object) -> str | None:
        """R3.1, R7.3: the fingerprint to trust on success (None: trust nothing), or raise.

        ``remember_device=True`` needs a fingerprint; one given without it is checked all
        the same (a bad argument is an error whatever the other one says).
        """
        if not isinstance(remember_device, bool):
            raise TypeError(f"remember_device must be a bool, not {type(remember_device).__name__}")
        if remember_device and fingerprint is None:
            raise ValueError("remember_device=True needs the browser's fingerprint")
        if fingerprint is not None:
            fp = rules.check_fingerprint(fingerprint)
            return fp if remember_device else None
        return None

    def prepare_trust(
        self, account: object, token: object, fingerprint: object
    ) -> tuple[str, int, str] | None:
        """``(account key, now, device id)`` for a well-signed, unexpired token, else None.

        A token that is forged, garbage, not a str, for another account or fingerprint,
        or expired is rejected here, before any store access (R3.2, R4.3).
        """
        ak = self.account(account)
        fp = rules.check_fingerprint(fingerprint)
        checked = self.keys.check_device_token(ak, token, fp)
        if checked is None:
            return None
        device, granted = checked
        now = self.now()
        if now >= granted + self.limits.device_trust_ttl:
            return None
        return ak, now, device

    def prepare_forget(self, account: object, token: object) -> tuple[str, str] | None:
        """``(account key, device id)`` of a token signed for ``account``, else None.

        Like ``is_trusted_device``, anything that is not such a token (no cookie: None,
        garbage, forged, another account's) is not an error: there is nothing to revoke.
        """
        ak = self.account(account)
        device = self.keys.device_id_of(ak, token)
        return None if device is None else (ak, device)

    def prepare_forget_id(self, account: object, device_id: object) -> tuple[str, str] | None:
        """``(account key, device id)`` for ``forget_device_id``, None if it cannot be one.

        A ``device_id`` is what ``inspect`` lists; a str of another shape names no
        device (nothing to revoke, no round trip); anything but a str raises.
        """
        ak = self.account(account)
        if not isinstance(device_id, str):
            raise TypeError(f"device_id must be a str, not {type(device_id).__name__}")
        return (ak, device_id) if DEVICE_ID.fullmatch(device_id) else None

    def ref(self, account_key: str) -> str:
        """The ``account_ref`` of events: a keyed pseudonym of the record name (R9.3)."""
        return self.keys.name(b"event", account_key)


class LimiterCore:
    """The part of ``SlidingWindowLimiter`` that is the same for both faces."""

    __slots__ = ("_clock", "_keys", "_label", "_prefix", "limit", "window")
    # _clock is None for the system clock: key_now then reads time.time() itself, one
    # call less on the hottest path (looked up at each call, so freezegun still works)

    def __init__(
        self, limit: object, window: object, clock: object, secret: object, namespace: object
    ) -> None:
        self.limit = positive_int("limit", limit)
        self.window = duration_ms("window", window)
        checked = _check_clock(clock)
        self._clock = None if checked is system_clock else checked
        self._keys = None if secret is None else Keyring(secret)
        if not isinstance(namespace, str):
            raise TypeError(f"namespace must be a str, not {type(namespace).__name__}")
        if not namespace or ":" in namespace:
            raise ValueError(f"namespace must be non-empty and without ':', got {namespace!r}")
        self._prefix = namespace + ":"  # stored names without a secret: "namespace:key"
        self._label = b"limiter:" + namespace.encode()  # with one: keyed under this label

    def key(self, key: object) -> str:
        """The stored name of a valid key: a keyed hash when the limiter has a secret."""
        if type(key) is not str or not 0 < len(key) <= rules.MAX_ACCOUNT_LENGTH:
            rules.check_account(key, "key")  # raises the error that names the argument
        assert isinstance(key, str)  # noqa: S101 - checked above, for mypy
        if self._keys is None:
            if not key.isascii():  # stored as is: it must be valid UTF-8 for every store
                try:
                    key.encode("utf-8")
                except UnicodeEncodeError:
                    raise ValueError("key must be valid UTF-8 (no lone surrogates)") from None
            return self._prefix + key
        return self._keys.name(self._label, key)

    def key_now(self, key: object) -> tuple[str, int]:
        """``(stored name, now)``: what every limiter call starts with.

        ``key`` and ``clock`` inlined for the common case (a short ASCII key, no secret,
        a float from the clock); anything else takes the checked path.
        """
        if (
            self._keys is None
            and type(key) is str
            and 0 < len(key) <= rules.MAX_ACCOUNT_LENGTH
            and key.isascii()
        ):
            name = self._prefix + key
        else:
            name = self.key(key)
        reading = time.time() if self._clock is None else self._clock()
        if type(reading) is float and -_FAR < reading < _FAR:
            return name, round(reading * 1000)
        return name, rules.clock_ms(reading)

    @staticmethod
    def entry(entry: object) -> str | None:
        """A valid entry id to release, or None (nothing to release)."""
        if entry is None:
            return None
        if not isinstance(entry, str):
            raise TypeError(f"entry must be a str or None, not {type(entry).__name__}")
        return entry or None
