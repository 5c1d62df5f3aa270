"""RULES.md R9 (what the support desk and operators see), one named test per sentence.

Each test runs once per store kind of ``tests.harness.KINDS`` (memory, redis,
cluster and the async face of each) through the ``harness`` fixture, with the
``clock`` FakeClock. Round trips are counted twice: the store primitives the facade
calls (a spy around the store, every kind), and, on the Redis kinds, the commands
the servers ran (``INFO commandstats`` on every node).
"""

from __future__ import annotations

import base64
import contextlib
import inspect
import json
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import attrs
import pytest
import redis
import redis.cluster

from ameli_otp import (
    AccountStatus,
    CodeStatus,
    Event,
    EventKind,
    Issued,
    Policy,
    Reason,
    Refused,
    TrustedDevice,
    Verified,
)
from ameli_otp._store import Store
from ameli_otp.events import logging_hook
from ameli_otp.testing import FakeClock
from tests.harness import OTHER_SECRET, SECRET, Harness

ACCOUNT = "1850775123456"
SPELLINGS = (  # R7.1: one account, however it is typed
    ACCOUNT,
    "185 077 512 3456",
    "".join(chr(0xFF10 + int(d)) for d in ACCOUNT),  # full-width digits
)
OTHER_ACCOUNT = "2850775123457"
FP = "fp-firefox-128-linux-1920x1080"
OTHER_FP = "fp-chrome-131-windows-2560x1440"
NEW_SECRET = b"new-secret-after-rotation-0123456789abcdef"

MS = timedelta(milliseconds=1)
TTL = timedelta(minutes=15)
WINDOW = timedelta(hours=1)
LOCKOUT = timedelta(hours=24)
TRUST = timedelta(days=183)
#: a lock shorter than the window (RULES allow it: R7.5 only asks code_ttl <= code_window)
SHORT_LOCK = Policy(
    code_ttl=timedelta(minutes=10),
    code_window=timedelta(minutes=10),
    max_unused_codes=2,
    max_attempts_per_code=2,
    max_failed_attempts=3,
    lockout=timedelta(minutes=5),
    code_length=5,
)
#: Redis commands that change nothing (what a read-only script may run)
READS = frozenset(
    (
        "hgetall",
        "hget",
        "hmget",
        "hexists",
        "hlen",
        "exists",
        "pttl",
        "get",
        "type",
        "zrange",
        "scard",
    )
)
PRIMITIVES = frozenset(
    name for name, value in vars(Store).items() if inspect.isfunction(value) and name[0] != "_"
)


# -- helpers -------------------------------------------------------------------------------------
def wrong(code: str) -> str:
    """A well-formed code that is surely not ``code``."""
    n = len(code)
    return f"{(int(code) + 1) % 10**n:0{n}d}"


def issue(codes: Any, account: str = ACCOUNT) -> str:
    result = codes.request_code(account)
    assert isinstance(result, Issued), result
    return str(result.code)


def trust(codes: Any, account: str = ACCOUNT, fingerprint: str = FP) -> str:
    """Log in with ``remember_device=True``; return the device token."""
    code = issue(codes, account)
    result = codes.verify_code(account, code, remember_device=True, fingerprint=fingerprint)
    assert isinstance(result, Verified), result
    assert isinstance(result.device_token, str)
    return result.device_token


def lock(codes: Any, account: str = ACCOUNT, policy: Policy | None = None) -> None:
    """Codes guessed wrong until one guess locks the account (any policy)."""
    policy = policy or Policy()
    for _ in range(policy.max_failed_attempts):
        code = issue(codes, account)
        for _ in range(policy.max_attempts_per_code):
            result = codes.verify_code(account, wrong(code))
            assert isinstance(result, Refused), result
            if result.reason is Reason.ACCOUNT_LOCKED:
                assert result.retry_after == policy.lockout
                return
            if result.reason is Reason.TOO_MANY_ATTEMPTS:
                break
    raise AssertionError("not locked")


def new_id(codes: Any, known: set[str], account: str = ACCOUNT) -> str:
    """The one device id ``inspect`` lists that is not in ``known`` (added to it)."""
    (fresh,) = {d.device_id for d in codes.inspect(account).devices} - known
    known.add(fresh)
    return fresh


class Spy:
    """A store that records which primitives the facade calls (sync or async alike)."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if name not in PRIMITIVES:
            return attr
        if inspect.iscoroutinefunction(attr):

            async def arun(*args: Any) -> Any:
                self.calls.append(name)
                return await attr(*args)

            return arun

        def run(*args: Any) -> Any:
            self.calls.append(name)
            return attr(*args)

        return run


def spied(harness: Harness, **kwargs: Any) -> tuple[Any, Spy]:
    """A facade on the harness's store through a :class:`Spy`."""
    store = harness.backend
    spy = Spy(store)
    harness.backend = spy
    try:
        return harness.codes(**kwargs), spy
    finally:
        harness.backend = store


class Servers:
    """The commands the harness's Redis servers ran (every node of a cluster); memory: none."""

    def __init__(self, harness: Harness) -> None:
        client = harness.env.sync_client
        self.nodes: list[redis.Redis] = []
        if isinstance(client, redis.cluster.RedisCluster):
            self.nodes = [redis.Redis(host=n.host, port=n.port) for n in client.get_nodes()]
        elif client is not None:
            kw = client.connection_pool.connection_kwargs
            self.nodes = [redis.Redis(host=kw["host"], port=kw["port"])]
        self.snapshot()  # connect now: the connection's own commands are not counted

    def snapshot(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for node in self.nodes:
            for name, stats in node.info("commandstats").items():
                total[name.removeprefix("cmdstat_")] += int(stats["calls"])
        del total["info"]  # ours
        return total

    @contextlib.contextmanager
    def count(self) -> Iterator[Counter[str]]:
        """The commands run inside the block."""
        ran: Counter[str] = Counter()
        before = self.snapshot()
        yield ran
        ran.update(self.snapshot() - before)

    def close(self) -> None:
        for node in self.nodes:
            node.close()


@pytest.fixture
def servers(harness: Harness) -> Iterator[Servers]:
    observer = Servers(harness)
    yield observer
    observer.close()


class Events(list[Event]):
    """A hook that keeps the events; ``take()`` gives them and starts again."""

    def __call__(self, event: Event) -> None:
        self.append(event)

    def take(self) -> list[Event]:
        out = list(self)
        self.clear()
        return out


def one_event(events: Events, call: Callable[[], Any]) -> tuple[Any, Event]:
    """``call()``'s result and the one event it reported."""
    events.clear()
    result = call()
    got = events.take()
    assert len(got) == 1, got
    return result, got[0]


# -- R9.1 inspect --------------------------------------------------------------------------------
def test_r9_1_inspect_is_one_round_trip_and_changes_nothing(
    harness: Harness, clock: FakeClock, servers: Servers
) -> None:
    """R9.1 'reads the account's state in one round trip and changes nothing'."""
    codes, spy = spied(harness)
    trust(codes)
    codes.verify_code(ACCOUNT, wrong(issue(codes)))
    clock.advance(minutes=1)
    before = harness.dump()
    first = codes.inspect(ACCOUNT)
    for _ in range(3):
        spy.calls.clear()
        with servers.count() as ran:
            status = codes.inspect(ACCOUNT)
        assert spy.calls == ["inspect"]
        if servers.nodes:  # one script call; what the script ran (counted too) only reads
            assert ran.pop("evalsha") == 1, ran
            assert set(ran) <= READS, ran
        assert status == first
    assert harness.dump() == before
    # and the account behaves as if it had never been looked at
    assert codes.request_code(ACCOUNT).remaining == 3  # 2 counted before, this one is the 3rd


def test_r9_1_inspect_of_an_account_never_seen_is_empty(harness: Harness) -> None:
    """R9.1 'lock end (or none) ... when the next request will be allowed (none if now)'."""
    codes = harness.codes()
    empty = AccountStatus(
        locked_until=None,
        consecutive_failures=0,
        codes_counting=0,
        next_code_at=None,
        active_code=None,
        devices=(),
    )
    assert codes.inspect(ACCOUNT) == empty
    assert harness.dump() == b""  # a read creates no record


def test_r9_1_one_account_however_it_is_typed(harness: Harness) -> None:
    """R9.1 with R7.1: every spelling of an account id inspects the same account."""
    codes = harness.codes()
    trust(codes)
    issue(codes)
    status = codes.inspect(ACCOUNT)
    assert len(status.devices) == 1
    for spelling in SPELLINGS:
        assert codes.inspect(spelling) == status


def test_r9_1_lock_end_and_consecutive_failures(harness: Harness, clock: FakeClock) -> None:
    """R9.1 'lock end (or none), consecutive failures' (R2.6: forgotten after lockout)."""
    codes = harness.codes()
    code = issue(codes)
    codes.verify_code(ACCOUNT, wrong(code))
    clock.advance(minutes=1)
    codes.verify_code(ACCOUNT, wrong(code))
    last = clock.now()
    status = codes.inspect(ACCOUNT)
    assert (status.locked_until, status.consecutive_failures) == (None, 2)
    codes.verify_code(ACCOUNT, wrong(code))  # TOO_MANY_ATTEMPTS: 3 failures
    last = clock.now()
    issue(codes)  # R1.6: a new code does not reset the count
    assert codes.inspect(ACCOUNT).consecutive_failures == 3
    clock.advance(LOCKOUT - MS)
    assert codes.inspect(ACCOUNT).consecutive_failures == 3
    clock.advance(MS)  # R2.6: none added for lockout
    assert clock.now() == last + LOCKOUT
    assert codes.inspect(ACCOUNT).consecutive_failures == 0

    lock(codes)
    locked_at = clock.now()
    status = codes.inspect(ACCOUNT)
    assert status.locked_until == locked_at + LOCKOUT
    assert status.consecutive_failures == 0  # the count starts again from zero after the lock
    assert status.active_code is None  # the locking guess burned the code
    clock.advance(LOCKOUT - MS)
    assert codes.inspect(ACCOUNT).locked_until == locked_at + LOCKOUT
    clock.advance(MS)
    assert codes.inspect(ACCOUNT).locked_until is None


def test_r9_1_codes_counting_in_the_window(harness: Harness, clock: FakeClock) -> None:
    """R9.1 'codes counting in the window' (R1.2, R1.4: a used code stops counting)."""
    codes = harness.codes()
    issue(codes)
    clock.advance(minutes=10)
    code = issue(codes)
    assert codes.inspect(ACCOUNT).codes_counting == 2
    assert isinstance(codes.verify_code(ACCOUNT, code), Verified)
    assert codes.inspect(ACCOUNT).codes_counting == 1
    clock.advance(WINDOW - timedelta(minutes=10) - MS)
    assert codes.inspect(ACCOUNT).codes_counting == 1
    clock.advance(MS)
    assert codes.inspect(ACCOUNT).codes_counting == 0


def assert_next_code_at_is_exact(codes: Any, clock: FakeClock, account: str) -> None:
    """``next_code_at`` is when a request is allowed: refused 1 ms before, issued then."""
    at = codes.inspect(account).next_code_at
    assert at is not None
    assert at > clock.now()
    clock.advance(at - clock.now() - MS)
    refused = codes.request_code(account)
    assert isinstance(refused, Refused), refused
    assert refused.retry_after == MS, refused
    assert codes.inspect(account).next_code_at == at
    clock.advance(MS)
    assert codes.inspect(account).next_code_at is None
    assert isinstance(codes.request_code(account), Issued)


def test_r9_1_next_code_at_is_when_the_next_request_will_be_allowed(
    harness: Harness, clock: FakeClock
) -> None:
    """R9.1 'when the next request will be allowed (none if now)': a full window, a lock."""
    codes = harness.codes()
    assert codes.inspect(ACCOUNT).next_code_at is None
    first = clock.now()
    for _ in range(4):
        issue(codes)
        clock.advance(minutes=1)
    assert codes.inspect(ACCOUNT).next_code_at is None  # 4 of 5: a request now is allowed
    issue(codes)
    assert codes.inspect(ACCOUNT).next_code_at == first + WINDOW  # R1.3
    assert_next_code_at_is_exact(codes, clock, ACCOUNT)

    lock(codes, OTHER_ACCOUNT)
    assert codes.inspect(OTHER_ACCOUNT).next_code_at == clock.now() + LOCKOUT
    assert_next_code_at_is_exact(codes, clock, OTHER_ACCOUNT)


def test_r9_1_next_code_at_when_the_window_outlasts_the_lock(
    harness: Harness, clock: FakeClock
) -> None:
    """R9.1 'when the next request will be allowed', with a lock shorter than the window.

    Two codes fill the window of SHORT_LOCK and the third guess locks for 5 minutes:
    when the lock ends the window is still full for 5 more minutes, and a request is
    refused TOO_MANY_CODES until then.
    """
    codes = harness.codes(policy=SHORT_LOCK)
    first = clock.now()
    lock(codes, policy=SHORT_LOCK)
    status = codes.inspect(ACCOUNT)
    assert status.locked_until == first + SHORT_LOCK.lockout
    assert status.codes_counting == 2
    assert status.next_code_at == first + SHORT_LOCK.code_window
    assert_next_code_at_is_exact(codes, clock, ACCOUNT)


def test_r9_1_next_code_at_counts_the_sending_budgets(harness: Harness, clock: FakeClock) -> None:
    """R9.1 'when the next request will be allowed' with R10.1 and R10.2 on."""
    policy = Policy(resend_interval=timedelta(seconds=60), max_codes_per_day=2)
    codes = harness.codes(policy=policy)
    issue(codes)
    assert codes.inspect(ACCOUNT).next_code_at == clock.now() + timedelta(seconds=60)
    assert_next_code_at_is_exact(codes, clock, ACCOUNT)  # TOO_SOON until then
    first_day_end = clock.now() - timedelta(seconds=60) + timedelta(days=1)
    clock.advance(seconds=60)
    assert codes.inspect(ACCOUNT).next_code_at == first_day_end
    assert_next_code_at_is_exact(codes, clock, ACCOUNT)  # DAILY_LIMIT until then


def test_r9_1_the_active_code_issue_time_expiry_and_attempts_left(
    harness: Harness, clock: FakeClock
) -> None:
    """R9.1 'the active code's issue time, expiry and attempts left (never the code)'.

    An expired code stays the active one (it answers EXPIRED) until its hour has
    passed (R2.3): its ``expires_at`` is then in the past.
    """
    codes = harness.codes()
    issued = clock.now()
    code = issue(codes)
    assert codes.inspect(ACCOUNT).active_code == CodeStatus(issued, issued + TTL, 3)
    codes.verify_code(ACCOUNT, wrong(code))
    assert codes.inspect(ACCOUNT).active_code == CodeStatus(issued, issued + TTL, 2)
    codes.verify_code(ACCOUNT, "12-34 5")  # malformed: not a guess (R2.1)
    assert codes.inspect(ACCOUNT).active_code == CodeStatus(issued, issued + TTL, 2)
    clock.advance(TTL)
    assert codes.verify_code(ACCOUNT, code) == Refused(Reason.EXPIRED)
    assert codes.inspect(ACCOUNT).active_code == CodeStatus(issued, issued + TTL, 2)
    clock.advance(WINDOW - TTL - MS)
    assert codes.inspect(ACCOUNT).active_code == CodeStatus(issued, issued + TTL, 2)
    clock.advance(MS)
    assert codes.inspect(ACCOUNT).active_code is None
    assert codes.verify_code(ACCOUNT, code) == Refused(Reason.NO_CODE)

    # a used code, a burned one and a replaced one are not active
    replaced = issue(codes)
    clock.advance(MS)
    newer_at = clock.now()
    newer = issue(codes)
    assert codes.inspect(ACCOUNT).active_code == CodeStatus(newer_at, newer_at + TTL, 3)
    if replaced != newer:  # one chance in a million that they are the same
        assert codes.verify_code(ACCOUNT, replaced) == Refused(Reason.WRONG_CODE, attempts_left=2)
    code = issue(codes)
    assert isinstance(codes.verify_code(ACCOUNT, code), Verified)
    assert codes.inspect(ACCOUNT).active_code is None
    clock.advance(WINDOW)
    code = issue(codes)
    for _ in range(3):
        codes.verify_code(ACCOUNT, wrong(code))
    assert codes.inspect(ACCOUNT).active_code is None


def test_r9_1_trusted_devices_with_id_grant_time_and_trust_end(
    harness: Harness, clock: FakeClock
) -> None:
    """R9.1 'the trusted devices: for each a short opaque device_id, its grant time and its
    trust end', oldest grant first."""
    codes = harness.codes()
    granted = []
    tokens = []
    for fingerprint in (FP, OTHER_FP, FP):
        granted.append(clock.now())
        tokens.append(trust(codes, fingerprint=fingerprint))
        clock.advance(days=1)
    devices = codes.inspect(ACCOUNT).devices
    assert [(d.granted_at, d.expires_at) for d in devices] == [(t, t + TRUST) for t in granted]
    ids = [d.device_id for d in devices]
    assert devices == tuple(
        TrustedDevice(i, t, t + TRUST) for i, t in zip(ids, granted, strict=True)
    )
    assert len(set(ids)) == 3
    for device_id in ids:
        assert isinstance(device_id, str)
        assert 8 <= len(device_id) <= 32  # short
        assert set(device_id) <= set(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        )
        assert device_id not in tokens
        assert FP not in device_id
        assert OTHER_FP not in device_id
    assert codes.inspect(OTHER_ACCOUNT).devices == ()
    # R3.4 in the listing: using a device does not extend its trust
    assert codes.is_trusted_device(ACCOUNT, tokens[0], FP)
    assert codes.inspect(ACCOUNT).devices == devices


def test_r9_1_expired_and_revoked_devices_are_not_listed(
    harness: Harness, clock: FakeClock
) -> None:
    """R9.1 'Expired and revoked devices are not listed.'"""
    codes = harness.codes()
    first_at = clock.now()
    first = trust(codes)
    clock.advance(days=1)
    second = trust(codes, fingerprint=OTHER_FP)
    clock.advance(days=1)
    third_at = clock.now()
    trust(codes)
    assert codes.forget_device(ACCOUNT, second) is True
    listed = codes.inspect(ACCOUNT).devices
    assert [d.granted_at for d in listed] == [first_at, third_at]
    clock.advance(first_at + TRUST - clock.now() - MS)
    assert len(codes.inspect(ACCOUNT).devices) == 2
    assert codes.is_trusted_device(ACCOUNT, first, FP)
    clock.advance(MS)  # the first device's trust ends
    assert not codes.is_trusted_device(ACCOUNT, first, FP)
    assert [d.granted_at for d in codes.inspect(ACCOUNT).devices] == [third_at]
    assert codes.forget_all_devices(ACCOUNT) == 1
    assert codes.inspect(ACCOUNT).devices == ()


def test_r9_1_past_max_trusted_devices_the_oldest_grant_is_forgotten(
    harness: Harness, clock: FakeClock
) -> None:
    """Policy.max_trusted_devices (default 10): trusting one more browser forgets the oldest
    grant, so that an account's record stays small; the others stay trusted."""
    assert Policy().max_trusted_devices == 10
    with pytest.raises(ValueError, match="max_trusted_devices"):
        Policy(max_trusted_devices=0)
    policy = Policy(max_trusted_devices=3)
    codes = harness.codes(policy=policy)
    tokens: list[str] = []
    ids: list[str] = []
    known: set[str] = set()
    for i in range(3):
        tokens.append(trust(codes, fingerprint=f"fp-{i}"))
        ids.append(new_id(codes, known))
        clock.advance(minutes=1)
    for i in range(3, 6):
        tokens.append(trust(codes, fingerprint=f"fp-{i}"))
        ids.append(new_id(codes, known))
        listed = [d.device_id for d in codes.inspect(ACCOUNT).devices]
        assert listed == ids[i - 2 : i + 1]  # the three newest, oldest first
        for j, token in enumerate(tokens):
            assert codes.is_trusted_device(ACCOUNT, token, f"fp-{j}") is (j > i - 3), (i, j)
        assert codes.forget_device(ACCOUNT, tokens[i - 3]) is False  # already forgotten
        clock.advance(minutes=1)
    # a revoked device leaves room: nothing more is forgotten
    assert codes.forget_device_id(ACCOUNT, ids[3]) is True
    tokens.append(trust(codes, fingerprint="fp-6"))
    ids.append(new_id(codes, known))
    assert [d.device_id for d in codes.inspect(ACCOUNT).devices] == [ids[4], ids[5], ids[6]]
    # other accounts have their own cap
    trust(codes, OTHER_ACCOUNT)
    assert len(codes.inspect(ACCOUNT).devices) == 3
    assert codes.forget_all_devices(ACCOUNT) == 3


def test_r9_1_the_status_holds_no_code_fingerprint_or_token(
    harness: Harness, clock: FakeClock
) -> None:
    """R9.1 '(never the code)', and R4.2/R4.3: no fingerprint, token or account id either."""
    codes = harness.codes()
    token = trust(codes)
    code = issue(codes)
    codes.verify_code(ACCOUNT, wrong(code))
    status = codes.inspect(ACCOUNT)
    assert status.active_code is not None
    assert len(status.devices) == 1
    text = repr(status) + repr(attrs.asdict(status))
    for secret in (code, wrong(code), FP, token, *account_spellings(ACCOUNT)):
        assert secret not in text, secret


# -- R9.2 forget_device_id, and calls that say what they changed ------------------------------
def test_r9_2_forget_device_id_revokes_without_the_token(
    harness: Harness, clock: FakeClock
) -> None:
    """R9.2 'forget_device_id(account, device_id) revokes one device without its token'."""
    codes = harness.codes()
    known: set[str] = set()
    lost = trust(codes)
    lost_id = new_id(codes, known)
    clock.advance(minutes=1)
    kept = trust(codes, fingerprint=OTHER_FP)
    kept_id = new_id(codes, known)
    assert codes.forget_device_id(SPELLINGS[1], lost_id) is True
    assert not codes.is_trusted_device(ACCOUNT, lost, FP)
    assert codes.is_trusted_device(ACCOUNT, kept, OTHER_FP)
    assert [d.device_id for d in codes.inspect(ACCOUNT).devices] == [kept_id]
    assert codes.forget_device_id(ACCOUNT, lost_id) is False  # nothing left to revoke
    assert codes.forget_device(ACCOUNT, lost) is False


def test_r9_2_forget_device_id_of_an_unknown_or_foreign_id_changes_nothing(
    harness: Harness, clock: FakeClock
) -> None:
    """R9.2: an id of another account, an id never issued, a str that is not an id: False;
    anything but a str raises TypeError (R7.4)."""
    codes = harness.codes()
    token = trust(codes)
    (device,) = codes.inspect(ACCOUNT).devices
    before = harness.dump()
    for account, device_id in [
        (OTHER_ACCOUNT, device.device_id),
        (ACCOUNT, "A" * len(device.device_id)),
        (ACCOUNT, ""),
        (ACCOUNT, "no such device"),
        (ACCOUNT, device.device_id[:-1]),
        (ACCOUNT, device.device_id + "A"),
        (ACCOUNT, f" {device.device_id}"),
        (ACCOUNT, token),
    ]:
        assert codes.forget_device_id(account, device_id) is False, device_id
    for bad in (None, 42, device.device_id.encode()):
        with pytest.raises(TypeError, match="device_id"):
            codes.forget_device_id(ACCOUNT, bad)
    assert harness.dump() == before
    assert codes.is_trusted_device(ACCOUNT, token, FP)


def test_r9_2_unlock_says_whether_it_changed_anything(harness: Harness, clock: FakeClock) -> None:
    """R9.2 'unlock ... say[s] whether [it] changed anything': a lock, or failures that
    still count; an ended lock or forgotten failures are no change."""
    codes = harness.codes()
    assert codes.unlock(ACCOUNT) is False  # never seen
    code = issue(codes)
    assert codes.unlock(ACCOUNT) is False  # a code, no failure
    codes.verify_code(ACCOUNT, wrong(code))
    assert codes.unlock(ACCOUNT) is True  # one failure that counted
    assert codes.inspect(ACCOUNT).consecutive_failures == 0
    assert codes.unlock(ACCOUNT) is False
    codes.verify_code(ACCOUNT, wrong(code))
    clock.advance(LOCKOUT)  # R2.6: forgotten
    assert codes.unlock(ACCOUNT) is False
    lock(codes)
    assert codes.unlock(ACCOUNT) is True
    assert codes.inspect(ACCOUNT).locked_until is None
    assert isinstance(codes.request_code(ACCOUNT), Issued)
    assert codes.unlock(ACCOUNT) is False
    clock.advance(WINDOW)  # the window is full: let it empty
    lock(codes)
    clock.advance(LOCKOUT)  # the lock has ended by itself
    assert codes.unlock(ACCOUNT) is False


def test_r9_2_forget_device_says_whether_it_changed_anything(
    harness: Harness, clock: FakeClock
) -> None:
    """R9.2 'forget_device ... say[s] whether [it] changed anything'; forget_all_devices
    returns how many devices it revoked."""
    codes = harness.codes()
    token = trust(codes)
    assert codes.forget_device(OTHER_ACCOUNT, token) is False  # not this account's
    assert codes.forget_device(ACCOUNT, None) is False
    assert codes.forget_device(ACCOUNT, "garbage") is False
    assert codes.forget_device(ACCOUNT, token) is True
    assert codes.forget_device(ACCOUNT, token) is False
    assert codes.forget_all_devices(ACCOUNT) == 0
    for fingerprint in (FP, OTHER_FP):
        trust(codes, fingerprint=fingerprint)
    old = trust(codes)
    clock.advance(TRUST - timedelta(days=1))
    trust(codes)
    clock.advance(days=1)  # the first three expire
    assert codes.forget_device(ACCOUNT, old) is False  # expired: no change
    count = codes.forget_all_devices(ACCOUNT)
    assert type(count) is int
    assert count == 1
    assert codes.forget_all_devices(ACCOUNT) == 0


# -- R9.3 events ---------------------------------------------------------------------------------
def test_r9_3_event_kinds_are_str_values() -> None:
    """R9.3 'Kinds (EventKind, a str enum): code_issued, code_refused, ...'."""
    assert [str(k) for k in EventKind] == [
        "code_issued",
        "code_refused",
        "code_verified",
        "code_rejected",
        "account_locked",
        "account_unlocked",
        "device_revoked",
        "all_devices_revoked",
        "authenticator_enrolled",  # R11, R12: the changes of the other factors
        "authenticator_removed",
        "recovery_codes_created",
    ]
    assert all(isinstance(k, str) for k in EventKind)
    assert EventKind("code_issued") is EventKind.CODE_ISSUED


def test_r9_3_every_operation_emits_exactly_one_event_matching_its_result(
    harness: Harness, clock: FakeClock
) -> None:
    """R9.3 'Every call that changes state or refuses reports what it decided as one event':
    its kind, the Reason where refused, the figures of the result, the time, account_ref."""
    events = Events()
    codes = harness.codes(on_event=events)

    def check(call: Callable[[], Any], kind: EventKind, **fields: Any) -> Any:
        result, event = one_event(events, call)
        ref = refs.setdefault("ref", event.account_ref)
        assert event == Event(kind, ref, clock.now(), **fields), (event, result)
        if isinstance(result, Refused):
            assert (event.reason, event.retry_after, event.attempts_left) == (
                result.reason,
                result.retry_after,
                result.attempts_left,
            )
        return result

    refs: dict[str, str] = {}
    code = check(lambda: codes.request_code(ACCOUNT), EventKind.CODE_ISSUED, remaining=4).code
    check(
        lambda: codes.verify_code(ACCOUNT, wrong(code)),
        EventKind.CODE_REJECTED,
        reason=Reason.WRONG_CODE,
        attempts_left=2,
    )
    check(
        lambda: codes.verify_code(ACCOUNT, "12a456"),
        EventKind.CODE_REJECTED,
        reason=Reason.MALFORMED_CODE,
    )
    clock.advance(seconds=1)
    # the device id is only known after the grant: compare it with inspect's
    events.clear()
    verified = codes.verify_code(ACCOUNT, code, remember_device=True, fingerprint=FP)
    assert isinstance(verified, Verified)
    (event,) = events.take()
    (device,) = codes.inspect(ACCOUNT).devices
    assert event == Event(
        EventKind.CODE_VERIFIED, refs["ref"], clock.now(), device_id=device.device_id
    )
    check(lambda: codes.verify_code(ACCOUNT, code), EventKind.CODE_REJECTED, reason=Reason.NO_CODE)
    code = check(lambda: codes.request_code(ACCOUNT), EventKind.CODE_ISSUED, remaining=4).code
    check(lambda: codes.verify_code(ACCOUNT, code), EventKind.CODE_VERIFIED)  # no device
    code = check(lambda: codes.request_code(ACCOUNT), EventKind.CODE_ISSUED, remaining=4).code
    clock.advance(TTL)
    check(lambda: codes.verify_code(ACCOUNT, code), EventKind.CODE_REJECTED, reason=Reason.EXPIRED)
    code = check(lambda: codes.request_code(ACCOUNT), EventKind.CODE_ISSUED, remaining=3).code
    for left in (2, 1):
        check(
            lambda: codes.verify_code(ACCOUNT, wrong(code)),
            EventKind.CODE_REJECTED,
            reason=Reason.WRONG_CODE,
            attempts_left=left,
        )
    check(
        lambda: codes.verify_code(ACCOUNT, wrong(code)),
        EventKind.CODE_REJECTED,
        reason=Reason.TOO_MANY_ATTEMPTS,
    )
    for remaining in (2, 1, 0):
        check(lambda: codes.request_code(ACCOUNT), EventKind.CODE_ISSUED, remaining=remaining)
    # 5 counting: the oldest (the expired one, issued at +1 s) leaves at +1 s + 1 h,
    # 45 minutes from now
    check(
        lambda: codes.request_code(ACCOUNT),
        EventKind.CODE_REFUSED,
        reason=Reason.TOO_MANY_CODES,
        retry_after=WINDOW - TTL,
    )
    clock.advance(WINDOW)
    for _ in range(2):  # 3 + 6 failures, then the one that locks
        code = issue(codes)
        for _ in range(3):
            codes.verify_code(ACCOUNT, wrong(code))
    code = issue(codes)
    events.clear()
    check(
        lambda: codes.verify_code(ACCOUNT, wrong(code)),
        EventKind.ACCOUNT_LOCKED,
        reason=Reason.ACCOUNT_LOCKED,
        retry_after=LOCKOUT,
    )
    clock.advance(hours=1)
    check(
        lambda: codes.request_code(ACCOUNT),
        EventKind.CODE_REFUSED,
        reason=Reason.ACCOUNT_LOCKED,
        retry_after=LOCKOUT - timedelta(hours=1),
    )
    check(
        lambda: codes.verify_code(ACCOUNT, code),
        EventKind.CODE_REJECTED,
        reason=Reason.ACCOUNT_LOCKED,
        retry_after=LOCKOUT - timedelta(hours=1),
    )
    assert check(lambda: codes.unlock(ACCOUNT), EventKind.ACCOUNT_UNLOCKED) is True
    assert (
        check(
            lambda: codes.forget_device_id(ACCOUNT, device.device_id),
            EventKind.DEVICE_REVOKED,
            device_id=device.device_id,
        )
        is True
    )
    known: set[str] = set()
    token = trust(codes)
    device_id = new_id(codes, known)
    trust(codes, fingerprint=OTHER_FP)
    new_id(codes, known)
    trust(codes, fingerprint="fp-3")
    events.clear()
    assert (
        check(
            lambda: codes.forget_device(ACCOUNT, token),
            EventKind.DEVICE_REVOKED,
            device_id=device_id,
        )
        is True
    )
    assert (
        check(
            lambda: codes.forget_all_devices(ACCOUNT),
            EventKind.ALL_DEVICES_REVOKED,
            devices_revoked=2,
        )
        == 2
    )


def test_r9_3_reads_and_no_op_calls_emit_nothing(harness: Harness, clock: FakeClock) -> None:
    """R9.3 'reads (inspect, is_trusted_device) and calls that change nothing report none'."""
    events = Events()
    codes = harness.codes(on_event=events)
    token = trust(codes)
    (device,) = codes.inspect(ACCOUNT).devices
    code = issue(codes)
    codes.verify_code(ACCOUNT, wrong(code))
    events.clear()
    no_ops: list[tuple[Callable[[], Any], Any]] = [
        (lambda: codes.inspect(ACCOUNT), codes.inspect(ACCOUNT)),
        (lambda: codes.inspect(OTHER_ACCOUNT), codes.inspect(OTHER_ACCOUNT)),
        (lambda: codes.is_trusted_device(ACCOUNT, token, FP), True),
        (lambda: codes.is_trusted_device(ACCOUNT, token, OTHER_FP), False),
        (lambda: codes.is_trusted_device(ACCOUNT, None, FP), False),
        (lambda: codes.is_trusted_device(OTHER_ACCOUNT, token, FP), False),
        (lambda: codes.unlock(OTHER_ACCOUNT), False),
        (lambda: codes.forget_device(ACCOUNT, None), False),
        (lambda: codes.forget_device(ACCOUNT, "garbage"), False),
        (lambda: codes.forget_device(OTHER_ACCOUNT, token), False),
        (lambda: codes.forget_device_id(OTHER_ACCOUNT, device.device_id), False),
        (lambda: codes.forget_device_id(ACCOUNT, "A" * 22), False),
        (lambda: codes.forget_device_id(ACCOUNT, "no such device"), False),
        (lambda: codes.forget_all_devices(OTHER_ACCOUNT), 0),
    ]
    for call, expected in no_ops:
        assert call() == expected
    assert events == []
    # a call that raises before anything is read or written reports nothing either
    with pytest.raises(ValueError, match="fingerprint"):
        codes.verify_code(ACCOUNT, code, remember_device=True)
    assert events == []
    # once a lock has ended, failures forgotten, trust expired: nothing left to change
    clock.advance(TRUST)
    assert codes.unlock(ACCOUNT) is False
    assert codes.forget_device(ACCOUNT, token) is False
    assert codes.forget_device_id(ACCOUNT, device.device_id) is False
    assert codes.forget_all_devices(ACCOUNT) == 0
    assert codes.is_trusted_device(ACCOUNT, token, FP) is False
    assert events == []


def test_r9_3_a_malformed_code_is_a_code_rejected_event_without_a_round_trip(
    harness: Harness, clock: FakeClock, servers: Servers
) -> None:
    """R9.3 'code_rejected (a verification refused: the Reason says why, malformed input
    included)', and R2.1/R6.2: it costs no store round trip."""
    events = Events()
    codes, spy = spied(harness, on_event=events)
    code = issue(codes)
    for typed in ("", "12345", "1234567", "12a456", "١٢٣٤٥٦", "0" * 65, code + "\n"):
        spy.calls.clear()
        with servers.count() as ran:
            result, event = one_event(events, lambda t=typed: codes.verify_code(ACCOUNT, t))
        assert result == Refused(Reason.MALFORMED_CODE)
        assert spy.calls == []
        assert not ran, ran
        assert event.kind is EventKind.CODE_REJECTED
        assert event.reason is Reason.MALFORMED_CODE
        assert event.at == clock.now()
        assert (event.attempts_left, event.retry_after, event.remaining) == (None, None, None)
    assert isinstance(codes.verify_code(ACCOUNT, code), Verified)  # a typo is not a guess


def test_r9_3_every_hook_of_a_list_gets_every_event(harness: Harness) -> None:
    """R9.3 'to the hooks the service registered': one hook, or a list of them, in order."""
    seen: list[tuple[str, EventKind]] = []
    codes = harness.codes(
        on_event=[lambda e: seen.append(("a", e.kind)), lambda e: seen.append(("b", e.kind))]
    )
    issue(codes)
    codes.unlock(ACCOUNT)  # no change: no event
    assert seen == [("a", EventKind.CODE_ISSUED), ("b", EventKind.CODE_ISSUED)]
    with pytest.raises(TypeError, match="on_event"):
        harness.codes(on_event=[print, "not a hook"])
    with pytest.raises(TypeError, match="on_event"):
        harness.codes(on_event=42)


def test_r9_3_a_raising_hook_does_not_change_the_result_and_is_logged(
    harness: Harness, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """R9.3 'A hook that raises does not change the result (the error is logged).'"""

    def broken(event: Event) -> None:
        raise RuntimeError("the metrics server is down")

    events = Events()
    codes = harness.codes(on_event=[broken, events])
    with caplog.at_level(logging.ERROR, logger="ameli_otp"):
        issued = codes.request_code(ACCOUNT)
        assert isinstance(issued, Issued)
        assert issued.remaining == 4
        code = issued.code
        assert codes.verify_code(ACCOUNT, wrong(code)) == Refused(
            Reason.WRONG_CODE, attempts_left=2
        )
        verified = codes.verify_code(ACCOUNT, code, remember_device=True, fingerprint=FP)
        assert isinstance(verified, Verified)
        assert codes.is_trusted_device(ACCOUNT, verified.device_token, FP)
        assert codes.forget_device(ACCOUNT, verified.device_token) is True
    kinds = [EventKind.CODE_ISSUED, EventKind.CODE_REJECTED, EventKind.CODE_VERIFIED]
    kinds.append(EventKind.DEVICE_REVOKED)
    assert [e.kind for e in events] == kinds  # the next hook still got every event
    failures = [r for r in caplog.records if "hook" in r.getMessage()]
    assert len(failures) == len(kinds)
    for record, kind in zip(failures, kinds, strict=True):
        assert record.levelno == logging.ERROR
        assert record.exc_info is not None
        assert isinstance(record.exc_info[1], RuntimeError)
        assert str(kind) in record.getMessage()
    # the decisions were kept: the code was used, its entry left the window (R1.4)
    assert codes.inspect(ACCOUNT).codes_counting == 0
    assert codes.verify_code(ACCOUNT, code) == Refused(Reason.NO_CODE)


def account_spellings(account: str) -> list[str]:
    """Ways an account id could leak: as typed, spaced, full-width, hex, base64."""
    raw = account.encode()
    return [
        account,
        " ".join(account[i : i + 3] for i in range(0, len(account), 3)),
        "".join(chr(0xFF10 + int(d)) if d.isdigit() else d for d in account),
        raw.hex(),
        raw.hex().upper(),
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
    ]


def test_r9_3_events_never_carry_an_id_code_fingerprint_or_token(
    harness: Harness, clock: FakeClock
) -> None:
    """R9.3 'It never carries the account id, a code, a fingerprint or a token', over a
    whole flow (every kind of event), in the event, its repr and its fields()."""
    events = Events()
    codes = harness.codes(on_event=[events, logging_hook()])
    secrets_seen: list[str] = [FP, OTHER_FP]
    for account in SPELLINGS:  # every spelling reaches one account
        code = issue(codes, account)
        secrets_seen += [code, wrong(code)]
        codes.verify_code(account, wrong(code))
        codes.verify_code(account, f"{code[:3]} {code[3:]}x")  # malformed
        verified = codes.verify_code(account, code, remember_device=True, fingerprint=FP)
        assert isinstance(verified, Verified)
        assert verified.device_token is not None
        secrets_seen.append(verified.device_token)
        codes.verify_code(account, code)  # NO_CODE
    token = trust(codes, fingerprint=OTHER_FP)
    secrets_seen.append(token)
    codes.forget_device(ACCOUNT, token)
    codes.forget_device_id(ACCOUNT, codes.inspect(ACCOUNT).devices[0].device_id)
    codes.forget_all_devices(ACCOUNT)
    for _ in range(4):
        code = issue(codes)
        secrets_seen.append(code)
        for _ in range(3):
            codes.verify_code(ACCOUNT, wrong(code))
    codes.request_code(ACCOUNT)  # locked
    codes.unlock(ACCOUNT)
    enrollment = codes.enroll_authenticator(ACCOUNT, name="someone")  # R11, R12
    secrets_seen += [enrollment.secret, enrollment.provisioning_uri]
    codes.confirm_authenticator(ACCOUNT, "000000")
    recovery = codes.new_recovery_codes(ACCOUNT)
    secrets_seen += list(recovery)
    codes.use_recovery_code(ACCOUNT, recovery[0], remember_device=True, fingerprint=FP)
    codes.remove_authenticator(ACCOUNT)
    kinds = {e.kind for e in events}
    assert kinds == set(EventKind)  # every kind of event
    forbidden = secrets_seen + account_spellings(ACCOUNT)
    for event in events:
        text = " ".join(
            [repr(event), repr(event.fields()), json.dumps(event.fields()), str(event.fields())]
        )
        for value in attrs.astuple(event):
            text += f" {value!s} {value!r}"
        for secret in forbidden:
            assert secret not in text, (secret, event)


def test_r9_3_account_ref_is_stable_under_secret_rotation(harness: Harness) -> None:
    """R9.3 'an account_ref: a keyed pseudonym of the account, stable under key rotation'.

    Same account (however typed), same ref; another account, another ref; a new first
    secret (R4.1 rotation) keeps it; it is keyed (another oldest secret gives another ref).
    """
    events = Events()
    before = harness.codes(secret=SECRET, on_event=events)
    after = harness.codes(secret=[NEW_SECRET, SECRET], on_event=events)
    foreign = harness.codes(secret=OTHER_SECRET, on_event=events)

    def ref(codes: Any, account: str) -> str:
        _, event = one_event(events, lambda: codes.request_code(account))
        return event.account_ref

    first = ref(before, ACCOUNT)
    assert [ref(before, s) for s in SPELLINGS] == [first] * len(SPELLINGS)
    assert [ref(after, s) for s in SPELLINGS] == [first] * len(SPELLINGS)
    assert ref(before, OTHER_ACCOUNT) not in (first, ACCOUNT)
    assert ref(after, OTHER_ACCOUNT) == ref(before, OTHER_ACCOUNT)
    assert ref(foreign, ACCOUNT) != first  # keyed: not a plain hash of the id
    for spelling in account_spellings(ACCOUNT):
        assert spelling not in first
    assert len(first) >= 16  # wide enough that two accounts do not share one


# -- R9.4 ready sinks ----------------------------------------------------------------------------
def test_r9_4_logging_hook_one_record_per_event_with_fields_in_extra(
    harness: Harness, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """R9.4 'the standard logging module (one record per event on the ameli_otp.events
    logger, fields in extra)'."""
    events = Events()
    codes = harness.codes(on_event=[logging_hook(), events])
    with caplog.at_level(logging.DEBUG, logger="ameli_otp.events"):
        code = issue(codes)
        codes.verify_code(ACCOUNT, wrong(code))
        codes.verify_code(ACCOUNT, code, remember_device=True, fingerprint=FP)
        codes.inspect(ACCOUNT)  # a read: no record
        lock(codes)
        codes.unlock(ACCOUNT)
        codes.forget_all_devices(ACCOUNT)
        codes.unlock(ACCOUNT)  # no change: no record
    records = [r for r in caplog.records if r.name == "ameli_otp.events"]
    assert len(records) == len(events) > 10
    for record, event in zip(records, events, strict=True):
        fields = record.ameli_otp  # type: ignore[attr-defined]
        assert fields == event.fields()
        assert fields["kind"] == str(event.kind)
        assert fields["account_ref"] == event.account_ref
        assert event.at == clock.now()
        assert fields["at"] == event.at.isoformat()
        json.dumps(fields)  # JSON-ready
        message = record.getMessage()
        assert message.startswith(str(event.kind))
        assert f"account_ref={event.account_ref}" in message
        if event.reason is not None:
            assert fields["reason"] == str(event.reason)
            assert f"reason={event.reason}" in message
        if event.retry_after is not None:
            assert fields["retry_after"] == event.retry_after.total_seconds()
        loud = event.kind is EventKind.ACCOUNT_LOCKED
        assert record.levelno == (logging.WARNING if loud else logging.INFO)
    locked = [e for e in events if e.kind is EventKind.ACCOUNT_LOCKED]
    assert len(locked) == 1
    assert locked[0].fields()["retry_after"] == LOCKOUT.total_seconds()


def test_r9_4_logging_hook_on_a_logger_of_ones_own(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """R9.4: ``logging_hook(logger, level)`` logs there, at that level."""
    mine = logging.getLogger("my_service.security")
    codes = harness.codes(on_event=logging_hook(mine, level=logging.DEBUG))
    with caplog.at_level(logging.DEBUG, logger="my_service.security"):
        issue(codes)
    (record,) = caplog.records
    assert (record.name, record.levelno) == ("my_service.security", logging.DEBUG)
    assert record.ameli_otp["kind"] == "code_issued"  # type: ignore[attr-defined]
    assert record.ameli_otp["remaining"] == 4  # type: ignore[attr-defined]


def test_r9_4_metrics_counters_by_kind_and_reason(harness: Harness) -> None:
    """R9.4 '... and metrics counters by kind and reason' (the ``metrics`` extra)."""
    prometheus_client = pytest.importorskip("prometheus_client")
    from ameli_otp.metrics import prometheus_hook

    registry = prometheus_client.CollectorRegistry()
    codes = harness.codes(on_event=prometheus_hook(registry))
    code = issue(codes)
    codes.verify_code(ACCOUNT, wrong(code))
    codes.verify_code(ACCOUNT, wrong(code))
    codes.verify_code(ACCOUNT, "oops")
    codes.verify_code(ACCOUNT, code)
    codes.inspect(ACCOUNT)

    def count(kind: str, reason: str = "") -> float | None:
        labels = {"kind": kind, "reason": reason, "factor": "email"}
        return registry.get_sample_value("ameli_otp_events_total", labels)

    assert count("code_issued") == 1
    assert count("code_rejected", "wrong_code") == 2
    assert count("code_rejected", "malformed_code") == 1
    assert count("code_verified") == 1
    assert count("code_rejected", "no_code") is None
