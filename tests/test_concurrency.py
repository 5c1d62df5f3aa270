"""RULES.md R6.1: each public operation is atomic, under 32 threads hammering one account.

Every scenario runs on every sync store kind of the harness (the async kinds are
covered by the async tests), with a ``threading.Barrier`` so that the 32 calls
start together, and is repeated for ``ROUNDS`` rounds on fresh accounts to give
races a chance. The clocks are fake: nothing waits on the wall clock, and the
counts asserted are exact.
"""

from __future__ import annotations

import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any, TypeVar

import pytest

from ameli_otp import Issued, Policy, Reason, Refused, SecurityCodes, Verified
from ameli_otp.testing import FakeClock
from tests.harness import KINDS, Harness, make_harness

SYNC_KINDS = [k for k in KINDS if not k.endswith("-async")]

T = TypeVar("T")

THREADS = 32
ROUNDS = 20
MS = timedelta(milliseconds=1)
FP = "fp-firefox-128-linux-1920x1080"


@pytest.fixture(params=SYNC_KINDS)
def sync_harness(request: pytest.FixtureRequest, clock: FakeClock) -> Iterator[Harness]:
    """One sync store kind (threads need a sync face; asyncio is tests/test_async.py)."""
    with make_harness(request.param, clock, request) as h:
        yield h


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    """32 workers; the interpreter switches threads as often as it can meanwhile, so that
    threads interleave inside the store calls too (the GIL's default 5 ms would run most
    calls whole and hide a missing lock)."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        with ThreadPoolExecutor(max_workers=THREADS) as executor:
            yield executor
    finally:
        sys.setswitchinterval(interval)


def race(pool: ThreadPoolExecutor, call: Callable[[int], T], n: int = THREADS) -> list[T]:
    """``call(i)`` for i in range(n), all released at once by a barrier; the results."""
    barrier = threading.Barrier(n)

    def run(i: int) -> T:
        barrier.wait(timeout=120)  # a guard against a deadlock, not a timing assertion
        return call(i)

    futures = [pool.submit(run, i) for i in range(n)]
    return [f.result() for f in futures]


def account(test: str, n: int) -> str:
    """A fresh account id per test and round."""
    return f"{test}-{n:04d}"


def issue(codes: Any, acct: str) -> str:
    result = codes.request_code(acct)
    assert isinstance(result, Issued), result
    return result.code


def wrong(code: str, i: int) -> str:
    """The ``i``-th of many well-formed codes that are not ``code``."""
    n = len(code)
    return f"{(int(code) + 1 + i) % 10**n:0{n}d}"


# -- R1.3: never more than max_unused_codes codes per window ------------------------------------
@pytest.mark.parametrize("max_unused", [1, 5])
def test_r6_1_concurrent_requests_issue_exactly_max_unused_codes(
    sync_harness: Harness, pool: ThreadPoolExecutor, max_unused: int
) -> None:
    """R6.1 'N concurrent request_code calls for one account never issue more than
    max_unused_codes codes per window' (and, atomic, each sees the count before it)."""
    policy = Policy(max_unused_codes=max_unused)
    codes = sync_harness.codes(policy=policy)
    for r in range(ROUNDS):
        acct = account("requests", r)
        results = race(pool, lambda _, acct=acct: codes.request_code(acct))
        issued = [x for x in results if isinstance(x, Issued)]
        refused = [x for x in results if not isinstance(x, Issued)]
        assert len(issued) == max_unused
        assert sorted(x.remaining for x in issued) == list(range(max_unused))
        # the clock does not move: the oldest entry is one window away
        assert refused == [Refused(Reason.TOO_MANY_CODES, retry_after=policy.code_window)] * (
            THREADS - max_unused
        )
        assert codes.request_code(acct) == refused[0]


# -- R2.5: one success for M concurrent verifications of the right code ------------------------
@pytest.mark.parametrize("remember", [False, True])
def test_r6_1_concurrent_right_code_verifies_exactly_once(
    sync_harness: Harness, pool: ThreadPoolExecutor, remember: bool
) -> None:
    """R6.1 'M concurrent verifications of the right code give exactly one success'."""
    codes = sync_harness.codes()
    fingerprint = FP if remember else None
    for r in range(ROUNDS):
        acct = account("right", r)
        code = issue(codes, acct)
        results = race(
            pool,
            lambda _, acct=acct, code=code: codes.verify_code(
                acct, code, remember_device=remember, fingerprint=fingerprint
            ),
        )
        verified = [x for x in results if isinstance(x, Verified)]
        assert len(verified) == 1
        assert Counter(results)[Refused(Reason.NO_CODE)] == THREADS - 1
        token = verified[0].device_token
        if remember:
            assert isinstance(token, str)
            assert codes.is_trusted_device(acct, token, FP) is True
        else:
            assert token is None
        # the used code stopped counting (R1.4): a full window is still available
        assert codes.request_code(acct).remaining == codes.policy.max_unused_codes - 1


# -- R2.6: wrong guesses on one code never count more than were made ---------------------------
def test_r6_1_concurrent_wrong_guesses_burn_one_code_exactly(
    sync_harness: Harness, pool: ThreadPoolExecutor
) -> None:
    """R6.1 'concurrent wrong guesses never count more failures than were made, and never
    get past a limit': exactly max_attempts_per_code guesses are counted, then NO_CODE."""
    codes = sync_harness.codes()  # 3 attempts per code, 10 failures before a lock
    per_code = codes.policy.max_attempts_per_code
    for r in range(ROUNDS):
        acct = account("wrong", r)
        code = issue(codes, acct)
        results = race(
            pool, lambda i, acct=acct, code=code: codes.verify_code(acct, wrong(code, i))
        )
        expected = Counter(
            [Refused(Reason.WRONG_CODE, attempts_left=k) for k in range(1, per_code)]
            + [Refused(Reason.TOO_MANY_ATTEMPTS)]
            + [Refused(Reason.NO_CODE)] * (THREADS - per_code)
        )
        assert Counter(results) == expected
        # exactly per_code failures were counted on the account: 10 - 3 more lock it
        lock = Refused(Reason.ACCOUNT_LOCKED, retry_after=codes.policy.lockout)
        left = codes.policy.max_failed_attempts - per_code
        guess = ""
        for n in range(left):
            if n % per_code == 0:
                guess = wrong(issue(codes, acct), 0)
            assert (codes.verify_code(acct, guess) == lock) is (n == left - 1), n


@pytest.mark.parametrize(
    ("per_code", "max_failed"),
    [(3, 4), (3, 5), (10, 4), (3, 10)],
    ids=["3-per-code-4-to-lock", "3-per-code-5-to-lock", "10-per-code-4-to-lock", "default"],
)
def test_r6_1_concurrent_wrong_guesses_lock_exactly_once(
    sync_harness: Harness, pool: ThreadPoolExecutor, per_code: int, max_failed: int
) -> None:
    """R2.6 under R6.1: over code after code guessed wrong by 32 threads, the account's
    failures never go past max_failed_attempts, and exactly one guess locks it.

    Each thread has a clock of its own, 1 ms apart, so that the guess that locked the
    account is the only one whose ``retry_after`` is exactly ``lockout`` (any other
    thread sees the lock with its own clock: ``lockout`` plus or minus a few ms).
    """
    policy = Policy(max_attempts_per_code=per_code, max_failed_attempts=max_failed)
    lockout = policy.lockout
    base = FakeClock()
    clocks = [FakeClock() for _ in range(THREADS)]
    main = sync_harness.codes(policy=policy, clock=base)
    faces = [sync_harness.codes(policy=policy, clock=c) for c in clocks]
    for r in range(ROUNDS):
        acct = account(f"lock-{per_code}-{max_failed}", r)
        counted = 0  # failures the account has, by the results
        for k in range(max_failed + 1):
            base.advance(seconds=1)
            for i, c in enumerate(clocks):
                c.set(base() + (i + 1) / 1000)
            code = issue(main, acct)
            results = race(
                pool, lambda i, acct=acct, code=code: faces[i].verify_code(acct, wrong(code, i))
            )
            tally = Counter(x.reason for x in results)
            locked_now = [x for x in results if x.retry_after == lockout]
            assert all(x.reason is Reason.ACCOUNT_LOCKED for x in locked_now)
            this_code = min(per_code, max_failed - counted)
            if counted + per_code < max_failed:  # the code is burned, no lock
                assert sorted(x.attempts_left for x in results if x.attempts_left) == list(
                    range(1, per_code)
                )
                assert tally == Counter(
                    {
                        Reason.WRONG_CODE: per_code - 1,
                        Reason.TOO_MANY_ATTEMPTS: 1,
                        Reason.NO_CODE: THREADS - per_code,
                    }
                )
                assert locked_now == []
                counted += per_code
                continue
            # this code's guesses reach max_failed: this_code - 1 wrong, one lock, then locked
            assert tally == Counter(
                {
                    Reason.WRONG_CODE: this_code - 1,
                    Reason.ACCOUNT_LOCKED: THREADS - this_code + 1,
                }
            ), (k, counted, tally)
            assert len(locked_now) == 1
            assert sorted(x.attempts_left for x in results if x.attempts_left) == list(
                range(per_code - this_code + 1, per_code)
            )
            assert main.request_code(acct).reason is Reason.ACCOUNT_LOCKED
            break
        else:
            pytest.fail(f"never locked after {max_failed + 1} codes")


# -- the limiter --------------------------------------------------------------------------------
@pytest.mark.parametrize("limit", [1, 5, 31])
def test_r6_1_concurrent_limiter_hits_allow_exactly_limit(
    sync_harness: Harness, pool: ThreadPoolExecutor, limit: int
) -> None:
    """R6.1 for the limiter: 32 concurrent hits on one key, exactly ``limit`` allowed."""
    limiter = sync_harness.limiter(limit=limit)
    for r in range(ROUNDS):
        key = account("limiter", r)
        decisions = race(pool, lambda _, key=key: limiter.hit(key))
        allowed = [d for d in decisions if d.allowed]
        assert len(allowed) == limit
        assert sorted(d.remaining for d in allowed) == list(range(limit))
        assert len({d.entry for d in allowed}) == limit
        assert all(d.entry is None and d.remaining == 0 for d in decisions if not d.allowed)
        # concurrent releases of every entry: the window is empty again
        race(
            pool,
            lambda i, key=key, allowed=allowed: limiter.release(key, allowed[i].entry),
            n=limit,
        )
        assert limiter.peek(key).remaining == limit


def test_r6_1_concurrent_requests_and_verifications_stay_consistent(
    sync_harness: Harness, pool: ThreadPoolExecutor
) -> None:
    """R6.1 with mixed calls: half the threads ask for codes, half type the first code.

    Whatever the order, at most one verification succeeds, and the window holds exactly
    the codes issued minus the one used (R1.4): the next request sees that count.
    """
    policy = Policy(max_failed_attempts=100)  # no lock in the way
    codes = sync_harness.codes(policy=policy)
    limit = policy.max_unused_codes
    for r in range(ROUNDS):
        acct = account("mixed", r)
        first = issue(codes, acct)

        def call(i: int, acct: str = acct, first: str = first) -> Any:
            if i % 2:
                return codes.request_code(acct)
            return codes.verify_code(acct, first)

        results = race(pool, call)
        issued = sum(isinstance(x, Issued) for x in results)
        verified = sum(isinstance(x, Verified) for x in results)
        assert verified <= 1
        counting = 1 + issued - verified
        assert counting <= limit
        reasons = {x.reason for x in results if isinstance(x, Refused)}
        # a verification loses to a newer code (WRONG_CODE...) or to the success (NO_CODE)
        assert reasons <= {
            Reason.TOO_MANY_CODES,
            Reason.NO_CODE,
            Reason.WRONG_CODE,
            Reason.TOO_MANY_ATTEMPTS,
        }
        after = codes.request_code(acct)
        if counting < limit:
            assert isinstance(after, Issued)
            assert after.remaining == limit - counting - 1
        else:
            assert after == Refused(Reason.TOO_MANY_CODES, retry_after=policy.code_window)


def test_r6_1_concurrent_calls_on_many_accounts_are_independent(
    sync_harness: Harness, pool: ThreadPoolExecutor
) -> None:
    """One account's traffic does not leak into another's: 32 threads, 32 accounts."""
    codes: SecurityCodes = sync_harness.codes()
    for r in range(ROUNDS // 4):

        def flow(i: int, r: int = r) -> tuple[Any, Any, Any]:
            acct = account(f"many-{i}", r)
            code = issue(codes, acct)
            return (
                codes.verify_code(acct, wrong(code, 0)),
                codes.verify_code(acct, code),
                codes.request_code(acct),
            )

        for bad, good, again in race(pool, flow):
            assert bad == Refused(Reason.WRONG_CODE, attempts_left=2)
            assert good == Verified()
            assert isinstance(again, Issued)
            assert again.remaining == codes.policy.max_unused_codes - 1
