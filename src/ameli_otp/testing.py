"""Helpers for testing a login flow built on ameli_otp (after ``structlog.testing``).

:class:`FakeClock` is a clock you move by hand; the hypothesis strategies make
accounts, codes, fingerprints and policies for property-based tests::

    from hypothesis import given
    from ameli_otp.testing import FakeClock, accounts, codes, malformed_codes

    @given(accounts(), malformed_codes())
    def test_a_typo_is_not_a_guess(account, typed):
        ...

hypothesis is a test dependency only: it is imported when a strategy is first
asked for, so ``import ameli_otp.testing`` (and :class:`FakeClock`) work without
it. Calling a strategy function without hypothesis installed raises ``ImportError``.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from ._policy import Policy
from ._rules import MAX_ACCOUNT_LENGTH, normalize_account, normalize_code

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

__all__ = [
    "FakeClock",
    "accounts",
    "codes",
    "fingerprints",
    "malformed_codes",
    "policies",
]

_MS = timedelta(milliseconds=1)


class FakeClock:
    """A clock for ``clock=``: returns seconds since the epoch, moves only when told.

    Time is kept in whole milliseconds, so every edge of the rules is exact.
    Thread-safe. ``FakeClock()`` starts at 2025-02-01 00:00:00 UTC.
    """

    def __init__(self, start: float | datetime = 1_738_368_000.0) -> None:
        self._lock = threading.Lock()
        self._ms = self._to_ms(start)

    @staticmethod
    def _to_ms(when: float | datetime) -> int:
        if isinstance(when, datetime):
            if when.tzinfo is None:
                raise ValueError("start must be an aware datetime (naive times are ambiguous)")
            return round(when.timestamp() * 1000)
        if isinstance(when, bool) or not isinstance(when, int | float):
            raise TypeError(f"start must be seconds or a datetime, not {type(when).__name__}")
        return round(when * 1000)

    def __call__(self) -> float:
        return self._ms / 1000

    @property
    def ms(self) -> int:
        """The current time in integer milliseconds."""
        return self._ms

    def now(self) -> datetime:
        """The current time as an aware UTC datetime."""
        return datetime.fromtimestamp(self._ms / 1000, tz=UTC)

    def advance(self, delta: timedelta | float = 0.0, /, **kwargs: float) -> None:
        """Move forward (or back, with a negative delta) by ``delta`` seconds or a timedelta.

        Keyword arguments are those of ``timedelta``: ``advance(minutes=15)``.
        """
        if isinstance(delta, timedelta):
            step = delta
        elif isinstance(delta, bool) or not isinstance(delta, int | float):
            raise TypeError(f"delta must be seconds or a timedelta, not {type(delta).__name__}")
        else:
            step = timedelta(seconds=delta)
        step += timedelta(**kwargs)
        with self._lock:
            self._ms += round(step / _MS)

    def set(self, when: float | datetime) -> None:
        """Jump to ``when`` (seconds since the epoch or an aware datetime)."""
        ms = self._to_ms(when)
        with self._lock:
            self._ms = ms


# -- hypothesis strategies ---------------------------------------------------------------------
# Each function imports hypothesis when called, never at import time (hypothesis is a test
# extra). Every strategy draws only values the library accepts (or, for malformed_codes, only
# values it must refuse), so integrators can use them without filtering.

_MIN_CODE_LENGTH, _MAX_CODE_LENGTH = 4, 12
_DIGITS = "0123456789"
_JUNK = " \t-"  # what R2.1 removes before counting digits
_HOUR_MS = 3_600_000


def _need_hypothesis() -> None:
    try:
        import hypothesis  # noqa: F401 - only checks that it is there
    except ImportError as exc:
        raise ImportError(
            "the strategies of ameli_otp.testing need hypothesis: "
            "pip install hypothesis (or ameli-otp[test])"
        ) from exc


def _check_length(length: object) -> int:
    if not isinstance(length, int) or isinstance(length, bool):
        raise TypeError(f"length must be an int, not {type(length).__name__}")
    if not _MIN_CODE_LENGTH <= length <= _MAX_CODE_LENGTH:
        raise ValueError(
            f"length must be within {_MIN_CODE_LENGTH}..{_MAX_CODE_LENGTH} "
            f"(Policy.code_length), got {length!r}"
        )
    return length


def _nir(sex: int, year: int, month: int, dept: int, commune: int, order: int, key: bool) -> str:
    """A NIR-shaped number: sex, year and month of birth, department, commune, order, key."""
    nir = f"{sex}{year:02d}{month:02d}{dept:02d}{commune:03d}{order:03d}"
    if key:  # the control key of a real NIR: 97 - (the 13 digits mod 97)
        nir += f"{97 - int(nir) % 97:02d}"
    return nir


def _valid_account(account: str) -> bool:
    try:
        normalize_account(account)
    except ValueError:
        return False
    return True


def accounts() -> SearchStrategy[str]:
    """Valid account ids: NIR-shaped numbers (13 digits, or 15 with the key) and any other
    ``str`` of at most 256 characters (accents, emoji, spaces...) that RULES R7.1 accepts:
    not empty once whitespace is removed, at most 256 characters once normalised (NFKC),
    no NUL (and, as ``st.text`` draws none, no lone surrogate).

    The numbers are made up: shaped like a French social security number (sex,
    year and month of birth, department, commune, order) but belonging to no one.
    """
    _need_hypothesis()
    from hypothesis import strategies as st

    nirs = st.builds(
        _nir,
        st.integers(1, 2),
        st.integers(0, 99),
        st.integers(1, 12),
        st.integers(1, 95),
        st.integers(1, 990),
        st.integers(1, 999),
        st.booleans(),
    )
    others = st.text(
        st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
        min_size=1,
        max_size=MAX_ACCOUNT_LENGTH,
    ).filter(_valid_account)
    return st.one_of(nirs, others)


def codes(length: int = 6) -> SearchStrategy[str]:
    """Well-formed codes: exactly ``length`` ASCII digits, leading zeros included.

    ``length`` is a ``Policy.code_length`` (4..12); to draw both, use
    ``policies().flatmap(lambda p: st.tuples(st.just(p), codes(p.code_length)))``.
    Raises ``TypeError``/``ValueError`` naming ``length`` when it is not in 4..12.
    """
    length = _check_length(length)
    _need_hypothesis()
    from hypothesis import strategies as st

    return st.text(alphabet=_DIGITS, min_size=length, max_size=length)


def malformed_codes(length: int = 6) -> SearchStrategy[str]:
    """Inputs that are not a code of ``length`` digits: ``verify_code`` gives ``MALFORMED_CODE``.

    Too few or too many digits (spaces, tabs and ``-`` sprinkled in, which do not
    count, RULES R2.1), another character among the digits (a letter, a dot, a
    non-breaking space), digits of other scripts (``"١٢٣٤٥٦"``), the empty string,
    and arbitrary text. Raises ``TypeError``/``ValueError`` naming ``length`` when it
    is not in 4..12.
    """
    length = _check_length(length)
    _need_hypothesis()
    from hypothesis import strategies as st

    def typed(n: int) -> SearchStrategy[str]:
        """``n`` ASCII digits with separators before, between and after them."""
        gaps = st.lists(st.text(_JUNK, max_size=2), min_size=n + 1, max_size=n + 1)
        return st.builds(
            lambda ds, gs: gs[0] + "".join(d + g for d, g in zip(ds, gs[1:], strict=True)),
            st.text(_DIGITS, min_size=n, max_size=n),
            gaps,
        )

    wrong_count = st.one_of(
        st.integers(0, length - 1), st.integers(length + 1, length + 6)
    ).flatmap(typed)
    with_intruder = st.builds(
        lambda ds, c, i: ds[:i] + c + ds[i:],
        st.text(_DIGITS, min_size=length - 1, max_size=length - 1),
        st.characters(exclude_characters=_DIGITS + _JUNK),
        st.integers(0, length - 1),
    )
    other_scripts = st.sampled_from("\u0660\u06f0\u0966\u09e6\uff10").map(  # their zeros
        lambda zero: "".join(chr(ord(zero) + i % 10) for i in range(length))
    )
    return st.one_of(
        wrong_count, with_intruder, other_scripts, st.text(max_size=length + 6)
    ).filter(lambda candidate: normalize_code(candidate, length) is None)


def fingerprints() -> SearchStrategy[str]:
    """Valid browser fingerprints: non-empty ``str`` of at most 1024 characters (RULES R7.3):
    hex digests, user agents, any text."""
    _need_hypothesis()
    from hypothesis import strategies as st

    digests = st.binary(min_size=16, max_size=32).map(bytes.hex)
    agents = st.builds(
        "Mozilla/5.0 ({}) {}/{}".format,
        st.sampled_from(["X11; Linux x86_64", "Windows NT 10.0; Win64; x64", "Macintosh"]),
        st.sampled_from(["Firefox", "Chrome", "Safari", "Edg"]),
        st.integers(60, 140),
    )
    return st.one_of(digests, agents, st.text(min_size=1, max_size=200))


def policies() -> SearchStrategy[Policy]:
    """Valid :class:`~ameli_otp.Policy` objects with small counts and short durations.

    Durations are whole milliseconds (every edge stays exact with a
    :class:`FakeClock`): ``code_window`` up to 2 hours and ``code_ttl`` up to it
    (``code_ttl <= code_window`` always holds), ``lockout`` up to 2 days,
    ``device_trust_ttl`` up to 200 days. Counts are 1 to a dozen; ``code_length``
    is anything in 4..12.
    """
    _need_hypothesis()
    from hypothesis import strategies as st

    def ms(high: int) -> SearchStrategy[timedelta]:
        return st.integers(1, high).map(lambda n: timedelta(milliseconds=n))

    def with_window(window: int) -> SearchStrategy[Policy]:
        return st.builds(
            Policy,
            code_ttl=ms(window),
            code_window=st.just(timedelta(milliseconds=window)),
            max_unused_codes=st.integers(1, 6),
            max_attempts_per_code=st.integers(1, 4),
            max_failed_attempts=st.integers(1, 12),
            lockout=ms(48 * _HOUR_MS),
            code_length=st.integers(_MIN_CODE_LENGTH, _MAX_CODE_LENGTH),
            device_trust_ttl=ms(200 * 24 * _HOUR_MS),
        )

    return st.integers(1, 2 * _HOUR_MS).flatmap(with_window)
