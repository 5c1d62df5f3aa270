"""What the sync and async faces of the other factors share (R11, R12): input, pyotp.

As in ``_core.py``: a call is prepare (here) -> store -> result (``_factors``).
Authenticator codes come from pyotp (RFC 6238: HMAC-SHA1, 6 digits, 30-second
steps); the steps are counted here in integer milliseconds (``now // 30000``), so
that every edge is exact, and pyotp makes the code of each step. Recovery codes
come from ``secrets.choice`` over an alphabet without look-alikes.
"""

from __future__ import annotations

import base64
import hmac
import secrets
from datetime import UTC, datetime
from typing import NamedTuple

import pyotp

from . import _rules as rules
from ._core import CodesCore
from ._factors import NO_MATCH, RECOVERY_CODES, STEP_MS
from ._results import Enrollment

__all__ = ["RECOVERY_ALPHABET", "FactorCall", "FactorsCore", "code_at", "matching_step"]

TOTP_DIGITS = 6  # R11.2
#: R12.1: digits and capitals without the look-alikes 0 O 1 I L U (30 symbols: 49 bits
#: per 10-character code)
RECOVERY_ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"
RECOVERY_LENGTH = 10
_RECOVERY_SET = frozenset(RECOVERY_ALPHABET)
_JUNK = str.maketrans("", "", " \t-")
_MAX_LABEL = 256  # issuer and name: characters


class FactorCall(NamedTuple):
    """A checked verification of another factor; ``code`` is None when malformed (R2.1)."""

    account: str  # the record name
    now: int
    code: str | None  # the normalised code, None for a malformed input
    token: str | None  # the device token to hand out on success
    device: str | None  # the device id the store trusts on success


def code_at(secret: bytes, step: int) -> str:
    """The authenticator code of ``step`` for ``secret``, made by pyotp."""
    return pyotp.TOTP(base64.b32encode(secret).decode("ascii"), digits=TOTP_DIGITS).generate_otp(
        step
    )


def matching_step(secret: bytes | None, code: str, now: int, drift: int) -> int:
    """R11.2: the latest step within ``drift`` steps of now's whose code is ``code``.

    ``NO_MATCH`` if none (or no secret). Every step of the window is compared, in
    constant time, whatever matches.
    """
    if secret is None:
        return NO_MATCH
    otp = pyotp.TOTP(base64.b32encode(secret).decode("ascii"), digits=TOTP_DIGITS)
    current = now // STEP_MS  # floor: exact at every millisecond, before 1970 too
    found = NO_MATCH
    for step in range(current - drift, current + drift + 1):
        if step >= 0 and hmac.compare_digest(otp.generate_otp(step), code):
            found = step
    return found


def _label(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    if not value or len(value) > _MAX_LABEL or ":" in value or not value.isprintable():
        raise ValueError(
            f"{name} must be 1 to {_MAX_LABEL} printable characters without ':', got {value!r}"
        )
    return value


def normalize_recovery(code: object) -> str | None:
    """R12.2: drop spaces, tabs and ``-``, ignore case; None unless 10 symbols remain."""
    if not isinstance(code, str):
        raise TypeError(f"code must be a str, not {type(code).__name__}")
    if len(code) > rules.MAX_CODE_INPUT_LENGTH:
        return None
    text = code.translate(_JUNK).upper()
    if len(text) == RECOVERY_LENGTH and text.isascii() and _RECOVERY_SET.issuperset(text):
        return text
    return None


class FactorsCore:
    """The part of the other factors that is the same for both faces."""

    __slots__ = ("_core", "drift")

    def __init__(self, core: CodesCore) -> None:
        self._core = core
        self.drift = core.policy.totp_drift

    def prepare_enroll(
        self, account: object, issuer: object, name: object
    ) -> tuple[str, int, str, Enrollment]:
        """``(account key, now, ref to store, the enrollment to show)`` (R11.1)."""
        core = self._core
        ak = core.account(account)
        issuer, name = _label("issuer", issuer), _label("name", name)
        ref, secret = core.keys.new_authenticator(ak)
        now = core.now()
        b32 = base64.b32encode(secret).decode("ascii")
        uri = pyotp.TOTP(b32, digits=TOTP_DIGITS).provisioning_uri(name=name, issuer_name=issuer)
        expires = datetime.fromtimestamp((now + core.limits.code_ttl) / 1000, tz=UTC)
        return ak, now, ref, Enrollment(secret=b32, provisioning_uri=uri, expires_at=expires)

    def prepare_totp(
        self, account: object, code: object, remember_device: object, fingerprint: object
    ) -> FactorCall:
        """A checked ``verify_authenticator`` / ``confirm_authenticator`` call (R7, R3.1)."""
        core = self._core
        ak = core.account(account)
        fp = core.check_remember(remember_device, fingerprint)
        digits = rules.normalize_code(code, TOTP_DIGITS)
        return self._call(ak, digits, fp)

    def prepare_recovery(
        self, account: object, code: object, remember_device: object, fingerprint: object
    ) -> FactorCall:
        """A checked ``use_recovery_code`` call."""
        core = self._core
        ak = core.account(account)
        fp = core.check_remember(remember_device, fingerprint)
        return self._call(ak, normalize_recovery(code), fp)

    def _call(self, ak: str, code: str | None, fingerprint: str | None) -> FactorCall:
        core = self._core
        now = core.now()
        token = device = None
        if code is not None and fingerprint is not None:
            token, device = core.keys.new_device_token(ak, fingerprint, now)
        return FactorCall(ak, now, code, token, device)

    def step(self, call: FactorCall, ref: str | None) -> tuple[str, int]:
        """``(ref, step)`` for the store: the step ``call.code`` matches under ``ref``'s secret.

        An unknown ref (none, or made under a secret no longer listed) is sent as ``""``,
        which names no enrollment: the store answers NO_CODE after checking the lock.
        """
        assert call.code is not None  # noqa: S101 - only for well-formed codes, for mypy
        secret = None if ref is None else self._core.keys.authenticator_secret(call.account, ref)
        if secret is None:
            return "", NO_MATCH
        return ref or "", matching_step(secret, call.code, call.now, self.drift)

    def new_recovery_codes(self, account: object) -> tuple[str, tuple[str, ...], tuple[bytes, ...]]:
        """``(account key, the codes to show, their keyed hashes to store)`` (R12.1).

        Shown as ``XXXXX-XXXXX``; the hashes are of the 10 symbols without separator.
        """
        keys = self._core.keys
        ak = self._core.account(account)
        plain: dict[str, None] = {}  # ten distinct codes (a repeat has odds of ~1e-13)
        while len(plain) < RECOVERY_CODES:
            plain["".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_LENGTH))] = None
        shown = tuple(f"{c[:5]}-{c[5:]}" for c in plain)
        return ak, shown, tuple(keys.recovery_hash(ak, c) for c in plain)

    def recovery_candidates(self, call: FactorCall) -> tuple[bytes, ...]:
        """The typed recovery code's keyed hash under every secret."""
        assert call.code is not None  # noqa: S101 - only for well-formed codes, for mypy
        return self._core.keys.recovery_candidates(call.account, call.code)
