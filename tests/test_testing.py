"""``ameli_otp.testing``: the fake clock, and strategies that draw what the library accepts."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ameli_otp import Issued, MemoryBackend, Policy, Reason, Refused, SecurityCodes, Verified
from ameli_otp._rules import normalize_code
from ameli_otp.testing import (
    FakeClock,
    accounts,
    codes,
    fingerprints,
    malformed_codes,
    policies,
)

SECRET = b"test-secret-0123456789abcdef-0123456789"
CLOCK = FakeClock()  # shared by the examples: a function-scoped fixture would not reset


@cache
def service(length: int = 6) -> SecurityCodes:
    """One service per code length, on a store of its own, for the examples of this module."""
    return SecurityCodes(
        MemoryBackend(), secret=SECRET, policy=Policy(code_length=length), clock=CLOCK
    )


# -- the strategies ---------------------------------------------------------------------------
@given(accounts())
def test_accounts_are_accepted(account: str) -> None:
    CLOCK.advance(hours=2)  # a fresh window for accounts drawn twice
    result = service().request_code(account)
    assert isinstance(result, Issued)


@given(accounts())
def test_accounts_are_at_most_256_characters(account: str) -> None:
    assert isinstance(account, str)
    assert 0 < len(account) <= 256


def test_accounts_include_nir_shaped_numbers() -> None:
    seen: list[str] = []

    @settings(max_examples=300)
    @given(accounts())
    def collect(account: str) -> None:
        if account.isascii() and account.isdigit() and len(account) in (13, 15):
            seen.append(account)

    collect()

    def nir_shaped(nir: str) -> bool:
        key_ok = len(nir) == 13 or (int(nir[:13]) + int(nir[13:])) % 97 == 0  # 97 - n mod 97
        return nir[0] in "12" and 1 <= int(nir[3:5]) <= 12 and key_ok

    assert any(nir_shaped(nir) and len(nir) == 13 for nir in seen)
    assert any(nir_shaped(nir) and len(nir) == 15 for nir in seen)


@given(st.integers(4, 12).flatmap(lambda n: st.tuples(st.just(n), codes(n))))
def test_codes_are_well_formed(drawn: tuple[int, str]) -> None:
    length, code = drawn
    assert len(code) == length
    assert normalize_code(code, length) == code
    result = service(length).verify_code("no code asked for", code)
    assert result == Refused(Reason.NO_CODE)  # read as a code, not as a typo


@given(codes())
def test_codes_default_to_six_digits(code: str) -> None:
    assert len(code) == 6
    assert code.isascii()
    assert code.isdigit()


@given(st.integers(4, 12).flatmap(lambda n: st.tuples(st.just(n), malformed_codes(n))))
def test_malformed_codes_are_refused_as_malformed(drawn: tuple[int, str]) -> None:
    length, typed = drawn
    codes_ = service(length)
    CLOCK.advance(hours=2)
    issued = codes_.request_code("1850775123456")
    assert isinstance(issued, Issued)
    assert codes_.verify_code("1850775123456", typed) == Refused(Reason.MALFORMED_CODE)
    # a typo is not a guess: the code is still there, with all its attempts
    assert isinstance(codes_.verify_code("1850775123456", issued.code), Verified)


@given(fingerprints())
def test_fingerprints_are_accepted(fingerprint: str) -> None:
    codes_ = service()
    CLOCK.advance(hours=2)
    issued = codes_.request_code("1850775123456")
    assert isinstance(issued, Issued)
    verified = codes_.verify_code(
        "1850775123456", issued.code, remember_device=True, fingerprint=fingerprint
    )
    assert isinstance(verified, Verified)
    assert codes_.is_trusted_device("1850775123456", verified.device_token, fingerprint)


@given(policies())
def test_policies_are_valid_and_usable(policy: Policy) -> None:
    assert isinstance(policy, Policy)
    assert policy.code_ttl <= policy.code_window
    for duration in (policy.code_ttl, policy.code_window, policy.lockout):
        assert duration % timedelta(milliseconds=1) == timedelta(0)
        assert duration > timedelta(0)
    assert policy.code_window <= timedelta(hours=2)
    assert 4 <= policy.code_length <= 12
    for count in (policy.max_unused_codes, policy.max_attempts_per_code):
        assert count >= 1
    assert Policy(**{f: getattr(policy, f) for f in _FIELDS}) == policy  # rebuilds the same
    clock = FakeClock()
    codes_ = SecurityCodes(MemoryBackend(), secret=SECRET, policy=policy, clock=clock)
    issued = codes_.request_code("1850775123456")
    assert isinstance(issued, Issued)
    assert len(issued.code) == policy.code_length
    assert issued.expires_at == clock.now() + policy.code_ttl
    assert issued.remaining == policy.max_unused_codes - 1


_FIELDS = (
    "code_ttl",
    "code_window",
    "max_unused_codes",
    "max_attempts_per_code",
    "max_failed_attempts",
    "lockout",
    "code_length",
    "device_trust_ttl",
)


@pytest.mark.parametrize("strategy", [codes, malformed_codes])
def test_code_strategies_check_length(strategy: object) -> None:
    assert callable(strategy)
    for bad in (3, 13, 0):
        with pytest.raises(ValueError, match="length"):
            strategy(bad)
    for bad_type in (True, 6.0, "6"):
        with pytest.raises(TypeError, match="length"):
            strategy(bad_type)


def test_importing_testing_does_not_need_hypothesis() -> None:
    script = """
import sys
sys.modules["hypothesis"] = None  # as if it were not installed
from ameli_otp.testing import FakeClock, accounts
assert FakeClock()() == 1738368000.0
try:
    accounts()
except ImportError as exc:
    assert "pip install hypothesis" in str(exc), exc
else:
    raise AssertionError("accounts() without hypothesis must raise ImportError")
print("ok")
"""
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


# -- FakeClock --------------------------------------------------------------------------------
def test_fake_clock_starts_on_the_first_of_february_2025() -> None:
    clock = FakeClock()
    assert clock() == 1_738_368_000.0
    assert clock.now() == datetime(2025, 2, 1, tzinfo=UTC)
    assert clock.ms == 1_738_368_000_000


def test_fake_clock_advance() -> None:
    clock = FakeClock(0)
    clock.advance(minutes=15)
    assert clock() == 900.0
    clock.advance(timedelta(seconds=1, milliseconds=500))
    assert clock.ms == 901_500
    clock.advance(0.25)
    assert clock.ms == 901_750
    clock.advance(1, milliseconds=250)  # seconds and keywords add up
    assert clock.ms == 903_000
    clock.advance()
    assert clock.ms == 903_000


def test_fake_clock_goes_back_with_a_negative_delta() -> None:
    clock = FakeClock(100)
    clock.advance(-5)
    assert clock() == 95.0
    clock.advance(timedelta(minutes=-1))
    assert clock() == 35.0
    clock.advance(hours=-1)
    assert clock() == -3565.0


def test_fake_clock_set() -> None:
    clock = FakeClock()
    when = datetime(2025, 8, 5, 9, 1, 29, 999_000, tzinfo=UTC)
    clock.set(when)
    assert clock.now() == when
    clock.set(datetime(2025, 8, 5, 11, 0, tzinfo=timezone(timedelta(hours=2))))
    assert clock.now() == datetime(2025, 8, 5, 9, 0, tzinfo=UTC)
    clock.set(42.5)
    assert clock() == 42.5
    assert clock.now().tzinfo is UTC


def test_fake_clock_keeps_whole_milliseconds() -> None:
    clock = FakeClock(0.0004)
    assert clock.ms == 0
    clock.set(0.0006)
    assert clock.ms == 1
    clock.advance(timedelta(microseconds=400))
    assert clock.ms == 1


def test_fake_clock_from_a_datetime() -> None:
    start = datetime(2025, 2, 3, 9, 0, tzinfo=UTC)
    assert FakeClock(start).now() == start


def test_fake_clock_refuses_naive_datetimes_and_bad_types() -> None:
    with pytest.raises(ValueError, match="aware"):
        FakeClock(datetime(2025, 2, 1))  # naive: the point of the test
    clock = FakeClock()
    with pytest.raises(ValueError, match="aware"):
        clock.set(datetime(2025, 2, 1))  # naive: the point of the test
    with pytest.raises(TypeError, match="start"):
        FakeClock("2025-02-01")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="start"):
        FakeClock(True)
    with pytest.raises(TypeError, match="delta"):
        clock.advance("1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="delta"):
        clock.advance(True)


def test_fake_clock_drives_the_rules_to_the_millisecond() -> None:
    clock = FakeClock()
    codes_ = SecurityCodes(MemoryBackend(), secret=SECRET, clock=clock)
    first = codes_.request_code("1850775123456")
    assert isinstance(first, Issued)
    clock.advance(minutes=14, seconds=59, milliseconds=999)
    assert isinstance(codes_.verify_code("1850775123456", first.code), Verified)
    second = codes_.request_code("1850775123456")
    assert isinstance(second, Issued)
    clock.advance(minutes=15)
    assert codes_.verify_code("1850775123456", second.code) == Refused(Reason.EXPIRED)
