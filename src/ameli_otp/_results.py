"""The values ameli_otp returns: small immutable values, usable with ``match``.

``Issued``, ``Verified`` and ``Refused`` are frozen attrs classes; ``Decision``, built
on every limiter hit, is a named tuple (see its docstring).
"""

from __future__ import annotations

import enum
import io
from datetime import datetime, timedelta
from typing import ClassVar, Literal, NamedTuple

import attrs

__all__ = ["Decision", "Enrollment", "Issued", "Reason", "Refused", "Verified"]


class Reason(enum.StrEnum):
    """Why a request or a verification was refused (a ``str``: ``Reason.EXPIRED == "expired"``)."""

    TOO_MANY_CODES = "too_many_codes"
    NO_CODE = "no_code"
    EXPIRED = "expired"
    WRONG_CODE = "wrong_code"
    TOO_MANY_ATTEMPTS = "too_many_attempts"
    MALFORMED_CODE = "malformed_code"
    ACCOUNT_LOCKED = "account_locked"
    TOO_SOON = "too_soon"  # R10.1
    DAILY_LIMIT = "daily_limit"  # R10.2
    BUDGET_EXHAUSTED = "budget_exhausted"  # R10.3: Refused.budget says which
    NO_AUTHENTICATOR = "no_authenticator"  # R11: none confirmed (or pending, to confirm)
    CODE_REUSED = "code_reused"  # R11.2: this step (or a later one) was already accepted
    NO_RECOVERY_CODES = "no_recovery_codes"  # R12: none left (or never made)


@attrs.frozen
class Issued:
    """A new code was issued (``request_code`` succeeded).

    ``code`` is the code to email, ``expires_at`` an aware UTC datetime (issue
    time + ``code_ttl``), ``remaining`` how many more codes the window allows.
    """

    ok: ClassVar[Literal[True]] = True
    code: str = attrs.field(repr=False)  # never in logs by accident
    expires_at: datetime
    remaining: int


@attrs.frozen
class Verified:
    """The code was right; the user is logged in.

    ``device_token`` is set when ``remember_device=True`` was asked: store it in
    a long-lived cookie and pass it to ``is_trusted_device`` on the next visit.
    ``recovery_codes_left`` is set by ``use_recovery_code`` (R12.2): how many of the
    account's recovery codes remain unused.
    """

    ok: ClassVar[Literal[True]] = True
    device_token: str | None = attrs.field(default=None, repr=False)
    recovery_codes_left: int | None = None


@attrs.frozen
class Enrollment:
    """A new authenticator secret (R11.1), to show once, then forget.

    ``secret`` is the base32 secret (160 bits) to type into an authenticator app,
    ``provisioning_uri`` the ``otpauth://totp/...`` URI that a QR code carries, and
    ``qr_svg`` that QR code as an SVG document (needs the ``qr`` extra: segno).
    ``expires_at``: the enrollment must be confirmed (``confirm_authenticator``)
    with a code from the app before then. Neither the secret nor the URI is stored:
    the store keeps a random nonce from which only the library's secret derives it.
    """

    secret: str = attrs.field(repr=False)
    provisioning_uri: str = attrs.field(repr=False)
    expires_at: datetime

    @property
    def qr_svg(self) -> str:
        """The provisioning URI as a QR code, an SVG document (a ``str``)."""
        try:
            import segno
        except ImportError:  # pragma: no cover - the qr extra is installed by the tests
            raise ImportError(
                "Enrollment.qr_svg needs segno: pip install 'ameli-otp[qr]'"
            ) from None
        qr = segno.make_qr(self.provisioning_uri, error="m")
        out = io.BytesIO()
        qr.save(out, kind="svg", scale=4, border=4, xmldecl=False, title="QR code")
        return out.getvalue().decode("utf-8")


@attrs.frozen
class Refused:
    """A refusal, with the reason and what the caller may show.

    ``retry_after`` is set for ``TOO_MANY_CODES``, ``ACCOUNT_LOCKED``, ``TOO_SOON``,
    ``DAILY_LIMIT`` and ``BUDGET_EXHAUSTED``; ``attempts_left`` for ``WRONG_CODE``;
    ``budget`` (the name of the exhausted budget) for ``BUDGET_EXHAUSTED``.
    """

    ok: ClassVar[Literal[False]] = False
    reason: Reason
    retry_after: timedelta | None = None
    attempts_left: int | None = None
    budget: str | None = None


class Decision(NamedTuple):
    """What :class:`~ameli_otp.SlidingWindowLimiter` decided.

    ``entry`` is the id of the entry a successful ``hit`` added, to pass to
    ``release`` when the thing it counted was used.

    A named tuple rather than an attrs class like the other results: it is built
    on every hit, the hottest call of the library, and a tuple is built about four
    times faster (see ``benchmarks/``). It is immutable and works with ``match``
    all the same.
    """

    allowed: bool
    remaining: int
    retry_after: timedelta | None = None
    entry: str | None = None
