"""The tunable numbers of the rules (RULES.md), validated when built."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, NamedTuple

import attrs

__all__ = ["DAY_MS", "SLACK_MS", "Limits", "Policy"]

_MS = timedelta(milliseconds=1)

#: ms a store keeps a record past the last moment a rule could need it (Redis PEXPIRE,
#: the memory store's reclaim): covers clock skew between app servers, and a clock
#: that went ahead and came back (RULES R5.2, R8.4)
SLACK_MS = 60_000


class Limits(NamedTuple):
    """A policy in the integers the stores work with (milliseconds, counts)."""

    code_ttl: int
    code_window: int
    max_unused_codes: int
    max_attempts_per_code: int
    max_failed_attempts: int
    lockout: int
    device_trust_ttl: int
    max_trusted_devices: int
    resend_interval: int  # 0: off
    max_codes_per_day: int  # 0: off


#: the sliding day of max_codes_per_day (R10.2), ms
DAY_MS = 86_400_000


def duration_ms(name: str, value: object) -> int:
    """Return ``value`` (a positive ``timedelta``) in whole milliseconds.

    Raises ``TypeError`` or ``ValueError`` naming ``name``.
    """
    if not isinstance(value, timedelta):
        raise TypeError(f"{name} must be a datetime.timedelta, not {type(value).__name__}")
    ms = round(value / _MS)
    if ms <= 0:
        raise ValueError(f"{name} must be positive (at least 1 ms), got {value!r}")
    return ms


def positive_int(name: str, value: object) -> int:
    """Return ``value`` if it is an ``int`` (not a ``bool``) >= 1."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value!r}")
    return value


def _duration(_: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    duration_ms(attribute.name, value)


def _count(_: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    positive_int(attribute.name, value)


def _optional_duration(_: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        duration_ms(attribute.name, value)


def _optional_count(_: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        positive_int(attribute.name, value)


def _totp_drift(_: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"totp_drift must be an int, not {type(value).__name__}")
    if not 0 <= value <= 10:
        raise ValueError(f"totp_drift must be within 0..10 (30-second steps), got {value!r}")


def _code_length(_: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    positive_int(attribute.name, value)
    assert isinstance(value, int)  # noqa: S101 - narrowed by positive_int, for mypy
    if not 4 <= value <= 12:
        raise ValueError(f"code_length must be within 4..12, got {value!r}")


@attrs.frozen
class Policy:
    """The numbers of the rules; every default is the one of RULES.md.

    Frozen and validated when built: durations are positive ``timedelta``,
    counts are positive ``int`` (not ``bool``), ``code_length`` is within
    4..12, ``totp_drift`` within 0..10 and ``code_ttl <= code_window``. Raises ``TypeError`` or
    ``ValueError`` naming the field.
    """

    code_ttl: timedelta = attrs.field(default=timedelta(minutes=15), validator=_duration)
    code_window: timedelta = attrs.field(default=timedelta(hours=1), validator=_duration)
    max_unused_codes: int = attrs.field(default=5, validator=_count)
    max_attempts_per_code: int = attrs.field(default=3, validator=_count)
    max_failed_attempts: int = attrs.field(default=10, validator=_count)
    lockout: timedelta = attrs.field(default=timedelta(hours=24), validator=_duration)
    code_length: int = attrs.field(default=6, validator=_code_length)
    device_trust_ttl: timedelta = attrs.field(default=timedelta(days=183), validator=_duration)
    #: browsers trusted at once per account: trusting one more forgets the oldest grant,
    #: so that an account's record stays small (RULES R9.1; docs/support.md)
    max_trusted_devices: int = attrs.field(default=10, validator=_count)
    #: R10.1: a request less than this after the last code issued is TOO_SOON (None: off;
    #: the docs recommend 60 s)
    resend_interval: timedelta | None = attrs.field(default=None, validator=_optional_duration)
    #: R10.2: codes issued per account in any sliding 24 hours, used or not (None: off)
    max_codes_per_day: int | None = attrs.field(default=None, validator=_optional_count)
    #: R11.2: authenticator codes of this many 30-second steps either side of the current
    #: one are accepted too (the phone's clock drifts; a code typed as it changes)
    totp_drift: int = attrs.field(default=1, validator=_totp_drift)
    limits: Limits = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        if self.code_ttl > self.code_window:
            raise ValueError(
                f"code_ttl ({self.code_ttl}) must not be longer than code_window "
                f"({self.code_window}): a code must expire before its entry leaves the window"
            )
        limits = Limits(
            code_ttl=duration_ms("code_ttl", self.code_ttl),
            code_window=duration_ms("code_window", self.code_window),
            max_unused_codes=self.max_unused_codes,
            max_attempts_per_code=self.max_attempts_per_code,
            max_failed_attempts=self.max_failed_attempts,
            lockout=duration_ms("lockout", self.lockout),
            device_trust_ttl=duration_ms("device_trust_ttl", self.device_trust_ttl),
            max_trusted_devices=self.max_trusted_devices,
            resend_interval=(
                0
                if self.resend_interval is None
                else duration_ms("resend_interval", self.resend_interval)
            ),
            max_codes_per_day=self.max_codes_per_day or 0,
        )
        object.__setattr__(self, "limits", limits)
