"""The asyncio face: concurrency, cancellation, parity with the sync face, generated files.

Every coroutine runs under ``asyncio.run`` inside a plain test function (no
pytest-asyncio). The store-backed tests run on three async stores:
``AsyncMemoryBackend``, ``AsyncRedisBackend`` on ``redis.asyncio.Redis`` and on
``redis.asyncio.cluster.RedisCluster``; each Redis client is made inside the
coroutine that uses it and closed there, and each test works under a key prefix
of its own and deletes its keys at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import inspect
import os
import re
import shutil
import subprocess
import sys
import types
import typing
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

import ameli_otp
from ameli_otp import (
    AsyncMemoryBackend,
    AsyncRedisBackend,
    AsyncSecurityCodes,
    AsyncSlidingWindowLimiter,
    Issued,
    MemoryBackend,
    Policy,
    Reason,
    RedisBackend,
    Refused,
    SecurityCodes,
    SlidingWindowLimiter,
    Verified,
)
from ameli_otp._redis_common import KeyNames
from ameli_otp._store import AsyncStore, Store
from ameli_otp.testing import FakeClock
from tests.harness import REDIS_URL_ENV, SECRET

ROOT = Path(__file__).resolve().parent.parent
GEN_ASYNC = ROOT / "tools" / "gen_async.py"
FINGERPRINT = "browser-fingerprint-of-this-test"
#: in-flight operations at once against Redis: the pool size (standalone) or a semaphore (cluster)
MAX_IN_FLIGHT = 50
#: 12 digits: two codes of one account clash with odds of 1e-12, so a probe never matches by luck
PROBE_POLICY = Policy(code_length=12)
#: a lock after 3 consecutive failures, 5 attempts per code: the lock counts account failures
LOCK_POLICY = Policy(code_length=12, max_attempts_per_code=5, max_failed_attempts=3)


def new_account() -> str:
    """A fresh account id: no test ever sees another test's account."""
    return f"acct-{uuid.uuid4().hex}"


def other_code(code: str) -> str:
    """A well-formed code of the same length that is not ``code``."""
    wrong = "0" * len(code)
    return wrong if wrong != code else "1" * len(code)


# -- the three async stores ------------------------------------------------------------------


@dataclass
class AsyncStoreKind:
    """One kind of async store; :meth:`open` builds it inside the running event loop."""

    name: str
    url: str | None = None

    @property
    def bound(self) -> int | None:
        """How many operations may be in flight at once (None: no bound needed).

        redis-py's asyncio ``RedisCluster`` has no blocking pool: past ``max_connections``
        per node it raises ``MaxConnectionsError`` instead of waiting, so the cluster
        tests bound their concurrency themselves. The standalone client uses a
        ``BlockingConnectionPool``, where tasks wait for a free connection.
        """
        return MAX_IN_FLIGHT if self.name == "cluster" else None

    @contextlib.asynccontextmanager
    async def open(self) -> AsyncIterator[Any]:
        """A fresh, empty async store; its Redis client is closed (and its keys deleted) after."""
        if self.name == "memory":
            yield AsyncMemoryBackend()
            return
        assert self.url is not None
        client: Any
        # no retries: a retried EVALSHA whose reply was lost runs twice (docs/redis.md)
        no_retry = Retry(NoBackoff(), 0)
        if self.name == "redis":
            pool = redis.asyncio.BlockingConnectionPool.from_url(
                self.url, max_connections=MAX_IN_FLIGHT, timeout=30, retry=no_retry
            )
            client = redis.asyncio.Redis.from_pool(pool)
        else:
            client = redis.asyncio.cluster.RedisCluster.from_url(
                self.url, max_connections=MAX_IN_FLIGHT, retry=no_retry
            )
        prefix = f"ameli-otp-test-{uuid.uuid4().hex[:12]}"
        try:
            if self.name == "cluster":
                # as an application does at start-up (docs/async.md): redis-py 8.1's asyncio
                # RedisCluster, first used by many tasks at once, drops connections with
                # commands in flight and retries them (run twice) or leaks AttributeError
                await client.initialize()
            yield AsyncRedisBackend(client, prefix=prefix)
        finally:
            try:
                keys = [key async for key in client.scan_iter(match=f"{prefix}:*")]
                for key in keys:  # one by one: keys of a cluster live in many slots
                    await client.delete(key)
            finally:
                await client.aclose()


@pytest.fixture(
    params=[
        "memory",
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("cluster", marks=pytest.mark.redis),
    ]
)
def store(request: pytest.FixtureRequest) -> AsyncStoreKind:
    """One async store kind; the Redis servers start only when a Redis kind is asked for."""
    if request.param == "memory":
        return AsyncStoreKind("memory")
    if request.param == "redis":
        url = os.environ.get(REDIS_URL_ENV) or request.getfixturevalue("redis_url")
        return AsyncStoreKind("redis", url)
    return AsyncStoreKind("cluster", request.getfixturevalue("cluster_url"))


T = TypeVar("T")


async def gather_many(kind: AsyncStoreKind, make: Callable[[], Awaitable[T]], n: int) -> list[T]:
    """Run ``n`` tasks of ``make()`` concurrently (``asyncio.gather``); all their results."""
    bound = kind.bound
    limiter = asyncio.Semaphore(bound) if bound else None

    async def one() -> T:
        if limiter is None:
            return await make()
        async with limiter:
            return await make()

    return await asyncio.gather(*(one() for _ in range(n)))


async def trusted_devices(backend: Any, codes: AsyncSecurityCodes, account: str) -> int:
    """How many trusted devices the store holds for ``account`` (read from the store itself).

    The device token of a cancelled verification is lost with its task, so the test
    cannot ask ``is_trusted_device``: it looks at the record instead.
    """
    ak = codes._core.account(account)
    if isinstance(backend, AsyncMemoryBackend):
        record = backend.sync._accounts.get(ak)
        return 0 if record is None else len(record.data.devices)
    fields = await backend.client.hkeys(KeyNames(backend.prefix).state(ak)[0])
    return sum(1 for field in fields if field.startswith(b"d:"))


# -- 1,000 concurrent tasks ------------------------------------------------------------------


def test_r6_1_concurrent_right_code_verifies_once(store: AsyncStoreKind) -> None:
    """1,000 concurrent verifications of the right code: exactly one logs in (R6.1)."""

    async def main() -> None:
        async with store.open() as backend:
            codes = AsyncSecurityCodes(backend, secret=SECRET, clock=FakeClock())
            account = new_account()
            issued = await codes.request_code(account)
            assert isinstance(issued, Issued)

            results = await gather_many(
                store, lambda: codes.verify_code(account, issued.code), 1000
            )

            assert Counter(type(r).__name__ for r in results) == {"Verified": 1, "Refused": 999}
            assert all(r == Refused(Reason.NO_CODE) for r in results if not r.ok)
            after = await codes.request_code(account)  # the used code left the window (R1.4)
            assert isinstance(after, Issued)
            assert after.remaining == 4

    asyncio.run(main())


def test_r6_1_concurrent_requests_issue_at_most_the_limit(store: AsyncStoreKind) -> None:
    """1,000 concurrent ``request_code`` on one account: exactly 5 codes (R1.3, R6.1)."""

    async def main() -> None:
        async with store.open() as backend:
            codes = AsyncSecurityCodes(backend, secret=SECRET, clock=FakeClock())
            account = new_account()

            results = await gather_many(store, lambda: codes.request_code(account), 1000)

            issued = [r for r in results if isinstance(r, Issued)]
            refused = [r for r in results if not isinstance(r, Issued)]
            assert len(issued) == 5
            assert sorted(r.remaining for r in issued) == [0, 1, 2, 3, 4]
            assert len(refused) == 995
            assert {r.reason for r in refused} == {Reason.TOO_MANY_CODES}
            assert all(r.retry_after == timedelta(hours=1) for r in refused)
            # the code issued last (nothing left after it) is the one that counts (R1.6)
            (last,) = (r for r in issued if r.remaining == 0)
            assert await codes.verify_code(account, last.code) == Verified()

    asyncio.run(main())


def test_r6_1_concurrent_wrong_guesses_never_pass_a_limit(store: AsyncStoreKind) -> None:
    """1,000 concurrent wrong guesses: 3 count, the code is burned, no failure is lost (R6.1)."""

    async def main() -> None:
        async with store.open() as backend:
            codes = AsyncSecurityCodes(backend, secret=SECRET, clock=FakeClock())
            account = new_account()
            issued = await codes.request_code(account)
            assert isinstance(issued, Issued)
            wrong = other_code(issued.code)

            results = await gather_many(store, lambda: codes.verify_code(account, wrong), 1000)

            assert Counter(results) == {
                Refused(Reason.WRONG_CODE, attempts_left=2): 1,
                Refused(Reason.WRONG_CODE, attempts_left=1): 1,
                Refused(Reason.TOO_MANY_ATTEMPTS): 1,
                Refused(Reason.NO_CODE): 997,
            }
            assert await codes.verify_code(account, issued.code) == Refused(Reason.NO_CODE)

    asyncio.run(main())


def test_r11_2_concurrent_authenticator_verifications_of_one_code_give_one_success(
    store: AsyncStoreKind,
) -> None:
    """1,000 concurrent verifications of one authenticator code: exactly one (R11.2)."""
    from tests.test_factors import NAME, code

    async def main() -> None:
        async with store.open() as backend:
            clock = FakeClock()
            codes = AsyncSecurityCodes(backend, secret=SECRET, clock=clock)
            account = new_account()
            e = await codes.enroll_authenticator(account, name=NAME)
            assert await codes.confirm_authenticator(account, code(e, clock.ms)) == Verified()
            for _ in range(2):
                clock.advance(30)
                typed = code(e, clock.ms)
                results = await gather_many(
                    store, lambda t=typed: codes.verify_authenticator(account, t), 1000
                )
                assert Counter(results) == {
                    Verified(): 1,
                    Refused(Reason.CODE_REUSED): 999,
                }

    asyncio.run(main())


def test_r12_2_concurrent_uses_of_one_recovery_code_give_one_success(
    store: AsyncStoreKind,
) -> None:
    """1,000 concurrent uses of one recovery code: exactly one (R12.2); the others count as
    wrong codes, so the tenth locks the account and the rest are refused as locked."""

    async def main() -> None:
        async with store.open() as backend:
            codes = AsyncSecurityCodes(backend, secret=SECRET, clock=FakeClock())
            account = new_account()
            got = await codes.new_recovery_codes(account)
            results = await gather_many(
                store, lambda: codes.use_recovery_code(account, got[0]), 1000
            )
            assert results.count(Verified(recovery_codes_left=9)) == 1
            reasons = Counter(r.reason for r in results if isinstance(r, Refused))
            assert reasons == {Reason.WRONG_CODE: 9, Reason.ACCOUNT_LOCKED: 990}
            assert (await codes.inspect(account)).recovery_codes_left == 9

    asyncio.run(main())


# -- cancellation ----------------------------------------------------------------------------

#: where a task is cancelled: after n event-loop iterations, by a wait_for timeout, or never
CANCEL_POINTS: list[tuple[str, float]] = [
    *(("steps", n) for n in range(41)),
    *(("wait_for", t) for t in (0, 1e-6, 1e-5, 5e-5, 1e-4, 2e-4, 3e-4, 5e-4, 1e-3, 2e-3, 5e-3)),
    ("never", 0),
]


async def run_cancelled(point: tuple[str, float], make: Callable[[], Awaitable[Any]]) -> Any:
    """Run ``make()`` as a task cancelled at ``point``; its result, or None if it was cancelled."""
    how, when = point
    if how == "never":
        return await make()
    if how == "wait_for":
        try:
            return await asyncio.wait_for(make(), when)
        except TimeoutError:
            return None
    task = asyncio.ensure_future(make())
    for _ in range(int(when)):
        await asyncio.sleep(0)
    task.cancel()
    try:
        return await task
    except asyncio.CancelledError:
        return None


@dataclass
class Faces:
    """The async faces the cancellation checks use, on one store."""

    backend: Any
    probe: AsyncSecurityCodes  # PROBE_POLICY
    lock: AsyncSecurityCodes  # LOCK_POLICY
    limiter: AsyncSlidingWindowLimiter  # 5 per hour


async def cancel_request_code(f: Faces, point: tuple[str, float]) -> bool:
    """A cancelled ``request_code``: the new code replaced the old one and counts, or neither."""
    codes, account = f.probe, new_account()
    first = await codes.request_code(account)
    assert isinstance(first, Issued)
    assert first.remaining == 4

    result = await run_cancelled(point, lambda: codes.request_code(account))

    probe = await codes.verify_code(account, first.code)  # still the active code?
    after = await codes.request_code(account)
    assert isinstance(after, Issued)
    if probe == Verified():  # nothing happened: the first code was active; now it left
        happened = False
        assert after.remaining == 4  # counting: after
    else:  # the cancelled request replaced the first code, and counts
        happened = True
        assert probe == Refused(Reason.WRONG_CODE, attempts_left=2)
        assert after.remaining == 2  # counting: first, the cancelled one, after
    if result is not None:
        assert happened
        assert isinstance(result, Issued)
        assert result.remaining == 3
    return happened


async def cancel_wrong_guess(f: Faces, point: tuple[str, float]) -> bool:
    """A cancelled wrong guess: the code's and the account's failures counted it, or neither."""
    codes, account = f.lock, new_account()
    issued = await codes.request_code(account)
    assert isinstance(issued, Issued)
    wrong = other_code(issued.code)

    result = await run_cancelled(point, lambda: codes.verify_code(account, wrong))

    first = await codes.verify_code(account, wrong)
    assert first.reason == Reason.WRONG_CODE
    assert first.attempts_left is not None
    code_failures = 5 - first.attempts_left - 1  # before `first`
    wrong_before_lock = 0
    while (guess := await codes.verify_code(account, wrong)).reason == Reason.WRONG_CODE:
        wrong_before_lock += 1
        assert wrong_before_lock < 5
    assert guess.reason == Reason.ACCOUNT_LOCKED
    # before `first`: a0 failures; first, the WRONG ones, then the one that reached 3
    account_failures = 3 - 2 - wrong_before_lock
    assert code_failures == account_failures
    assert code_failures in (0, 1)
    happened = code_failures == 1
    if result is not None:
        assert happened
        assert result == Refused(Reason.WRONG_CODE, attempts_left=4)
    return happened


async def cancel_right_code(f: Faces, point: tuple[str, float]) -> bool:
    """A cancelled right code with remember_device: consumed, slot freed, failures reset and
    device trusted, all together, or none of it."""
    codes, account = f.lock, new_account()
    issued = await codes.request_code(account)
    assert isinstance(issued, Issued)
    wrong = other_code(issued.code)
    assert await codes.verify_code(account, wrong) == Refused(Reason.WRONG_CODE, attempts_left=4)

    result = await run_cancelled(
        point,
        lambda: codes.verify_code(
            account, issued.code, remember_device=True, fingerprint=FINGERPRINT
        ),
    )

    probe = await codes.verify_code(account, wrong)
    if probe == Refused(Reason.NO_CODE):
        consumed = True
    else:
        consumed = False
        assert probe == Refused(Reason.WRONG_CODE, attempts_left=3)
    assert await trusted_devices(f.backend, codes, account) == int(consumed)
    again = await codes.verify_code(account, issued.code)
    assert again == (Refused(Reason.NO_CODE) if consumed else Verified())
    # whichever verification used the code freed its slot (R1.4) and reset the failures (R2.5)
    after = await codes.request_code(account)
    assert isinstance(after, Issued)
    assert after.remaining == 4
    guesses = [await codes.verify_code(account, wrong) for _ in range(3)]
    assert [g.reason for g in guesses] == [Reason.WRONG_CODE] * 2 + [Reason.ACCOUNT_LOCKED]
    if result is not None:
        assert consumed
        assert isinstance(result, Verified)
        assert await codes.is_trusted_device(account, result.device_token, FINGERPRINT)
    return consumed


async def cancel_limiter_hit(f: Faces, point: tuple[str, float]) -> bool:
    """A cancelled ``hit``: one entry more, or none."""
    key = new_account()
    for _ in range(2):
        assert (await f.limiter.hit(key)).allowed

    result = await run_cancelled(point, lambda: f.limiter.hit(key))

    remaining = (await f.limiter.peek(key)).remaining
    assert remaining in (2, 3)
    happened = remaining == 2
    if result is not None:
        assert happened
        assert result.allowed
        assert result.remaining == 2
        await f.limiter.release(key, result.entry)
        assert (await f.limiter.peek(key)).remaining == 3
    return happened


async def cancel_limiter_release(f: Faces, point: tuple[str, float]) -> bool:
    """A cancelled ``release``: the entry left, or it still counts; releasing again is harmless."""
    key = new_account()
    decisions = [await f.limiter.hit(key) for _ in range(3)]

    await run_cancelled(point, lambda: f.limiter.release(key, decisions[-1].entry))

    remaining = (await f.limiter.peek(key)).remaining
    assert remaining in (2, 3)
    await f.limiter.release(key, decisions[-1].entry)
    assert (await f.limiter.peek(key)).remaining == 3
    return remaining == 3


CANCELLED_OPERATIONS: dict[str, Callable[[Faces, tuple[str, float]], Awaitable[bool]]] = {
    "request_code": cancel_request_code,
    "verify_code-wrong": cancel_wrong_guess,
    "verify_code-right-remember_device": cancel_right_code,
    "limiter-hit": cancel_limiter_hit,
    "limiter-release": cancel_limiter_release,
}


@pytest.mark.parametrize("operation", list(CANCELLED_OPERATIONS))
def test_cancellation_leaves_no_half_applied_state(store: AsyncStoreKind, operation: str) -> None:
    """A task cancelled at any point leaves the account whole: the operation happened or not.

    Why the design guarantees it: each public operation is one atomic store call,
    prepared before and interpreted after by code that touches no state.

    - ``AsyncMemoryBackend``: each primitive is a synchronous section run under the
      store's lock, with no ``await`` inside. Cancellation is delivered only where a
      coroutine suspends, so it lands before the section (nothing happened) or after
      it (everything happened, only the result is lost).
    - ``AsyncRedisBackend``: each primitive is a single Lua script (one EVALSHA), which
      Redis runs atomically. A cancelled task either never got its command to the
      server (nothing happened) or the script ran whole and only the reply is lost;
      redis-py drops the connection of a cancelled command, so a later call never
      reads a stale reply.

    For each cancellation point (0..40 event-loop iterations after the task starts,
    ``asyncio.wait_for`` with tiny timeouts, and no cancellation) the test probes the
    account with further calls and checks that every piece of the operation (the
    code replaced *and* its window entry, the code's *and* the account's failures,
    the code consumed *and* its slot freed *and* the failures reset *and* the device
    trusted) is there together or missing together. A result that was delivered
    must agree with what the store holds.
    """

    async def main() -> None:
        async with store.open() as backend:
            clock = FakeClock()
            faces = Faces(
                backend,
                AsyncSecurityCodes(backend, secret=SECRET, policy=PROBE_POLICY, clock=clock),
                AsyncSecurityCodes(backend, secret=SECRET, policy=LOCK_POLICY, clock=clock),
                AsyncSlidingWindowLimiter(backend, limit=5, window=timedelta(hours=1), clock=clock),
            )
            check = CANCELLED_OPERATIONS[operation]
            happened = {point: await check(faces, point) for point in CANCEL_POINTS}

            assert not happened["steps", 0]  # cancelled before its first step: never ran
            assert not happened["wait_for", 0]
            assert happened["never", 0]
            if store.name == "memory":  # no suspension inside: the first step runs it all
                assert all(happened["steps", n] for n in range(1, 41))

    asyncio.run(main())


# -- parity of the two faces -----------------------------------------------------------------

ASYNC_NAMES = {
    "SecurityCodes": "AsyncSecurityCodes",
    "SlidingWindowLimiter": "AsyncSlidingWindowLimiter",
    "RedisBackend": "AsyncRedisBackend",
    "MemoryBackend": "AsyncMemoryBackend",
    "Store": "AsyncStore",
}
ASYNC_OBJECTS: dict[Any, Any] = {
    SecurityCodes: AsyncSecurityCodes,
    SlidingWindowLimiter: AsyncSlidingWindowLimiter,
    RedisBackend: AsyncRedisBackend,
    MemoryBackend: AsyncMemoryBackend,
    Store: AsyncStore,
    redis.Redis: redis.asyncio.Redis,
    redis.cluster.RedisCluster: redis.asyncio.cluster.RedisCluster,
}
STORE_METHODS = sorted(
    name for name, value in vars(Store).items() if inspect.isfunction(value) and name[0] != "_"
)


def async_name(annotation: Any) -> Any:
    """A sync annotation string with every name of the sync face replaced by its Async twin."""
    if not isinstance(annotation, str):
        return annotation
    for sync, twin in ASYNC_NAMES.items():
        annotation = re.sub(rf"\b{sync}\b", twin, annotation)
    return annotation


def resolved(annotation: Any, mapping: dict[Any, Any]) -> Any:
    """An evaluated annotation as a comparable tree, each object through ``mapping``."""
    if isinstance(annotation, list):
        return tuple(resolved(a, mapping) for a in annotation)
    origin = typing.get_origin(annotation)
    if origin is None:
        with contextlib.suppress(TypeError):  # unhashable: not a class to map
            return mapping.get(annotation, annotation)
        return annotation
    if origin is typing.Union:
        origin = types.UnionType
    return (origin, tuple(resolved(a, mapping) for a in typing.get_args(annotation)))


def shape(fn: Any, *, eval_str: bool, mapping: dict[Any, Any] | None = None) -> Any:
    """``(name, kind, default, annotation)`` of each parameter, and the return annotation."""
    sig = inspect.signature(fn, eval_str=eval_str)

    def ann(a: Any) -> Any:
        if mapping is None:
            return a
        return resolved(a, mapping) if eval_str else async_name(a)

    params = [(p.name, p.kind, p.default, ann(p.annotation)) for p in sig.parameters.values()]
    return params, ann(sig.return_annotation)


def assert_same_signature(sync_fn: Any, async_fn: Any, what: str) -> None:
    """Same parameters (names, kinds, defaults) and annotations, after mapping the Async names.

    Compared twice: as written (strings, under ``from __future__ import annotations``),
    and evaluated, so that ``Redis`` must really be ``redis.asyncio.Redis`` on the async side.
    """
    assert shape(async_fn, eval_str=False) == shape(sync_fn, eval_str=False, mapping={}), what
    assert shape(async_fn, eval_str=True, mapping={}) == shape(
        sync_fn, eval_str=True, mapping=ASYNC_OBJECTS
    ), what


def public_names(cls: type) -> set[str]:
    return {name for name in dir(cls) if not name.startswith("_")}


def is_property(cls: type, name: str) -> bool:
    return isinstance(inspect.getattr_static(cls, name), property)


def _spy_method(name: str) -> Callable[..., Any]:
    def method(self: Any, *args: Any) -> Any:
        self.calls.append(name)
        return getattr(MemoryBackend, name)(self, *args)

    return method


#: a MemoryBackend that records which store primitives were called
SpyStore: Any = type("SpyStore", (MemoryBackend,), {n: _spy_method(n) for n in STORE_METHODS})


def store_touching_calls(face: Any) -> dict[str, Callable[[], object]]:
    """One valid call of each public method of a sync face, to see which reach the store."""
    if isinstance(face, SecurityCodes):
        account = new_account()
        issued = face.request_code(account)
        assert isinstance(issued, Issued)
        verified = face.verify_code(
            account, issued.code, remember_device=True, fingerprint=FINGERPRINT
        )
        assert isinstance(verified, Verified)
        token = verified.device_token
        return {
            "request_code": lambda: face.request_code(account),
            "verify_code": lambda: face.verify_code(account, "123456"),
            "is_trusted_device": lambda: face.is_trusted_device(account, token, FINGERPRINT),
            "forget_device": lambda: face.forget_device(account, token),
            "forget_device_id": lambda: face.forget_device_id(account, "A" * 22),
            "forget_all_devices": lambda: face.forget_all_devices(account),
            "unlock": lambda: face.unlock(account),
            "inspect": lambda: face.inspect(account),
            "account_ref": lambda: face.account_ref(account),
            "enroll_authenticator": lambda: face.enroll_authenticator(account, name="n"),
            "confirm_authenticator": lambda: face.confirm_authenticator(account, "123456"),
            "verify_authenticator": lambda: face.verify_authenticator(account, "123456"),
            "remove_authenticator": lambda: face.remove_authenticator(account),
            "new_recovery_codes": lambda: face.new_recovery_codes(account),
            "use_recovery_code": lambda: face.use_recovery_code(account, "ABCDE-FGHJK"),
        }
    key = new_account()
    entry = face.hit(key).entry
    return {
        "hit": lambda: face.hit(key),
        "peek": lambda: face.peek(key),
        "release": lambda: face.release(key, entry),
        "reset": lambda: face.reset(key),
    }


@pytest.mark.parametrize(
    ("sync_cls", "async_cls", "make"),
    [
        (SecurityCodes, AsyncSecurityCodes, lambda cls, b: cls(b, secret=SECRET)),
        (
            SlidingWindowLimiter,
            AsyncSlidingWindowLimiter,
            lambda cls, b: cls(b, limit=5, window=timedelta(hours=1)),
        ),
    ],
    ids=["SecurityCodes", "SlidingWindowLimiter"],
)
def test_facade_parity(sync_cls: type, async_cls: type, make: Callable[..., Any]) -> None:
    """Same public names and signatures; a coroutine exactly where the sync method uses the store.

    "Uses the store" is observed, not read from the source: each sync method is called
    on a spy store that records the primitives it receives.
    """
    assert public_names(async_cls) == public_names(sync_cls)
    assert_same_signature(sync_cls.__init__, async_cls.__init__, "__init__")
    assert not inspect.iscoroutinefunction(async_cls.__init__)

    spy = SpyStore()
    spy.calls = []
    face = make(sync_cls, spy)
    calls = store_touching_calls(face)
    for name in sorted(public_names(sync_cls)):
        if is_property(sync_cls, name):
            assert is_property(async_cls, name), name
            fget = inspect.getattr_static(async_cls, name).fget
            assert not inspect.iscoroutinefunction(fget), name
            continue
        sync_fn, async_fn = getattr(sync_cls, name), getattr(async_cls, name)
        assert_same_signature(sync_fn, async_fn, name)
        assert name in calls, f"{name}: add a call of it to store_touching_calls()"
        spy.calls.clear()
        calls[name]()
        touches_store = bool(spy.calls)
        assert not inspect.iscoroutinefunction(sync_fn), name
        assert inspect.iscoroutinefunction(async_fn) == touches_store, name
    assert set(calls) <= public_names(sync_cls)


def test_redis_backend_parity() -> None:
    """``AsyncRedisBackend`` has ``RedisBackend``'s names and signatures, store calls awaited."""
    assert public_names(AsyncRedisBackend) == public_names(RedisBackend)
    assert_same_signature(RedisBackend.__init__, AsyncRedisBackend.__init__, "__init__")
    for name in sorted(public_names(RedisBackend)):
        if is_property(RedisBackend, name):
            assert is_property(AsyncRedisBackend, name), name
            continue
        sync_fn, async_fn = getattr(RedisBackend, name), getattr(AsyncRedisBackend, name)
        assert_same_signature(sync_fn, async_fn, name)
        assert not inspect.iscoroutinefunction(sync_fn), name
        assert inspect.iscoroutinefunction(async_fn) == (name in STORE_METHODS), name


def test_memory_backend_parity() -> None:
    """``AsyncMemoryBackend`` has ``MemoryBackend``'s constructor and store primitives, awaited."""
    assert_same_signature(MemoryBackend.__init__, AsyncMemoryBackend.__init__, "__init__")
    for name in STORE_METHODS:
        sync_fn, async_fn = getattr(MemoryBackend, name), getattr(AsyncMemoryBackend, name)
        assert_same_signature(sync_fn, async_fn, name)
        assert not inspect.iscoroutinefunction(sync_fn), name
        assert inspect.iscoroutinefunction(async_fn), name


def test_store_protocols_are_twins() -> None:
    """``AsyncStore`` is ``Store`` with coroutines: same methods, same signatures."""
    async_methods = sorted(
        n for n, v in vars(AsyncStore).items() if inspect.isfunction(v) and n[0] != "_"
    )
    assert async_methods == STORE_METHODS
    for name in STORE_METHODS:
        assert shape(getattr(AsyncStore, name), eval_str=True) == shape(
            getattr(Store, name), eval_str=True
        ), name
        assert inspect.iscoroutinefunction(getattr(AsyncStore, name)), name


@pytest.mark.parametrize(
    ("protocol", "backend"),
    [
        (Store, MemoryBackend),
        (Store, RedisBackend),
        (AsyncStore, AsyncMemoryBackend),
        (AsyncStore, AsyncRedisBackend),
    ],
    ids=lambda x: x.__name__,
)
def test_store_satisfies_its_protocol(protocol: type, backend: type) -> None:
    """Every primitive of the protocol exists on the store, with the protocol's signature."""
    for name in STORE_METHODS:
        want, have = getattr(protocol, name), getattr(backend, name, None)
        assert have is not None, f"{backend.__name__} lacks {name}"
        assert shape(have, eval_str=False) == shape(want, eval_str=False), name
        assert shape(have, eval_str=True) == shape(want, eval_str=True), name
        assert inspect.iscoroutinefunction(have) == inspect.iscoroutinefunction(want), name


# -- the generated files ---------------------------------------------------------------------


def load_gen_async() -> types.ModuleType:
    """``tools/gen_async.py`` as a module (it is a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location("gen_async_under_test", GEN_ASYNC)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def ruff() -> None:
    """The generator formats with ruff (the ``dev`` extra): skip without it."""
    pytest.importorskip("ruff", reason="tools/gen_async.py formats its output with ruff")


@pytest.mark.usefixtures("ruff")
def test_generated_files_are_up_to_date() -> None:
    """``tools/gen_async.py --check`` exits 0: the async files are what the generator writes."""
    done = subprocess.run(
        [sys.executable, str(GEN_ASYNC), "--check"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


DEMO_SOURCE = '''"""A demo face over one store.

More words.
"""

from __future__ import annotations

from ._core import check_backend
from ._store import Store


class SecurityCodes:
    """Demo."""

    def __init__(self, backend: Store) -> None:
        check_backend(backend, want_async=False)
        self._store = backend

    @property
    def name(self) -> str:
        return "demo"

    def unlock(self, account: str) -> None:
        self._store.unlock(account)

    def hit(
        self,
        key: str,
    ) -> int:
        allowed, value, entry = self._store.window_hit(key, 0, 1, 1)
        return value
'''


@pytest.mark.usefixtures("ruff")
def test_generator_really_transforms() -> None:
    """``transform()`` awaits store calls, makes those methods ``async def``, renames the faces."""
    out = load_gen_async().transform(DEMO_SOURCE, "_demo.py")

    assert out != DEMO_SOURCE
    assert "async def unlock(self, account: str) -> None:" in out
    assert "await self._store.unlock(account)" in out
    assert re.search(r"async def hit\(\s*self,", out)
    assert "await self._store.window_hit(" in out
    assert "class AsyncSecurityCodes:" in out
    assert "backend: AsyncStore" in out
    assert "want_async=True" in out
    assert "    def __init__(" in out  # no store call: stays a plain method
    assert "async def name" not in out
    assert "GENERATED by tools/gen_async.py from _demo.py" in out
    compile(out, "_async_demo.py", "exec")


@pytest.mark.usefixtures("ruff")
def test_check_fails_on_a_stale_generated_file(tmp_path: Path) -> None:
    """``--check`` on a copy of the sources: 0 as generated, 1 once a generated file drifts."""
    gen = load_gen_async()
    pkg = tmp_path / "src" / "ameli_otp"
    pkg.mkdir(parents=True)
    for src, dst in gen.PAIRS.items():
        for name in (src, dst):
            shutil.copy(gen.PKG / name, pkg / name)
    shutil.copy(ROOT / "pyproject.toml", tmp_path)  # ruff's settings
    gen.ROOT, gen.PKG = tmp_path, pkg
    assert gen.main(["--check"]) == 0

    stale = pkg / "_async_facade.py"
    stale.write_text(
        stale.read_text("utf-8").replace("await self._store.unlock(", "self._store.unlock("),
        "utf-8",
    )
    assert gen.main(["--check"]) == 1
    assert gen.main([]) == 0  # rewrites it
    assert gen.main(["--check"]) == 0
    assert (pkg / "_async_facade.py").read_text("utf-8") == (
        ROOT / "src" / "ameli_otp" / "_async_facade.py"
    ).read_text("utf-8")


# -- the wrong face --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("face", "backend"),
    [
        (AsyncSecurityCodes, MemoryBackend),
        (SecurityCodes, AsyncMemoryBackend),
        (AsyncSlidingWindowLimiter, MemoryBackend),
        (SlidingWindowLimiter, AsyncMemoryBackend),
    ],
    ids=lambda x: x.__name__,
)
def test_wrong_face_is_refused(face: type, backend: type) -> None:
    """A sync store under an async face (or the reverse) is a TypeError that names backend."""
    if face in (SecurityCodes, AsyncSecurityCodes):
        kwargs: dict[str, Any] = {"secret": SECRET}
    else:
        kwargs = {"limit": 5, "window": timedelta(hours=1)}
    with pytest.raises(TypeError, match="backend") as raised:
        face(backend(), **kwargs)
    message = str(raised.value)
    assert backend.__name__ in message
    right = "SecurityCodes" if backend is MemoryBackend else "AsyncSecurityCodes"
    assert f"use it with {right} " in message


def test_wrong_face_message_reads_well() -> None:
    """The message says "a sync store", not "an sync store"."""
    with pytest.raises(TypeError) as raised:
        AsyncSecurityCodes(MemoryBackend(), secret=SECRET)  # type: ignore[arg-type]
    assert " a sync store" in str(raised.value)


def test_wrong_face_redis_stores() -> None:
    """Redis stores refuse a client of the other face, and the faces refuse the other store."""

    async def main() -> None:
        async_client = redis.asyncio.Redis()  # never connects: nothing is sent
        sync_client = redis.Redis()
        try:
            with pytest.raises(TypeError, match="client"):
                RedisBackend(async_client)  # type: ignore[arg-type]
            with pytest.raises(TypeError, match="client"):
                AsyncRedisBackend(sync_client)  # type: ignore[arg-type]
            with pytest.raises(TypeError, match="backend"):
                SecurityCodes(AsyncRedisBackend(async_client), secret=SECRET)  # type: ignore[arg-type]
            with pytest.raises(TypeError, match="backend"):
                AsyncSecurityCodes(RedisBackend(sync_client), secret=SECRET)  # type: ignore[arg-type]
            with pytest.raises(TypeError, match="backend"):
                AsyncSlidingWindowLimiter(
                    RedisBackend(sync_client),  # type: ignore[arg-type]
                    limit=5,
                    window=timedelta(hours=1),
                )
        finally:
            sync_client.close()
            await async_client.aclose()

    asyncio.run(main())


# -- the names -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["AsyncSecurityCodes", "AsyncSlidingWindowLimiter", "AsyncMemoryBackend", "AsyncRedisBackend"],
)
def test_async_names_are_public(name: str) -> None:
    """Every async name is importable from ``ameli_otp`` and listed in ``__all__``."""
    assert name in ameli_otp.__all__
    namespace: dict[str, Any] = {}
    exec(f"from ameli_otp import {name}", namespace)  # noqa: S102 - the import statement itself
    assert namespace[name] is getattr(ameli_otp, name)
    assert inspect.isclass(namespace[name])


def test_all_lists_only_real_names() -> None:
    assert all(hasattr(ameli_otp, name) for name in ameli_otp.__all__)
