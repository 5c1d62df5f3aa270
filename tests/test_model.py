"""Model-based tests: hypothesis state machines checked call by call against tests/model.py.

``CodesMachine`` drives a ``SecurityCodes`` and ``LimiterMachine`` a
``SlidingWindowLimiter``, each on a fresh, empty store of the ``harness`` kind
per example (so every machine runs on every store kind of the table, async kinds
through the harness's sync face), with a ``FakeClock`` of its own that only moves
forward: the stores forget what stopped counting, so a clock going back after that
is a separate plain test. Every result is compared whole (``Issued``,
``Refused`` with ``retry_after``/``attempts_left``, ``Verified``, ``Decision``,
``is_trusted_device``) with what the independent model predicts.

The clock moves by the sizes that hit the rules' edges (1 ms, ``code_ttl`` and
1 ms less, ``code_window`` and 1 ms less, ``lockout``, ``device_trust_ttl``), by
random amounts, and straight to (or 1 ms before) one of the next times at which
the model knows an answer may change. Policies: the default one, a small one
(3 codes, 4 failures, 4-digit codes) that reaches limits and locks often, and a
tight one where ``code_ttl == code_window`` and ``lockout`` is shorter than the
window. hypothesis's swarm testing turns some rules off in each run (runs with
wrong guesses only, without clock moves...); the verify rules may ask for a code
first, so that codes keep coming when ``request_code`` is off.

``test_limiter_ignores_lookalike_entries`` is the limiter machine plus releases of
strings that look like a real entry id (``" " + entry``, ``"0" + entry``...), which
API.md says do nothing.

Hypothesis settings (per store kind; measured on the memory kind, sync: the codes
machine about 7 s, the limiter machine about 5 s, the lookalike one about 2.5 s; on
Redis and the cluster about 10-12 s, 8-10 s and 4-5 s)::

    CODES_SETTINGS:     max_examples=150, stateful_step_count=60
    LIMITER_SETTINGS:   max_examples=150, stateful_step_count=50
    LOOKALIKE_SETTINGS: max_examples=75,  stateful_step_count=50
    all: deadline=None, suppress_health_check=[function_scoped_fixture, too_slow]
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule, run_state_machine_as_test

from ameli_otp import Issued, Policy, Verified
from ameli_otp.testing import FakeClock
from tests.harness import SECRET, Harness
from tests.model import MS, CodesModel, LimiterModel

HEALTH = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
CODES_SETTINGS = settings(
    max_examples=150, stateful_step_count=60, deadline=None, suppress_health_check=HEALTH
)
LIMITER_SETTINGS = settings(
    max_examples=150, stateful_step_count=50, deadline=None, suppress_health_check=HEALTH
)
LOOKALIKE_SETTINGS = settings(LIMITER_SETTINGS, max_examples=75)

#: the accounts the machine uses, and one it never uses (for "another account")
ACCOUNTS = ("1850775123456", "2990101234567")
STRANGER = "1750575987654"
FINGERPRINTS = ("fp-firefox-128-linux-1920x1080", "fp-chrome-131-windows-2560x1440")
URL_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")

POLICIES = {
    "default": Policy(),
    "small": Policy(
        max_unused_codes=3, max_attempts_per_code=3, max_failed_attempts=4, code_length=4
    ),
    "tight": Policy(
        code_ttl=timedelta(minutes=10),
        code_window=timedelta(minutes=10),
        max_unused_codes=2,
        max_attempts_per_code=2,
        max_failed_attempts=3,
        lockout=timedelta(minutes=5),
        code_length=5,
        device_trust_ttl=timedelta(hours=1),
    ),
}

# what the user types when it is not the right code
WRONG = ("previous", "neighbour", "neighbour", "random", "malformed")
# the ways a user may type a code (R2.1: spaces, tabs and '-' are ignored)
STYLES = ("plain", "spaced", "dashed", "padded")
# inputs that must be MALFORMED_CODE whatever the code (built from the right one)
MALFORMED = (
    "empty",
    "short",
    "long",
    "letter",
    "dot",
    "newline",
    "nbsp",
    "arabic",
    "fullwidth",
)
# (remember_device, fingerprint); the last two must raise ValueError (R3.1)
DEVICE_ARGS = (
    (False, None),
    (False, FINGERPRINTS[0]),
    (True, FINGERPRINTS[0]),
    (True, FINGERPRINTS[1]),
    (True, FINGERPRINTS[0]),
    (True, FINGERPRINTS[1]),
    (True, None),
    (True, ""),
)
BAD_TOKENS = ("none", "empty", "garbage", "altered", "truncated", "extended", "bytes", "int")
STEPS = (
    "1ms",
    "ttl-1ms",
    "ttl",
    "window-1ms",
    "window",
    "lockout-1ms",
    "lockout",
    "trust-1ms",
    "trust",
    "random",
    "random",
    "edge",
    "edge",
    "edge-1ms",
    "edge-1ms",
)
INDEX = st.integers(0, 10_000)


def styled(code: str, style: str) -> str:
    if style == "spaced":
        return " ".join(code[i : i + 3] for i in range(0, len(code), 3))
    if style == "dashed":
        return "-".join(code)
    if style == "padded":
        return f" \t{code}- "
    return code


def malformed(code: str, kind: str) -> str:
    """An input that is not a code of ``len(code)`` digits, made from ``code``."""
    half = len(code) // 2
    return {
        "empty": "",
        "short": code[:-1],
        "long": code + "7",
        "letter": code[:-1] + "a",
        "dot": code[:half] + "." + code[half:],
        "newline": code + "\n",
        "nbsp": code[:half] + "\u00a0" + code[half:],
        "arabic": "".join(chr(0x0660 + int(d)) for d in code),
        "fullwidth": "".join(chr(0xFF10 + int(d)) for d in code),
    }[kind]


def bad_token(real: str, kind: str) -> object:
    """Something that is not a token of this library, made from a real one."""
    return {
        "none": None,
        "empty": "",
        "garbage": "not-a-token",
        "altered": ("B" if real[0] == "A" else "A") + real[1:],  # same length, URL-safe
        "truncated": real[:-1],
        "extended": real + "A",
        "bytes": real.encode(),
        "int": 12345,
    }[kind]


def whose_account(owner: str, whose: str) -> str:
    """The token's own account, the other account of the machine, or one never used."""
    if whose == "own":
        return owner
    if whose == "other":
        return ACCOUNTS[(ACCOUNTS.index(owner) + 1) % len(ACCOUNTS)]
    return STRANGER


def pick(items: list[Any], i: int) -> Any:
    return items[i % len(items)]


class CodesMachine(RuleBasedStateMachine):
    """``SecurityCodes`` against ``CodesModel``; ``harness`` is set by the test.

    Few rules, each with a sampled variant, so that every kind of call comes often.
    """

    harness: Harness

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.h = self.harness.fresh()  # a new, empty store of the same kind
        self.h.clock = self.clock

    @initialize(name=st.sampled_from(("default", "small", "small", "tight", "tight")))
    def choose_policy(self, name: str) -> None:
        self.policy = POLICIES[name]
        self.codes = self.h.codes(policy=self.policy, clock=self.clock)
        self.model = CodesModel(self.policy)
        self.length = self.policy.code_length

    # -- helpers ----------------------------------------------------------------------------------
    @property
    def now(self) -> int:
        return self.clock.ms

    def some_code(self, account: str) -> str:
        """The account's newest code, or any well-formed code if it never had one."""
        newest = self.model.newest(account)
        return "0" * self.length if newest is None else newest.code

    # -- R1 ---------------------------------------------------------------------------------------
    @rule(account=st.sampled_from(ACCOUNTS))
    def request_code(self, account: str) -> None:
        got = self.codes.request_code(account)
        code = got.code if isinstance(got, Issued) else None
        expected = self.model.request_code(account, self.now, code)
        assert got == expected, (account, self.now)
        if code is not None:
            assert isinstance(code, str)
            assert len(code) == self.length
            assert all(ch in "0123456789" for ch in code)

    # -- R2 and R3.1 ------------------------------------------------------------------------------
    # Two rules, so that hypothesis's swarm testing makes runs with wrong guesses only
    # (locks) as well as runs with right codes only. ``ask_first``: request a code just
    # before, as users do (this keeps codes coming in the runs where swarm testing turns
    # ``request_code`` off).
    @rule(
        account=st.sampled_from(ACCOUNTS),
        style=st.sampled_from(STYLES),
        device=st.sampled_from(DEVICE_ARGS),
        ask_first=st.booleans(),
    )
    def verify_right_code(
        self, account: str, style: str, device: tuple[bool, str | None], ask_first: bool
    ) -> None:
        if ask_first:
            self.request_code(account)
        self.verify(account, styled(self.some_code(account), style), *device)

    @rule(
        account=st.sampled_from(ACCOUNTS),
        which=st.sampled_from(WRONG),
        style=st.sampled_from(STYLES),
        device=st.sampled_from(DEVICE_ARGS),
        n=st.integers(0, 10**12 - 1),
        ask_first=st.booleans(),
    )
    def verify_other_code(
        self,
        account: str,
        which: str,
        style: str,
        device: tuple[bool, str | None],
        n: int,
        ask_first: bool,
    ) -> None:
        """The replaced code, a (surely or probably) wrong one, or a malformed one."""
        if ask_first:
            self.request_code(account)
        length = self.length
        if which == "previous":
            previous = self.model.previous(account)
            typed = "1" * length if previous is None else styled(previous.code, style)
        elif which == "neighbour":  # next to the right code: surely wrong
            delta = (1, -1, 10)[n % 3]
            typed = f"{(int(self.some_code(account)) + delta) % 10**length:0{length}d}"
        elif which == "random":
            typed = f"{n % 10**length:0{length}d}"
        else:
            typed = malformed(self.some_code(account), pick(list(MALFORMED), n))
        self.verify(account, typed, *device)

    def verify(self, account: str, typed: str, remember: bool, fingerprint: str | None) -> None:
        if remember and not fingerprint:
            # R3.1: ValueError before anything is read or written (the model is not asked)
            with pytest.raises(ValueError, match="fingerprint"):
                self.codes.verify_code(
                    account, typed, remember_device=True, fingerprint=fingerprint
                )
            return
        got = self.codes.verify_code(
            account, typed, remember_device=remember, fingerprint=fingerprint
        )
        token = got.device_token if isinstance(got, Verified) else None
        expected = self.model.verify_code(
            account,
            typed,
            self.now,
            remember=remember,
            fingerprint=fingerprint,
            got_token=token,
        )
        assert got == expected, (account, typed, self.now)
        if token is not None:
            assert isinstance(token, str)
            assert token
            assert set(token) <= URL_SAFE

    @rule(account=st.sampled_from(ACCOUNTS))
    def unlock(self, account: str) -> None:
        self.codes.unlock(account)
        self.model.unlock(account)

    # -- R3 ---------------------------------------------------------------------------------------
    @rule(
        i=INDEX,
        whose=st.sampled_from(("own", "own", "other", "stranger")),
        browser=st.sampled_from(("granted", "granted", "other")),
    )
    def is_trusted_device(self, i: int, whose: str, browser: str) -> None:
        """A token that was issued, for its account and browser or not."""
        grants = self.model.tokens()
        if not grants:
            return
        grant = pick(grants, i)
        account = whose_account(grant.account, whose)
        fingerprint = grant.fingerprint
        if browser == "other":
            fingerprint = FINGERPRINTS[(FINGERPRINTS.index(fingerprint) + 1) % len(FINGERPRINTS)]
        got = self.codes.is_trusted_device(account, grant.token, fingerprint)
        expected = self.model.is_trusted_device(account, grant.token, fingerprint, self.now)
        assert got is expected, (account, fingerprint, self.now, grant)

    @rule(
        i=INDEX,
        whose=st.sampled_from(("own", "other", "stranger")),
        kind=st.sampled_from(BAD_TOKENS),
        fingerprint=st.sampled_from(FINGERPRINTS),
    )
    def is_trusted_device_bad_token(self, i: int, whose: str, kind: str, fingerprint: str) -> None:
        """Something that is not a token: altered, truncated, garbage, not a str..."""
        grants = self.model.tokens()
        if grants:
            grant = pick(grants, i)
            real, account = grant.token, whose_account(grant.account, whose)
        else:
            real, account = "A" * 44, ACCOUNTS[i % len(ACCOUNTS)]
        token = bad_token(real, kind)
        assert self.codes.is_trusted_device(account, token, fingerprint) is False
        assert self.model.is_trusted_device(account, token, fingerprint, self.now) is False

    @rule(i=INDEX, whose=st.sampled_from(("own", "own", "other", "stranger", "all")))
    def forget(self, i: int, whose: str) -> None:
        """``forget_device`` with a token (of this account or not), or ``forget_all_devices``."""
        grants = self.model.tokens()
        if whose == "all" or not grants:
            account = ACCOUNTS[i % len(ACCOUNTS)]
            self.codes.forget_all_devices(account)
            self.model.forget_all_devices(account)
            return
        grant = pick(grants, i)
        account = whose_account(grant.account, whose)
        self.codes.forget_device(account, grant.token)
        self.model.forget_device(account, grant.token)

    # -- the clock, forward only ---------------------------------------------------------------
    @rule(step=st.sampled_from(STEPS), n=st.integers(0, 10**9))
    def advance(self, step: str, n: int) -> None:
        """By an edge size, by a random amount, or straight to (1 ms before) a model edge."""
        if step.startswith("edge"):
            early = step == "edge-1ms"
            ahead = [t - early for t in self.model.edges() if t - early > self.now]
            if ahead:
                self.clock.advance((ahead[n % min(len(ahead), 4)] - self.now) * MS)
            return
        if step == "random":  # up to twice the window
            self.clock.advance((n % (2 * self.model.window) + 1) * MS)
            return
        name, _, minus = step.partition("-")
        size = {
            "1ms": MS,
            "ttl": self.policy.code_ttl,
            "window": self.policy.code_window,
            "lockout": self.policy.lockout,
            "trust": self.policy.device_trust_ttl,
        }[name]
        self.clock.advance(size - MS if minus else size)


LIMITERS = {
    "1 per second": (1, timedelta(seconds=1)),
    "3 per minute": (3, timedelta(minutes=1)),
    "5 per hour": (5, timedelta(hours=1)),
}
KEYS = ("ip:192.0.2.1", "phone:+33612345678")
UNKNOWN_ENTRIES = (None, "", "garbage", "0.0", "1", "AAAAAAAA")
LIMITER_STEPS = ("1ms", "window-1ms", "window", "random", "edge", "edge", "edge-1ms", "edge-1ms")


def lookalikes(entry: str) -> list[str]:
    """Strings that look like ``entry`` but are not it: releasing one must do nothing."""
    return [
        f" {entry}",
        f"{entry} ",
        f"{entry}\n",
        f"+{entry}",
        f"0{entry}",
        entry.upper(),
        entry.lower(),
        entry[:-1],
        entry + "0",
        entry.replace(".", ".0"),
        entry.replace(".", "._"),
    ]


class LimiterMachine(RuleBasedStateMachine):
    """``SlidingWindowLimiter`` against ``LimiterModel``; ``harness`` is set by the test."""

    harness: Harness
    #: what ``release`` may be given besides real entries (the subclass adds lookalikes)
    RELEASES: tuple[str, ...] = ("own key", "own key", "other key", "unknown")

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.h = self.harness.fresh()
        self.h.clock = self.clock

    @initialize(name=st.sampled_from(sorted(LIMITERS)), hashed=st.booleans())
    def choose_limiter(self, name: str, hashed: bool) -> None:
        limit, window = LIMITERS[name]
        self.window = window
        self.limiter = self.h.limiter(limit=limit, window=window, secret=SECRET if hashed else None)
        self.model = LimiterModel(limit, window)

    @property
    def now(self) -> int:
        return self.clock.ms

    @rule(key=st.sampled_from(KEYS))
    def hit(self, key: str) -> None:
        got = self.limiter.hit(key)
        expected = self.model.hit(key, self.now, got.entry)
        assert got == expected, (key, self.now)
        if got.allowed:
            assert isinstance(got.entry, str)
            assert got.entry

    @rule(key=st.sampled_from(KEYS))
    def peek(self, key: str) -> None:
        assert self.limiter.peek(key) == self.model.peek(key, self.now), (key, self.now)

    @rule(data=st.data(), i=INDEX, j=INDEX)
    def release(self, data: st.DataObject, i: int, j: int) -> None:
        """Release an entry hit gave (maybe released already) on its key or another, or junk."""
        how = data.draw(st.sampled_from(self.RELEASES), label="how")
        entries = self.model.entries()
        if not entries or how == "unknown":
            key, entry = KEYS[i % len(KEYS)], pick(list(UNKNOWN_ENTRIES), j)
        else:
            hit = pick(entries, i)
            key, entry = hit.key, hit.entry
            if how == "other key":
                key = KEYS[(KEYS.index(key) + 1) % len(KEYS)]
            elif how == "lookalike":
                real = {e.entry for e in entries}
                candidates = [s for s in lookalikes(entry) if s not in real]
                entry = pick(candidates, j)
        self.limiter.release(key, entry)
        self.model.release(key, entry)

    @rule(key=st.sampled_from(KEYS))
    def reset(self, key: str) -> None:
        self.limiter.reset(key)
        self.model.reset(key)

    @rule(step=st.sampled_from(LIMITER_STEPS), n=st.integers(0, 10**9))
    def advance(self, step: str, n: int) -> None:
        if step.startswith("edge"):
            early = step == "edge-1ms"
            ahead = [t - early for t in self.model.edges() if t - early > self.now]
            if ahead:
                self.clock.advance((ahead[n % min(len(ahead), 4)] - self.now) * MS)
            return
        size = {
            "1ms": MS,
            "window-1ms": self.window - MS,
            "window": self.window,
            "random": (n % (2 * self.model.window) + 1) * MS,
        }[step]
        self.clock.advance(size)


class LookalikeLimiterMachine(LimiterMachine):
    """``LimiterMachine`` that also releases strings that look like real entries."""

    RELEASES = (*LimiterMachine.RELEASES, "lookalike", "lookalike")


def run(machine: type[RuleBasedStateMachine], harness: Harness, config: settings) -> None:
    bound = type(machine.__name__, (machine,), {"harness": harness})
    run_state_machine_as_test(bound, settings=config)


def test_security_codes_follow_the_model(harness: Harness) -> None:
    """R1 to R3: every result of request/verify/trust/forget/unlock is the model's."""
    run(CodesMachine, harness, CODES_SETTINGS)


def test_limiter_follows_the_model(harness: Harness) -> None:
    """API.md limiter: every hit/peek is the model's, through release, reset and time."""
    run(LimiterMachine, harness, LIMITER_SETTINGS)


def test_limiter_ignores_lookalike_entries(harness: Harness) -> None:
    """API.md 'release of an unknown ... entry does nothing', with near-miss entry ids."""
    run(LookalikeLimiterMachine, harness, LOOKALIKE_SETTINGS)
