"""RULES.md R7 (bad input) on every public entry point, and fuzzing of device tokens.

R7: 'Anything else raises TypeError or ValueError with a message that names the
argument, before anything is read or stored.' Every test checks the exception
type, that the message names the argument, and that the store holds exactly
what it held before the call (``harness.dump()``).
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import attrs
import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

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
from tests.harness import SECRET, Harness

ACCOUNT = "1850775123456"
FP = "fp-firefox-128-linux-1920x1080"
OTHER_FP = "fp-chrome-131-windows-2560x1440"
TOKEN_ALPHABET = string.ascii_letters + string.digits + "-_"
FUZZ = settings(max_examples=200, deadline=None)

BAD_IDS: list[tuple[object, type[Exception]]] = [
    (None, TypeError),
    (123, TypeError),
    (1.5, TypeError),
    (b"1850775123456", TypeError),
    (["1850775123456"], TypeError),
    ("", ValueError),
    ("a" * 257, ValueError),
    ("é" * 257, ValueError),
]
GOOD_IDS = ["a", "a" * 256, "é" * 256, "\U0001f600" * 256, " ", "{x}", "a:b", "\x00"]


def word(name: str) -> str:
    """A regex that finds ``name`` as a word in an error message."""
    return rf"\b{name}\b"


def issue(codes, account: str = ACCOUNT) -> str:
    result = codes.request_code(account)
    assert isinstance(result, Issued), result
    return result.code


def trust(codes, account: str = ACCOUNT, fingerprint: str = FP) -> str:
    code = issue(codes, account)
    result = codes.verify_code(account, code, remember_device=True, fingerprint=fingerprint)
    assert isinstance(result, Verified), result
    assert isinstance(result.device_token, str)
    return result.device_token


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


class State:
    """A store with something in it: a trusted device, a code with one failure."""

    def __init__(self, harness: Harness) -> None:
        self.harness = harness
        self.codes = harness.codes()
        self.token = trust(self.codes)
        self.code = issue(self.codes)
        wrong_guess = self.codes.verify_code(ACCOUNT, wrong(self.code))
        assert wrong_guess == Refused(Reason.WRONG_CODE, attempts_left=2)
        self.before = harness.dump()

    def unchanged(self) -> None:
        """Nothing was stored, and the state still works as before."""
        assert self.harness.dump() == self.before
        assert self.codes.is_trusted_device(ACCOUNT, self.token, FP) is True
        assert self.codes.verify_code(ACCOUNT, wrong(self.code)) == Refused(
            Reason.WRONG_CODE, attempts_left=1
        )


@pytest.fixture
def state(harness: Harness) -> State:
    return State(harness)


# -- SecurityCodes: the account argument --------------------------------------------------------
ACCOUNT_CALLS: dict[str, Callable[[Any, Any, str], Any]] = {
    "request_code": lambda c, a, t: c.request_code(a),
    "verify_code": lambda c, a, t: c.verify_code(a, "123456"),
    "verify_code-remember": lambda c, a, t: c.verify_code(
        a, "123456", remember_device=True, fingerprint=FP
    ),
    "verify_code-malformed": lambda c, a, t: c.verify_code(a, "12"),
    "is_trusted_device": lambda c, a, t: c.is_trusted_device(a, t, FP),
    "is_trusted_device-no-token": lambda c, a, t: c.is_trusted_device(a, None, FP),
    "forget_device": lambda c, a, t: c.forget_device(a, t),
    "forget_all_devices": lambda c, a, t: c.forget_all_devices(a),
    "unlock": lambda c, a, t: c.unlock(a),
}


@pytest.mark.parametrize("call", list(ACCOUNT_CALLS))
def test_r7_bad_account_raises_naming_it_and_stores_nothing(state: State, call: str) -> None:
    """R7 'Account identifiers are non-empty str of at most 256 characters ... else raises'"""
    for account, error in BAD_IDS:
        with pytest.raises(error, match=word("account")):
            ACCOUNT_CALLS[call](state.codes, account, state.token)
    state.unchanged()


@pytest.mark.parametrize("account", GOOD_IDS, ids=lambda a: f"{a[:3]!a}x{len(a)}")
def test_r7_account_of_1_to_256_characters_accepted(harness: Harness, account: str) -> None:
    """R7 'Account identifiers are non-empty str of at most 256 characters'"""
    codes = harness.codes()
    token = trust(codes, account)
    assert codes.is_trusted_device(account, token, FP) is True
    codes.forget_device(account, token)
    codes.forget_all_devices(account)
    codes.unlock(account)
    code = issue(codes, account)
    assert codes.verify_code(account, code) == Verified()


# -- SecurityCodes.verify_code: code, remember_device, fingerprint ------------------------------
@pytest.mark.parametrize(
    "code",
    [None, 123456, 12.0, b"123456", ["1", "2"], bytearray(b"123456")],
    ids=lambda c: type(c).__name__,
)
def test_r7_code_not_a_str_raises_naming_it(state: State, code: object) -> None:
    """R7 'a code input is a str ... Anything else raises TypeError or ValueError'"""
    with pytest.raises(TypeError, match=word("code")):
        state.codes.verify_code(ACCOUNT, code)
    state.unchanged()


@pytest.mark.parametrize("code", ["", "1" * 257, "1" * 100_000], ids=["empty", "257", "100000"])
def test_r7_empty_or_oversized_code_is_malformed_and_stores_nothing(
    state: State, code: str
) -> None:
    """R7 'a code input is a str' (any str: R2.1 makes a wrong length MALFORMED_CODE)"""
    assert state.codes.verify_code(ACCOUNT, code) == Refused(Reason.MALFORMED_CODE)
    state.unchanged()


@pytest.mark.parametrize("remember", ["yes", None, [], 1.0], ids=repr)
def test_r7_remember_device_not_a_bool_raises_naming_it(state: State, remember: object) -> None:
    """R7 'Anything else raises ... with a message that names the argument' (remember_device)"""
    with pytest.raises(TypeError, match=word("remember_device")):
        state.codes.verify_code(ACCOUNT, state.code, remember_device=remember, fingerprint=FP)
    state.unchanged()


@pytest.mark.parametrize("remember", [True, False])
@pytest.mark.parametrize(
    ("fingerprint", "error"),
    [
        pytest.param(123, TypeError, id="int"),
        pytest.param(b"fp", TypeError, id="bytes"),
        pytest.param(["fp"], TypeError, id="list"),
        pytest.param("", ValueError, id="empty"),
    ],
)
def test_r7_bad_fingerprint_in_verify_raises_naming_it(
    state: State, remember: bool, fingerprint: object, error: type[Exception]
) -> None:
    """R7 'fingerprints are non-empty str. Anything else raises'"""
    for code in (state.code, wrong(state.code), "12"):
        with pytest.raises(error, match=word("fingerprint")):
            state.codes.verify_code(
                ACCOUNT, code, remember_device=remember, fingerprint=fingerprint
            )
    state.unchanged()


def test_r7_missing_fingerprint_with_remember_device_raises_naming_it(state: State) -> None:
    """R3.1/R7 'remember_device=True without a non-empty fingerprint raises ValueError'"""
    with pytest.raises(ValueError, match=word("fingerprint")):
        state.codes.verify_code(ACCOUNT, state.code, remember_device=True)
    state.unchanged()


@pytest.mark.parametrize(
    ("fingerprint", "error"),
    [
        pytest.param(None, TypeError, id="None"),
        pytest.param(123, TypeError, id="int"),
        pytest.param(b"fp", TypeError, id="bytes"),
        pytest.param("", ValueError, id="empty"),
    ],
)
def test_r7_bad_fingerprint_in_is_trusted_device_raises_naming_it(
    state: State, fingerprint: object, error: type[Exception]
) -> None:
    """R7 'fingerprints are non-empty str. Anything else raises'"""
    for token in (state.token, None, "garbage"):
        with pytest.raises(error, match=word("fingerprint")):
            state.codes.is_trusted_device(ACCOUNT, token, fingerprint)
    state.unchanged()


def test_r7_long_fingerprint_accepted(harness: Harness) -> None:
    """R7 'fingerprints are non-empty str' (no upper bound is set for them)"""
    codes = harness.codes()
    fingerprint = "f" * 10_000
    token = trust(codes, fingerprint=fingerprint)
    assert codes.is_trusted_device(ACCOUNT, token, fingerprint) is True
    assert codes.is_trusted_device(ACCOUNT, token, fingerprint[:-1]) is False


# -- SecurityCodes: the constructor -------------------------------------------------------------
@pytest.mark.parametrize(
    ("secret", "error", "name"),
    [
        pytest.param(None, TypeError, "secret", id="None"),
        pytest.param(123, TypeError, "secret", id="int"),
        pytest.param({SECRET: 1}, TypeError, "secret", id="dict"),
        pytest.param(b"", ValueError, "secret", id="empty-bytes"),
        pytest.param("", ValueError, "secret", id="empty-str"),
        pytest.param(b"x" * 31, ValueError, "secret", id="31-bytes"),
        pytest.param([], ValueError, "secret", id="empty-list"),
        pytest.param([SECRET, 5], TypeError, "secret", id="list-int"),
        pytest.param([SECRET, None], TypeError, "secret", id="list-None"),
        pytest.param([SECRET, b"short"], ValueError, "secret", id="list-short"),
        pytest.param(bytearray(SECRET), TypeError, "secret", id="bytearray"),
    ],
)
def test_r7_bad_secret_raises_naming_it(
    harness: Harness, secret: object, error: type[Exception], name: str
) -> None:
    """R4.1/R7 'secret is required: bytes or str, at least 32 bytes'"""
    with pytest.raises(error, match=word(name)):
        harness.codes(secret=secret)
    if secret is not None:  # the limiter's secret is optional: None means plain keys
        with pytest.raises(error, match=word(name)):
            harness.limiter(secret=secret)
    assert harness.dump() == b""


@pytest.mark.parametrize("policy", ["default", {}, 5, timedelta(minutes=15)], ids=repr)
def test_r7_bad_policy_raises_naming_it(harness: Harness, policy: object) -> None:
    """R7 'Anything else raises ... names the argument' (policy)"""
    with pytest.raises(TypeError, match=word("policy")):
        harness.codes(policy=policy)


@pytest.mark.parametrize("clock", [5, "now", 1.5], ids=repr)
def test_r7_clock_not_callable_raises_naming_it(harness: Harness, clock: object) -> None:
    """R5.1/R7 'clock= a callable returning seconds since the epoch'"""
    with pytest.raises(TypeError, match=word("clock")):
        harness.codes(clock=clock)
    with pytest.raises(TypeError, match=word("clock")):
        SlidingWindowLimiter(MemoryBackend(), limit=1, window=timedelta(hours=1), clock=clock)


@pytest.mark.parametrize(
    ("reading", "error"),
    [
        pytest.param("now", TypeError, id="str"),
        pytest.param(None, TypeError, id="None"),
        pytest.param(float("nan"), ValueError, id="nan"),
        pytest.param(float("inf"), ValueError, id="inf"),
    ],
)
def test_r7_clock_returning_garbage_raises_before_storing(
    harness: Harness, reading: object, error: type[Exception]
) -> None:
    """R5.1/R7 'a callable returning seconds since the epoch' (else: raise, nothing stored)"""
    codes = harness.codes(clock=lambda: reading)
    with pytest.raises(error, match=word("clock")):
        codes.request_code(ACCOUNT)
    with pytest.raises(error, match=word("clock")):
        codes.verify_code(ACCOUNT, "123456")
    assert harness.dump() == b""
    store = MemoryBackend()  # the harness builds limiters on its own clock only
    limiter = SlidingWindowLimiter(store, limit=1, window=timedelta(hours=1), clock=lambda: reading)
    with pytest.raises(error, match=word("clock")):
        limiter.hit("k")
    assert store.dump() == ""


@pytest.mark.parametrize(
    ("cls", "backend"),
    [
        pytest.param(SecurityCodes, None, id="sync-None"),
        pytest.param(SecurityCodes, object(), id="sync-object"),
        pytest.param(SecurityCodes, "memory", id="sync-str"),
        pytest.param(SecurityCodes, AsyncMemoryBackend(), id="sync-async-store"),
        pytest.param(AsyncSecurityCodes, MemoryBackend(), id="async-sync-store"),
        pytest.param(AsyncSecurityCodes, None, id="async-None"),
    ],
)
def test_r7_bad_backend_raises_naming_it(cls: Any, backend: object) -> None:
    """API '`backend` is positional' and must be a store of the right face"""
    with pytest.raises(TypeError, match=word("backend")):
        cls(backend, secret=SECRET)


def test_r7_constructor_arguments_keyword_only() -> None:
    """API '`backend` is positional; every other constructor argument is keyword-only.'"""
    with pytest.raises(TypeError):
        SecurityCodes(MemoryBackend(), SECRET)  # type: ignore[misc]
    with pytest.raises(TypeError):
        SlidingWindowLimiter(MemoryBackend(), 5, timedelta(hours=1))  # type: ignore[misc]


# -- SlidingWindowLimiter -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("limit", "error"),
    [
        pytest.param(0, ValueError, id="0"),
        pytest.param(-1, ValueError, id="-1"),
        pytest.param(True, TypeError, id="True"),
        pytest.param(5.0, TypeError, id="float"),
        pytest.param("5", TypeError, id="str"),
        pytest.param(None, TypeError, id="None"),
    ],
)
def test_r7_limiter_bad_limit_raises_naming_it(
    harness: Harness, limit: object, error: type[Exception]
) -> None:
    """R7 'counts are int (not bool) and positive' (limit)"""
    with pytest.raises(error, match=word("limit")):
        harness.limiter(limit=limit)
    assert harness.dump() == b""


@pytest.mark.parametrize(
    ("window", "error"),
    [
        pytest.param(3600, TypeError, id="int"),
        pytest.param(3600.0, TypeError, id="float"),
        pytest.param("1h", TypeError, id="str"),
        pytest.param(None, TypeError, id="None"),
        pytest.param(timedelta(0), ValueError, id="zero"),
        pytest.param(timedelta(seconds=-1), ValueError, id="negative"),
    ],
)
def test_r7_limiter_bad_window_raises_naming_it(
    harness: Harness, window: object, error: type[Exception]
) -> None:
    """R7 'durations are timedelta and positive' (window)"""
    with pytest.raises(error, match=word("window")):
        harness.limiter(window=window)
    assert harness.dump() == b""


@pytest.mark.parametrize("namespace", ["", None, 123, b"ip"], ids=repr)
def test_r7_limiter_bad_namespace_raises_naming_it(harness: Harness, namespace: object) -> None:
    """R7 'Anything else raises ... names the argument' (namespace)"""
    with pytest.raises((TypeError, ValueError), match=word("namespace")):
        harness.limiter(namespace=namespace)
    assert harness.dump() == b""


@pytest.mark.parametrize(
    ("cls", "backend"),
    [
        pytest.param(SlidingWindowLimiter, None, id="sync-None"),
        pytest.param(SlidingWindowLimiter, object(), id="sync-object"),
        pytest.param(SlidingWindowLimiter, AsyncMemoryBackend(), id="sync-async-store"),
        pytest.param(AsyncSlidingWindowLimiter, MemoryBackend(), id="async-sync-store"),
    ],
)
def test_r7_limiter_bad_backend_raises_naming_it(cls: Any, backend: object) -> None:
    """API 'SlidingWindowLimiter(backend, ...)': a store of the right face"""
    with pytest.raises(TypeError, match=word("backend")):
        cls(backend, limit=5, window=timedelta(hours=1))


LIMITER_CALLS: dict[str, Callable[[Any, Any], Any]] = {
    "hit": lambda lim, k: lim.hit(k),
    "peek": lambda lim, k: lim.peek(k),
    "release": lambda lim, k: lim.release(k, "0.0"),
    "release-None": lambda lim, k: lim.release(k, None),
    "reset": lambda lim, k: lim.reset(k),
}


@pytest.mark.parametrize("secret", [None, SECRET], ids=["plain", "hashed"])
@pytest.mark.parametrize("call", list(LIMITER_CALLS))
def test_r7_limiter_bad_key_raises_naming_it_and_stores_nothing(
    harness: Harness, secret: bytes | None, call: str
) -> None:
    """R7 (limiter keys, like account identifiers: non-empty str of at most 256 characters)"""
    limiter = harness.limiter(limit=3, secret=secret)
    limiter.hit("k")
    before = harness.dump()
    for key, error in BAD_IDS:
        with pytest.raises(error, match=word("key")):
            LIMITER_CALLS[call](limiter, key)
    assert harness.dump() == before
    assert limiter.peek("k").remaining == 2


@pytest.mark.parametrize("key", GOOD_IDS, ids=lambda a: f"{a[:3]!a}x{len(a)}")
def test_r7_limiter_key_of_1_to_256_characters_accepted(harness: Harness, key: str) -> None:
    """R7 (limiter keys: non-empty str of at most 256 characters)"""
    for secret in (None, SECRET):
        limiter = harness.limiter(limit=2, secret=secret, namespace=f"ns-{secret is None}")
        d = limiter.hit(key)
        assert (d.allowed, d.remaining) == (True, 1)
        assert limiter.peek(key).remaining == 1
        limiter.release(key, d.entry)
        assert limiter.peek(key).remaining == 2
        limiter.hit(key)
        limiter.reset(key)
        assert limiter.peek(key).remaining == 2


@pytest.mark.parametrize("secret", [None, SECRET], ids=["plain", "hashed"])
def test_r7_limiter_key_any_str_works_or_raises_naming_it(
    harness: Harness, secret: bytes | None
) -> None:
    """R7 'Anything else raises ... with a message that names the argument' (a lone surrogate)"""
    limiter = harness.limiter(limit=1, secret=secret)
    for key in ("\ud800", "a\udfffb"):
        error: Exception | None = None
        try:
            decision = limiter.hit(key)
        except (TypeError, ValueError) as exc:
            error = exc
        if error is not None:  # refused: the message must name the argument
            assert re.search(word("key"), str(error)), f"{key!r}: {error!r}"
            assert harness.dump() == b""
        else:  # accepted: it works like any other key
            assert decision.allowed is True
            assert limiter.hit(key).allowed is False


def test_r7_account_with_lone_surrogate_accepted(harness: Harness) -> None:
    """R7 'Account identifiers are non-empty str of at most 256 characters' (any str)"""
    codes = harness.codes()
    for account in ("\ud800", "a\udfffb"):
        token = trust(codes, account, fingerprint="\udc00")
        assert codes.is_trusted_device(account, token, "\udc00") is True


@pytest.mark.parametrize("entry", [123, b"0.0", ["0.0"], 1.5], ids=repr)
def test_r7_limiter_bad_entry_raises_naming_it(harness: Harness, entry: object) -> None:
    """R7 'Anything else raises ... names the argument' (release's entry: str or None)"""
    limiter = harness.limiter(limit=3)
    limiter.hit("k")
    before = harness.dump()
    with pytest.raises(TypeError, match=word("entry")):
        limiter.release("k", entry)
    assert harness.dump() == before


# -- Policy -------------------------------------------------------------------------------------
DURATIONS = ["code_ttl", "code_window", "lockout", "device_trust_ttl"]
COUNTS = ["max_unused_codes", "max_attempts_per_code", "max_failed_attempts", "code_length"]


@pytest.mark.parametrize("field", DURATIONS)
@pytest.mark.parametrize(
    ("value", "error"),
    [
        pytest.param(900, TypeError, id="int"),
        pytest.param(900.0, TypeError, id="float"),
        pytest.param("15m", TypeError, id="str"),
        pytest.param(None, TypeError, id="None"),
        pytest.param(True, TypeError, id="bool"),
        pytest.param(timedelta(0), ValueError, id="zero"),
        pytest.param(timedelta(seconds=-1), ValueError, id="negative"),
        pytest.param(timedelta(days=-400), ValueError, id="very-negative"),
    ],
)
def test_r7_policy_duration_must_be_positive_timedelta(
    field: str, value: object, error: type[Exception]
) -> None:
    """R7 'A Policy is validated when built: durations are timedelta and positive'"""
    with pytest.raises(error, match=word(field)):
        Policy(**{field: value})


@pytest.mark.parametrize("field", COUNTS)
@pytest.mark.parametrize(
    ("value", "error"),
    [
        pytest.param(True, TypeError, id="True"),
        pytest.param(False, TypeError, id="False"),
        pytest.param(5.0, TypeError, id="float"),
        pytest.param("5", TypeError, id="str"),
        pytest.param(None, TypeError, id="None"),
        pytest.param([5], TypeError, id="list"),
        pytest.param(0, ValueError, id="zero"),
        pytest.param(-1, ValueError, id="negative"),
    ],
)
def test_r7_policy_count_must_be_positive_int_not_bool(
    field: str, value: object, error: type[Exception]
) -> None:
    """R7 'counts are int (not bool) and positive'"""
    with pytest.raises(error, match=word(field)):
        Policy(**{field: value})


@pytest.mark.parametrize("length", [0, 1, 3, 13, 20, 100])
def test_r7_policy_code_length_within_4_to_12(length: int) -> None:
    """R7 'code_length is within 4..12'"""
    with pytest.raises(ValueError, match=word("code_length")):
        Policy(code_length=length)


@pytest.mark.parametrize("length", [4, 5, 6, 11, 12])
def test_r7_policy_code_length_edges_accepted(length: int) -> None:
    """R7 'code_length is within 4..12'"""
    assert Policy(code_length=length).code_length == length


@pytest.mark.parametrize(
    "kwargs",
    [
        {"code_ttl": timedelta(hours=1, milliseconds=1)},
        {"code_ttl": timedelta(hours=2)},
        {"code_window": timedelta(minutes=14)},
        {"code_ttl": timedelta(minutes=10), "code_window": timedelta(minutes=9)},
    ],
    ids=repr,
)
def test_r7_policy_code_ttl_at_most_code_window(kwargs: dict[str, timedelta]) -> None:
    """R7 'and code_ttl <= code_window.'"""
    with pytest.raises(ValueError, match=word("code_ttl")):
        Policy(**kwargs)


def test_r7_policy_code_ttl_equal_to_code_window_accepted() -> None:
    """R7 'code_ttl <= code_window' (equal is fine)"""
    policy = Policy(code_ttl=timedelta(minutes=30), code_window=timedelta(minutes=30))
    assert policy.code_ttl == policy.code_window


def test_r7_policy_defaults_are_those_of_the_rules() -> None:
    """API 'Policy(...)': the defaults of RULES.md"""
    assert Policy() == Policy(
        code_ttl=timedelta(minutes=15),
        code_window=timedelta(hours=1),
        max_unused_codes=5,
        max_attempts_per_code=3,
        max_failed_attempts=10,
        lockout=timedelta(hours=24),
        code_length=6,
        device_trust_ttl=timedelta(days=183),
    )


def test_r7_policy_is_frozen() -> None:
    """API 'Frozen, validated when built'"""
    policy = Policy()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        policy.code_ttl = timedelta(0)  # type: ignore[misc]
    assert policy.code_ttl == timedelta(minutes=15)


# -- the stores' constructors -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("max_records", "error"),
    [
        pytest.param(0, ValueError, id="0"),
        pytest.param(-1, ValueError, id="-1"),
        pytest.param("10", TypeError, id="str"),
        pytest.param(1.5, TypeError, id="float"),
        pytest.param(True, TypeError, id="bool"),
    ],
)
@pytest.mark.parametrize("cls", [MemoryBackend, AsyncMemoryBackend])
def test_r7_memory_backend_bad_max_records(
    cls: Any, max_records: object, error: type[Exception]
) -> None:
    """R7 'counts are int (not bool) and positive' (MemoryBackend(max_records=...))"""
    with pytest.raises(error, match=word("max_records")):
        cls(max_records=max_records)


def test_r7_memory_backend_max_records_accepted() -> None:
    """API 'MemoryBackend()': max_records is optional, a positive int"""
    assert len(MemoryBackend()) == 0
    assert len(MemoryBackend(max_records=None)) == 0
    assert len(MemoryBackend(max_records=1)) == 0
    with pytest.raises(TypeError):
        MemoryBackend(10)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("prefix", "error"),
    [
        pytest.param("", ValueError, id="empty"),
        pytest.param("{x}", ValueError, id="braces"),
        pytest.param(5, TypeError, id="int"),
        pytest.param(None, TypeError, id="None"),
    ],
)
def test_r7_redis_backend_bad_prefix(prefix: object, error: type[Exception]) -> None:
    """API 'RedisBackend(client, prefix=\"ameli-otp\")': a bad prefix raises naming it"""
    client = redis.Redis(port=1)  # never connected: redis-py connects on the first command
    try:
        with pytest.raises(error, match=word("prefix")):
            RedisBackend(client, prefix=prefix)
    finally:
        client.close()


def test_r7_redis_backend_bad_client() -> None:
    """API 'client is a redis.Redis or a redis.cluster.RedisCluster'"""
    with pytest.raises(TypeError, match=word("client")):
        RedisBackend(object())
    with pytest.raises(TypeError, match=word("client")):
        RedisBackend(MemoryBackend())
    client = redis.Redis(port=1)
    try:
        with pytest.raises(TypeError, match=word("client")):
            AsyncRedisBackend(client)
    finally:
        client.close()


# -- fuzzing device tokens (R3.2, R3.3, R4.3) ---------------------------------------------------
def token_like(token: str) -> st.SearchStrategy[str]:
    """Strings that are not ``token``: garbage, and look-alikes of the right length and alphabet."""
    length = len(token)
    return st.one_of(
        st.binary(max_size=2 * length).map(lambda b: b.decode("latin-1")),
        st.text(max_size=2 * length),
        st.text(alphabet=TOKEN_ALPHABET, min_size=length, max_size=length),
        st.text(alphabet=TOKEN_ALPHABET, min_size=length - 2, max_size=length + 2),
        st.integers(0, length - 1).flatmap(
            lambda i: st.text(
                alphabet=TOKEN_ALPHABET, min_size=length - i, max_size=length - i
            ).map(lambda tail: token[:i] + tail)
        ),
    ).filter(lambda t: t != token)


def test_r3_2_fuzz_is_trusted_device_never_raises_never_true(harness: Harness) -> None:
    """R3.2 'altered, truncated or garbage token, or a token that is not a str at all ...: False,
    never an exception.'"""
    codes = harness.codes()
    token = trust(codes)
    before = harness.dump()

    @FUZZ
    @given(
        candidate=st.one_of(
            token_like(token),
            st.none(),
            st.integers(),
            st.binary(),
            st.floats(),
            st.lists(st.text(max_size=3), max_size=3),
        ),
        fingerprint=st.sampled_from([FP, OTHER_FP]),
    )
    def check(candidate: object, fingerprint: str) -> None:
        assert codes.is_trusted_device(ACCOUNT, candidate, fingerprint) is False

    check()
    assert harness.dump() == before
    assert codes.is_trusted_device(ACCOUNT, token, FP) is True


def test_r3_2_fuzz_other_accounts_and_fingerprints_never_trusted(harness: Harness) -> None:
    """R3.2 'Another browser (another fingerprint), another account ...: False'"""
    codes = harness.codes()
    token = trust(codes)

    @FUZZ
    @given(
        account=st.text(min_size=1, max_size=256).filter(lambda a: a != ACCOUNT),
        fingerprint=st.text(min_size=1, max_size=100),
    )
    def check(account: str, fingerprint: str) -> None:
        assert codes.is_trusted_device(account, token, fingerprint) is False
        if fingerprint != FP:
            assert codes.is_trusted_device(ACCOUNT, token, fingerprint) is False

    check()
    assert codes.is_trusted_device(ACCOUNT, token, FP) is True


def test_r3_3_fuzz_forget_device_never_raises_never_revokes(harness: Harness) -> None:
    """R3.3 'forget_device(account, token) revokes that token only if it belongs to that account'"""

    @FUZZ
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        store = harness.fresh()  # a revocation must not leak into the next example
        codes = store.codes()
        token = trust(codes)
        candidate = data.draw(st.one_of(token_like(token), st.none()), label="candidate")
        codes.forget_device(ACCOUNT, candidate)
        assert codes.is_trusted_device(ACCOUNT, token, FP) is True

    check()


def test_r3_3_fuzz_forget_device_of_another_account_never_revokes(harness: Harness) -> None:
    """R3.3 'revokes that token only if it belongs to that account'"""
    codes = harness.codes()
    token = trust(codes)

    @FUZZ
    @given(account=st.text(min_size=1, max_size=256).filter(lambda a: a != ACCOUNT))
    def check(account: str) -> None:
        codes.forget_device(account, token)

    check()
    assert codes.is_trusted_device(ACCOUNT, token, FP) is True


def test_r2_1_fuzz_code_input_never_raises(harness: Harness) -> None:
    """R7 'a code input is a str': any str gives a result, never an exception."""
    codes = harness.codes(policy=Policy(max_attempts_per_code=10**6, max_failed_attempts=10**6))
    code = issue(codes)

    @FUZZ
    @given(typed=st.text(max_size=30))
    def check(typed: str) -> None:
        result = codes.verify_code(ACCOUNT, typed)
        digits = typed.replace(" ", "").replace("\t", "").replace("-", "")
        well_formed = len(digits) == 6 and digits.isascii() and digits.isdigit()
        if not well_formed:
            assert result == Refused(Reason.MALFORMED_CODE)
        elif digits == code:
            assert result == Verified()
        else:
            assert result.reason in (Reason.WRONG_CODE, Reason.NO_CODE)

    check()
