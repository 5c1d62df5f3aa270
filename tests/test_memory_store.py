"""MemoryBackend specifics: memory follows the live records, and a bound loses nothing.

RULES.md R5.2: the store's own expiry only reclaims memory and never forgets a
record while a rule could still need it. API.md: ``MemoryBackend()`` is "memory
bounded by the live records (expired ones are reclaimed)"; ``max_records`` refuses
new records (``StoreFullError``, a ``BackendError``) rather than evict a live one.

The store has no clock of its own: it learns the time from the calls it serves
(``reclaim()`` reclaims what has expired as of the latest write). So after moving
the clock, each test makes one call (a "probe" on a new account) before
``reclaim()``.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from ameli_otp import (
    BackendError,
    Issued,
    MemoryBackend,
    Policy,
    Reason,
    Refused,
    SecurityCodes,
    SlidingWindowLimiter,
    StoreFullError,
    Verified,
)
from ameli_otp._memory import _RECLAIM_PER_WRITE
from ameli_otp.testing import FakeClock
from tests.harness import SECRET

MS = timedelta(milliseconds=1)
POLICY = Policy()
WINDOW = POLICY.code_window
LOCKOUT = POLICY.lockout
TRUST = POLICY.device_trust_ttl
FP = "fp-firefox-128-linux-1920x1080"
MANY = 100_000
ACCOUNT = "1850775123456"


def nir(i: int) -> str:
    """The ``i``-th made-up account id."""
    return f"2{i:012d}"


def store(
    clock: FakeClock, policy: Policy = POLICY, max_records: int | None = None
) -> tuple[MemoryBackend, SecurityCodes]:
    backend = MemoryBackend(max_records=max_records)
    return backend, SecurityCodes(backend, secret=SECRET, policy=policy, clock=clock)


def issue(codes: SecurityCodes, account: str) -> str:
    result = codes.request_code(account)
    assert isinstance(result, Issued), result
    return result.code


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10 ** len(code):0{len(code)}d}"


def populate(codes: SecurityCodes, n: int) -> None:
    """``n`` accounts with one code each, all issued at the same time."""
    for i in range(n):
        issue(codes, nir(i))


# -- memory follows the live records ------------------------------------------------------------
@pytest.mark.slow
def test_100000_accounts_are_all_reclaimed_once_their_window_has_passed(
    clock: FakeClock,
) -> None:
    backend, codes = store(clock)
    populate(codes, MANY)
    assert len(backend) == MANY
    # 1 ms before the window ends every entry still counts: nothing may be reclaimed
    clock.advance(WINDOW - MS)
    issue(codes, "probe-1")
    assert backend.reclaim() == 0
    assert len(backend) == MANY + 1
    # still there: its code is expired, not forgotten (an unknown account gives NO_CODE)
    assert codes.verify_code(nir(0), "000000") == Refused(Reason.EXPIRED)
    # at the end of the window no rule needs the 100,000 records any more
    clock.advance(MS)
    issue(codes, "probe-2")
    assert backend.reclaim() >= MANY - _RECLAIM_PER_WRITE
    assert len(backend) == 2  # the probes, whose windows are still open
    # a reclaimed account is a new account again
    result = codes.request_code(nir(1))
    assert isinstance(result, Issued)
    assert result.remaining == POLICY.max_unused_codes - 1


@pytest.mark.slow
def test_writes_alone_reclaim_expired_records(clock: FakeClock) -> None:
    """Without reclaim(): each write reclaims up to _RECLAIM_PER_WRITE expired records,
    more than the one it can create, so the store shrinks back to its live records."""
    backend, codes = store(clock)
    populate(codes, MANY)
    clock.advance(WINDOW)
    writes = 20_000
    for i in range(writes):
        issue(codes, f"new-{i}")
        assert len(backend) <= MANY + 1
    expected = writes + max(0, MANY - _RECLAIM_PER_WRITE * writes)
    assert len(backend) == expected
    assert expected < MANY // 4  # well below the 100,000 that expired
    # the old accounts start afresh
    assert codes.request_code(nir(7)).remaining == POLICY.max_unused_codes - 1


def test_reclaim_in_an_idle_process_gives_the_memory_back(clock: FakeClock) -> None:
    """API.md 'memory bounded by the live records', and reclaim()'s docstring: 'for an
    idle process that wants its memory back at once'. No call after the clock moved."""
    backend, codes = store(clock)
    populate(codes, 1_000)
    clock.advance(WINDOW * 2)  # every record expired; the process makes no call meanwhile
    assert backend.reclaim() == 0  # as of the latest write, nothing has expired yet
    assert backend.reclaim(clock()) == 1_000  # as of the caller's clock, everything has
    assert len(backend) == 0


def test_memory_stays_bounded_under_churn(clock: FakeClock) -> None:
    """An hour after hour of new accounts: the store holds about one hour of them."""
    backend, codes = store(clock)
    per_hour = 2_000
    for hour in range(12):
        for i in range(per_hour):
            issue(codes, f"h{hour}-{i}")
        assert len(backend) <= 2 * per_hour
        clock.advance(WINDOW)
    issue(codes, "probe")
    backend.reclaim()
    assert len(backend) == 1


def test_reset_churn_keeps_the_bookkeeping_bounded(clock: FakeClock) -> None:
    """API.md 'memory bounded by the live records': a key hit then reset, over and over
    within one window, must not leave a record behind per reset until the window ends
    (each hit schedules its record for reclaim; reset drops the record but not that
    schedule entry, which the store must compact away)."""
    import tracemalloc

    backend = MemoryBackend()
    limiter = SlidingWindowLimiter(backend, limit=5, window=timedelta(hours=1), clock=clock)

    def churn(n: int) -> None:
        for i in range(n):
            limiter.hit(f"k{i % 100}")
            limiter.reset(f"k{i % 100}")

    churn(20_000)  # warm up: the first compactions, the allocator's own pools
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        churn(100_000)  # still within the first minute of the window
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(backend) == 0
    assert grown < 1_000_000, f"{grown} bytes kept for 100,000 resets of 100 keys"
    assert limiter.hit("k1").remaining == 4


def test_limiter_keys_are_reclaimed_too(clock: FakeClock) -> None:
    backend = MemoryBackend()
    window = timedelta(minutes=1)
    limiter = SlidingWindowLimiter(backend, limit=3, window=window, clock=clock)
    for i in range(1_000):
        assert limiter.hit(f"ip:{i}").allowed
    assert len(backend) == 1_000
    clock.advance(window - MS)
    limiter.hit("probe-1")
    assert backend.reclaim() == 0
    clock.advance(MS)
    limiter.hit("probe-2")
    backend.reclaim()
    assert len(backend) == 2
    assert limiter.peek("ip:0").remaining == 3
    limiter.reset("probe-1")
    assert len(backend) == 1


# -- never forgotten while a rule needs it (R5.2) -----------------------------------------------
def test_locked_account_is_not_reclaimed_before_its_lock_ends(clock: FakeClock) -> None:
    policy = Policy(max_failed_attempts=1)
    backend, codes = store(clock, policy)
    code = issue(codes, ACCOUNT)
    assert codes.verify_code(ACCOUNT, wrong(code)) == Refused(
        Reason.ACCOUNT_LOCKED, retry_after=LOCKOUT
    )
    clock.advance(LOCKOUT - MS)  # long after the code's window
    issue(codes, "probe-1")
    backend.reclaim()
    assert len(backend) == 2
    locked = Refused(Reason.ACCOUNT_LOCKED, retry_after=MS)
    assert codes.request_code(ACCOUNT) == locked
    assert codes.verify_code(ACCOUNT, code) == locked
    # the lock ends: the record may go, and the account starts afresh
    clock.advance(MS)
    issue(codes, "probe-2")
    backend.reclaim()
    assert len(backend) == 2  # the probes
    result = codes.request_code(ACCOUNT)
    assert isinstance(result, Issued)
    assert result.remaining == policy.max_unused_codes - 1


def test_failure_count_is_not_reclaimed_before_lockout(clock: FakeClock) -> None:
    """R2.6: nine failures are remembered for lockout after the last one, even once
    every code of the account has left its window."""
    backend, codes = store(clock)
    for _ in range(3):  # 3 codes burned: 9 consecutive failures
        guess = wrong(issue(codes, ACCOUNT))
        for _ in range(3):
            codes.verify_code(ACCOUNT, guess)
    clock.advance(LOCKOUT - MS)
    for i in range(100):  # enough writes to reclaim anything that is due
        issue(codes, f"other-{i}")
    backend.reclaim()
    assert len(backend) == 101
    code = issue(codes, ACCOUNT)
    assert codes.verify_code(ACCOUNT, wrong(code)) == Refused(
        Reason.ACCOUNT_LOCKED, retry_after=LOCKOUT
    )


def test_failure_count_is_forgotten_after_lockout(clock: FakeClock) -> None:
    backend, codes = store(clock)
    for _ in range(3):
        guess = wrong(issue(codes, ACCOUNT))
        for _ in range(3):
            codes.verify_code(ACCOUNT, guess)
    clock.advance(LOCKOUT)
    issue(codes, "probe")
    backend.reclaim()
    assert len(backend) == 1
    code = issue(codes, ACCOUNT)
    assert codes.verify_code(ACCOUNT, wrong(code)) == Refused(Reason.WRONG_CODE, attempts_left=2)


def test_trusted_device_is_not_reclaimed_before_device_trust_ttl(clock: FakeClock) -> None:
    backend, codes = store(clock)
    code = issue(codes, ACCOUNT)
    verified = codes.verify_code(ACCOUNT, code, remember_device=True, fingerprint=FP)
    assert isinstance(verified, Verified)
    token = verified.device_token
    clock.advance(TRUST - MS)
    issue(codes, "probe-1")
    backend.reclaim()
    assert len(backend) == 2
    assert codes.is_trusted_device(ACCOUNT, token, FP) is True
    clock.advance(MS)
    assert codes.is_trusted_device(ACCOUNT, token, FP) is False
    issue(codes, "probe-2")
    backend.reclaim()
    assert len(backend) == 2  # the probes


# -- max_records ----------------------------------------------------------------------------------
def test_full_store_refuses_new_accounts_and_serves_existing_ones(clock: FakeClock) -> None:
    backend, codes = store(clock, max_records=10)
    sent = {nir(i): issue(codes, nir(i)) for i in range(10)}
    with pytest.raises(StoreFullError) as raised:
        codes.request_code("newcomer")
    assert isinstance(raised.value, BackendError)
    assert len(backend) == 10
    # a limiter key is a record too
    limiter = SlidingWindowLimiter(backend, limit=1, window=WINDOW, clock=clock)
    with pytest.raises(StoreFullError):
        limiter.hit("ip:192.0.2.1")
    assert len(backend) == 10
    # reading an unknown account creates nothing and raises nothing
    assert codes.verify_code("newcomer", "123456") == Refused(Reason.NO_CODE)
    assert codes.is_trusted_device("newcomer", "garbage", FP) is False
    # existing accounts work as before
    assert codes.verify_code(nir(0), wrong(sent[nir(0)])) == Refused(
        Reason.WRONG_CODE, attempts_left=2
    )
    assert codes.verify_code(nir(0), sent[nir(0)]) == Verified()
    again = codes.request_code(nir(1))
    assert isinstance(again, Issued)
    assert again.remaining == POLICY.max_unused_codes - 2
    assert codes.verify_code(nir(1), again.code) == Verified()
    assert len(backend) == 10
    # once the records expire, new accounts are accepted again
    clock.advance(WINDOW)
    issue(codes, "newcomer")
    assert limiter.hit("ip:192.0.2.1").allowed
    assert len(backend) <= 10
    for i in range(7):  # nir(0) is kept for lockout after its wrong guess: 3 + 7 records
        issue(codes, f"late-{i}")
    assert len(backend) == 10
    with pytest.raises(StoreFullError):
        codes.request_code("one-too-many")


def test_full_store_loses_nothing_granted(clock: FakeClock) -> None:
    """A lock and a trusted device outlive the window, and a full store keeps them."""
    policy = Policy(max_failed_attempts=1)
    backend, codes = store(clock, policy, max_records=3)
    locked = "locked-account"
    assert codes.verify_code(locked, wrong(issue(codes, locked))).reason is Reason.ACCOUNT_LOCKED
    trusted = "trusted-account"
    verified = codes.verify_code(
        trusted, issue(codes, trusted), remember_device=True, fingerprint=FP
    )
    assert isinstance(verified, Verified)
    token = verified.device_token
    issue(codes, "plain-account")
    with pytest.raises(StoreFullError):
        codes.request_code("newcomer")
    assert codes.request_code(locked) == Refused(Reason.ACCOUNT_LOCKED, retry_after=LOCKOUT)
    # after the window only the plain account's record may go
    clock.advance(WINDOW)
    issue(codes, "newcomer")
    with pytest.raises(StoreFullError):
        codes.request_code("second-newcomer")
    assert codes.request_code(locked) == Refused(
        Reason.ACCOUNT_LOCKED, retry_after=LOCKOUT - WINDOW
    )
    assert codes.is_trusted_device(trusted, token, FP) is True
    assert len(backend) == 3


def test_max_records_is_validated() -> None:
    with pytest.raises(ValueError, match="max_records"):
        MemoryBackend(max_records=0)
    with pytest.raises(TypeError, match="max_records"):
        MemoryBackend(max_records=True)
