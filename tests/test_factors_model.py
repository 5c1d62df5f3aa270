"""R11 and R12 against an independent model, with hypothesis (a rule-based state machine).

The model below is written from RULES.md R2.6, R11 and R12 with plain dicts and sets,
not from ``_factors.py``: it computes authenticator codes with the tests' own RFC 6238
(``tests.test_factors.rfc6238``) and keeps the lock, the failure count, the pending and
confirmed enrollments, the last accepted step and the recovery codes itself. Every
result of the store under test must equal the model's, on every store kind.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

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

from ameli_otp import Enrollment, Policy, Reason, Refused, Verified
from ameli_otp.testing import FakeClock
from tests.harness import Harness
from tests.test_factors import STEP, rfc6238, secret_of

ACCOUNTS = ("185077512345", "290012A01234")
POLICY = Policy(max_failed_attempts=4, lockout=timedelta(minutes=30), totp_drift=1)
TTL = 15 * 60_000
LOCKOUT = 30 * 60_000
MOST = 4
# clock moves across the edges that matter: a step, the pending enrollment's life, the lock
MOVES = [1, STEP - 1, STEP, 2 * STEP, TTL - 1, TTL, LOCKOUT, 3_600_000]
OFFSETS = st.sampled_from([0, 0, 1, -1, 2, -2])  # the step typed, from now's: mostly in drift
WRONG = st.sampled_from([False, False, True])


class Model:
    """One account, as RULES.md says it must behave."""

    def __init__(self) -> None:
        self.failures = 0
        self.last_failure = 0
        self.lock_until = 0
        self.pending: tuple[bytes, int] | None = None  # (secret, made at)
        self.confirmed: bytes | None = None
        self.last_step = -1
        self.recovery: set[str] = set()

    def locked(self, now: int) -> Refused | None:
        if now < self.lock_until:
            return Refused(
                Reason.ACCOUNT_LOCKED, retry_after=timedelta(milliseconds=self.lock_until - now)
            )
        return None

    def fail(self, now: int) -> Refused:
        if self.failures and now >= self.last_failure + LOCKOUT:
            self.failures = 0
        self.failures += 1
        self.last_failure = now
        if self.failures >= MOST:
            self.failures = 0
            self.lock_until = now + LOCKOUT
            return Refused(Reason.ACCOUNT_LOCKED, retry_after=timedelta(milliseconds=LOCKOUT))
        return Refused(Reason.WRONG_CODE, attempts_left=MOST - self.failures)

    @staticmethod
    def step_of(secret: bytes, typed: str, now: int) -> int | None:
        current = now // STEP
        found = [
            s for s in (current - 1, current, current + 1) if rfc6238(secret, s * STEP) == typed
        ]
        return max(found) if found else None


def typed_code(secret: bytes | None, now: int, offset: int, wrong: bool) -> str:
    if secret is None:
        return "000000"
    right = rfc6238(secret, (now // STEP + offset) * STEP)
    return f"{(int(right) + 1) % 10**6:06d}" if wrong else right


class FactorsMachine(RuleBasedStateMachine):
    harness: Harness  # set by the test

    @initialize()
    def start(self) -> None:
        self.h = self.harness.fresh()
        self.clock: FakeClock = self.h.clock
        self.clock.set(1_800_000_000 + 7)
        self.codes: Any = self.h.codes(policy=POLICY)
        self.models = {a: Model() for a in ACCOUNTS}
        self.secrets: dict[str, list[bytes]] = {a: [] for a in ACCOUNTS}  # every one shown
        self.shown: dict[str, list[str]] = {a: [] for a in ACCOUNTS}  # every recovery code
        self.typed: dict[str, str] = {}  # the last authenticator code typed, per account

    def now(self) -> int:
        return self.clock.ms

    @rule(ms=st.sampled_from(MOVES))
    def advance(self, ms: int) -> None:
        self.clock.advance(timedelta(milliseconds=ms))

    @rule(account=st.sampled_from(ACCOUNTS))
    def enroll(self, account: str) -> None:
        e = self.codes.enroll_authenticator(account, name="someone")
        assert isinstance(e, Enrollment)
        self.models[account].pending = (secret_of(e), self.now())
        self.secrets[account].append(secret_of(e))

    @rule(account=st.sampled_from(ACCOUNTS))
    def enroll_and_confirm(self, account: str) -> None:
        """The usual path: enroll, then type the app's current code at once."""
        self.enroll(account)
        self.confirm(account, 0, False, False)

    @rule(
        account=st.sampled_from(ACCOUNTS),
        offset=OFFSETS,
        wrong=WRONG,
        old=st.booleans(),
    )
    def confirm(self, account: str, offset: int, wrong: bool, old: bool) -> None:
        m, now = self.models[account], self.now()
        secret = self._secret(account, m.pending[0] if m.pending else None, old)
        typed = typed_code(secret, now, offset, wrong)
        self.typed[account] = typed
        got = self.codes.confirm_authenticator(account, typed)
        want = m.locked(now)
        if want is None:
            if m.pending is None or now >= m.pending[1] + TTL:  # R11.1: expired is none
                want = Refused(Reason.NO_AUTHENTICATOR)
            else:
                step = m.step_of(m.pending[0], typed, now)
                if step is None:
                    want = m.fail(now)
                else:
                    m.confirmed, m.last_step, m.pending = m.pending[0], step, None
                    m.failures = 0
                    want = Verified()
        assert got == want, (account, typed, got, want)

    @rule(
        account=st.sampled_from(ACCOUNTS),
        offset=OFFSETS,
        wrong=WRONG,
        old=st.booleans(),
    )
    def verify(self, account: str, offset: int, wrong: bool, old: bool) -> None:
        m = self.models[account]
        self._verify(
            account, typed_code(self._secret(account, m.confirmed, old), self.now(), offset, wrong)
        )

    @rule(account=st.sampled_from(ACCOUNTS))
    def retype(self, account: str) -> None:
        """The last code typed for the account, typed again (a double submit, a replay)."""
        self._verify(account, self.typed.get(account, "000000"))

    def _verify(self, account: str, typed: str) -> None:
        m, now = self.models[account], self.now()
        self.typed[account] = typed
        got = self.codes.verify_authenticator(account, typed)
        want = m.locked(now)
        if want is None:
            if m.confirmed is None:
                want = Refused(Reason.NO_AUTHENTICATOR)
            else:
                step = m.step_of(m.confirmed, typed, now)
                if step is None:
                    want = m.fail(now)
                elif step <= m.last_step:
                    want = Refused(Reason.CODE_REUSED)
                else:
                    m.last_step, m.failures = step, 0
                    want = Verified()
        assert got == want, (account, typed, got, want)

    @rule(account=st.sampled_from(ACCOUNTS))
    def remove(self, account: str) -> None:
        m, now = self.models[account], self.now()
        live = m.pending is not None and now < m.pending[1] + TTL
        want = live or m.confirmed is not None
        m.pending = m.confirmed = None
        m.last_step = -1
        assert self.codes.remove_authenticator(account) is want

    @rule(account=st.sampled_from(ACCOUNTS))
    def new_recovery(self, account: str) -> None:
        got = self.codes.new_recovery_codes(account)
        self.models[account].recovery = {c.replace("-", "") for c in got}
        self.shown[account].extend(got)

    @rule(account=st.sampled_from(ACCOUNTS), pick=st.integers(0, 40), lower=st.booleans())
    def use_recovery(self, account: str, pick: int, lower: bool) -> None:
        m, now = self.models[account], self.now()
        shown = self.shown[account]
        typed = shown[pick % len(shown)] if shown else "ABCDE-FGHJK"
        if lower:
            typed = typed.lower().replace("-", " ")
        got = self.codes.use_recovery_code(account, typed)
        plain = typed.upper().replace(" ", "").replace("-", "")
        want = m.locked(now)
        if want is None:
            if not m.recovery:
                want = Refused(Reason.NO_RECOVERY_CODES)
            elif plain in m.recovery:
                m.recovery.discard(plain)
                m.failures = 0
                want = Verified(recovery_codes_left=len(m.recovery))
            else:
                want = m.fail(now)
        assert got == want, (account, typed, got, want)

    @rule(account=st.sampled_from(ACCOUNTS))
    def unlock(self, account: str) -> None:
        m, now = self.models[account], self.now()
        want = now < m.lock_until or (m.failures > 0 and now < m.last_failure + LOCKOUT)
        m.lock_until = m.failures = 0
        assert self.codes.unlock(account) is want

    @invariant()
    def inspect_agrees(self) -> None:
        if not hasattr(self, "codes"):
            return
        for account, m in self.models.items():
            status = self.codes.inspect(account)
            assert status.authenticator is (m.confirmed is not None)
            assert status.recovery_codes_left == len(m.recovery)

    def _secret(self, account: str, current: bytes | None, old: bool) -> bytes | None:
        """The current secret, or (old=True) the one shown before it, when there was one."""
        shown = self.secrets[account]
        if old and current in shown and shown.index(current) > 0:
            return shown[shown.index(current) - 1]
        return current


@pytest.mark.parametrize("examples", [200])
def test_r11_r12_hold_against_the_independent_model(harness: Harness, examples: int) -> None:
    """R11.1-R11.3, R12.1-R12.2 and R2.6 (the shared lock) against the model, every store."""
    machine = type("Machine", (FactorsMachine,), {"harness": harness})
    many = examples if harness.kind.startswith("memory") else examples // 10
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=many,
            stateful_step_count=30,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
