"""Model-based tests: hypothesis state machines checked call by call against tests/model.py.

``CodesMachine`` drives a ``SecurityCodes`` and ``LimiterMachine`` a
``SlidingWindowLimiter``, each on a fresh, empty store of the ``harness`` kind
per example (so every machine runs on every store kind of the table, async kinds
through the harness's sync face), with a ``FakeClock`` of its own that only moves
forward: the stores forget what stopped counting, so a clock going back after that
is a separate plain test. Every result is compared whole (``Issued``,
``Refused`` with ``retry_after``/``attempts_left``, ``Verified``, ``Decision``,
``is_trusted_device``, the bool of ``unlock``/``forget_device``/``forget_device_id``
and the count of ``forget_all_devices``) with what the independent model predicts.

R9 in the codes machine: ``inspect`` is compared field by field (devices included,
with their ids) at random steps, for both accounts and one never used, and also
right after every call that may have changed the account (so that a lock with a full
window, or a device cap, is looked at when it happens); ``forget_device_id`` is
given listed ids, ids never issued and strings that are not ids. The facade reports
its events to a list (``on_event=``), and an invariant compares them after every
step with the ones the model expects: kind, reason, remaining, attempts_left,
retry_after, device_id, devices_revoked, ``factor == "email"``, ``at`` (the clock),
and one ``account_ref`` per account, different accounts apart, never holding the id.

The clock moves by the sizes that hit the rules' edges (1 ms, ``code_ttl`` and
1 ms less, ``code_window`` and 1 ms less, ``lockout``, ``device_trust_ttl``), by
random amounts, straight to (or 1 ms before) one of the next times at which the
model knows an answer may change, or to (1 ms before) the end of a device's trust.
Policies: the default one, a small one (3 codes, 4 failures, 4-digit codes, 2
devices) that reaches limits, locks and the device cap often, and a tight one where
``code_ttl == code_window`` and ``lockout`` is much shorter than the window (so that
the window often outlasts a lock).

R10 in the codes machine: each example also draws which sending rules are on (none,
``resend_interval``, ``max_codes_per_day`` or both, with values per policy in
``SENDING_RULES``: a day cap equal to ``max_unused_codes`` and caps above it, so the
day fills with used codes and over several hours) and which budgets are declared (none,
an ``ip`` budget of 3 per 10 minutes keyed per call by one of two addresses, or that one
and a ``sender`` budget of 5 per hour on a fixed key). ``request_code`` passes the
drawn address in ``budget_keys``; the refusals (``BUDGET_EXHAUSTED`` with its
``budget``, ``DAILY_LIMIT``, ``TOO_SOON``), their events (``budget`` compared too) and
``inspect``'s ``next_code_at`` are the model's. The clock also moves by 24 hours and
``resend_interval`` and 1 ms less, and the model's edges include the day's, the
interval's and every budget entry's end. hypothesis's swarm testing turns some rules off in
each run (runs with wrong guesses only, without clock moves...); the verify rules may
ask for a code first, so that codes keep coming when ``request_code`` is off.

``test_limiter_ignores_lookalike_entries`` is the limiter machine plus releases of
strings that look like a real entry id (``" " + entry``, ``"0" + entry``...), which
API.md says do nothing.

Hypothesis settings (per store kind; measured on 2 cores: the codes machine about
6-9 s on memory, 10-17 s on Redis and the cluster (the R9 checks did not change it
measurably: hypothesis's own work dominates); the limiter machine about 5 s and
5-10 s; the lookalike one about 2.5 s and 2-7 s; R10's policies and budgets, drawn
within the same 150 examples, added no time measurably: 37-52 s for the six kinds of
the codes machine, before and after)::

    CODES_SETTINGS:     max_examples=150, stateful_step_count=60
    LIMITER_SETTINGS:   max_examples=150, stateful_step_count=50
    LOOKALIKE_SETTINGS: max_examples=75,  stateful_step_count=50
    all: deadline=None, suppress_health_check=[function_scoped_fixture, too_slow]
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from ameli_otp import Budget, Event, EventKind, Issued, Policy, Verified
from ameli_otp.testing import FakeClock
from tests.harness import SECRET, Harness
from tests.model import DAY, MS, CodesModel, Grant, LimiterModel, canonical

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
        max_unused_codes=3,
        max_attempts_per_code=3,
        max_failed_attempts=4,
        code_length=4,
        max_trusted_devices=2,
    ),
    "tight": Policy(
        code_ttl=timedelta(minutes=10),
        code_window=timedelta(minutes=10),
        max_unused_codes=2,
        max_attempts_per_code=2,
        max_failed_attempts=3,
        lockout=timedelta(minutes=2),
        code_length=5,
        device_trust_ttl=timedelta(hours=1),
        max_trusted_devices=3,
    ),
}

#: R10.1 / R10.2 per base policy: (resend_interval, max_codes_per_day), small enough to be
#: met within an example: a day cap above ``max_unused_codes`` (used codes and the hour's
#: passing fill the day) and one equal to it (the hour and the day full at once: the
#: order); an interval shorter than the hour's window and one as long as the lockout
SENDING_RULES = {
    "default": (timedelta(seconds=60), 6),
    "small": (timedelta(seconds=30), 3),
    "tight": (timedelta(minutes=2), 4),
}
#: which of them an example switches on
SENDING = ("off", "off", "resend", "day", "day", "both")
#: R10.3 budgets: one keyed by the client's address (passed per call), one for the
#: whole sender (a fixed key); limits small enough to be met by two accounts
IP_BUDGET = Budget("ip", limit=3, window=timedelta(minutes=10))
SENDER_BUDGET = Budget("sender", limit=5, window=timedelta(hours=1), key="all")
BUDGETS = {"none": (), "ip": (IP_BUDGET,), "ip+sender": (IP_BUDGET, SENDER_BUDGET)}
IPS = ("192.0.2.1", "198.51.100.7")

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
# which device_id forget_device_id is given: one inspect listed (maybe revoked or expired
# since), one of the right shape that was never issued, or a str that is not an id at all
DEVICE_IDS = ("listed", "listed", "listed", "unknown", "not an id")
NOT_IDS = ("", "no such device", "cut", "longer", "spaced", "dotted")
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
    "device",
    "device-1ms",
    "day",
    "day-1ms",
    "resend",
    "resend-1ms",
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


def not_an_id(real: str, kind: str) -> str:
    """A str that is not a device id, made from a real one (forget_device_id: False)."""
    return {
        "": "",
        "no such device": "no such device",
        "cut": real[:-1],
        "longer": real + "A",
        "spaced": f" {real}",
        "dotted": real[:-1] + ".",
    }[kind]


class CodesMachine(RuleBasedStateMachine):
    """``SecurityCodes`` against ``CodesModel``; ``harness`` is set by the test.

    Few rules, each with a sampled variant, so that every kind of call comes often.
    The facade reports its events to ``self.events``; after every step the invariant
    compares them with the ones the model expects (R9.3).
    """

    harness: Harness

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.h = self.harness.fresh()  # a new, empty store of the same kind
        self.h.clock = self.clock
        self.events: list[Event] = []
        self.refs: dict[str, str] = {}  # account -> the account_ref its events carry

    @initialize(
        name=st.sampled_from(("default", "small", "small", "tight", "tight")),
        sending=st.sampled_from(SENDING),
        budgets=st.sampled_from(("none", "none", "ip", "ip+sender")),
    )
    def choose_policy(self, name: str, sending: str, budgets: str) -> None:
        policy = POLICIES[name]
        resend, per_day = SENDING_RULES[name]
        if sending in ("resend", "both"):
            policy = attrs.evolve(policy, resend_interval=resend)
        if sending in ("day", "both"):
            policy = attrs.evolve(policy, max_codes_per_day=per_day)
        self.policy = policy
        self.budgets = BUDGETS[budgets]
        self.codes = self.h.codes(
            policy=policy, clock=self.clock, on_event=self.events.append, budgets=self.budgets
        )
        self.model = CodesModel(policy, self.budgets)
        self.length = policy.code_length

    # -- helpers ----------------------------------------------------------------------------------
    @property
    def now(self) -> int:
        return self.clock.ms

    def some_code(self, account: str) -> str:
        """The account's newest code, or any well-formed code if it never had one."""
        newest = self.model.newest(account)
        return "0" * self.length if newest is None else newest.code

    # -- R1 ---------------------------------------------------------------------------------------
    @rule(account=st.sampled_from(ACCOUNTS), ip=st.sampled_from(IPS))
    def request_code(self, account: str, ip: str) -> None:
        self.request(account, ip)
        self.look(account)

    def request(self, account: str, ip: str = IPS[0]) -> None:
        """``ip``: the client's address, the key of the ``ip`` budget (R10.3) if declared."""
        keys = {"ip": ip} if IP_BUDGET in self.budgets else None
        got = self.codes.request_code(account, budget_keys=keys)
        code = got.code if isinstance(got, Issued) else None
        expected = self.model.request_code(account, self.now, code, keys)
        assert got == expected, (account, ip, self.now)
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
        pause=st.sampled_from((0, 0, 1, 1000)),
    )
    def verify_right_code(
        self,
        account: str,
        style: str,
        device: tuple[bool, str | None],
        ask_first: bool,
        pause: int,
    ) -> None:
        """``pause``: the ms the user takes first, so that devices get distinct grant times
        (without it, grants after a clock move are rare and the device cap nearly always
        chooses among grants of one millisecond)."""
        self.clock.advance(pause * MS)
        if ask_first:
            self.request(account)
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
            self.request(account)
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
            # the model learns the new device's id from inspect (tests/model.py), and the
            # whole listing must then be the model's: ids, grant times, the device cap
            status = self.codes.inspect(account)
            self.model.learn_devices(account, [d.device_id for d in status.devices])
            self.check_status(account, status)
        else:
            self.look(account)

    @rule(account=st.sampled_from(ACCOUNTS))
    def unlock(self, account: str) -> None:
        got = self.codes.unlock(account)
        assert got is self.model.unlock(account, self.now), (account, self.now)
        self.look(account)

    # -- R9.1 -------------------------------------------------------------------------------------
    @rule(account=st.sampled_from((*ACCOUNTS, STRANGER)))
    def inspect(self, account: str) -> None:
        self.check_status(account, self.codes.inspect(account))

    def some_grant(self, i: int) -> Grant | None:
        """A token granted so far: two times in three one not revoked (if there is one, maybe
        expired), else any, so that revocations and trust ends are met often."""
        grants = self.model.tokens()
        if not grants:
            return None
        kept = [g for g in grants if not g.revoked]
        return pick(kept if kept and i % 3 else grants, i // 3)

    def look(self, account: str) -> None:
        """What the support desk sees right after a call that may have changed ``account``:
        the decisions that are rare at a random time (a lock while the window is full, a
        device cap) are looked at when they happen."""
        self.check_status(account, self.codes.inspect(account))

    def check_status(self, account: str, got: Any) -> None:
        expected = self.model.inspect(account, self.now)
        assert canonical(got) == canonical(expected), (account, self.now)

    # -- R9.3 -------------------------------------------------------------------------------------
    @invariant()
    def events_are_the_models(self) -> None:
        """Exactly the events the model expects since the last step, field by field."""
        model = getattr(self, "model", None)
        if model is None:  # before the policy is chosen
            return
        got, expected = list(self.events), list(model.events)
        self.events.clear()
        model.events.clear()
        assert [e.kind for e in got] == [x.kind for x in expected], (got, expected)
        for event, x in zip(got, expected, strict=True):
            assert isinstance(event, Event)
            assert isinstance(event.kind, EventKind)
            assert (
                event.reason,
                event.remaining,
                event.attempts_left,
                event.retry_after,
                event.device_id,
                event.devices_revoked,
                event.budget,
                event.factor,
                event.at,
            ) == (
                x.reason,
                x.remaining,
                x.attempts_left,
                x.retry_after,
                x.device_id,
                x.devices_revoked,
                x.budget,
                "email",
                self.clock.now(),  # the clock moves only in advance(), which reports nothing
            ), (event, x)
            self.check_ref(x.account, event.account_ref)

    def check_ref(self, account: str, ref: str) -> None:
        """One ``account_ref`` per account, different accounts apart, never the id in it."""
        assert isinstance(ref, str)
        assert ref
        assert account not in ref
        known = self.refs.get(account)
        if known is None:
            assert ref not in self.refs.values(), (account, ref, self.refs)
            self.refs[account] = ref
        else:
            assert ref == known, (account, ref, known)

    # -- R3 ---------------------------------------------------------------------------------------
    @rule(
        i=INDEX,
        whose=st.sampled_from(("own", "own", "other", "stranger")),
        browser=st.sampled_from(("granted", "granted", "other")),
    )
    def is_trusted_device(self, i: int, whose: str, browser: str) -> None:
        """A token that was issued, for its account and browser or not."""
        grant = self.some_grant(i)
        if grant is None:
            return
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
        grant = self.some_grant(i)
        if whose == "all" or grant is None:
            account = ACCOUNTS[i % len(ACCOUNTS)]
            count = self.codes.forget_all_devices(account)
            assert type(count) is int
            assert count == self.model.forget_all_devices(account, self.now), (account, self.now)
            self.look(account)
            return
        account = whose_account(grant.account, whose)
        got = self.codes.forget_device(account, grant.token)
        assert got is self.model.forget_device(account, grant.token, self.now), (account, grant)
        self.look(account)

    @rule(
        i=INDEX,
        whose=st.sampled_from(("own", "own", "other", "stranger")),
        which=st.sampled_from(DEVICE_IDS),
        how=st.sampled_from(NOT_IDS),
    )
    def forget_device_id(self, i: int, whose: str, which: str, how: str) -> None:
        """R9.2: a listed id (of this account or not), an id never issued, or not an id."""
        grant = self.some_grant(i)
        if grant is not None and grant.device_id is not None:
            account, real = whose_account(grant.account, whose), grant.device_id
        else:
            account, real = ACCOUNTS[i % len(ACCOUNTS)], f"{i:022d}"
        if which == "unknown":
            device_id = f"{i:022d}"  # the shape of an id (22 URL-safe characters)
        elif which == "not an id":
            device_id = not_an_id(real, how)
        else:
            device_id = real
        got = self.codes.forget_device_id(account, device_id)
        expected = self.model.forget_device_id(account, device_id, self.now)
        assert got is expected, (account, device_id, self.now)
        self.look(account)

    # -- the clock, forward only ---------------------------------------------------------------
    @rule(step=st.sampled_from(STEPS), n=st.integers(0, 10**9))
    def advance(self, step: str, n: int) -> None:
        """By an edge size, by a random amount, straight to (1 ms before) a model edge, or to
        (1 ms before) the end of a trust granted (edges that are rarely among the next few)."""
        if step.startswith("device"):
            early = step == "device-1ms"
            ends = [g.at + self.model.trust - early for g in self.model.tokens()]
            ahead = [t for t in ends if t > self.now]
            if ahead:
                self.clock.advance((ahead[n % len(ahead)] - self.now) * MS)
            return
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
            "day": DAY * MS,
            "resend": self.policy.resend_interval or MS,
        }[name]
        self.clock.advance(size - MS if minus and size > MS else size)


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
    """R1 to R3 and R9: every result of request/verify/trust/forget/unlock/inspect, and every
    event reported, is the model's."""
    run(CodesMachine, harness, CODES_SETTINGS)


def test_limiter_follows_the_model(harness: Harness) -> None:
    """API.md limiter: every hit/peek is the model's, through release, reset and time."""
    run(LimiterMachine, harness, LIMITER_SETTINGS)


def test_limiter_ignores_lookalike_entries(harness: Harness) -> None:
    """API.md 'release of an unknown ... entry does nothing', with near-miss entry ids."""
    run(LookalikeLimiterMachine, harness, LOOKALIKE_SETTINGS)
