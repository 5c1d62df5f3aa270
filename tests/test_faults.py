"""RULES R8.1-R8.3 against real servers, through real network faults.

Between the client and each server stands ``tests/proxy.py``, a TCP proxy that can
lose the reply of a command after the server has run it: the client sees its
connection closed at once (``close``) or nothing until its socket timeout
(``silent``), and the store sends the script once more with the same request id.
The server's own ``INFO commandstats`` proves that the script really ran twice;
the outcomes prove that it changed things once (R8.1). Servers started with an
evicting ``maxmemory-policy``, or without ``CONFIG``, check R8.2; stopped, unreachable
and hung servers, and bursts of calls, check R8.3.

The stores are built with ``from_url`` (sync and asyncio, standalone and cluster), or
from a client the test brings. Every test works under a key prefix of its own, on
servers this module starts, and deletes what it wrote.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

import pytest
import redis
import redis.asyncio
import redis.cluster

from ameli_otp import (
    AsyncRedisBackend,
    AsyncSecurityCodes,
    AsyncSlidingWindowLimiter,
    BackendError,
    ConfigurationError,
    Issued,
    Policy,
    Reason,
    RedisBackend,
    Refused,
    SecurityCodes,
    SlidingWindowLimiter,
    Verified,
)
from ameli_otp._redis_common import CONNECT_TIMEOUT, SCRIPTS, SOCKET_TIMEOUT, SOURCES
from ameli_otp.testing import FakeClock
from tests import servers
from tests.harness import SECRET, SyncFace
from tests.proxy import HOST, Mode, Proxy, command_is

pytestmark = pytest.mark.redis

ACCOUNT = "1850775123456"
OTHER_ACCOUNT = "2900612345678"
FP = "Mozilla/5.0 (X11; Linux x86_64) fingerprint-7f3a9c"
HOUR = timedelta(hours=1)
LOCKOUT = timedelta(hours=24)
WRONG, BURNED, LOCKED = Reason.WRONG_CODE, Reason.TOO_MANY_ATTEMPTS, Reason.ACCOUNT_LOCKED

EVALSHA = command_is("EVALSHA")
#: the socket timeout of the stores whose replies are lost silently: each such call waits it
#: out once, so it is short, yet far longer than a reply through the proxy on loopback takes
SILENT_TIMEOUT = 0.15
#: R8.3: "an unreachable server gives BackendError within connect_timeout + 1 s"
UNREACHABLE_BOUND = 2.0
#: a hung server: the call and its one retry each wait for a reply, plus slack
HUNG_BOUND = CONNECT_TIMEOUT + 2 * SOCKET_TIMEOUT + 0.5
EVICTING = [
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
]


def _wrong(code: str) -> str:
    """A well-formed code that is not ``code``."""
    return f"{(int(code) + 1) % 10 ** len(code):0{len(code)}d}"


def _prefix() -> str:
    return f"ameli-otp-faults-{uuid.uuid4().hex[:12]}"


def _keys(ports: list[int], prefix: str) -> list[bytes]:
    """Every key under ``prefix`` on these servers."""
    found = []
    for port in ports:
        with contextlib.closing(redis.Redis(host=HOST, port=port)) as client:
            found += client.scan_iter(match=f"{prefix}:*", count=1000)
    return sorted(found)


def _delete(ports: list[int], prefix: str) -> None:
    for port in ports:
        with contextlib.closing(redis.Redis(host=HOST, port=port)) as client:
            for key in client.scan_iter(match=f"{prefix}:*", count=1000):
                client.delete(key)


def _calls(ports: list[int], command: str) -> int:
    """How many times these servers ran ``command`` (``INFO commandstats``)."""
    total = 0
    for port in ports:
        with contextlib.closing(redis.Redis(host=HOST, port=port)) as client:
            stats = client.info("commandstats").get(f"cmdstat_{command}", {})
            total += int(stats.get("calls", 0))
    return total


#: ports of this module's long-lived servers, while they run: each test's keys are deleted there
_live_ports: set[int] = set()


def _load_scripts(ports: list[int]) -> None:
    """SCRIPT LOAD every script, so that no EVALSHA below meets NOSCRIPT (one run each)."""
    for port in ports:
        with contextlib.closing(redis.Redis(host=HOST, port=port)) as client:
            for name in SCRIPTS:
                client.script_load(SOURCES[name])


# -- servers and proxies -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[servers.Server]:
    """A standalone server for this module (noeviction, the default)."""
    with servers.standalone() as started:
        _load_scripts([started.port])
        _live_ports.add(started.port)
        yield started
        _live_ports.discard(started.port)


@pytest.fixture(scope="module")
def nodes() -> Iterator[list[servers.Server]]:
    """A 3-master cluster for this module."""
    with servers.cluster() as started:
        ports = [node.port for node in started]
        _load_scripts(ports)
        _live_ports.update(ports)
        yield started
        _live_ports.difference_update(ports)


@dataclass
class Target:
    """Real servers, each behind its own proxy; ``url`` and ``options`` reach them via proxies."""

    cluster: bool
    ports: list[int]
    proxies: list[Proxy]

    @property
    def url(self) -> str:
        return self.proxies[0].url

    def options(self) -> dict[str, Any]:
        """``from_url`` options that send the client through the proxies."""
        if not self.cluster:
            return {}
        remap = {port: proxy.port for port, proxy in zip(self.ports, self.proxies, strict=True)}
        # the cluster names its nodes by their real ports: ask the proxies instead
        return {"cluster": True, "address_remap": lambda at: (HOST, remap.get(at[1], at[1]))}

    def direct(self) -> redis.Redis | redis.cluster.RedisCluster:
        """A plain client straight to the servers (no proxy)."""
        if self.cluster:
            return redis.cluster.RedisCluster(host=HOST, port=self.ports[0])
        return redis.Redis(host=HOST, port=self.ports[0])

    def runs(self) -> int:
        """EVALSHA calls the servers ran."""
        return _calls(self.ports, "evalsha")

    def dropped(self) -> int:
        """EVALSHA replies the proxies lost."""
        return sum(proxy.dropped["EVALSHA"] for proxy in self.proxies)


@contextlib.contextmanager
def _target(ports: list[int], *, cluster: bool) -> Iterator[Target]:
    with contextlib.ExitStack() as stack:
        proxies = [stack.enter_context(Proxy(port)) for port in ports]
        yield Target(cluster, ports, proxies)


@pytest.fixture(params=["standalone", "cluster"])
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    """The module's standalone server or cluster, behind fresh proxies."""
    if request.param == "cluster":
        ports = [node.port for node in request.getfixturevalue("nodes")]
    else:
        ports = [request.getfixturevalue("server").port]
    with _target(ports, cluster=request.param == "cluster") as made:
        yield made


@pytest.fixture
def prefix() -> Iterator[str]:
    """A key prefix of the test's own; its keys are deleted afterwards from the module's servers."""
    made = _prefix()
    yield made
    _delete(sorted(_live_ports), made)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# -- stores built by from_url, driven from sync code ---------------------------------------------


@dataclass
class Stores:
    """A ``SecurityCodes`` and a ``SlidingWindowLimiter`` on one store (async faces driven).

    ``raw_codes`` is the facade itself (an ``AsyncSecurityCodes`` on the async face), for a
    test that runs its own coroutines on ``loop``.
    """

    codes: Any
    limiter: Any
    backend: Any
    loop: asyncio.AbstractEventLoop | None
    raw_codes: Any


@contextlib.contextmanager
def _stores(face: str, url: str, prefix: str, clock: FakeClock, **options: Any) -> Iterator[Stores]:
    """Facades on ``{Async}RedisBackend.from_url(url, prefix=prefix, **options)``."""
    if face == "sync":
        backend: Any = RedisBackend.from_url(url, prefix=prefix, **options)
        codes: Any = SecurityCodes(backend, secret=SECRET, clock=clock)
        limiter: Any = SlidingWindowLimiter(backend, limit=5, window=HOUR, clock=clock)
        try:
            yield Stores(codes, limiter, backend, None, codes)
        finally:
            backend.client.close()
        return
    loop = asyncio.new_event_loop()
    backend = AsyncRedisBackend.from_url(url, prefix=prefix, **options)
    codes = AsyncSecurityCodes(backend, secret=SECRET, clock=clock)
    limiter = AsyncSlidingWindowLimiter(backend, limit=5, window=HOUR, clock=clock)
    try:
        yield Stores(SyncFace(codes, loop), SyncFace(limiter, loop), backend, loop, codes)
    finally:
        loop.run_until_complete(backend.client.aclose())
        loop.close()


# == R8.1: a retried call changes nothing twice ==================================================


@dataclass
class Rig:
    """Facades whose every EVALSHA loses its first reply, and honest ones beside them."""

    codes: Any  # through the proxies: each call runs its script twice on the server
    limiter: Any
    honest: SecurityCodes  # straight to the servers: to set up and to check
    target: Target

    def twice(self, call: Callable[[], Any], runs: int = 2, lost: int = 1) -> Any:
        """``call()``, checking that its script ran twice on the server and replied once.

        An authenticator check runs two scripts, the read then the decision: the proxies
        lose the first reply of each distinct command, so the first read's reply is lost
        too (``runs=4, lost=2``), and a later read, the same command, is answered
        (``runs=3``).
        """
        before, dropped = self.target.runs(), self.target.dropped()
        result = call()
        assert self.target.runs() - before == runs  # the first runs and the replays
        assert self.target.dropped() - dropped == lost  # the first replies were lost
        return result


@contextlib.contextmanager
def _rig(target: Target, codes: Any, limiter: Any, prefix: str, clock: FakeClock) -> Iterator[Rig]:
    direct = target.direct()
    try:
        honest = SecurityCodes(RedisBackend(direct, prefix=prefix), secret=SECRET, clock=clock)
        yield Rig(codes, limiter, honest, target)
    finally:
        direct.close()


def _lose_each_first_reply(target: Target, mode: str) -> None:
    for proxy in target.proxies:
        proxy.drop_replies(EVALSHA, times=1, per_command=True, mode=cast(Mode, mode))


@pytest.fixture(params=["sync", "async"])
def face(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=["close", "silent"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def rig(target: Target, face: str, mode: str, prefix: str, clock: FakeClock) -> Iterator[Rig]:
    """Stores from ``from_url`` through the proxies, each EVALSHA losing its first reply."""
    options = target.options()
    if mode == "silent":
        options["socket_timeout"] = SILENT_TIMEOUT
        if target.cluster and face == "async":
            # redis-py's asyncio cluster client reloads its slot map and command table after
            # a timeout, inside the replay: COMMAND, a large reply parsed within one timeout
            options["socket_timeout"] = 2 * SILENT_TIMEOUT
    with _stores(face, target.url, prefix, clock, **options) as stores:
        stores.codes.request_code("warm-up")  # the server check (R8.2) and the slot map
        _lose_each_first_reply(target, mode)
        with _rig(target, stores.codes, stores.limiter, prefix, clock) as made:
            yield made


def _wrong_guesses_lock_at_ten(rig: Rig) -> None:
    results = []
    for guess in range(10):
        if guess % 3 == 0:  # a new code every 3 guesses (3 attempts per code)
            code = rig.honest.request_code(ACCOUNT).code
        results.append(rig.twice(functools.partial(rig.codes.verify_code, ACCOUNT, _wrong(code))))
    assert [r.reason for r in results] == [WRONG, WRONG, BURNED] * 3 + [LOCKED]
    assert [r.attempts_left for r in results] == [2, 1, None] * 3 + [None]
    assert results[-1].retry_after == LOCKOUT  # the locking guess's replay says so
    assert rig.honest.request_code(ACCOUNT) == Refused(LOCKED, retry_after=LOCKOUT)


def _consumed_code_answers_verified(rig: Rig) -> None:
    code = rig.honest.request_code(ACCOUNT).code
    verified = rig.twice(
        lambda: rig.codes.verify_code(ACCOUNT, code, remember_device=True, fingerprint=FP)
    )
    assert isinstance(verified, Verified)
    assert verified.device_token
    assert rig.honest.is_trusted_device(ACCOUNT, verified.device_token, FP)
    assert rig.honest.verify_code(ACCOUNT, code) == Refused(Reason.NO_CODE)  # consumed once
    code = rig.honest.request_code(ACCOUNT).code
    assert rig.twice(lambda: rig.codes.verify_code(ACCOUNT, code)) == Verified()
    # each used code left the window once: 4 after this one, as on a fresh account
    assert rig.honest.request_code(ACCOUNT).remaining == 4


def _requests_count_once(rig: Rig) -> None:
    issued = [rig.twice(lambda: rig.codes.request_code(ACCOUNT)) for _ in range(5)]
    assert [r.remaining for r in issued] == [4, 3, 2, 1, 0]
    refused = rig.twice(lambda: rig.codes.request_code(ACCOUNT))
    assert refused == Refused(Reason.TOO_MANY_CODES, retry_after=HOUR)
    assert rig.honest.verify_code(ACCOUNT, issued[-1].code) == Verified()  # the code it gave


def _limiter_entries_added_once(rig: Rig) -> None:
    hits = [rig.twice(lambda: rig.limiter.hit("k")) for _ in range(5)]
    assert [d.remaining for d in hits] == [4, 3, 2, 1, 0]
    assert all(d.allowed for d in hits)
    refused = rig.twice(lambda: rig.limiter.hit("k"))
    assert not refused.allowed
    assert refused.retry_after == HOUR
    rig.twice(lambda: rig.limiter.release("k", hits[0].entry))  # frees exactly one
    assert rig.twice(lambda: rig.limiter.hit("k")).remaining == 0
    assert not rig.twice(lambda: rig.limiter.hit("k")).allowed


def test_r8_1_a_wrong_guess_whose_reply_was_lost_is_counted_once(rig: Rig) -> None:
    _wrong_guesses_lock_at_ten(rig)


def test_r8_1_a_consumed_code_answers_verified_to_its_replay_with_a_device_token(
    rig: Rig,
) -> None:
    _consumed_code_answers_verified(rig)


def test_r8_1_a_code_request_whose_reply_was_lost_counts_once(rig: Rig) -> None:
    _requests_count_once(rig)


def test_r8_1_a_limiter_entry_whose_reply_was_lost_is_added_once(rig: Rig) -> None:
    _limiter_entries_added_once(rig)


def test_r8_1_authenticator_and_recovery_calls_whose_replies_were_lost_change_once(
    rig: Rig, clock: FakeClock
) -> None:
    """R8.1 for R11, R12: a replayed confirmation, verification, removal, new set or use
    of a recovery code answers as the first run did and changes nothing twice."""
    from tests.test_factors import NAME, code, other

    e = rig.twice(lambda: rig.codes.enroll_authenticator(ACCOUNT, name=NAME))
    right = code(e, clock.ms)
    assert rig.twice(lambda: rig.codes.confirm_authenticator(ACCOUNT, right), 4, 2) == Verified()
    clock.advance(30)
    right = code(e, clock.ms)
    wrong = rig.twice(lambda: rig.codes.verify_authenticator(ACCOUNT, other(right)), 3)
    assert wrong == Refused(WRONG, attempts_left=9)  # counted once
    verified = rig.twice(
        lambda: rig.codes.verify_authenticator(
            ACCOUNT, right, remember_device=True, fingerprint=FP
        ),
        3,
    )
    assert isinstance(verified, Verified)  # not CODE_REUSED: the replay answers as the first
    assert rig.honest.is_trusted_device(ACCOUNT, verified.device_token, FP)
    got = rig.twice(lambda: rig.codes.new_recovery_codes(ACCOUNT))
    used = rig.twice(lambda: rig.codes.use_recovery_code(ACCOUNT, got[0]))
    assert used == Verified(recovery_codes_left=9)  # one code used, once
    assert rig.twice(lambda: rig.codes.use_recovery_code(ACCOUNT, got[0])) == Refused(
        WRONG, attempts_left=9
    )
    assert rig.honest.inspect(ACCOUNT).recovery_codes_left == 9
    assert rig.twice(lambda: rig.codes.remove_authenticator(ACCOUNT)) is True


def test_r8_1_redis_py_own_default_retry_of_a_lost_reply_changes_nothing_twice(
    server: servers.Server, mode: str, prefix: str, clock: FakeClock
) -> None:
    # a client the user brings, with redis-py's default retry policy (on since redis-py 6)
    if int(redis.__version__.split(".")[0]) < 6:  # pragma: no cover
        pytest.skip("this redis-py does not retry by default")
    with _target([server.port], cluster=False) as target:
        options = {"socket_timeout": SILENT_TIMEOUT} if mode == "silent" else {}  # else: None
        client = redis.Redis(host=HOST, port=target.proxies[0].port, **options)
        backend = RedisBackend(client, prefix=prefix)
        codes = SecurityCodes(backend, secret=SECRET, clock=clock)
        limiter = SlidingWindowLimiter(backend, limit=5, window=HOUR, clock=clock)
        try:
            codes.request_code("warm-up")
            _lose_each_first_reply(target, mode)
            with _rig(target, codes, limiter, prefix, clock) as rig:
                _requests_count_once(rig)
                clock.advance(hours=1)
                _consumed_code_answers_verified(rig)
                _wrong_guesses_lock_at_ten(rig)
                _limiter_entries_added_once(rig)
        finally:
            client.close()


# -- R8.1 for the operations without a verdict: a replay undoes nothing done since the first run --


@dataclass
class Replaying:
    """Facades through a proxy, and the same straight to the server (``honest_*``).

    :meth:`lose_next_reply` loses the reply of the next script once and runs ``meanwhile``
    (through the honest facades) after the script ran and before its replay reaches the
    server: another client acting in the ``socket_timeout`` between the two.
    """

    codes: SecurityCodes
    limiter: SlidingWindowLimiter
    honest_codes: SecurityCodes
    honest_limiter: SlidingWindowLimiter
    target: Target

    def lose_next_reply(self, meanwhile: Callable[[], Any]) -> None:
        self.target.proxies[0].drop_replies(EVALSHA, mode="close", then=meanwhile)

    def replays(self) -> int:
        """How many replies were lost so far (each call then replayed its script)."""
        return self.target.dropped()

    def lock(self) -> None:
        """Lock ``ACCOUNT`` (the policy here: one code's three wrong guesses lock)."""
        code = self.honest_codes.request_code(ACCOUNT).code
        guesses = [self.honest_codes.verify_code(ACCOUNT, _wrong(code)) for _ in range(3)]
        assert guesses[-1].reason == LOCKED

    def trust(self) -> str:
        """A new device token for ``ACCOUNT``."""
        code = self.honest_codes.request_code(ACCOUNT).code
        verified = self.honest_codes.verify_code(
            ACCOUNT, code, remember_device=True, fingerprint=FP
        )
        assert isinstance(verified, Verified)
        assert verified.device_token
        return verified.device_token

    def trusted(self, token: str) -> bool:
        return self.honest_codes.is_trusted_device(ACCOUNT, token, FP)

    def fill(self) -> None:
        """Five hits on limiter key ``k``: its window is full."""
        assert [self.honest_limiter.hit("k").allowed for _ in range(5)] == [True] * 5


@pytest.fixture
def replaying(server: servers.Server, prefix: str, clock: FakeClock) -> Iterator[Replaying]:
    # three failures lock; long codes, so that no guess here is ever right by chance
    policy = Policy(max_failed_attempts=3, code_length=12)
    with (
        _target([server.port], cluster=False) as target,
        _stores("sync", target.url, prefix, clock) as stores,
        contextlib.closing(target.direct()) as direct,
    ):
        codes = SecurityCodes(stores.backend, secret=SECRET, policy=policy, clock=clock)
        honest = RedisBackend(direct, prefix=prefix)
        codes.request_code("warm-up")  # the server check (R8.2)
        yield Replaying(
            codes,
            stores.limiter,
            SecurityCodes(honest, secret=SECRET, policy=policy, clock=clock),
            SlidingWindowLimiter(honest, limit=5, window=HOUR, clock=clock),
            target,
        )


def test_r8_1_a_replayed_unlock_lifts_no_lock_made_after_it(replaying: Replaying) -> None:
    replaying.lock()
    replaying.lose_next_reply(meanwhile=replaying.lock)  # locked again before the replay
    replaying.codes.unlock(ACCOUNT)
    assert replaying.replays() == 1
    assert replaying.honest_codes.request_code(ACCOUNT) == Refused(LOCKED, retry_after=LOCKOUT)


def test_r8_1_a_replayed_guess_counts_once_after_other_requests_on_the_account(
    replaying: Replaying,
) -> None:
    code = replaying.honest_codes.request_code(ACCOUNT).code
    newest: list[str] = []

    def four_more_codes() -> None:  # the user asks again while the guess's reply is lost
        newest[:] = [replaying.honest_codes.request_code(ACCOUNT).code for _ in range(4)]

    replaying.lose_next_reply(meanwhile=four_more_codes)
    assert replaying.codes.verify_code(ACCOUNT, _wrong(code)) == Refused(WRONG, attempts_left=2)
    assert replaying.replays() == 1
    # one failure so far (of three that lock): the next wrong guess is the second
    guess = replaying.honest_codes.verify_code(ACCOUNT, _wrong(newest[-1]))
    assert guess == Refused(WRONG, attempts_left=2)


def test_r8_1_a_replayed_forget_all_devices_revokes_no_device_trusted_after_it(
    replaying: Replaying,
) -> None:
    before = replaying.trust()
    after: list[str] = []
    replaying.lose_next_reply(meanwhile=lambda: after.append(replaying.trust()))
    replaying.codes.forget_all_devices(ACCOUNT)
    assert replaying.replays() == 1
    assert not replaying.trusted(before)
    assert replaying.trusted(after[0])


def test_r8_1_a_replayed_limiter_reset_removes_no_entry_added_after_it(
    replaying: Replaying,
) -> None:
    replaying.fill()
    replaying.lose_next_reply(meanwhile=replaying.fill)  # full again before the replay
    replaying.limiter.reset("k")
    assert replaying.replays() == 1
    assert not replaying.honest_limiter.hit("k").allowed


def test_r8_1_a_replayed_forget_device_or_release_changes_nothing_more(
    replaying: Replaying,
) -> None:
    forgotten, kept = replaying.trust(), replaying.trust()
    after: list[str] = []
    replaying.lose_next_reply(meanwhile=lambda: after.append(replaying.trust()))
    replaying.codes.forget_device(ACCOUNT, forgotten)
    assert replaying.replays() == 1
    assert (replaying.trusted(forgotten), replaying.trusted(kept)) == (False, True)
    assert replaying.trusted(after[0])

    entry = replaying.honest_limiter.hit("k").entry
    replaying.lose_next_reply(meanwhile=replaying.fill)  # full again before the replay
    replaying.limiter.release("k", entry)
    assert replaying.replays() == 2
    assert replaying.honest_limiter.peek("k").remaining == 0


# == R8.2: a store that forgets is refused =======================================================


@pytest.fixture(scope="module", params=EVICTING)
def evicting(request: pytest.FixtureRequest) -> Iterator[tuple[servers.Server, str]]:
    """A server started with an evicting maxmemory-policy, and that policy."""
    with servers.standalone(["--maxmemory-policy", request.param]) as started:
        yield started, str(request.param)


def _refused(call: Callable[[], Any], policy: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        call()
    message = str(info.value)
    assert "maxmemory-policy" in message
    assert policy in message
    assert "allow_eviction" in message


def test_r8_2_an_evicting_server_is_refused_before_anything_is_written(
    evicting: tuple[servers.Server, str], face: str, clock: FakeClock
) -> None:
    evicting_server, policy = evicting
    url, prefix = f"redis://{HOST}:{evicting_server.port}/0", _prefix()
    runs = _calls([evicting_server.port], "evalsha")
    with _stores(face, url, prefix, clock) as stores:
        _refused(lambda: stores.codes.request_code(ACCOUNT), policy)
        _refused(lambda: stores.codes.verify_code(ACCOUNT, "123456"), policy)  # every call
        _refused(lambda: stores.limiter.hit("k"), policy)
    assert _calls([evicting_server.port], "evalsha") == runs  # no script ran
    assert _keys([evicting_server.port], prefix) == []


def test_r8_2_an_evicting_server_is_refused_with_a_client_of_ones_own(
    evicting: tuple[servers.Server, str], clock: FakeClock
) -> None:
    evicting_server, policy = evicting
    prefix = _prefix()
    with contextlib.closing(redis.Redis(host=HOST, port=evicting_server.port)) as client:
        codes = SecurityCodes(RedisBackend(client, prefix=prefix), secret=SECRET, clock=clock)
        _refused(lambda: codes.request_code(ACCOUNT), policy)
    assert _keys([evicting_server.port], prefix) == []


def test_r8_2_allow_eviction_true_accepts_an_evicting_server(
    evicting: tuple[servers.Server, str], face: str, clock: FakeClock
) -> None:
    evicting_server, _ = evicting
    url, prefix = f"redis://{HOST}:{evicting_server.port}/0", _prefix()
    try:
        with _stores(face, url, prefix, clock, allow_eviction=True) as stores:
            issued = stores.codes.request_code(ACCOUNT)
            assert isinstance(issued, Issued)
            assert stores.codes.verify_code(ACCOUNT, issued.code) == Verified()
            assert stores.limiter.hit("k").allowed
    finally:
        _delete([evicting_server.port], prefix)


def test_r8_2_a_noeviction_server_is_accepted(
    server: servers.Server, face: str, prefix: str, clock: FakeClock
) -> None:
    with _stores(face, f"redis://{HOST}:{server.port}/0", prefix, clock) as stores:
        issued = stores.codes.request_code(ACCOUNT)
        assert isinstance(issued, Issued)
        assert stores.codes.verify_code(ACCOUNT, issued.code) == Verified()
        assert stores.limiter.hit("k").allowed


def test_r8_2_a_cluster_with_one_evicting_node_is_refused(
    nodes: list[servers.Server], face: str, prefix: str, clock: FakeClock
) -> None:
    ports = [node.port for node in nodes]
    url = f"redis://{HOST}:{ports[0]}/0"
    with contextlib.closing(redis.Redis(host=HOST, port=ports[1])) as evicting_node:
        evicting_node.config_set("maxmemory-policy", "allkeys-lru")
        try:
            runs = _calls(ports, "evalsha")
            with _stores(face, url, prefix, clock, cluster=True) as stores:
                _refused(lambda: stores.codes.request_code(ACCOUNT), "allkeys-lru")
                _refused(lambda: stores.limiter.hit("k"), "allkeys-lru")
            assert _calls(ports, "evalsha") == runs
            assert _keys(ports, prefix) == []
            with (
                pytest.raises(ConfigurationError, match=f":{ports[1]}"),  # names the node
                _stores(face, url, prefix, clock, cluster=True) as stores,
            ):
                stores.codes.request_code(ACCOUNT)
            with _stores(face, url, prefix, clock, cluster=True, allow_eviction=True) as stores:
                assert isinstance(stores.codes.request_code(ACCOUNT), Issued)
        finally:
            evicting_node.config_set("maxmemory-policy", "noeviction")


@pytest.fixture(scope="module")
def without_config() -> Iterator[dict[str, servers.Server]]:
    """Servers that refuse CONFIG (renamed away, as on managed services): one per face.

    Both live for the whole module, so their ports differ: each warns afresh.
    """
    hidden = ["--rename-command", "CONFIG", ""]
    with servers.standalone(hidden) as sync, servers.standalone(hidden) as async_:
        yield {"sync": sync, "async": async_}


def test_r8_2_a_server_that_refuses_config_logs_one_warning_and_goes_on(
    without_config: dict[str, servers.Server],
    face: str,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = without_config[face].port
    url, prefix = f"redis://{HOST}:{port}/0", _prefix()
    caplog.set_level(logging.WARNING, logger="ameli_otp")
    try:
        with _stores(face, url, prefix, clock) as stores:
            issued = stores.codes.request_code(ACCOUNT)
            assert isinstance(issued, Issued)
            assert stores.codes.verify_code(ACCOUNT, issued.code) == Verified()
            assert stores.limiter.hit("k").allowed
            assert stores.limiter.hit("k").allowed
        warned = [r for r in caplog.records if r.name == "ameli_otp"]
        assert len(warned) == 1
        assert warned[0].levelno == logging.WARNING
        assert "eviction policy" in warned[0].getMessage()
        assert str(port) in warned[0].getMessage()
    finally:
        _delete([port], prefix)


def _check_order(proxy: Proxy) -> list[str]:
    return [name for name in proxy.log if name in ("CONFIG", "EVALSHA")]


def test_r8_2_the_check_runs_before_the_first_operation_once_per_store(
    server: servers.Server, face: str, prefix: str, clock: FakeClock
) -> None:
    with Proxy(server.port) as proxy:
        with _stores(face, proxy.url, prefix, clock) as stores:
            assert proxy.forwarded["CONFIG"] == 0  # nothing is sent before the first call
            issued = stores.codes.request_code(ACCOUNT)
            stores.codes.verify_code(ACCOUNT, issued.code)
            stores.limiter.hit("k")
            stores.codes.request_code(ACCOUNT)
            assert _check_order(proxy) == ["CONFIG"] + ["EVALSHA"] * 4
        with _stores(face, proxy.url, prefix, clock) as another:
            another.codes.request_code(ACCOUNT)  # another store checks for itself
            another.codes.request_code(ACCOUNT)
        assert _check_order(proxy) == ["CONFIG"] + ["EVALSHA"] * 4 + ["CONFIG"] + ["EVALSHA"] * 2


@pytest.fixture
def own_server() -> Iterator[servers.Server]:
    """A server for one test, which may change its settings or stop it."""
    with servers.standalone() as started:
        yield started


def _in_child(run: Callable[[], int]) -> int:
    """Fork; the child runs ``run`` and exits with what it returns. The child's exit code."""
    with warnings.catch_warnings():  # Python 3.12+ warns of fork with threads (the proxy's)
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child, whose coverage is not collected
        code = 2
        try:
            code = run()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_r8_2_the_check_runs_again_in_a_child_after_fork(
    own_server: servers.Server, clock: FakeClock
) -> None:
    prefix = _prefix()
    with Proxy(own_server.port) as proxy, _stores("sync", proxy.url, prefix, clock) as stores:
        assert isinstance(stores.codes.request_code(ACCOUNT), Issued)
        assert proxy.forwarded["CONFIG"] == 1

        def child() -> int:
            try:
                issued = stores.codes.request_code(OTHER_ACCOUNT)
            except ConfigurationError:
                return 3
            return 0 if isinstance(issued, Issued) else 1

        assert _in_child(child) == 0  # a noeviction server: the child checks and goes on
        assert proxy.forwarded["CONFIG"] == 2

        # once checked, a process does not ask again; a new child does, and is refused
        with contextlib.closing(redis.Redis(host=HOST, port=own_server.port)) as admin:
            admin.config_set("maxmemory-policy", "allkeys-lru")
        assert isinstance(stores.codes.request_code(ACCOUNT), Issued)
        assert proxy.forwarded["CONFIG"] == 2
        assert _in_child(child) == 3
        assert proxy.forwarded["CONFIG"] == 3


# == R8.3: failing is fast =======================================================================


def _warm(stores: Stores) -> dict[str, Any]:
    """Make a code, a trusted device and a limiter entry; return what the calls below need."""
    first = stores.codes.request_code(OTHER_ACCOUNT)
    token = stores.codes.verify_code(
        OTHER_ACCOUNT, first.code, remember_device=True, fingerprint=FP
    ).device_token
    issued = stores.codes.request_code(ACCOUNT)
    entry = stores.limiter.hit("k").entry
    return {"code": issued.code, "token": token, "entry": entry}


def _every_call(stores: Stores, made: dict[str, Any]) -> dict[str, Callable[[], Any]]:
    codes, limiter, code, token = stores.codes, stores.limiter, made["code"], made["token"]
    return {
        "request_code": lambda: codes.request_code(ACCOUNT),
        "verify_code": lambda: codes.verify_code(ACCOUNT, code),
        "verify_code-remember": lambda: codes.verify_code(
            ACCOUNT, code, remember_device=True, fingerprint=FP
        ),
        "is_trusted_device": lambda: codes.is_trusted_device(OTHER_ACCOUNT, token, FP),
        "forget_device": lambda: codes.forget_device(OTHER_ACCOUNT, token),
        "forget_all_devices": lambda: codes.forget_all_devices(OTHER_ACCOUNT),
        "unlock": lambda: codes.unlock(ACCOUNT),
        "hit": lambda: limiter.hit("k"),
        "peek": lambda: limiter.peek("k"),
        "release": lambda: limiter.release("k", made["entry"]),
        "reset": lambda: limiter.reset("k"),
    }


def _fails_within(bound: float, call: Callable[[], Any], name: str) -> None:
    started = time.monotonic()
    with pytest.raises(BackendError) as info:
        call()
    elapsed = time.monotonic() - started
    assert elapsed < bound, f"{name}: BackendError after {elapsed:.2f} s"
    # chained: what redis-py raised, if anything (a store that knows the server is down
    # fails before it asks redis-py)
    cause = (redis.RedisError, redis.exceptions.RedisClusterException, OSError, type(None))
    assert isinstance(info.value.__cause__, cause), name


def _granted_nothing(target: Target, prefix: str, clock: FakeClock, made: dict[str, Any]) -> None:
    """After the outage: the failed calls issued, used, trusted, revoked and counted nothing.

    Read by a new store straight to the servers: what they hold, whatever the failed
    store remembers of the outage.
    """
    direct = target.direct()
    backend = RedisBackend(direct, prefix=prefix)
    codes = SecurityCodes(backend, secret=SECRET, clock=clock)
    limiter = SlidingWindowLimiter(backend, limit=5, window=HOUR, clock=clock)
    assert codes.is_trusted_device(OTHER_ACCOUNT, made["token"], FP)  # not revoked
    assert codes.verify_code(ACCOUNT, made["code"]) == Verified()  # neither used nor replaced
    assert codes.request_code(ACCOUNT).remaining == 4  # no failed request left an entry
    assert limiter.hit("k").remaining == 3  # the warm-up's hit and this one
    direct.close()


def test_r8_3_a_stopped_server_fails_every_call_fast(
    own_server: servers.Server, face: str, clock: FakeClock
) -> None:
    url = f"redis://{HOST}:{own_server.port}/0"
    with (
        _stores(face, url, _prefix(), clock) as stores,
        _stores(face, url, _prefix(), clock) as new,  # a store not checked yet
    ):
        made = _warm(stores)
        own_server.stop()
        for name, call in _every_call(stores, made).items():
            _fails_within(UNREACHABLE_BOUND, call, name)
        for name, call in _every_call(new, made).items():
            _fails_within(UNREACHABLE_BOUND, call, f"{name} (first call)")
    own_server.start()  # back, empty (nothing is saved)
    with _stores(face, url, _prefix(), clock) as after:
        assert isinstance(after.codes.request_code(ACCOUNT), Issued)


def test_r8_3_an_unreachable_server_fails_every_call_fast_and_grants_nothing(
    target: Target, face: str, prefix: str, clock: FakeClock
) -> None:
    with _stores(face, target.url, prefix, clock, **target.options()) as stores:
        made = _warm(stores)
        for proxy in target.proxies:
            proxy.kill()  # the servers live on, with their data, out of reach
        for name, call in _every_call(stores, made).items():
            _fails_within(UNREACHABLE_BOUND, call, name)
        for proxy in target.proxies:
            proxy.heal()
    _granted_nothing(target, prefix, clock, made)


def test_r8_3_a_hung_server_fails_within_the_timeouts_and_grants_nothing(
    server: servers.Server, face: str, prefix: str, clock: FakeClock
) -> None:
    with Proxy(server.port) as proxy, _stores(face, proxy.url, prefix, clock) as stores:
        made = _warm(stores)
        proxy.blackhole()  # accepts, reads, never answers
        calls = _every_call(stores, made)
        for name in ("request_code", "verify_code"):  # each waits two socket timeouts
            _fails_within(HUNG_BOUND, calls[name], name)
        proxy.heal()
        _granted_nothing(Target(False, [server.port], [proxy]), prefix, clock, made)


def test_r8_3_a_call_whose_replies_are_all_lost_is_retried_once_then_fails(
    target: Target, face: str, prefix: str, clock: FakeClock
) -> None:
    # no hidden retries: two runs on the server, then BackendError, and nothing is granted
    with _stores(face, target.url, prefix, clock, **target.options()) as stores:
        code = stores.codes.request_code(ACCOUNT).code
        stores.limiter.hit("k")
        for proxy in target.proxies:
            proxy.drop_replies(EVALSHA, times=None, mode="close")
        for name, call in {
            "verify_code": lambda: stores.codes.verify_code(ACCOUNT, code),
            "request_code": lambda: stores.codes.request_code(ACCOUNT),
            "hit": lambda: stores.limiter.hit("k"),
        }.items():
            runs = target.runs()
            with pytest.raises(BackendError):
                call()
            assert target.runs() - runs == 2, name
        for proxy in target.proxies:
            proxy.heal()
        # the lost verification consumed the code, the lost request replaced it with one that
        # nobody received: the callers got errors, and the user's code no longer works
        assert stores.codes.verify_code(ACCOUNT, code) == Refused(
            Reason.WRONG_CODE, attempts_left=2
        )


@pytest.fixture(params=["standalone", "cluster"])
def healthy_url(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    """A healthy server or cluster, straight (no proxy), and the from_url options for it."""
    if request.param == "cluster":
        port = request.getfixturevalue("nodes")[0].port
        return f"redis://{HOST}:{port}/0", {"cluster": True}
    return f"redis://{HOST}:{request.getfixturevalue('server').port}/0", {}


def _clients(url: str) -> int:
    """Connections open on the server of ``url`` (or the cluster node it names)."""
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    with contextlib.closing(redis.Redis(host=HOST, port=port)) as client:
        return len(client.client_list())


def test_r8_3_a_burst_of_1000_asyncio_calls_waits_for_a_connection(
    healthy_url: tuple[str, dict[str, Any]], prefix: str, clock: FakeClock
) -> None:
    url, options = healthy_url
    before = _clients(url)

    async def burst() -> tuple[list[Any], list[Any]]:
        backend = AsyncRedisBackend.from_url(url, prefix=prefix, max_connections=50, **options)
        codes = AsyncSecurityCodes(backend, secret=SECRET, clock=clock)
        try:
            many = await asyncio.gather(
                *(codes.request_code(f"account-{i}") for i in range(1000)), return_exceptions=True
            )
            one = await asyncio.gather(
                *(codes.request_code(ACCOUNT) for _ in range(1000)), return_exceptions=True
            )
            # no more connections than calls in flight (a cluster client keeps one more, to
            # the node of the URL, from loading its slot map)
            assert _clients(url) - before <= 50 + ("cluster" in options)
            return many, one
        finally:
            await backend.client.aclose()

    many, one = asyncio.run(burst())
    assert [r for r in many if not isinstance(r, Issued)] == []
    assert [r for r in one if isinstance(r, BaseException)] == []
    assert sum(isinstance(r, Issued) for r in one) == 5
    assert {r.reason for r in one if isinstance(r, Refused)} == {Reason.TOO_MANY_CODES}


def test_r8_3_a_burst_of_64_threads_waits_for_a_connection(
    healthy_url: tuple[str, dict[str, Any]], prefix: str, clock: FakeClock
) -> None:
    url, options = healthy_url
    backend = RedisBackend.from_url(url, prefix=prefix, max_connections=50, **options)
    codes = SecurityCodes(backend, secret=SECRET, clock=clock)
    threads = 64
    start = threading.Barrier(threads)

    def worker(i: int) -> list[Any]:
        start.wait(timeout=30)
        results: list[Any] = []
        for j in range(16):
            try:
                results.append(codes.request_code(f"account-{i}-{j}"))
            except BackendError as exc:
                results.append(exc)
        try:
            results.append(codes.request_code(ACCOUNT))  # all threads on one account
        except BackendError as exc:
            results.append(exc)
        return results

    try:
        with ThreadPoolExecutor(threads) as pool:
            done = [r for rs in pool.map(worker, range(threads)) for r in rs]
    finally:
        backend.client.close()
    assert [r for r in done if isinstance(r, BackendError)] == []
    issued = [r for r in done if isinstance(r, Issued)]
    assert len(issued) == threads * 16 + 5  # every distinct account, and 5 on the shared one
    refused = [r for r in done if isinstance(r, Refused)]
    assert [r.reason for r in refused] == [Reason.TOO_MANY_CODES] * (threads - 5)


def test_r8_3_a_full_gate_fails_after_pool_timeout_saying_overloaded(
    server: servers.Server, face: str, prefix: str, clock: FakeClock
) -> None:
    # one connection, held by a call whose reply the proxy keeps; the next call waits
    # pool_timeout, then fails without sending anything
    options = {"max_connections": 1, "pool_timeout": 0.05, "socket_timeout": 30.0}
    with Proxy(server.port) as proxy, _stores(face, proxy.url, prefix, clock, **options) as stores:
        assert stores.codes.request_code(ACCOUNT).remaining == 4
        proxy.drop_replies(EVALSHA, times=1, mode="silent")

        def reply_held() -> None:  # the held call is in flight, its connection taken
            proxy.wait(lambda: proxy.dropped["EVALSHA"] == 1)

        if stores.loop is None:
            with ThreadPoolExecutor(1) as pool:
                held = pool.submit(stores.codes.request_code, ACCOUNT)
                reply_held()
                with pytest.raises(BackendError, match="overloaded"):
                    stores.codes.request_code(OTHER_ACCOUNT)
                proxy.close_connections()  # the held call sees a closed connection, replays
                result = held.result(timeout=30)
        else:
            codes = stores.raw_codes

            async def scene() -> Any:
                held = asyncio.ensure_future(codes.request_code(ACCOUNT))
                await asyncio.to_thread(reply_held)
                with pytest.raises(BackendError, match="overloaded"):
                    await codes.request_code(OTHER_ACCOUNT)
                await asyncio.to_thread(proxy.close_connections)
                return await held

            result = stores.loop.run_until_complete(scene())
        assert result.remaining == 3  # the held call, replayed, counted once
        assert proxy.received["EVALSHA"] == 3  # the warm-up, the held call twice; never the other
        assert stores.codes.request_code(OTHER_ACCOUNT).remaining == 4
