"""The rules of RULES.md, in one pure module.

Rules of this file (after h11's ``_state.py``):

1. Every decision of RULES.md is made here. This module reads no clock,
   touches no store and imports neither ``time``, ``redis`` nor ``asyncio``:
   ``now`` (integer milliseconds) is always an argument.
2. The transitions below work on small plain state objects. The memory store
   applies them under its lock; the Redis store runs their Lua twins
   (``lua/*.lua``), which return the very same outcome tuples, and the
   conformance suite and the model-based state machine hold both to the same
   results.
3. Outcomes are tuples of ints (``kind``, ``value``): cheap to build, and what
   a Lua script can return. ``issue_result``/``verify_result``/``*_decision``
   turn them into the public results.
"""

from __future__ import annotations

import hmac
import unicodedata
from bisect import bisect_left, bisect_right, insort
from datetime import UTC, datetime, timedelta

from ._policy import DAY_MS, Limits
from ._results import Decision, Issued, Reason, Refused, Verified

# -- outcome kinds, shared with the Lua scripts (keep the numbers in sync) ----------------
# issue_code -> (kind, value)
ISSUED = 0  # value: entries counting after this one
TOO_MANY_CODES = 1  # value: issue time of the oldest counting entry
LOCKED = 2  # value: lock end (also a verify kind)
# verify_code -> (kind, value)
VERIFIED = 0  # value: 0
NO_CODE = 3
EXPIRED = 4
WRONG_CODE = 5  # value: the code's failures so far
TOO_MANY_ATTEMPTS = 6
LOCKED_NOW = 7  # this guess locked the account; value: lock end
# issue_code, sending rules (R10) -> (kind, value)
TOO_SOON = 8  # value: when the last code was issued
DAILY_LIMIT = 9  # value: issue time of the oldest code counting in the day

MAX_ACCOUNT_LENGTH = 256  # R7.1: characters of a normalised account id (and of a limiter key)
# R7.1, bounded work: a typed account id longer than this is refused without being normalised.
# NFKC never shortens a str by more than MAX_NFKC_SHRINK (see normalize_account), so a typed
# id over MAX_NFKC_SHRINK * MAX_ACCOUNT_LENGTH = 1024 characters can only be valid if it holds
# whitespace; 4096 leaves room for 3072 whitespace characters, more than any typed id holds.
MAX_NFKC_SHRINK = 4
MAX_TYPED_ACCOUNT_LENGTH = 4096
MAX_CODE_INPUT_LENGTH = 64  # R7.2: longer inputs are MALFORMED_CODE without being read
MAX_FINGERPRINT_LENGTH = 1024  # R7.3
_CODE_JUNK = str.maketrans("", "", " \t-")


# -- input ---------------------------------------------------------------------------------
def normalize_account(account: object, name: str = "account") -> str:
    """R7.1: the normalised form of an account id, which names its record; or raise.

    ``account`` must be a ``str``. It is normalised to Unicode NFKC, then every
    whitespace character (``str.isspace``) is removed, so that ``"185 077 512 3456"``,
    ``"1850775123456"`` and the same digits typed full-width (U+FF11...) are one
    account. Case is kept. ``TypeError`` if it is not a ``str``; ``ValueError``,
    naming ``name``, if the normalised id is empty, longer than 256 characters, or
    holds a NUL, or if the id holds a lone surrogate.

    Bounded work: an id of more than 4096 characters as typed is refused
    (``ValueError``) before it is normalised, so that a huge input costs no more than
    its ``len()``. Why 4096: whitespace removal can only shorten, and NFKC shortens a
    str by composition only (no character decomposes to nothing), each composed
    character standing for at most 4 code points (U+1F82 and the like: the longest
    canonical decompositions of Unicode; Hangul syllables stand for 3). So a typed
    id that normalises to at most 256 characters has at most 4 * 256 = 1024
    characters plus the whitespace removed; the bound refuses only ids that hold more
    than 3072 whitespace characters, which nobody types.

    Fast path: a short ASCII id of letters and digits only (a social security
    number) is its own normal form (NFKC is the identity on ASCII) and is returned
    as is, after four cheap tests.
    """
    if (
        type(account) is str
        and len(account) <= MAX_ACCOUNT_LENGTH
        and account.isascii()
        and account.isalnum()  # ASCII letters and digits: no whitespace, no NUL, not empty
    ):
        return account
    if not isinstance(account, str):
        raise TypeError(f"{name} must be a str, not {type(account).__name__}")
    typed = len(account)
    if typed > MAX_TYPED_ACCOUNT_LENGTH:
        raise ValueError(
            f"{name} must be at most {MAX_ACCOUNT_LENGTH} characters once normalised; "
            f"{typed} characters as typed is over the {MAX_TYPED_ACCOUNT_LENGTH} that can be"
        )
    if account.isascii():
        parts = account.split()  # NFKC is the identity on ASCII
    else:
        try:
            account.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"{name} must not hold a lone surrogate") from None
        parts = unicodedata.normalize("NFKC", account).split()
    # split() cuts at exactly the str.isspace characters, and makes plain str of a subclass
    text = parts[0] if len(parts) == 1 else "".join(parts)
    if not text:
        raise ValueError(f"{name} must not be empty (or only whitespace)")
    if len(text) > MAX_ACCOUNT_LENGTH:
        raise ValueError(
            f"{name} must be at most {MAX_ACCOUNT_LENGTH} characters once normalised "
            f"(NFKC, whitespace removed), got {len(text)}"
        )
    if "\x00" in text:
        raise ValueError(f"{name} must not hold a NUL character")
    return text


def check_account(account: object, name: str = "account") -> str:
    """Return ``account`` if it is a non-empty ``str`` of at most 256 characters.

    The check of limiter keys (an IP address, a phone number: not account ids, so
    not normalised); account ids go through :func:`normalize_account`.
    """
    if not isinstance(account, str):
        raise TypeError(f"{name} must be a str, not {type(account).__name__}")
    if not account:
        raise ValueError(f"{name} must not be empty")
    if len(account) > MAX_ACCOUNT_LENGTH:
        raise ValueError(
            f"{name} must be at most {MAX_ACCOUNT_LENGTH} characters, got {len(account)}"
        )
    return account


def check_fingerprint(fingerprint: object) -> str:
    """R7.3: return ``fingerprint`` if it is a non-empty ``str`` of at most 1024 characters.

    Any such ``str`` (it is compared exactly, never normalised); else ``TypeError`` or
    ``ValueError`` naming ``fingerprint``, at the cost of a ``len()``.
    """
    if not isinstance(fingerprint, str):
        raise TypeError(f"fingerprint must be a str, not {type(fingerprint).__name__}")
    if not fingerprint:
        raise ValueError("fingerprint must not be empty")
    if len(fingerprint) > MAX_FINGERPRINT_LENGTH:
        raise ValueError(
            f"fingerprint must be at most {MAX_FINGERPRINT_LENGTH} characters, "
            f"got {len(fingerprint)}"
        )
    return fingerprint


def normalize_code(code: object, length: int) -> str | None:
    """R2.1: drop spaces, tabs and ``-``; the rest must be ``length`` ASCII digits.

    Returns the digits, or None for a malformed input: R7.2, an input longer than 64
    characters is malformed without being read further; no Unicode normalisation
    (full-width or Arabic-Indic digits are malformed). Raises ``TypeError`` naming
    ``code`` if it is not a ``str``.
    """
    if not isinstance(code, str):
        raise TypeError(f"code must be a str, not {type(code).__name__}")
    if len(code) > MAX_CODE_INPUT_LENGTH:
        return None
    digits = code.translate(_CODE_JUNK)
    if len(digits) == length and digits.isascii() and digits.isdigit():
        return digits
    return None


def clock_ms(reading: float) -> int:
    """A clock reading (seconds since the epoch) rounded to the nearest millisecond."""
    kind = type(reading)
    if kind is not float and kind is not int:
        raise TypeError(f"clock must return an int or float, not {kind.__name__}")
    try:
        return round(reading * 1000)
    except (ValueError, OverflowError):  # NaN, infinities
        raise ValueError(f"clock must return a finite number, got {reading!r}") from None


# -- the sliding window (R1.2, R1.3, R1.4) -------------------------------------------------
# A window is a sorted list of entries. An entry is one int, (t << TAG_BITS) | tag: its issue
# time t (ms) in the high bits, and a tag unique among the entries of that millisecond in the
# low bits, so that sorting the ints sorts by t (plain ints: no tuple to build per hit, no
# key function to bisect with, nothing for the garbage collector to track). An entry made at
# t counts at every now with now < t + window, i.e. t > now - window: the others are pruned.
TAG_BITS = 32
TAG_MASK = (1 << TAG_BITS) - 1


def entry_of(t: int, seq: int) -> int:
    """The entry made at ``t`` (ms), tagged with the low TAG_BITS of ``seq`` (a counter)."""
    return (t << TAG_BITS) | (seq & TAG_MASK)


def entry_time(entry: int) -> int:
    """When ``entry`` was made (ms)."""
    return entry >> TAG_BITS


def window_hit(
    entries: list[int], now: int, window: int, limit: int, entry: int
) -> tuple[bool, int]:
    """Add ``entry`` (made at ``now``: ``entry_of(now, ...)``) unless ``limit`` entries count.

    Returns ``(True, entries counting after)`` or ``(False, t of the oldest counting)``;
    a refusal changes nothing but forgetting entries that stopped counting.
    """
    cut = (now - window + 1) << TAG_BITS  # entries below it were made at t <= now - window
    if entries and entries[0] < cut:
        del entries[: bisect_left(entries, cut)]
    if len(entries) >= limit:
        return False, entries[0] >> TAG_BITS
    if not entries or entries[-1] < entry:
        entries.append(entry)
    else:  # the clock went back: keep the list sorted
        insort(entries, entry)
    return True, len(entries)


def window_count(entries: list[int], now: int, window: int) -> tuple[int, int]:
    """``(entries counting at now, t of the oldest counting or 0)``, without changing anything."""
    i = bisect_left(entries, (now - window + 1) << TAG_BITS)
    n = len(entries) - i
    return n, (entry_time(entries[i]) if n else 0)


def window_release(entries: list[int], entry: int) -> None:
    """Remove ``entry`` if it is there (R1.4); an unknown entry does nothing."""
    i = bisect_left(entries, entry)
    if i < len(entries) and entries[i] == entry:
        del entries[i]


# -- one account (R1, R2, R3) ----------------------------------------------------------------
class Code:
    """The active code of an account: keyed hash, issue time, failures, window entry."""

    __slots__ = ("entry", "failures", "hash", "issued")

    def __init__(self, hash: bytes, issued: int, entry: int) -> None:
        self.hash = hash
        self.issued = issued
        self.failures = 0
        self.entry = entry


class Account:
    """Everything the rules keep about one account."""

    __slots__ = (
        "code",
        "day",
        "devices",
        "failures",
        "last_failure",
        "last_issued",
        "lock_until",
        "window",
    )

    def __init__(self) -> None:
        self.window: list[int] = []  # entries (see entry_of), sorted
        self.code: Code | None = None
        self.failures = 0  # consecutive failed verifications (R2.6)
        self.last_failure = 0
        self.lock_until = 0  # locked while now < lock_until
        self.devices: dict[str, int] = {}  # device id -> trust granted at (R3)
        self.day: list[int] = []  # R10.2: issue times in the last day, used or not, sorted
        self.last_issued = 0  # R10.1: when the newest code was issued (0: never)


def issue_span(lim: Limits) -> int:
    """How long (ms) after an issue a rule may still need it: the window, the day, the wait."""
    return max(lim.code_window, DAY_MS if lim.max_codes_per_day else 0, lim.resend_interval)


def issue(acct: Account, now: int, lim: Limits, code_hash: bytes, seq: int) -> tuple[int, int]:
    """R1, R2.6 (a locked account gets no code) and R10.1-R10.2: ``request_code``.

    Checked in this order, the first that applies refusing: the lock, the hour's window
    (R1.3), the day's count (R10.2), the resend interval (R10.1). A refusal creates no
    entry anywhere.
    """
    if now < acct.lock_until:
        return LOCKED, acct.lock_until
    count, oldest = window_count(acct.window, now, lim.code_window)
    if count >= lim.max_unused_codes:
        return TOO_MANY_CODES, oldest
    if lim.max_codes_per_day:
        day = acct.day
        cut = now - DAY_MS
        if day and day[0] <= cut:
            del day[: bisect_right(day, cut)]
        if len(day) >= lim.max_codes_per_day:
            return DAILY_LIMIT, day[0]
    if lim.resend_interval and acct.last_issued and now < acct.last_issued + lim.resend_interval:
        return TOO_SOON, acct.last_issued
    entry = entry_of(now, seq)
    allowed, value = window_hit(acct.window, now, lim.code_window, lim.max_unused_codes, entry)
    if not allowed:  # pragma: no cover - the count above was the same
        return TOO_MANY_CODES, value
    if lim.max_codes_per_day:
        insort(acct.day, now)
    if lim.resend_interval:
        acct.last_issued = now
    # R1.6: the new code replaces the previous one, which keeps its entry; failures stay.
    acct.code = Code(code_hash, now, entry)
    return ISSUED, value


def verify(
    acct: Account, now: int, lim: Limits, candidates: tuple[bytes, ...], device: str | None
) -> tuple[int, int]:
    """R2.2 to R2.6 (R2.1 is the caller's, before any store access): ``verify_code``."""
    if now < acct.lock_until:
        return LOCKED, acct.lock_until
    code = acct.code
    if code is None or now >= code.issued + lim.code_window:  # R2.3
        acct.code = None
        return NO_CODE, 0
    if now >= code.issued + lim.code_ttl:  # R2.4
        return EXPIRED, 0
    matched = False
    for candidate in candidates:  # every one compared: R4.4
        matched |= hmac.compare_digest(candidate, code.hash)
    if matched:  # R2.5
        acct.code = None
        acct.failures = 0
        window_release(acct.window, code.entry)
        if device is not None:
            add_device(acct, now, lim, device)
        return VERIFIED, 0
    code.failures += 1  # R2.6
    if add_failure(acct, now, lim):
        acct.code = None
        return LOCKED_NOW, acct.lock_until
    if code.failures >= lim.max_attempts_per_code:
        acct.code = None
        return TOO_MANY_ATTEMPTS, 0
    return WRONG_CODE, code.failures


def add_failure(acct: Account, now: int, lim: Limits) -> bool:
    """R2.6: one more consecutive failure (of any factor, R11.3, R12.2); True if it locked.

    Failures none was added to for ``lockout`` are forgotten first; the one that reaches
    ``max_failed_attempts`` locks the account for ``lockout`` from ``now``, and the count
    starts again from zero when the lock ends.
    """
    if acct.failures and now >= acct.last_failure + lim.lockout:
        acct.failures = 0
    acct.failures += 1
    acct.last_failure = now
    if acct.failures >= lim.max_failed_attempts:
        acct.lock_until = now + lim.lockout
        acct.failures = 0
        return True
    return False


def add_device(acct: Account, now: int, lim: Limits, device: str) -> None:
    """R3.1: trust ``device`` from ``now``; expired trusts are forgotten on the way, and
    past ``max_trusted_devices`` the oldest grant goes (R9.1: a record stays small)."""
    devices = acct.devices
    for d in [d for d, t in devices.items() if now >= t + lim.device_trust_ttl]:
        del devices[d]
    while len(devices) >= lim.max_trusted_devices:
        del devices[min(devices, key=lambda d: (devices[d], d))]
    devices[device] = now


def device_trusted(acct: Account, now: int, trust_ttl: int, device: str) -> bool:
    """R3.2/R3.4: granted and not revoked, and now < granted + trust (never extended)."""
    granted = acct.devices.get(device)
    return granted is not None and now < granted + trust_ttl


def forget_device(acct: Account, now: int, trust_ttl: int, device: str) -> bool:
    """R3.3, R9.2: revoke ``device``; True if it was trusted (an expired trust is no change)."""
    granted = acct.devices.pop(device, None)
    return granted is not None and now < granted + trust_ttl


def forget_all_devices(acct: Account, now: int, trust_ttl: int) -> int:
    """R3.3: revoke every device; the number of them that were trusted."""
    trusted = sum(now < t + trust_ttl for t in acct.devices.values())
    acct.devices.clear()
    return trusted


def unlock(acct: Account, now: int, lockout: int) -> bool:
    """R2.7: lift the lock and clear the failure count; True if either still held."""
    changed = now < acct.lock_until or (acct.failures > 0 and now < acct.last_failure + lockout)
    acct.lock_until = 0
    acct.failures = 0
    return changed


# -- outcomes to results ---------------------------------------------------------------------
_MS = timedelta(milliseconds=1)


def _td(ms: int) -> timedelta:
    return _MS * ms  # much faster than timedelta(milliseconds=ms)


def issue_result(outcome: tuple[int, int], now: int, lim: Limits, code: str) -> Issued | Refused:
    """The public result of ``request_code`` for an outcome of :func:`issue`."""
    kind, value = outcome
    if kind == ISSUED:
        return Issued(
            code=code,
            expires_at=datetime.fromtimestamp((now + lim.code_ttl) / 1000, tz=UTC),
            remaining=lim.max_unused_codes - value,
        )
    if kind == TOO_MANY_CODES:  # R1.3
        return Refused(Reason.TOO_MANY_CODES, retry_after=_td(value + lim.code_window - now))
    if kind == LOCKED:
        return Refused(Reason.ACCOUNT_LOCKED, retry_after=_td(value - now))
    if kind == DAILY_LIMIT:  # R10.2
        return Refused(Reason.DAILY_LIMIT, retry_after=_td(value + DAY_MS - now))
    if kind == TOO_SOON:  # R10.1
        return Refused(Reason.TOO_SOON, retry_after=_td(value + lim.resend_interval - now))
    raise ValueError(f"unknown issue outcome {outcome!r}")


_REFUSED = {
    NO_CODE: Refused(Reason.NO_CODE),
    EXPIRED: Refused(Reason.EXPIRED),
    TOO_MANY_ATTEMPTS: Refused(Reason.TOO_MANY_ATTEMPTS),
}
MALFORMED = Refused(Reason.MALFORMED_CODE)


def verify_result(
    outcome: tuple[int, int], now: int, lim: Limits, token: str | None
) -> Verified | Refused:
    """The public result of ``verify_code`` for an outcome of :func:`verify`."""
    kind, value = outcome
    if kind == VERIFIED:
        return Verified(device_token=token)
    refused = _REFUSED.get(kind)
    if refused is not None:
        return refused
    if kind == WRONG_CODE:
        return Refused(Reason.WRONG_CODE, attempts_left=lim.max_attempts_per_code - value)
    if kind in (LOCKED, LOCKED_NOW):
        return Refused(Reason.ACCOUNT_LOCKED, retry_after=_td(value - now))
    raise ValueError(f"unknown verify outcome {outcome!r}")


_decision = tuple.__new__  # Decision(...) without the keyword machinery: the hottest path


def hit_decision(
    allowed: bool, value: int, entry: str | None, now: int, window: int, limit: int
) -> Decision:
    """The :class:`Decision` of a ``hit`` for an outcome of :func:`window_hit`."""
    if allowed:
        return _decision(Decision, (True, limit - value, None, entry))
    return _decision(Decision, (False, 0, _MS * (value + window - now), None))


def peek_decision(count: int, oldest: int, now: int, window: int, limit: int) -> Decision:
    """The :class:`Decision` of a ``peek`` for an outcome of :func:`window_count`."""
    if count < limit:
        return Decision(True, limit - count, None, None)
    return Decision(False, 0, _td(oldest + window - now), None)
