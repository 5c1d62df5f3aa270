"""RULES R10: sending budgets, one plain test per sentence, on every store kind.

R10.1 resend interval and R10.2 daily cap are the account's own rules (one round
trip, in ``issue_code``); R10.3 budgets are sliding windows on other keys, taken first
and given back when the request is refused; R10.4 a trusted device is not subject to
the code rules. The concurrency tests race 32 threads (sync kinds) and 1000 asyncio
tasks (async kinds) against one budget.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest

from ameli_otp import (
    AsyncMemoryBackend,
    AsyncRedisBackend,
    AsyncSecurityCodes,
    Budget,
    Issued,
    Policy,
    Reason,
    Refused,
    SecurityCodes,
)
from ameli_otp.messages import message
from ameli_otp.testing import FakeClock
from tests.harness import SECRET, Harness

MS = timedelta(milliseconds=1)
DAY = timedelta(days=1)
MINUTE = timedelta(minutes=1)
FP = "fp-firefox-128-linux-1920x1080"
IP = "203.0.113.7"


def nir(i: int) -> str:
    return f"1{i:012d}"


def issued(result: Any) -> Issued:
    assert isinstance(result, Issued), result
    return result


# -- R10.1 resend interval -----------------------------------------------------------------------


def test_r10_1_a_request_within_resend_interval_is_too_soon_and_creates_no_entry(
    harness: Harness, clock: FakeClock
) -> None:
    codes = harness.codes(policy=Policy(resend_interval=MINUTE))
    first = issued(codes.request_code(nir(1)))
    assert first.remaining == 4
    clock.advance(MINUTE - MS)
    assert codes.request_code(nir(1)) == Refused(Reason.TOO_SOON, retry_after=MS)
    assert codes.inspect(nir(1)).codes_counting == 1  # the refusal created no entry
    clock.advance(MS)
    assert issued(codes.request_code(nir(1))).remaining == 3  # exactly at the interval


def test_r10_1_off_by_default(harness: Harness) -> None:
    codes = harness.codes()
    assert [issued(codes.request_code(nir(1))).remaining for _ in range(5)] == [4, 3, 2, 1, 0]


def test_r10_1_the_interval_counts_from_the_last_code_even_when_used(
    harness: Harness, clock: FakeClock
) -> None:
    codes = harness.codes(policy=Policy(resend_interval=MINUTE))
    code = issued(codes.request_code(nir(1))).code
    assert codes.verify_code(nir(1), code).ok
    clock.advance(seconds=30)
    assert codes.request_code(nir(1)) == Refused(Reason.TOO_SOON, retry_after=MINUTE / 2)


# -- R10.2 daily cap -----------------------------------------------------------------------------


def test_r10_2_the_daily_cap_counts_codes_used_or_not_in_a_sliding_day(
    harness: Harness, clock: FakeClock
) -> None:
    codes = harness.codes(policy=Policy(max_codes_per_day=7))
    for i in range(7):  # used at once: the hour's window never fills (R1.4)
        code = issued(codes.request_code(nir(1))).code
        assert codes.verify_code(nir(1), code).ok
        if i == 0:
            clock.advance(hours=1)  # the first code of the day is an hour older
    assert codes.request_code(nir(1)) == Refused(
        Reason.DAILY_LIMIT, retry_after=DAY - timedelta(hours=1)
    )
    assert codes.inspect(nir(1)).codes_counting == 0  # the refusal created no entry
    clock.advance(DAY - timedelta(hours=1) - MS)
    assert codes.request_code(nir(1)).reason == Reason.DAILY_LIMIT
    clock.advance(MS)  # the first code has left the day
    assert isinstance(codes.request_code(nir(1)), Issued)
    assert codes.request_code(nir(1)) == Refused(
        Reason.DAILY_LIMIT, retry_after=timedelta(hours=1)
    )  # the six codes of the hour after still count


def test_r10_2_the_hour_is_checked_first(harness: Harness) -> None:
    codes = harness.codes(policy=Policy(max_codes_per_day=5, resend_interval=MS))
    for _ in range(5):
        issued(codes.request_code(nir(1)))
        harness.clock.advance(MS)
    assert codes.request_code(nir(1)).reason == Reason.TOO_MANY_CODES


# -- R10.3 budgets on other keys -----------------------------------------------------------------


def _ip_codes(harness: Harness, limit: int = 3, **policy: Any) -> SecurityCodes:
    budgets = [Budget("ip", limit=limit, window=timedelta(minutes=10))]
    return harness.codes(budgets=budgets, policy=Policy(**policy))


def test_r10_3_a_budget_refusal_names_the_budget_and_leaves_no_entry(
    harness: Harness, clock: FakeClock
) -> None:
    codes = _ip_codes(harness)
    for i in range(3):
        issued(codes.request_code(nir(i), budget_keys={"ip": IP}))
        clock.advance(minutes=1)
    refused = codes.request_code(nir(9), budget_keys={"ip": IP})
    assert refused == Refused(
        Reason.BUDGET_EXHAUSTED, retry_after=timedelta(minutes=7), budget="ip"
    )
    assert codes.inspect(nir(9)).codes_counting == 0  # nothing for the account either
    assert isinstance(codes.request_code(nir(9), budget_keys={"ip": "198.51.100.1"}), Issued)
    assert "trop de demandes" in message(refused)


def test_r10_3_a_request_the_account_refuses_gives_its_budget_entry_back(
    harness: Harness,
) -> None:
    codes = _ip_codes(harness, limit=6)
    for _ in range(5):
        issued(codes.request_code(nir(1), budget_keys={"ip": IP}))
    for _ in range(3):  # refused by the account: no budget entry kept
        assert codes.request_code(nir(1), budget_keys={"ip": IP}).reason == (Reason.TOO_MANY_CODES)
    assert issued(codes.request_code(nir(2), budget_keys={"ip": IP})).remaining == 4
    assert codes.request_code(nir(3), budget_keys={"ip": IP}).reason == Reason.BUDGET_EXHAUSTED


def test_r10_3_a_global_budget_counts_every_account(harness: Harness) -> None:
    sender = Budget("sender", limit=2, window=timedelta(hours=1), key="all")
    codes = harness.codes(budgets=[sender])
    issued(codes.request_code(nir(1)))
    issued(codes.request_code(nir(2)))
    refused = codes.request_code(nir(3))
    assert refused.reason == Reason.BUDGET_EXHAUSTED
    assert refused.budget == "sender"


def test_r10_3_budgets_are_taken_in_order_and_all_given_back(harness: Harness) -> None:
    budgets = [
        Budget("ip", limit=5, window=timedelta(minutes=10)),
        Budget("email", limit=1, window=timedelta(days=1)),
    ]
    codes = harness.codes(budgets=budgets)
    issued(codes.request_code(nir(1), budget_keys={"ip": IP, "email": "a@example.fr"}))
    for i in range(2, 6):  # the e-mail budget refuses: the ip entry taken first goes back
        refused = codes.request_code(nir(i), budget_keys={"ip": IP, "email": "a@example.fr"})
        assert refused.budget == "email"
    for i in range(6, 10):
        issued(codes.request_code(nir(i), budget_keys={"ip": IP, "email": f"{i}@example.fr"}))
    assert codes.request_code(nir(10), budget_keys={"ip": IP, "email": "z@x.fr"}).budget == "ip"


@pytest.mark.parametrize(
    ("keys", "error", "words"),
    [
        (None, ValueError, "needs its key"),
        ({}, ValueError, "needs its key"),
        ({"ip": IP, "typo": "x"}, ValueError, "typo"),
        ({"ip": ""}, ValueError, "budget_keys"),
        ({"ip": 7}, TypeError, "budget_keys"),
        ([("ip", IP)], TypeError, "budget_keys"),
    ],
)
def test_r10_3_bad_budget_keys_raise_before_anything_is_stored(
    harness: Harness, keys: Any, error: type[Exception], words: str
) -> None:
    codes = _ip_codes(harness)
    before = harness.dump()
    with pytest.raises(error, match=words):
        codes.request_code(nir(1), budget_keys=keys)
    assert harness.dump() == before


@pytest.mark.parametrize(
    ("budgets", "error"),
    [
        ("ip", TypeError),
        ([object()], TypeError),
        ([Budget("ip", limit=1, window=MINUTE), Budget("ip", limit=2, window=MINUTE)], ValueError),
    ],
)
def test_r10_3_bad_budgets_raise_naming_them(harness: Harness, budgets: Any, error: type) -> None:
    with pytest.raises(error, match="budgets"):
        harness.codes(budgets=budgets)


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"name": "", "limit": 1, "window": MINUTE}, ValueError, "name"),
        ({"name": "a:b", "limit": 1, "window": MINUTE}, ValueError, "name"),
        ({"name": "ip", "limit": 0, "window": MINUTE}, ValueError, "limit"),
        ({"name": "ip", "limit": 1, "window": 60}, TypeError, "window"),
        ({"name": "ip", "limit": 1, "window": MINUTE, "key": ""}, ValueError, "key"),
    ],
)
def test_r10_3_a_bad_budget_raises_naming_the_field(
    kwargs: dict[str, Any], error: type, name: str
) -> None:
    with pytest.raises(error, match=name):
        Budget(**kwargs)


def test_r10_3_budget_keys_are_stored_as_keyed_hashes(harness: Harness) -> None:
    codes = _ip_codes(harness)
    issued(codes.request_code(nir(1), budget_keys={"ip": IP}))
    assert IP.encode() not in harness.dump()


def test_r10_3_one_budget_under_32_threads_never_over_admits(
    harness: Harness, clock: FakeClock
) -> None:
    if harness.is_async:
        pytest.skip("threads drive the sync face; the async face races 1000 tasks below")
    codes = _ip_codes(harness, limit=10)
    barrier = threading.Barrier(32)

    def one(i: int) -> Any:
        barrier.wait(timeout=120)  # a guard against a deadlock, not a timing assertion
        return codes.request_code(nir(i), budget_keys={"ip": IP})

    with ThreadPoolExecutor(max_workers=32) as pool:
        results = list(pool.map(one, range(32)))
    assert sum(isinstance(r, Issued) for r in results) == 10
    assert {r.reason for r in results if not r.ok} == {Reason.BUDGET_EXHAUSTED}


def test_r10_3_one_budget_under_1000_tasks_never_over_admits(harness: Harness) -> None:
    if not harness.is_async:
        pytest.skip("tasks drive the async face; the sync face races 32 threads above")
    budgets = [Budget("ip", limit=10, window=timedelta(minutes=10))]
    backend = harness.backend

    async def main() -> list[Any]:
        codes = AsyncSecurityCodes(backend, secret=SECRET, clock=harness.clock, budgets=budgets)
        bound = asyncio.Semaphore(50)  # the asyncio cluster client has no waiting pool

        async def one(i: int) -> Any:
            async with bound:
                return await codes.request_code(nir(i), budget_keys={"ip": IP})

        return await asyncio.gather(*(one(i) for i in range(1000)))

    assert isinstance(backend, AsyncMemoryBackend | AsyncRedisBackend)
    results = harness.env.loop.run_until_complete(main())
    assert sum(isinstance(r, Issued) for r in results) == 10
    assert {r.reason for r in results if not r.ok} == {Reason.BUDGET_EXHAUSTED}


# -- R10.4 a trusted device is not subject to the code rules ------------------------------------


def test_r10_4_an_account_locked_by_guessing_still_trusts_its_device(harness: Harness) -> None:
    codes = harness.codes(policy=Policy(resend_interval=MINUTE, max_codes_per_day=3))
    code = issued(codes.request_code(nir(1))).code
    token = codes.verify_code(nir(1), code, remember_device=True, fingerprint=FP).device_token
    harness.clock.advance(MINUTE)
    for guess in range(10):  # someone who knows the password guesses until it locks
        if guess % 3 == 0:
            harness.clock.advance(MINUTE)
            code = codes.request_code(nir(1))
            if not code.ok:
                break
            code = code.code
        codes.verify_code(nir(1), f"{(int(code) + 1) % 10**6:06d}")
    assert codes.request_code(nir(1)).reason in (Reason.ACCOUNT_LOCKED, Reason.DAILY_LIMIT)
    assert codes.is_trusted_device(nir(1), token, FP) is True  # the owner's computer
