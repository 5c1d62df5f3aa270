"""What only a Redis store can get wrong: round trips, scripts, outages, TTLs, slots, races.

The rules themselves run on every store through the harness (``conftest.py``);
this file checks the Redis side of RULES.md R4.2, R5.2 and R6 on servers the
tests start themselves (``tests/servers.py``): one EVALSHA per operation and
none for a malformed code or a forged token, scripts reloaded after
``SCRIPT FLUSH``, ``BackendError`` (never a result) when the server is gone,
a TTL on every key whatever the clock says, one cluster slot per account,
nothing in clear on the server, and races between threads and processes.

Every test works under a key prefix of its own and never writes into a
server it did not start. See docs/redis.md.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import random
import re
import socket
import threading
import uuid
from base64 import b64encode, urlsafe_b64encode
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
import redis.asyncio
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.retry import Retry

from ameli_otp import (
    AsyncRedisBackend,
    AsyncSecurityCodes,
    AsyncSlidingWindowLimiter,
    BackendError,
    Issued,
    Policy,
    Reason,
    RedisBackend,
    Refused,
    SecurityCodes,
    SlidingWindowLimiter,
    Verified,
)
from ameli_otp._redis_common import SCRIPTS, SLACK_MS, script_source
from ameli_otp.testing import FakeClock
from tests import servers
from tests.harness import SECRET, SyncFace

pytestmark = pytest.mark.redis

ACCOUNT = "1850775123456"  # shaped like a French social security number
OTHER_ACCOUNT = "2900612345678"
FP = "Mozilla/5.0 (X11; Linux x86_64) fingerprint-7f3a9c"
OTHER_FP = "Mozilla/5.0 (Macintosh) fingerprint-0b21de"
HOUR = timedelta(hours=1)
MS = timedelta(milliseconds=1)

#: workers of the concurrency tests (threads and processes alike)
WORKERS = 16
BARRIER_TIMEOUT = 30.0


def _ms(delta: timedelta) -> int:
    return round(delta / MS)


def _wrong(code: str) -> str:
    """A well-formed code that is not ``code``."""
    return f"{(int(code) + 1) % 10 ** len(code):0{len(code)}d}"


def _prefix() -> str:
    return f"ameli-otp-test-redis-{uuid.uuid4().hex[:12]}"


def _quiet_client(port: int, timeout: float = 1.0) -> redis.Redis:
    """A client that gives up at once: no retry, short timeouts (a failure test stays short)."""
    return redis.Redis(
        port=port,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )


# -- clients that count what they send ---------------------------------------------------------


class CountingRedis(redis.Redis):
    """A ``redis.Redis`` that records the name of every command it sends."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sent: list[str] = []

    def execute_command(self, *args: Any, **options: Any) -> Any:
        self.sent.append(str(args[0]).upper())
        return super().execute_command(*args, **options)


class AsyncCountingRedis(redis.asyncio.Redis):
    """A ``redis.asyncio.Redis`` that records the name of every command it sends."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sent: list[str] = []

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        self.sent.append(str(args[0]).upper())
        return await super().execute_command(*args, **options)


def _script_calls(observer: redis.Redis) -> Counter[str]:
    """Script commands the server ran so far (``INFO commandstats``), by command."""
    stats = observer.info("commandstats")
    wanted = {"cmdstat_evalsha": "evalsha", "cmdstat_eval": "eval", "cmdstat_script|load": "load"}
    return Counter({name: int(stats.get(key, {}).get("calls", 0)) for key, name in wanted.items()})


def _all_keys(client: redis.Redis, prefix: str) -> list[bytes]:
    return sorted(client.scan_iter(match=f"{prefix}:*", count=1000))


def _keys(client: redis.Redis, prefix: str) -> list[bytes]:
    """The records: every key but the replay records (``:q``, a minute after a change, R8.1)."""
    return [key for key in _all_keys(client, prefix) if not key.endswith(b":q")]


def _window_entries(client: redis.Redis, key: bytes) -> list[bytes]:
    """The entries of an account's window: its state's field w, "id:t" comma-separated."""
    packed = client.hget(key, "w")
    return packed.split(b",") if packed else []


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def own_server() -> Iterator[servers.Server]:
    """A standalone server for this module alone: its commandstats are ours."""
    with servers.standalone() as server:
        yield server


@pytest.fixture(scope="module")
def own_url(own_server: servers.Server) -> str:
    return f"redis://127.0.0.1:{own_server.port}/0"


@pytest.fixture(scope="module")
def observer(own_server: servers.Server) -> Iterator[redis.Redis]:
    """A plain client to inspect the module's server (INFO, SCAN, PTTL, DUMP)."""
    client = redis.Redis(port=own_server.port)
    yield client
    client.close()


@pytest.fixture
def prefix() -> str:
    return _prefix()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def plain(own_server: servers.Server) -> Iterator[redis.Redis]:
    """A fresh client on the module's server for one test."""
    client = redis.Redis(port=own_server.port)
    yield client
    client.close()


@pytest.fixture
def codes(plain: redis.Redis, prefix: str, clock: FakeClock) -> SecurityCodes:
    return SecurityCodes(RedisBackend(plain, prefix=prefix), secret=SECRET, clock=clock)


@dataclass
class Rig:
    """The facades of one face (sync or async) on a counting client."""

    codes: Any
    limiter: Any
    client: Any
    clock: FakeClock
    sent: list[str] = field(default_factory=list)


@pytest.fixture(params=["sync", "async"])
def rig(
    request: pytest.FixtureRequest, own_server: servers.Server, observer: redis.Redis, prefix: str
) -> Iterator[Rig]:
    """Facades over a counting client, every script already loaded on the server.

    One warm-up call first: the first operation of a store in a process also asks the
    server its eviction policy (R8.2, tests/test_faults.py); every later one is one trip.
    """
    for name in SCRIPTS:  # a SCRIPT LOAD after NoScriptError must not count as a round trip
        observer.script_load(script_source(name))
    clock = FakeClock()
    if request.param == "sync":
        client = CountingRedis(port=own_server.port)
        backend = RedisBackend(client, prefix=prefix)
        limiter = SlidingWindowLimiter(
            backend, limit=5, window=HOUR, clock=clock, secret=SECRET, namespace="ip"
        )
        limiter.peek("warm-up")
        yield Rig(SecurityCodes(backend, secret=SECRET, clock=clock), limiter, client, clock)
        client.close()
        return
    loop = asyncio.new_event_loop()
    aclient = AsyncCountingRedis(port=own_server.port)
    abackend = AsyncRedisBackend(aclient, prefix=prefix)
    alimiter = AsyncSlidingWindowLimiter(
        abackend, limit=5, window=HOUR, clock=clock, secret=SECRET, namespace="ip"
    )
    acodes = AsyncSecurityCodes(abackend, secret=SECRET, clock=clock)
    loop.run_until_complete(alimiter.peek("warm-up"))
    yield Rig(SyncFace(acodes, loop), SyncFace(alimiter, loop), aclient, clock)
    loop.run_until_complete(aclient.aclose())
    loop.close()


# -- R6.2: one round trip per operation ----------------------------------------------------------

Setup = Callable[[Rig], tuple[Callable[[], Any], Callable[[Any], bool]]]


def _token(rig: Rig, account: str = ACCOUNT) -> str:
    issued = rig.codes.request_code(account)
    verified = rig.codes.verify_code(account, issued.code, remember_device=True, fingerprint=FP)
    assert isinstance(verified, Verified)
    assert verified.device_token is not None
    return verified.device_token


def _forged(token: str) -> str:
    """The token with one character of its signed header changed."""
    i = 5
    return token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1 :]


def _refused(reason: Reason) -> Callable[[Any], bool]:
    return lambda r: isinstance(r, Refused) and r.reason == reason


def _op_request(rig: Rig) -> Any:
    return lambda: rig.codes.request_code(ACCOUNT), lambda r: isinstance(r, Issued)


def _op_request_refused(rig: Rig) -> Any:
    for _ in range(5):
        rig.codes.request_code(ACCOUNT)
    return lambda: rig.codes.request_code(ACCOUNT), _refused(Reason.TOO_MANY_CODES)


def _op_verify_right(rig: Rig) -> Any:
    code = rig.codes.request_code(ACCOUNT).code
    return lambda: rig.codes.verify_code(ACCOUNT, code), lambda r: isinstance(r, Verified)


def _op_verify_remember(rig: Rig) -> Any:
    code = rig.codes.request_code(ACCOUNT).code

    def run() -> Any:
        return rig.codes.verify_code(ACCOUNT, code, remember_device=True, fingerprint=FP)

    return run, lambda r: isinstance(r, Verified) and r.device_token


def _op_verify_wrong(rig: Rig) -> Any:
    code = rig.codes.request_code(ACCOUNT).code
    return lambda: rig.codes.verify_code(ACCOUNT, _wrong(code)), _refused(Reason.WRONG_CODE)


def _op_verify_no_code(rig: Rig) -> Any:
    return lambda: rig.codes.verify_code(ACCOUNT, "123456"), _refused(Reason.NO_CODE)


def _op_verify_locked(rig: Rig) -> Any:
    for _ in range(4):
        code = rig.codes.request_code(ACCOUNT).code
        for _ in range(3):
            rig.codes.verify_code(ACCOUNT, _wrong(code))
    return lambda: rig.codes.verify_code(ACCOUNT, "123456"), _refused(Reason.ACCOUNT_LOCKED)


def _op_trusted(rig: Rig) -> Any:
    token = _token(rig)
    return lambda: rig.codes.is_trusted_device(ACCOUNT, token, FP), lambda r: r is True


def _op_forget_device(rig: Rig) -> Any:
    token = _token(rig)
    return lambda: rig.codes.forget_device(ACCOUNT, token), lambda r: r is True


def _op_forget_device_id(rig: Rig) -> Any:
    _token(rig)
    (device,) = rig.codes.inspect(ACCOUNT).devices
    return lambda: rig.codes.forget_device_id(ACCOUNT, device.device_id), lambda r: r is True


def _op_forget_all(rig: Rig) -> Any:
    _token(rig)
    return lambda: rig.codes.forget_all_devices(ACCOUNT), lambda r: r == 1


def _op_unlock(rig: Rig) -> Any:
    return lambda: rig.codes.unlock(ACCOUNT), lambda r: r is False


def _op_inspect(rig: Rig) -> Any:
    _token(rig)
    return lambda: rig.codes.inspect(ACCOUNT), lambda s: len(s.devices) == 1


def _op_hit(rig: Rig) -> Any:
    return lambda: rig.limiter.hit("192.0.2.7"), lambda d: d.allowed and d.remaining == 4


def _op_hit_refused(rig: Rig) -> Any:
    for _ in range(5):
        rig.limiter.hit("192.0.2.7")
    return lambda: rig.limiter.hit("192.0.2.7"), lambda d: not d.allowed


def _op_peek(rig: Rig) -> Any:
    rig.limiter.hit("192.0.2.7")
    return lambda: rig.limiter.peek("192.0.2.7"), lambda d: d.allowed and d.remaining == 4


def _op_release(rig: Rig) -> Any:
    entry = rig.limiter.hit("192.0.2.7").entry
    return lambda: rig.limiter.release("192.0.2.7", entry), lambda r: r is None


def _op_reset(rig: Rig) -> Any:
    rig.limiter.hit("192.0.2.7")
    return lambda: rig.limiter.reset("192.0.2.7"), lambda r: r is None


ONE_TRIP: dict[str, Setup] = {
    "request_code": _op_request,
    "request_code-refused": _op_request_refused,
    "verify_code-right": _op_verify_right,
    "verify_code-right-remember": _op_verify_remember,
    "verify_code-wrong": _op_verify_wrong,
    "verify_code-no-code": _op_verify_no_code,
    "verify_code-locked": _op_verify_locked,
    "is_trusted_device": _op_trusted,
    "forget_device": _op_forget_device,
    "forget_device_id": _op_forget_device_id,
    "forget_all_devices": _op_forget_all,
    "unlock": _op_unlock,
    "inspect": _op_inspect,
    "hit": _op_hit,
    "hit-refused": _op_hit_refused,
    "peek": _op_peek,
    "release": _op_release,
    "reset": _op_reset,
}


def _zero_malformed(rig: Rig) -> Any:
    rig.codes.request_code(ACCOUNT)
    return lambda: rig.codes.verify_code(ACCOUNT, "12ab"), _refused(Reason.MALFORMED_CODE)


def _zero_short(rig: Rig) -> Any:
    return lambda: rig.codes.verify_code(ACCOUNT, " 12-34 5"), _refused(Reason.MALFORMED_CODE)


def _zero_trusted(make: Callable[[Rig, str], tuple[str, str, str | None]]) -> Setup:
    def setup(rig: Rig) -> Any:
        account, fingerprint, token = make(rig, _token(rig))

        def run() -> bool:
            return rig.codes.is_trusted_device(account, token, fingerprint)

        return run, lambda r: r is False

    return setup


def _zero_forget(make: Callable[[Rig, str], tuple[str, str | None]]) -> Setup:
    def setup(rig: Rig) -> Any:
        account, token = make(rig, _token(rig))
        return lambda: rig.codes.forget_device(account, token), lambda r: r is False

    return setup


def _zero_release_none(rig: Rig) -> Any:
    return lambda: rig.limiter.release("192.0.2.7", None), lambda r: r is None


ZERO_TRIPS: dict[str, Setup] = {
    "verify_code-malformed": _zero_malformed,
    "verify_code-too-short": _zero_short,
    "is_trusted_device-forged": _zero_trusted(lambda rig, t: (ACCOUNT, FP, _forged(t))),
    "is_trusted_device-garbage": _zero_trusted(lambda rig, t: (ACCOUNT, FP, "garbage")),
    "is_trusted_device-none": _zero_trusted(lambda rig, t: (ACCOUNT, FP, None)),
    "is_trusted_device-truncated": _zero_trusted(lambda rig, t: (ACCOUNT, FP, t[:-2])),
    "is_trusted_device-other-browser": _zero_trusted(lambda rig, t: (ACCOUNT, OTHER_FP, t)),
    "is_trusted_device-other-account": _zero_trusted(lambda rig, t: (OTHER_ACCOUNT, FP, t)),
    "forget_device-forged": _zero_forget(lambda rig, t: (ACCOUNT, _forged(t))),
    "forget_device-garbage": _zero_forget(lambda rig, t: (ACCOUNT, "garbage")),
    "forget_device-none": _zero_forget(lambda rig, t: (ACCOUNT, None)),
    "forget_device-other-account": _zero_forget(lambda rig, t: (OTHER_ACCOUNT, t)),
    "release-none": _zero_release_none,
    "forget_device_id-not-an-id": lambda rig: (
        lambda: rig.codes.forget_device_id(ACCOUNT, "no such device"),
        lambda r: r is False,
    ),
}


def _measure(rig: Rig, observer: redis.Redis, thunk: Callable[[], Any]) -> tuple[Any, list, Any]:
    """``(result, commands the client sent, script calls the server ran)`` around ``thunk``."""
    first = len(rig.client.sent)
    before = _script_calls(observer)
    result = thunk()
    after = _script_calls(observer)
    after.subtract(before)
    return result, rig.client.sent[first:], +after


@pytest.mark.parametrize("op", list(ONE_TRIP))
def test_r6_2_each_operation_is_one_evalsha(rig: Rig, observer: redis.Redis, op: str) -> None:
    """R6.2: exactly one command from the client, an EVALSHA, and one script run."""
    thunk, check = ONE_TRIP[op](rig)
    result, sent, ran = _measure(rig, observer, thunk)
    assert check(result), result
    assert sent == ["EVALSHA"]
    assert ran == Counter({"evalsha": 1})


@pytest.mark.parametrize("op", list(ZERO_TRIPS))
def test_r6_2_malformed_code_and_forged_token_cost_no_round_trip(
    rig: Rig, observer: redis.Redis, op: str
) -> None:
    """R6.2, R2.1, R4.3: rejected before the store is asked."""
    thunk, check = ZERO_TRIPS[op](rig)
    result, sent, ran = _measure(rig, observer, thunk)
    assert check(result), result
    assert sent == []
    assert ran == Counter()


def test_bad_arguments_cost_no_round_trip(rig: Rig, observer: redis.Redis) -> None:
    """R3.1, R7: a programming error raises before anything is read or written."""
    code = rig.codes.request_code(ACCOUNT).code
    calls: list[Callable[[], Any]] = [
        lambda: rig.codes.verify_code(ACCOUNT, code, remember_device=True),
        lambda: rig.codes.verify_code(ACCOUNT, code, remember_device=True, fingerprint=""),
        lambda: rig.codes.request_code(""),
        lambda: rig.codes.verify_code(ACCOUNT, 123456),
        lambda: rig.limiter.hit(""),
    ]
    for call in calls:
        with pytest.raises((TypeError, ValueError)):
            _measure(rig, observer, call)
    _, sent, ran = _measure(rig, observer, lambda: rig.codes.verify_code(ACCOUNT, code))
    assert sent == ["EVALSHA"]  # and the code was still usable
    assert ran == Counter({"evalsha": 1})


# -- scripts reloaded after SCRIPT FLUSH ----------------------------------------------------------


def test_script_flush_between_calls_standalone(
    own_server: servers.Server, observer: redis.Redis, prefix: str
) -> None:
    """A script the server lacks is loaded and run again: EVALSHA, SCRIPT LOAD, EVALSHA."""
    client = CountingRedis(port=own_server.port)
    clock = FakeClock()
    backend = RedisBackend(client, prefix=prefix)
    codes = SecurityCodes(backend, secret=SECRET, clock=clock)
    limiter = SlidingWindowLimiter(backend, limit=2, window=HOUR, clock=clock)
    try:
        limiter.peek("warm-up")  # the first operation also checks the eviction policy (R8.2)
        state: dict[str, Any] = {}

        def request() -> Any:
            state["code"] = codes.request_code(ACCOUNT).code
            return state["code"]

        def remember() -> Any:
            verified = codes.verify_code(
                ACCOUNT, state["code"], remember_device=True, fingerprint=FP
            )
            state["token"] = verified.device_token
            return verified

        def hit() -> Any:
            decision = limiter.hit("k")
            state["entry"] = decision.entry
            return decision

        steps: list[tuple[Callable[[], Any], Callable[[Any], bool]]] = [
            (request, lambda r: len(r) == 6),
            (
                lambda: codes.verify_code(ACCOUNT, _wrong(state["code"])),
                _refused(Reason.WRONG_CODE),
            ),
            (remember, lambda r: isinstance(r, Verified)),
            (lambda: codes.is_trusted_device(ACCOUNT, state["token"], FP), lambda r: r is True),
            (lambda: codes.forget_device(ACCOUNT, state["token"]), lambda r: r is True),
            (lambda: codes.is_trusted_device(ACCOUNT, state["token"], FP), lambda r: r is False),
            (lambda: codes.forget_all_devices(ACCOUNT), lambda r: r == 0),
            (lambda: codes.unlock(ACCOUNT), lambda r: r is False),
            (hit, lambda d: d.allowed),
            (lambda: limiter.peek("k"), lambda d: d.remaining == 1),
            (lambda: limiter.release("k", state["entry"]), lambda r: r is None),
            (lambda: limiter.peek("k"), lambda d: d.remaining == 2),
            (hit, lambda d: d.allowed),
            (lambda: limiter.reset("k"), lambda r: r is None),
        ]
        for run, check in steps:
            observer.script_flush()
            first = len(client.sent)
            result = run()
            assert check(result), result
            assert client.sent[first:] == ["EVALSHA", "SCRIPT LOAD", "EVALSHA"]
        # once reloaded, back to one round trip
        observer.script_flush()
        codes.unlock(ACCOUNT)
        first = len(client.sent)
        codes.unlock(ACCOUNT)
        assert client.sent[first:] == ["EVALSHA"]
    finally:
        client.close()


@pytest.fixture
def cluster_client(cluster_url: str) -> Iterator[RedisCluster]:
    """A client of the session's cluster; deletes the keys of this module's prefixes after."""
    client = RedisCluster.from_url(cluster_url)
    yield client
    for key in list(client.scan_iter(match="ameli-otp-test-redis-*", count=1000)):
        client.delete(key)
    client.close()


def _node_clients(nodes: list[servers.Server]) -> list[redis.Redis]:
    return [redis.Redis(port=node.port) for node in nodes]


def test_script_flush_between_calls_cluster(
    cluster_client: RedisCluster, redis_cluster: list[servers.Server], prefix: str
) -> None:
    """SCRIPT FLUSH on every node of the cluster: each call reloads its script and works."""
    clock = FakeClock()
    codes = SecurityCodes(RedisBackend(cluster_client, prefix=prefix), secret=SECRET, clock=clock)
    nodes = _node_clients(redis_cluster)
    try:
        accounts = [f"acct-{i}" for i in range(12)]  # spread over the nodes
        issued = {}
        for account in accounts:
            for node in nodes:
                node.script_flush()
            issued[account] = codes.request_code(account)
            assert isinstance(issued[account], Issued)
        for account in accounts:
            for node in nodes:
                node.script_flush()
            verified = codes.verify_code(
                account, issued[account].code, remember_device=True, fingerprint=FP
            )
            assert isinstance(verified, Verified)
            for node in nodes:
                node.script_flush()
            assert codes.is_trusted_device(account, verified.device_token, FP) is True
            for node in nodes:
                node.script_flush()
            codes.forget_all_devices(account)
            assert codes.is_trusted_device(account, verified.device_token, FP) is False
    finally:
        for node in nodes:
            node.close()


# -- R8.1: a retried EVALSHA (the client's retry after a lost reply) changes nothing twice --------


class ReplayingRedis(redis.Redis):
    """Runs every EVALSHA twice and answers with the second reply.

    What a client retry does when the reply to a script that did run was lost (a
    timeout, a reset connection): the same script with the same ARGV runs again.
    tests/test_faults.py does the same through a real reply-dropping proxy.
    """

    def execute_command(self, *args: Any, **options: Any) -> Any:
        if str(args[0]).upper() == "EVALSHA":
            super().execute_command(*args, **options)  # this reply is "lost"
        return super().execute_command(*args, **options)


def test_r8_1_a_replayed_script_returns_the_first_outcome_and_changes_nothing(
    own_server: servers.Server, plain: redis.Redis, prefix: str, clock: FakeClock
) -> None:
    replaying = ReplayingRedis(port=own_server.port)
    try:
        retried = RedisBackend(replaying, prefix=prefix)
        codes = SecurityCodes(retried, secret=SECRET, clock=clock)
        honest = SecurityCodes(RedisBackend(plain, prefix=prefix), secret=SECRET, clock=clock)
        limiter = SlidingWindowLimiter(retried, limit=5, window=HOUR, clock=clock)

        # request_code: each replay finds its request id and changes nothing
        results = [codes.request_code(ACCOUNT) for _ in range(5)]
        assert [r.remaining for r in results] == [4, 3, 2, 1, 0]
        (state,) = _keys(plain, prefix)
        assert len(_window_entries(plain, state)) == 5
        assert honest.request_code(ACCOUNT) == Refused(Reason.TOO_MANY_CODES, retry_after=HOUR)
        assert honest.verify_code(ACCOUNT, results[4].code) == Verified()  # the code it was given

        # verify_code, right code: consumed by the first run, Verified to its replay, with
        # the same device token, and the device is trusted
        clock.advance(hours=1)
        code = honest.request_code(OTHER_ACCOUNT).code
        verified = codes.verify_code(OTHER_ACCOUNT, code, remember_device=True, fingerprint=FP)
        assert isinstance(verified, Verified)
        assert honest.is_trusted_device(OTHER_ACCOUNT, verified.device_token, FP)
        assert honest.verify_code(OTHER_ACCOUNT, code) == Refused(Reason.NO_CODE)

        # verify_code, wrong code: each guess counts once (3 per code, not 2)
        code = honest.request_code(OTHER_ACCOUNT).code
        left = [codes.verify_code(OTHER_ACCOUNT, _wrong(code)) for _ in range(2)]
        assert [r.attempts_left for r in left] == [2, 1]
        assert honest.verify_code(OTHER_ACCOUNT, code) == Verified()  # still the user's code

        # 10 wrong guesses lock the account, never fewer; the locking guess's replay says so
        reasons = []
        for guess in range(10):
            if guess % 3 == 0:  # a new code every 3 guesses (3 attempts per code)
                code = honest.request_code(ACCOUNT).code
            reasons.append(codes.verify_code(ACCOUNT, _wrong(code)).reason)
        wrong, burned = Reason.WRONG_CODE, Reason.TOO_MANY_ATTEMPTS
        assert reasons == [wrong, wrong, burned] * 3 + [Reason.ACCOUNT_LOCKED]
        assert honest.request_code(ACCOUNT) == Refused(
            Reason.ACCOUNT_LOCKED, retry_after=timedelta(hours=24)
        )

        # the limiter: each hit counts once
        assert [limiter.hit("k").remaining for _ in range(5)] == [4, 3, 2, 1, 0]
        assert not limiter.hit("k").allowed
    finally:
        replaying.close()


# -- R6.3: an unreachable store raises BackendError, never a result ------------------------------


@pytest.fixture
def lonely_server() -> Iterator[servers.Server]:
    """A server for one test, which may stop and restart it."""
    with servers.standalone() as server:
        yield server


def test_r6_3_server_stopped_mid_flow_fails_closed_then_recovers(
    lonely_server: servers.Server, prefix: str
) -> None:
    client = _quiet_client(lonely_server.port)
    clock = FakeClock()
    backend = RedisBackend(client, prefix=prefix)
    codes = SecurityCodes(backend, secret=SECRET, clock=clock)
    limiter = SlidingWindowLimiter(backend, limit=5, window=HOUR, clock=clock)
    try:
        token = _token(Rig(codes, limiter, client, clock))
        code = codes.request_code(ACCOUNT).code
        entry = limiter.hit("k").entry

        lonely_server.stop()
        calls: dict[str, Callable[[], Any]] = {
            "request_code": lambda: codes.request_code(ACCOUNT),
            "verify_code": lambda: codes.verify_code(ACCOUNT, code),
            "verify_code-remember": lambda: codes.verify_code(
                ACCOUNT, code, remember_device=True, fingerprint=FP
            ),
            "is_trusted_device": lambda: codes.is_trusted_device(ACCOUNT, token, FP),
            "forget_device": lambda: codes.forget_device(ACCOUNT, token),
            "forget_all_devices": lambda: codes.forget_all_devices(ACCOUNT),
            "unlock": lambda: codes.unlock(ACCOUNT),
            "hit": lambda: limiter.hit("k"),
            "peek": lambda: limiter.peek("k"),
            "release": lambda: limiter.release("k", entry),
            "reset": lambda: limiter.reset("k"),
        }
        for name, call in calls.items():
            with pytest.raises(BackendError) as info:
                call()
            assert isinstance(info.value.__cause__, redis.RedisError), name

        # Back up, empty: nothing was saved (tests/servers.py runs with --save "" and no AOF).
        # The old code, the device and the window are gone: that is what persistence is for.
        lonely_server.start()
        assert codes.verify_code(ACCOUNT, code) == Refused(Reason.NO_CODE)
        assert codes.is_trusted_device(ACCOUNT, token, FP) is False
        issued = codes.request_code(ACCOUNT)
        assert isinstance(issued, Issued)
        assert issued.remaining == 4  # the window restarted
        assert codes.verify_code(ACCOUNT, issued.code) == Verified()
        assert limiter.hit("k").remaining == 4
    finally:
        client.close()


def test_r6_3_server_stopped_async_face_fails_closed(
    lonely_server: servers.Server, prefix: str
) -> None:
    loop = asyncio.new_event_loop()
    client = redis.asyncio.Redis(
        port=lonely_server.port,
        socket_timeout=1,
        socket_connect_timeout=1,
        retry=redis.asyncio.retry.Retry(NoBackoff(), 0),
    )
    codes = SyncFace(
        AsyncSecurityCodes(
            AsyncRedisBackend(client, prefix=prefix), secret=SECRET, clock=FakeClock()
        ),
        loop,
    )
    try:
        code = codes.request_code(ACCOUNT).code
        lonely_server.stop()
        for call in (lambda: codes.request_code(ACCOUNT), lambda: codes.verify_code(ACCOUNT, code)):
            with pytest.raises(BackendError) as info:
                call()
            assert isinstance(info.value.__cause__, redis.RedisError)
        lonely_server.start()
        assert isinstance(codes.request_code(ACCOUNT), Issued)
    finally:
        loop.run_until_complete(client.aclose())
        loop.close()


def test_r6_3_nothing_listening_raises_backend_error(prefix: str) -> None:
    client = _quiet_client(servers.free_port(), timeout=0.5)
    codes = SecurityCodes(RedisBackend(client, prefix=prefix), secret=SECRET)
    try:
        with pytest.raises(BackendError) as info:
            codes.request_code(ACCOUNT)
        assert isinstance(info.value.__cause__, redis.ConnectionError)
        with pytest.raises(BackendError):
            codes.verify_code(ACCOUNT, "123456")
    finally:
        client.close()


def test_r6_3_server_that_never_answers_times_out_into_backend_error(prefix: str) -> None:
    """socket_timeout bounds the wait: a silent peer (accepts, never replies) -> BackendError."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel completes the handshake; nobody ever reads or answers
        client = _quiet_client(silent.getsockname()[1], timeout=0.2)
        codes = SecurityCodes(RedisBackend(client, prefix=prefix), secret=SECRET)
        try:
            with pytest.raises(BackendError) as info:
                codes.verify_code(ACCOUNT, "123456")
            assert isinstance(info.value.__cause__, redis.RedisError)
        finally:
            client.close()


# -- R5.2: every key has a TTL, set from the rule durations with slack ----------------------------


def _check_ttls(client: Any, keys: list[bytes], policy: Policy, limiter_window: timedelta) -> None:
    """Every key has 0 < PTTL <= the longest rule that can need it + SLACK_MS; a replay
    record (``:q``) lives SLACK_MS after its last write."""
    longest = max(_ms(d) for d in (policy.code_window, policy.lockout, policy.device_trust_ttl))
    assert keys
    for key in keys:
        pttl = client.pttl(key)
        assert b":l:" in key or key.endswith((b":s", b":q")), key
        rule = _ms(limiter_window) if b":l:" in key else longest
        bound = 0 if key.endswith(b":q") else rule
        assert 0 < pttl <= bound + SLACK_MS, (key, pttl)


def test_every_key_has_a_ttl_after_a_full_flow(
    plain: redis.Redis, prefix: str, clock: FakeClock
) -> None:
    backend = RedisBackend(plain, prefix=prefix)
    policy = Policy()
    codes = SecurityCodes(backend, secret=SECRET, clock=clock)
    limiter = SlidingWindowLimiter(backend, limit=3, window=timedelta(minutes=10), clock=clock)

    first = codes.request_code(ACCOUNT)
    assert codes.verify_code(ACCOUNT, first.code, remember_device=True, fingerprint=FP).ok
    results = []
    for guesses in (3, 3, 3, 1):  # 10 consecutive failures: locked at the last one
        code = codes.request_code(ACCOUNT).code
        clock.advance(seconds=30)
        results += [codes.verify_code(ACCOUNT, _wrong(code)) for _ in range(guesses)]
    assert results[-1] == Refused(Reason.ACCOUNT_LOCKED, retry_after=policy.lockout)
    assert [r.reason for r in results].count(Reason.TOO_MANY_ATTEMPTS) == 3

    other = codes.request_code(OTHER_ACCOUNT).code
    codes.verify_code(OTHER_ACCOUNT, _wrong(other))
    for key in ("a", "b", "b", "b", "b"):
        limiter.hit(key)

    keys = _all_keys(plain, prefix)
    # two accounts (one record each, and each a replay record: they changed within the
    # minute), two limiter keys
    assert len(keys) == 2 * 2 + 2
    _check_ttls(plain, keys, policy, limiter.window)


@pytest.mark.parametrize(
    "case",
    [
        # the support desk unlocks the account between two wrong guesses of one code
        "unlock-before-the-last-guess",
        # one attempt per code: the first wrong guess of a fresh account burns the code
        "one-attempt-per-code",
    ],
)
def test_every_key_keeps_a_ttl_when_a_wrong_guess_burns_the_code(
    plain: redis.Redis, prefix: str, clock: FakeClock, case: str
) -> None:
    """R5.2: a burned code must not leave a key without expiry.

    When the state hash holds only the code's fields at the guess that burns the
    code (TOO_MANY_ATTEMPTS), verify_code.lua deletes them (the hash, and its TTL,
    go away) and then writes the failure count into a new hash without a TTL.
    """
    policy = Policy(max_attempts_per_code=1) if case == "one-attempt-per-code" else Policy()
    codes = SecurityCodes(
        RedisBackend(plain, prefix=prefix), secret=SECRET, policy=policy, clock=clock
    )
    code = codes.request_code(ACCOUNT).code
    for _ in range(policy.max_attempts_per_code - 1):
        assert codes.verify_code(ACCOUNT, _wrong(code)).reason == Reason.WRONG_CODE
    codes.unlock(ACCOUNT)
    assert codes.verify_code(ACCOUNT, _wrong(code)) == Refused(Reason.TOO_MANY_ATTEMPTS)
    _check_ttls(plain, _all_keys(plain, prefix), policy, HOUR)


def test_every_key_has_a_ttl_after_each_step_of_random_histories(
    plain: redis.Redis, prefix: str, clock: FakeClock
) -> None:
    """A seeded random walk over every operation and a few policies: no key ever lives forever."""
    rng = random.Random(20250201)
    policies = [
        Policy(),
        Policy(max_attempts_per_code=2, max_failed_attempts=3, lockout=timedelta(minutes=30)),
        Policy(max_unused_codes=2, max_failed_attempts=2, device_trust_ttl=timedelta(days=1)),
        Policy(max_attempts_per_code=1, max_failed_attempts=4),
    ]
    steps = [0, 0, 1, 1_000, 60_000, 600_000, 3_600_000, 86_400_000]
    for n, policy in enumerate(policies):
        pfx = f"{prefix}-{n}"
        codes = SecurityCodes(
            RedisBackend(plain, prefix=pfx), secret=SECRET, policy=policy, clock=clock
        )
        accounts = ["a", "b", "c"]
        current: dict[str, str] = {}
        tokens: dict[str, list[str]] = {a: [] for a in accounts}
        history: list[str] = []
        for _ in range(250):
            clock.advance(rng.choice(steps) / 1000)
            account = rng.choice(accounts)
            op = rng.choice(
                ["request", "request", "right", "remember", "wrong", "wrong", "wrong",
                 "unlock", "forget", "forget_all", "trusted"]
            )  # fmt: skip
            history.append(f"{op}({account})")
            if op == "request":
                issued = codes.request_code(account)
                if isinstance(issued, Issued):
                    current[account] = issued.code
            elif op in ("right", "remember", "wrong") and account in current:
                code = current[account] if op != "wrong" else _wrong(current[account])
                remember = op == "remember"
                result = codes.verify_code(
                    account, code, remember_device=remember, fingerprint=FP if remember else None
                )
                if isinstance(result, Verified) and result.device_token:
                    tokens[account].append(result.device_token)
            elif op == "unlock":
                codes.unlock(account)
            elif op == "forget" and tokens[account]:
                codes.forget_device(account, tokens[account].pop(0))
            elif op == "forget_all":
                codes.forget_all_devices(account)
            elif op == "trusted" and tokens[account]:
                codes.is_trusted_device(account, tokens[account][-1], FP)
            for key in _keys(plain, pfx):
                assert plain.pttl(key) > 0, (key, policy, history[-12:])


@pytest.mark.parametrize(
    "start",
    [datetime(2031, 6, 1, 12, tzinfo=UTC), datetime(2001, 3, 1, 12, tzinfo=UTC)],
    ids=["2031", "2001"],
)
def test_clock_far_from_server_time(plain: redis.Redis, prefix: str, start: datetime) -> None:
    """R5: decisions use the injected clock; PEXPIRE is relative, so TTLs stay sane."""
    clock = FakeClock(start)
    policy = Policy()
    codes = SecurityCodes(RedisBackend(plain, prefix=prefix), secret=SECRET, clock=clock)
    issued = [codes.request_code(ACCOUNT) for _ in range(5)]
    assert [i.remaining for i in issued] == [4, 3, 2, 1, 0]
    assert issued[-1].expires_at == start + policy.code_ttl
    assert codes.request_code(ACCOUNT) == Refused(Reason.TOO_MANY_CODES, retry_after=HOUR)
    _check_ttls(plain, _all_keys(plain, prefix), policy, HOUR)

    clock.advance(minutes=15)
    assert codes.verify_code(ACCOUNT, issued[-1].code) == Refused(Reason.EXPIRED)
    assert codes.request_code(ACCOUNT) == Refused(
        Reason.TOO_MANY_CODES, retry_after=timedelta(minutes=45)
    )
    clock.advance(minutes=45)  # the five entries stop counting
    again = codes.request_code(ACCOUNT)
    assert isinstance(again, Issued)
    assert again.remaining == 4
    assert codes.verify_code(ACCOUNT, again.code, remember_device=True, fingerprint=FP).ok
    _check_ttls(plain, _all_keys(plain, prefix), policy, HOUR)


# -- key layout: one hash tag, one slot per account ---------------------------------------------

_TAG = re.compile(rb"\{([^{}]*)\}")


def test_an_account_is_one_key_named_by_a_hash_tag(
    plain: redis.Redis, prefix: str, codes: SecurityCodes
) -> None:
    code = codes.request_code(ACCOUNT).code
    codes.verify_code(ACCOUNT, _wrong(code))
    keys = _keys(plain, prefix)
    assert len(keys) == 1
    tag = _TAG.search(keys[0]).group(1)  # type: ignore[union-attr]
    assert keys == [f"{prefix}:{{{tag.decode()}}}:s".encode()]
    assert plain.type(keys[0]) == b"hash"
    assert re.fullmatch(rb"[A-Za-z0-9_-]{16}", tag)  # a keyed hash, not the account


def test_fifty_accounts_on_the_cluster(
    cluster_client: RedisCluster, redis_cluster: list[servers.Server], prefix: str
) -> None:
    """A full flow per account; each account's keys in one slot; keys on every node."""
    clock = FakeClock()
    backend = RedisBackend(cluster_client, prefix=prefix)
    codes = SecurityCodes(backend, secret=SECRET, clock=clock)
    limiter = SlidingWindowLimiter(backend, limit=3, window=HOUR, clock=clock, secret=SECRET)
    accounts = [f"1{i:012d}" for i in range(50)]
    for account in accounts:
        first = codes.request_code(account)
        assert codes.verify_code(account, _wrong(first.code)).reason == Reason.WRONG_CODE
        second = codes.request_code(account)
        assert second.remaining == 3
        if first.code != second.code:  # replaced (R1.6): a wrong guess now
            assert codes.verify_code(account, first.code).reason == Reason.WRONG_CODE
        verified = codes.verify_code(account, second.code, remember_device=True, fingerprint=FP)
        assert isinstance(verified, Verified)
        assert codes.is_trusted_device(account, verified.device_token, FP) is True
        assert codes.is_trusted_device(account, verified.device_token, OTHER_FP) is False
        codes.forget_device(account, verified.device_token)
        assert codes.is_trusted_device(account, verified.device_token, FP) is False
        third = codes.request_code(account)
        assert third.remaining == 3
        assert limiter.hit(account).allowed
    for account in accounts:
        assert limiter.peek(account).remaining == 2

    by_tag: dict[bytes, list[bytes]] = {}
    nodes = _node_clients(redis_cluster)
    try:
        per_node = []
        for node in nodes:
            keys = _keys(node, prefix)
            per_node.append(len(keys))
            for key in keys:
                if b":l:" not in key:
                    by_tag.setdefault(_TAG.search(key).group(1), []).append(key)  # type: ignore[union-attr]
    finally:
        for node in nodes:
            node.close()
    assert sum(per_node) == 50 + 50  # one record per account, one per limiter key
    assert sum(1 for n in per_node if n) > 1, per_node
    assert all(per_node), per_node  # all three nodes hold keys
    assert len(by_tag) == 50
    for keys in by_tag.values():
        assert [k.rsplit(b":", 1)[1] for k in keys] == [b"s"]


# -- R4.2: nothing in clear on the server ------------------------------------------------------


def _forms(value: str) -> list[bytes]:
    raw = value.encode()
    return [
        raw.hex().encode(),
        raw.hex().upper().encode(),
        b64encode(raw).rstrip(b"="),
        urlsafe_b64encode(raw).rstrip(b"="),
    ]


def _server_dump(client: redis.Redis, prefix: str) -> bytes:
    out = []
    for key in _keys(client, prefix):
        kind = client.type(key)
        if kind == b"hash":
            value: Any = sorted(client.hgetall(key).items())
        elif kind == b"zset":
            value = client.zrange(key, 0, -1, withscores=True)
        else:
            value = kind
        out += [key, kind, repr(value).encode(), bytes(client.dump(key) or b"")]
    return b"\n".join(out)


@pytest.mark.parametrize("length", [6, 12])
def test_server_holds_no_account_code_or_fingerprint(
    plain: redis.Redis, prefix: str, clock: FakeClock, length: int
) -> None:
    backend = RedisBackend(plain, prefix=prefix)
    codes = SecurityCodes(backend, secret=SECRET, policy=Policy(code_length=length), clock=clock)
    limiter = SlidingWindowLimiter(backend, limit=5, window=HOUR, clock=clock, secret=SECRET)
    secrets_seen = [ACCOUNT, OTHER_ACCOUNT, FP, OTHER_FP]
    for account, fingerprint in ((ACCOUNT, FP), (OTHER_ACCOUNT, OTHER_FP)):
        used = codes.request_code(account).code
        codes.verify_code(account, _wrong(used))
        codes.verify_code(account, used, remember_device=True, fingerprint=fingerprint)
        for _ in range(3):
            secrets_seen.append(codes.request_code(account).code)  # the last one is active
        codes.verify_code(account, _wrong(secrets_seen[-1]))
        secrets_seen.append(used)
        limiter.hit(account)  # a limiter with a secret stores the key as a keyed hash
    dump = _server_dump(plain, prefix)
    assert dump.count(b"\n") > 10
    for value in secrets_seen:
        # digits may occur inside a stored timestamp (13 digits) or a random id: only a run
        # that stands alone would be the value itself
        alone = re.compile(
            rb"(?<![0-9A-Za-z_-])" + re.escape(value.encode()) + rb"(?![0-9A-Za-z_-])"
        )
        assert not alone.search(dump), value
        for form in _forms(value):
            assert form not in dump, (value, form)
    for fingerprint in (FP, OTHER_FP):
        assert fingerprint.encode() not in dump


# -- R6.1: races between threads and between processes --------------------------------------------

_BARRIER: Any = None


def _init_worker(barrier: Any) -> None:
    global _BARRIER  # a process pool hands a barrier to its workers only this way
    _BARRIER = barrier


@dataclass(frozen=True)
class Task:
    """One worker's part of a race (picklable: processes get it as is)."""

    op: str
    url: str
    prefix: str
    account: str
    clock_ms: int
    policy: dict[str, Any]
    code: str = ""


def _describe(result: Any) -> tuple[Any, ...]:
    if isinstance(result, Issued):
        return ("issued", result.remaining)
    if isinstance(result, Verified):
        return ("verified",)
    retry = None if result.retry_after is None else _ms(result.retry_after)
    return (result.reason.value, retry, result.attempts_left)


def _contend(task: Task, backend: RedisBackend | None = None, barrier: Any = None) -> tuple:
    """Wait for every worker, then make one call; a process makes its own client."""
    client = redis.Redis.from_url(task.url) if backend is None else None
    try:
        store = backend if backend is not None else RedisBackend(client, prefix=task.prefix)
        codes = SecurityCodes(
            store,
            secret=SECRET,
            policy=Policy(**task.policy),
            clock=FakeClock(task.clock_ms / 1000),
        )
        (barrier or _BARRIER).wait(BARRIER_TIMEOUT)
        if task.op == "request":
            return _describe(codes.request_code(task.account))
        return _describe(codes.verify_code(task.account, task.code))
    finally:
        if client is not None:
            client.close()


@pytest.fixture(scope="module")
def process_pool() -> Iterator[Any]:
    """16 worker processes (spawn: each starts clean and makes its own client)."""
    ctx = multiprocessing.get_context("spawn")
    pool = ctx.Pool(WORKERS, initializer=_init_worker, initargs=(ctx.Barrier(WORKERS),))
    try:
        yield pool
    finally:
        pool.close()
        pool.join()


START_MS = 1_738_368_000_000
LOCK_POLICY = {"max_attempts_per_code": 10, "max_failed_attempts": 4}


def _race(mode: str, request: pytest.FixtureRequest, url: str, tasks: list[Task]) -> list[tuple]:
    if mode == "processes":
        pool = request.getfixturevalue("process_pool")
        return list(pool.map(_contend, tasks, chunksize=1))
    client = redis.Redis.from_url(url)  # threads share one client and its connection pool
    try:
        backend = RedisBackend(client, prefix=tasks[0].prefix)
        barrier = threading.Barrier(len(tasks))
        with ThreadPoolExecutor(len(tasks)) as pool:
            return list(pool.map(lambda t: _contend(t, backend, barrier), tasks))
    finally:
        client.close()


def _prepare(url: str, prefix: str, account: str, policy: dict[str, Any]) -> str:
    """Issue a code in the parent, at START_MS, and return it for the workers."""
    client = redis.Redis.from_url(url)
    try:
        codes = SecurityCodes(
            RedisBackend(client, prefix=prefix),
            secret=SECRET,
            policy=Policy(**policy),
            clock=FakeClock(START_MS / 1000),
        )
        return codes.request_code(account).code
    finally:
        client.close()


ROUNDS = 3
MODES = ["threads", "processes"]


@pytest.mark.parametrize("mode", MODES)
def test_r6_1_race_request_code_issues_at_most_five(
    mode: str, request: pytest.FixtureRequest, own_url: str
) -> None:
    for n in range(ROUNDS):
        pfx, account = _prefix(), f"race-request-{n}"
        tasks = [Task("request", own_url, pfx, account, START_MS, {}) for _ in range(WORKERS)]
        results = Counter(_race(mode, request, own_url, tasks))
        assert results == Counter(
            {("issued", left): 1 for left in (4, 3, 2, 1, 0)}
            | {("too_many_codes", _ms(HOUR), None): WORKERS - 5}
        )


@pytest.mark.parametrize("mode", MODES)
def test_r6_1_race_right_code_verifies_once(
    mode: str, request: pytest.FixtureRequest, own_url: str
) -> None:
    for n in range(ROUNDS):
        pfx, account = _prefix(), f"race-right-{n}"
        code = _prepare(own_url, pfx, account, {})
        tasks = [
            Task("verify", own_url, pfx, account, START_MS + 1, {}, code) for _ in range(WORKERS)
        ]
        results = Counter(_race(mode, request, own_url, tasks))
        assert results == Counter({("verified",): 1, ("no_code", None, None): WORKERS - 1})


@pytest.mark.parametrize("mode", MODES)
def test_r6_1_race_wrong_guesses_never_exceed_attempts_per_code(
    mode: str, request: pytest.FixtureRequest, own_url: str
) -> None:
    for n in range(ROUNDS):
        pfx, account = _prefix(), f"race-wrong-{n}"
        code = _prepare(own_url, pfx, account, {})
        tasks = [
            Task("verify", own_url, pfx, account, START_MS + 1, {}, _wrong(code))
            for _ in range(WORKERS)
        ]
        results = Counter(_race(mode, request, own_url, tasks))
        assert results == Counter(
            {
                ("wrong_code", None, 2): 1,
                ("wrong_code", None, 1): 1,
                ("too_many_attempts", None, None): 1,
                ("no_code", None, None): WORKERS - 3,
            }
        )


@pytest.mark.parametrize("mode", MODES)
def test_r6_1_race_wrong_guesses_lock_exactly_once(
    mode: str, request: pytest.FixtureRequest, own_url: str
) -> None:
    """Each worker's clock is 1 ms apart, so only the guess that locked sees exactly 24 h."""
    lockout = _ms(Policy().lockout)
    limit = LOCK_POLICY["max_failed_attempts"]
    for n in range(ROUNDS):
        pfx, account = _prefix(), f"race-lock-{n}"
        code = _prepare(own_url, pfx, account, LOCK_POLICY)
        tasks = [
            Task("verify", own_url, pfx, account, START_MS + 1 + i, LOCK_POLICY, _wrong(code))
            for i in range(WORKERS)
        ]
        results = _race(mode, request, own_url, tasks)
        wrong = sorted(r[2] for r in results if r[0] == "wrong_code")
        locked_now = [r for r in results if r == ("account_locked", lockout, None)]
        locked = [r for r in results if r[0] == "account_locked"]
        assert wrong == [7, 8, 9]  # every failure counted once: no lost update
        assert len(locked_now) == 1
        assert len(wrong) + len(locked_now) == limit
        assert len(locked) == WORKERS - (limit - 1)
        assert all(r[0] in ("wrong_code", "account_locked") for r in results), results


# -- wrong clients and prefixes ------------------------------------------------------------------


def test_wrong_client_face_raises_type_error_naming_client() -> None:
    aclient = redis.asyncio.Redis()
    try:
        with pytest.raises(TypeError, match="client"):
            RedisBackend(aclient)  # type: ignore[arg-type]
    finally:
        asyncio.run(aclient.aclose())
    client = redis.Redis()
    try:
        with pytest.raises(TypeError, match="client"):
            AsyncRedisBackend(client)  # type: ignore[arg-type]
    finally:
        client.close()
    for thing in (None, "redis://localhost", object()):
        with pytest.raises(TypeError, match="client"):
            RedisBackend(thing)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="client"):
            AsyncRedisBackend(thing)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("prefix", "error"),
    [("", ValueError), ("a{b", ValueError), ("a}b", ValueError), ("{x}", ValueError),
     (None, TypeError), (123, TypeError), (b"ameli", TypeError)],
)  # fmt: skip
def test_bad_prefix_raises(prefix: Any, error: type[Exception]) -> None:
    client = redis.Redis()
    aclient = redis.asyncio.Redis()
    try:
        with pytest.raises(error, match="prefix"):
            RedisBackend(client, prefix=prefix)
        with pytest.raises(error, match="prefix"):
            AsyncRedisBackend(aclient, prefix=prefix)
    finally:
        client.close()
        asyncio.run(aclient.aclose())


# -- memory per account ---------------------------------------------------------------------------

MAX_BYTES_PER_ACCOUNT = 600


def test_memory_per_account(plain: redis.Redis, prefix: str, codes: SecurityCodes) -> None:
    """5 window entries, an active code, a failure count and one trusted device."""
    first = codes.request_code(ACCOUNT)
    assert codes.verify_code(ACCOUNT, first.code, remember_device=True, fingerprint=FP).ok
    last = [codes.request_code(ACCOUNT) for _ in range(5)][-1]
    assert last.remaining == 0
    assert codes.verify_code(ACCOUNT, _wrong(last.code)).reason == Reason.WRONG_CODE
    keys = _keys(plain, prefix)
    assert len(keys) == 1
    assert len(_window_entries(plain, keys[0])) == 5
    fields = plain.hkeys(keys[0])
    assert sorted(f for f in fields if not f.startswith(b"d:")) == [
        b"f",
        b"h",
        b"l",
        b"n",
        b"t",
        b"w",
    ]
    assert sum(f.startswith(b"d:") for f in fields) == 1
    server = plain.info("server")
    name = "valkey" if "valkey_version" in server else "redis"
    version = server.get("valkey_version") or server.get("redis_version")
    # the compact encoding: Redis 7.0 renamed ziplist to listpack (Valkey reports redis_version
    # 7.2.4, so it takes listpack too)
    major = int(str(server["redis_version"]).split(".")[0])
    compact = b"listpack" if major >= 7 else b"ziplist"
    assert plain.object("encoding", keys[0]) == compact
    total = plain.memory_usage(keys[0], samples=0)
    allocator = plain.info("memory").get("mem_allocator")
    print(f"\nMEMORY USAGE per account ({name} {version}, {allocator}): {total} bytes")
    assert total <= MAX_BYTES_PER_ACCOUNT


# -- from_url: bad arguments raise naming them, before anything is sent (R7.4) --------------------


@pytest.mark.parametrize("cls", [RedisBackend, AsyncRedisBackend])
@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"url": b"redis://x"}, TypeError, "url"),
        ({"cluster": 1}, TypeError, "cluster"),
        ({"max_connections": 0}, ValueError, "max_connections"),
        ({"max_connections": True}, TypeError, "max_connections"),
        ({"connect_timeout": 0}, ValueError, "connect_timeout"),
        ({"connect_timeout": "1"}, TypeError, "connect_timeout"),
        ({"socket_timeout": float("inf")}, ValueError, "socket_timeout"),
        ({"pool_timeout": -1}, ValueError, "pool_timeout"),
        ({"allow_eviction": "yes"}, TypeError, "allow_eviction"),
        ({"prefix": "a{b"}, ValueError, "prefix"),
    ],
)
def test_r7_4_from_url_bad_arguments_raise_naming_them(
    cls: Any, kwargs: dict[str, Any], error: type[Exception], name: str
) -> None:
    args = {"url": f"redis://127.0.0.1:{servers.free_port()}/0", **kwargs}
    with pytest.raises(error, match=name):
        cls.from_url(**args)


def test_from_url_sends_nothing_before_the_first_operation() -> None:
    """Built at import time with no server up: no error until an operation needs one."""
    port = servers.free_port()
    backend = RedisBackend.from_url(f"redis://127.0.0.1:{port}/0")
    codes = SecurityCodes(backend, secret=SECRET)
    with pytest.raises(BackendError, match="connecting to"):
        codes.request_code(ACCOUNT)
    backend.client.close()
