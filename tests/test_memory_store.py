"""MemoryBackend specifics: memory follows the live records, a bound loses nothing,
and the store is one process.

RULES.md R5.2: the store's own expiry only reclaims memory and never forgets a
record while a rule could still need it. API.md: ``MemoryBackend()`` is "memory
bounded by the live records (expired ones are reclaimed)"; ``max_records`` refuses
new records (``StoreFullError``, a ``BackendError``) rather than evict a live one.
R8.4: used in a child process after ``fork`` it raises ``ConfigurationError``;
reclaiming never holds the lock for long, and never forgets a record that a rule
could still need, even with the clock moved back.

The store has no clock of its own: it learns the time from the calls it serves
(``reclaim()`` reclaims what has expired as of the latest write). So after moving
the clock, each test makes one call (a "probe" on a new account) before
``reclaim()``. Like the Redis store, it keeps each record ``SLACK_MS`` past the last
moment a rule could need it, so a record goes at ``until + SLACK``, not at ``until``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import traceback
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest

from ameli_otp import (
    AsyncMemoryBackend,
    AsyncSecurityCodes,
    BackendError,
    ConfigurationError,
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
from ameli_otp._memory import _RECLAIM_PER_SLICE, _RECLAIM_PER_WRITE
from ameli_otp._policy import SLACK_MS
from ameli_otp.testing import FakeClock
from tests.harness import SECRET

MS = timedelta(milliseconds=1)
SLACK = timedelta(milliseconds=SLACK_MS)
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
    # the window has ended, but the store keeps its records SLACK_MS more (R8.4)
    clock.advance(SLACK)
    issue(codes, "probe-2")
    assert backend.reclaim() == 0
    assert len(backend) == MANY + 2
    # at the end of the window and its slack no rule needs the 100,000 records any more
    clock.advance(MS)
    issue(codes, "probe-3")
    assert backend.reclaim() >= MANY - _RECLAIM_PER_WRITE
    assert len(backend) == 3  # the probes, whose windows are still open
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
    clock.advance(WINDOW + SLACK)
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
    """Hour after hour of new accounts: the store holds about one window (and its slack)
    of them."""
    backend, codes = store(clock)
    per_hour = 2_000
    for hour in range(12):
        for i in range(per_hour):
            issue(codes, f"h{hour}-{i}")
        assert len(backend) <= 2 * per_hour
        clock.advance(WINDOW + SLACK)
    issue(codes, "probe")
    backend.reclaim()
    assert len(backend) == 1


def test_reset_churn_keeps_the_bookkeeping_bounded(clock: FakeClock) -> None:
    """API.md 'memory bounded by the live records': a key hit then reset, over and over
    within one window, must not leave a record behind per reset until the window ends
    (each hit schedules its record for reclaim; reset empties the record, which keeps
    that one schedule entry, instead of dropping it and leaving a stale entry behind)."""
    import tracemalloc

    backend = MemoryBackend()
    limiter = SlidingWindowLimiter(backend, limit=5, window=timedelta(hours=1), clock=clock)

    def churn(n: int) -> None:
        for i in range(n):
            limiter.hit(f"k{i % 100}")
            limiter.reset(f"k{i % 100}")

    churn(20_000)  # warm up: the allocator's own pools
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        churn(100_000)  # still within the first minute of the window
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(backend) == 100  # the 100 emptied records, reclaimed when their time comes
    assert grown < 1_000_000, f"{grown} bytes kept for 100,000 resets of 100 keys"
    assert limiter.hit("k1").remaining == 4


def test_limiter_keys_are_reclaimed_too(clock: FakeClock) -> None:
    backend = MemoryBackend()
    window = timedelta(minutes=1)
    limiter = SlidingWindowLimiter(backend, limit=3, window=window, clock=clock)
    for i in range(1_000):
        assert limiter.hit(f"ip:{i}").allowed
    assert len(backend) == 1_000
    clock.advance(window + SLACK - MS)  # the window has ended, its slack has not
    limiter.hit("probe-1")
    assert backend.reclaim() == 0
    clock.advance(MS)
    limiter.hit("probe-2")
    backend.reclaim()
    assert len(backend) == 2
    assert limiter.peek("ip:0").remaining == 3
    limiter.reset("probe-1")  # emptied now, reclaimed when its time comes
    assert limiter.peek("probe-1").remaining == 3
    clock.advance(window + SLACK)
    limiter.hit("probe-3")
    backend.reclaim()
    assert len(backend) == 1  # probe-3


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
    # the lock has ended, but the record is kept for SLACK_MS more (R8.4)
    clock.advance(SLACK)
    issue(codes, "probe-2")
    backend.reclaim()
    assert len(backend) == 3
    # then the record may go, and the account starts afresh
    clock.advance(MS)
    issue(codes, "probe-3")
    backend.reclaim()
    assert len(backend) == 3  # the probes
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
    clock.advance(LOCKOUT + SLACK)
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
    assert len(backend) == 3  # kept for SLACK_MS past the trust's end (R8.4)
    clock.advance(SLACK)
    issue(codes, "probe-3")
    backend.reclaim()
    assert len(backend) == 3  # the probes


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
    # once the records expire (and their slack has passed), new accounts are accepted again
    clock.advance(WINDOW + SLACK)
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
    # after the window (and its slack) only the plain account's record may go
    clock.advance(WINDOW + SLACK)
    issue(codes, "newcomer")
    with pytest.raises(StoreFullError):
        codes.request_code("second-newcomer")
    assert codes.request_code(locked) == Refused(
        Reason.ACCOUNT_LOCKED, retry_after=LOCKOUT - WINDOW - SLACK
    )
    assert codes.is_trusted_device(trusted, token, FP) is True
    assert len(backend) == 3


def test_max_records_is_validated() -> None:
    with pytest.raises(ValueError, match="max_records"):
        MemoryBackend(max_records=0)
    with pytest.raises(TypeError, match="max_records"):
        MemoryBackend(max_records=True)


def test_r8_4_a_full_store_reclaims_one_slice_per_write(clock: FakeClock) -> None:
    """R8.4 'never holds the store lock for more than a few milliseconds': a write on a full
    store of expired records reclaims one bounded slice, not every expired record at once."""
    size = 3 * _RECLAIM_PER_SLICE
    backend, codes = store(clock, max_records=size)
    populate(codes, size)
    clock.advance(WINDOW + SLACK)
    issue(codes, "newcomer")  # one slice to make room, then the few of every write
    assert len(backend) == size - _RECLAIM_PER_SLICE + 1 - _RECLAIM_PER_WRITE
    assert backend.reclaim() == size - _RECLAIM_PER_SLICE - _RECLAIM_PER_WRITE
    assert len(backend) == 1


# -- R8.4: reclaiming in slices -------------------------------------------------------------------
class WatchedLock:
    """The store's lock, watched: what each hold by the reclaiming thread dropped.

    The first time that thread lets the lock go with records still to reclaim, it runs
    ``between`` on another thread and waits for it: that operation can only go through
    if the lock really was released between two slices.
    """

    def __init__(self, backend: MemoryBackend, between: Callable[[], None]) -> None:
        self.lock = threading.Lock()
        self.backend = backend
        self.between: Callable[[], None] | None = between
        self.reclaimer = threading.get_ident()
        self.dropped: list[int] = []  # records dropped under each hold of the reclaimer
        self._size = 0

    def __enter__(self) -> None:
        self.lock.acquire()
        self._size = len(self.backend)

    def __exit__(self, *exc_info: object) -> None:
        mine = threading.get_ident() == self.reclaimer
        if mine:
            self.dropped.append(self._size - len(self.backend))
        self.lock.release()
        if mine and self.between is not None and len(self.backend) > 0:
            other = threading.Thread(target=self.between)
            self.between = None
            other.start()
            other.join()


def test_r8_4_reclaim_works_in_slices_and_lets_other_threads_in(clock: FakeClock) -> None:
    """R8.4 'Reclaiming expired records never holds the store lock for more than a few
    milliseconds at a time': reclaim() drops at most _RECLAIM_PER_SLICE records per hold
    of the lock, and another thread's operation goes through in the middle of it."""
    backend, codes = store(clock)
    n = 20 * _RECLAIM_PER_SLICE
    populate(codes, n)
    clock.advance(WINDOW + SLACK)
    seen: dict[str, Any] = {}

    def other_thread() -> None:  # runs while the reclaim is under way
        seen["left"] = len(backend)
        seen["result"] = codes.request_code(ACCOUNT)

    watched = WatchedLock(backend, other_thread)
    backend._lock = watched  # type: ignore[assignment]  # watch the real store's lock
    dropped = backend.reclaim(clock())
    # the other thread's request was served between two slices: some records were gone
    # already, others not yet
    assert isinstance(seen["result"], Issued)
    assert 0 < seen["left"] < n
    # bounded slices, as many as it takes
    assert max(watched.dropped) == _RECLAIM_PER_SLICE
    assert len(watched.dropped) >= n // _RECLAIM_PER_SLICE
    assert sum(watched.dropped) == dropped == n - _RECLAIM_PER_WRITE  # the request took 8
    assert len(backend) == 1
    assert codes.verify_code(ACCOUNT, seen["result"].code) == Verified()


def test_r8_4_reclaim_of_nothing_due_takes_the_lock_once(clock: FakeClock) -> None:
    backend, codes = store(clock)
    populate(codes, 10)
    watched = WatchedLock(backend, lambda: None)
    backend._lock = watched  # type: ignore[assignment]
    assert backend.reclaim() == 0
    assert watched.dropped == [0]


# -- R8.4 and R5.2: a clock that went ahead and came back ---------------------------------------
def locked_store(clock: FakeClock) -> tuple[MemoryBackend, SecurityCodes]:
    """A store where ACCOUNT was locked (for LOCKOUT) at the clock's current time."""
    backend, codes = store(clock, Policy(max_failed_attempts=1))
    code = issue(codes, ACCOUNT)
    locked = Refused(Reason.ACCOUNT_LOCKED, retry_after=LOCKOUT)
    assert codes.verify_code(ACCOUNT, wrong(code)) == locked
    return backend, codes


def test_r5_2_lock_holds_after_a_write_from_a_clock_ahead(clock: FakeClock) -> None:
    """R5.2 'never forgets a record while a rule could still need it', with the clock moved
    back: one write comes from a clock ahead (past the lock's end, within SLACK_MS), the
    store reclaims as of that time; when the clock is back, the lock still holds."""
    start = clock.now()
    backend, codes = locked_store(clock)
    clock.set(start + LOCKOUT + SLACK - MS)  # a server whose clock is ahead
    for i in range(10):  # its writes reclaim what is due as of its time
        issue(codes, f"ahead-{i}")
    assert backend.reclaim() == 0  # and so does reclaim(), as of the latest time seen
    assert len(backend) == 11
    clock.set(start + LOCKOUT - timedelta(minutes=1))  # the clock is back
    minute = Refused(Reason.ACCOUNT_LOCKED, retry_after=timedelta(minutes=1))
    assert codes.request_code(ACCOUNT) == minute
    assert codes.verify_code(ACCOUNT, "123456") == minute


def test_r8_4_lock_holds_after_a_reclaim_ahead_of_the_clock(clock: FakeClock) -> None:
    """R8.4 'never forgets a record that a rule could still need (R5.2 holds with the clock
    moved back)': reclaim(now) given a time past the lock's end, within SLACK_MS."""
    start = clock.now()
    backend, codes = locked_store(clock)
    assert backend.reclaim((start + LOCKOUT + SLACK - MS).timestamp()) == 0
    assert backend.reclaim() == 0  # as of the latest time seen: the one ahead
    assert len(backend) == 1
    clock.set(start + LOCKOUT - MS)
    assert codes.request_code(ACCOUNT) == Refused(Reason.ACCOUNT_LOCKED, retry_after=MS)


def test_r8_4_record_is_reclaimed_once_the_slack_has_passed(clock: FakeClock) -> None:
    """The slack is SLACK_MS, shared with the Redis store: a record goes at until + SLACK.
    A clock that comes back from further ahead than that finds the lock forgotten (the
    store's memory is bounded: this is the skew the slack covers, and no more)."""
    start = clock.now()
    backend, codes = locked_store(clock)
    clock.set(start + LOCKOUT + SLACK - MS)
    issue(codes, "probe-1")
    assert len(backend) == 2
    clock.advance(MS)  # until + SLACK: no rule needs the locked account's record any more
    issue(codes, "probe-2")
    assert len(backend) == 2  # the probes
    clock.set(start + LOCKOUT - timedelta(minutes=1))
    result = codes.request_code(ACCOUNT)
    assert isinstance(result, Issued)  # forgotten: a clock moved back by more than the slack
    assert result.remaining == 4


def test_r8_4_memory_store_slack_is_the_redis_slack() -> None:
    """One constant for both stores (no redis import needed to read it)."""
    redis_common = pytest.importorskip("ameli_otp._redis_common")
    assert redis_common.SLACK_MS is SLACK_MS
    assert SLACK_MS == 60_000


# -- R8.4: one process -------------------------------------------------------------------------
def in_child(body: Callable[[], object]) -> Any:
    """Run ``body`` in a child made by a real ``os.fork()``; return what it returned.

    The child reports through a pipe (as JSON) and leaves with ``os._exit``, never
    returning into pytest. An alarm kills a child that hangs (a lock copied while held
    would hang it): the test then fails on the child's status instead of hanging.
    """
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        status = 1
        try:
            os.close(read)
            signal.alarm(60)
            try:
                report = json.dumps({"ok": body()})
                status = 0
            except BaseException:  # a report for the parent, whatever went wrong
                report = json.dumps({"error": traceback.format_exc()})
            with os.fdopen(write, "w") as pipe:
                pipe.write(report)
        finally:
            os._exit(status)
    os.close(write)
    with os.fdopen(read) as pipe:
        text = pipe.read()
    _, status = os.waitpid(pid, 0)
    got = json.loads(text) if text else {"error": f"no report, wait status {status}"}
    assert "error" not in got, got["error"]
    assert os.waitstatus_to_exitcode(status) == 0
    return got["ok"]


def outcome(call: Callable[[], object]) -> str:
    """What ``call`` did, as text: ``ok`` or the exception it raised."""
    try:
        call()
    except Exception as exc:  # what a forked store raises is the point of the test
        return f"{type(exc).__name__}: {exc}"
    return "ok"


async def async_outcome(call: Callable[[], Awaitable[object]]) -> str:
    try:
        await call()
    except Exception as exc:  # as in outcome()
        return f"{type(exc).__name__}: {exc}"
    return "ok"


def used_store(clock: FakeClock) -> tuple[MemoryBackend, SecurityCodes, str]:
    """A store with an account and a limiter key, as a preloading master might hold."""
    backend, codes = store(clock)
    issue(codes, ACCOUNT)
    entry = backend.window_hit("ip:192.0.2.1", clock.ms, 60_000, 5)[2]
    assert entry is not None
    return backend, codes, entry


def primitives(store: Any, now: int, entry: str) -> dict[str, Callable[[], Any]]:
    """Every operation of a store (sync or async face), by name."""
    limits = POLICY.limits
    return {
        "window_hit": lambda: store.window_hit("ip:192.0.2.1", now, 60_000, 5),
        "window_peek": lambda: store.window_peek("ip:192.0.2.1", now, 60_000),
        "window_release": lambda: store.window_release("ip:192.0.2.1", entry),
        "window_release (not an entry)": lambda: store.window_release("ip:192.0.2.1", "junk"),
        "window_reset": lambda: store.window_reset("ip:192.0.2.1"),
        "issue_code": lambda: store.issue_code("acct", now, limits, b"h" * 32),
        "verify_code": lambda: store.verify_code("acct", now, limits, (b"h" * 32,), None),
        "device_trusted": lambda: store.device_trusted("acct", now, 1000, "dev"),
        "forget_device": lambda: store.forget_device("acct", now, 1000, "dev"),
        "forget_all_devices": lambda: store.forget_all_devices("acct", now, 1000),
        "unlock": lambda: store.unlock("acct", now, 1000),
        "inspect": lambda: store.inspect("acct"),
    }


REFUSED = f"{ConfigurationError.__name__}: "  # how outcome() reports the refusal


def assert_refused_after_fork(report: dict[str, str]) -> None:
    for name, got in report.items():
        assert got.startswith(REFUSED), (name, got)
        # it says what happened and what to do
        assert "fork" in got, (name, got)
        assert "after the fork" in got, (name, got)
        assert "RedisBackend" in got, (name, got)


def test_r8_4_inherited_store_raises_in_a_forked_child(clock: FakeClock) -> None:
    """R8.4 'Used in a child process after a fork (a preloading server), it raises
    ConfigurationError instead of silently splitting the limits per process.'"""
    backend, codes, entry = used_store(clock)
    limiter = SlidingWindowLimiter(backend, limit=5, window=WINDOW, clock=clock)

    def child() -> dict[str, Any]:
        report = {name: outcome(op) for name, op in primitives(backend, clock.ms, entry).items()}
        report["request_code"] = outcome(lambda: codes.request_code(ACCOUNT))
        report["verify_code (facade)"] = outcome(lambda: codes.verify_code(ACCOUNT, "123456"))
        report["limiter.hit"] = outcome(lambda: limiter.hit("k"))
        report["reclaim"] = outcome(backend.reclaim)
        report["dump"] = outcome(backend.dump)
        return {"report": report, "len": len(backend), "pid": os.getpid()}

    got = in_child(child)
    assert_refused_after_fork(got["report"])
    assert str(got["pid"]) in got["report"]["request_code"]  # names the child process
    assert str(os.getpid()) in got["report"]["request_code"]  # and where the store was built
    assert got["len"] == 2  # len() still answers: the records the child inherited
    # the parent's store is untouched by the fork
    again = codes.request_code(ACCOUNT)
    assert isinstance(again, Issued)
    assert again.remaining == POLICY.max_unused_codes - 2
    assert limiter.hit("k").allowed
    assert backend.reclaim() == 0
    assert ACCOUNT not in backend.dump()


def test_r8_4_inherited_async_store_raises_in_a_forked_child(clock: FakeClock) -> None:
    """The same for AsyncMemoryBackend, through its coroutines and AsyncSecurityCodes."""
    backend = AsyncMemoryBackend()
    codes = AsyncSecurityCodes(backend, secret=SECRET, clock=clock)
    assert isinstance(asyncio.run(codes.request_code(ACCOUNT)), Issued)
    entry = backend.sync.window_hit("ip:192.0.2.1", clock.ms, 60_000, 5)[2]
    assert entry is not None

    def child() -> dict[str, str]:
        async def run() -> dict[str, str]:
            ops = primitives(backend, clock.ms, entry)
            report = {name: await async_outcome(op) for name, op in ops.items()}
            report["request_code"] = await async_outcome(lambda: codes.request_code(ACCOUNT))
            report["verify_code (facade)"] = await async_outcome(
                lambda: codes.verify_code(ACCOUNT, "123456")
            )
            return report

        return asyncio.run(run())

    assert_refused_after_fork(in_child(child))
    assert len(backend) == 2
    result = asyncio.run(codes.request_code(ACCOUNT))
    assert isinstance(result, Issued)
    assert result.remaining == POLICY.max_unused_codes - 2


def test_r8_4_fork_while_the_lock_is_held_raises_instead_of_hanging(clock: FakeClock) -> None:
    """A fork while another thread is inside an operation copies the lock held: a copy
    that used it would wait forever (and its records may be half-changed). It raises."""
    backend, codes, _ = used_store(clock)
    with backend._lock:  # as a thread of the parent inside an operation at the fork
        got = in_child(lambda: outcome(lambda: codes.request_code(ACCOUNT)))
    assert got.startswith(REFUSED), got
    assert isinstance(codes.request_code(ACCOUNT), Issued)


def test_r8_4_store_built_in_the_child_after_the_fork_works(clock: FakeClock) -> None:
    """The fix the message gives: build the store in the worker, after the fork."""
    used_store(clock)  # a store of the parent's, refused in the child (see above)

    def child() -> dict[str, Any]:
        backend, codes = store(clock)
        issued = codes.request_code(ACCOUNT)
        assert isinstance(issued, Issued)
        sync = [
            issued.remaining,
            codes.verify_code(ACCOUNT, issued.code) == Verified(),
            len(backend),
            backend.reclaim(),
        ]

        async def run() -> list[Any]:
            acodes = AsyncSecurityCodes(AsyncMemoryBackend(), secret=SECRET, clock=clock)
            issued = await acodes.request_code(ACCOUNT)
            assert isinstance(issued, Issued)
            return [issued.remaining, await acodes.verify_code(ACCOUNT, issued.code) == Verified()]

        # and a store built in the child is refused in a grandchild in its turn
        grandchild = in_child(lambda: outcome(lambda: codes.request_code(ACCOUNT)))
        return {"sync": sync, "async": asyncio.run(run()), "grandchild": grandchild}

    got = in_child(child)
    assert got["sync"] == [POLICY.max_unused_codes - 1, True, 1, 0]
    assert got["async"] == [POLICY.max_unused_codes - 1, True]
    assert got["grandchild"].startswith(REFUSED)
