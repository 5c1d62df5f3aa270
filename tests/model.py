"""A reference model of RULES.md R1 to R3, R9, R10 and of the limiter of API.md, for test_model.py.

Written from the text of the rules, not from ``src/ameli_otp/_rules.py``, and on
purpose with other data structures: the model keeps a plain list of every code
ever issued (with the code itself, its issue time, its status and its failures)
and a plain list of every device token ever granted, and computes every count by
filtering those lists at the time asked. It knows the codes and tokens the library
handed out, so it can predict the exact result of every call, including the
unlikely case where a "wrong" guess happens to be the right code.

Times are integer milliseconds (RULES.md: "Work in integer milliseconds").

The readings of RULES.md that the model makes (where the text leaves a choice):

* R1 / R2.6 order: ``request_code`` on a locked account is ``ACCOUNT_LOCKED``
  even when the window is also full (the lock is checked first, as in R2).
* R2.3 "An expired code *may* be forgotten once its entry has left the window":
  the model forgets it exactly then: at ``s >= t + code_window`` the result is
  ``NO_CODE``; before that, from ``t + code_ttl`` on, it is ``EXPIRED``. When
  ``code_ttl == code_window`` the code goes straight from usable to ``NO_CODE``.
* R2.6 "Consecutive failures are forgotten when none was added for lockout": the
  count is forgotten at ``s >= last_failure + lockout`` (a full ``lockout``
  without a failure), and it only matters for the next failure.
* R2.6 the lock: locked while ``s < lock_start + lockout``; the locking guess
  burns the code; when the lock ends (or on ``unlock``) the count is zero.
  ``unlock`` does not give back the burned code.
* R2.5 / R1.4: the used code's entry leaves the window; a replaced, expired or
  burned code's entry stays until ``t + code_window``.
* R3.2: trust ignores locks (a locked account's browser stays trusted): the
  rule says trust "never touches" the limiter or the failure count, and lists
  when it is False, a lock not among them.
* R3.3: ``forget_device`` with another account's token does nothing; a token
  granted after ``forget_all_devices`` is trusted.

R9 (what the support desk sees, and the events), with the same lists:

* Device ids. A token's ``device_id`` cannot be seen from outside but through
  ``inspect``, so the model *learns* it: right after each grant the test calls the
  library's ``inspect`` and hands the listed ids to :meth:`CodesModel.learn_devices`,
  which records the one id it did not know as the new grant's. That is the only thing
  the model takes from the library; from then on every ``inspect`` is compared whole,
  ids included, and the ``device_id`` of every ``code_verified`` and
  ``device_revoked`` event must be the learned one. (Mapping ids by grant time
  instead would be ambiguous for two grants of one millisecond, and would check less.)
* R9.1 ``consecutive_failures`` is the count the next wrong guess adds to: 0 once
  ``lockout`` has passed since the last failure (R2.6), 0 during a lock and after it.
* R9.1 ``next_code_at`` is "when the next request will be allowed", read literally:
  the earliest time at which ``request_code`` would issue a code if nothing else
  happened. That is None when it would now; otherwise the later of the lock's end
  (if locked) and the time the oldest counting entry leaves the window (if
  ``max_unused_codes`` entries count). With ``lockout >= code_window`` the lock's end
  always wins when both hold; with a shorter lockout the window can outlast the lock.
* R9.1 ``active_code`` is the code ``verify_code`` would compare with, listed from its
  issue until ``t + code_window`` (R2.3: the model forgets it exactly then), so
  ``expires_at`` (``t + code_ttl``) may be in the past while it answers ``EXPIRED``;
  ``attempts_left`` is ``max_attempts_per_code`` minus the code's failures. A used,
  replaced or burned code is not listed.
* R9.1 devices: every grant of the account that is neither revoked, nor forgotten by
  the cap, nor expired (``s >= t + device_trust_ttl``), oldest grant first. Grants of
  the same millisecond are equally old: the rules do not order them, so the listing
  may give them in any order (:func:`canonical` sorts them before comparing) and the
  cap may forget either (below).
* The device cap (``Policy.max_trusted_devices``): a grant that would make more than
  that many devices trusted first forgets the oldest grants (revoked, as if by
  ``forget_device``) until one less than the cap is left, then trusts the new one.
  When the oldest are tied in one millisecond, any of the tied ones may go: the
  model learns which from the same ``inspect`` that gives the new id, and checks that
  exactly as many as needed went, all from that millisecond.
* R9.2 ``unlock`` changed something when the account was locked, or had failures
  that still count (not forgotten by R2.6); an ended lock or forgotten failures are
  no change (False, no event). ``forget_device`` / ``forget_device_id`` changed
  something when the device was trusted (granted to this account, not revoked, not
  forgotten by the cap, not expired); ``forget_all_devices`` returns how many were.
* R9.3 events: one per call that changes state or refuses, none for reads
  (``inspect``, ``is_trusted_device``) and for calls that change nothing (the
  False/0 answers above). Every refused verification is a refusal, so it reports
  ``code_rejected`` even though it changes nothing (``NO_CODE``, ``EXPIRED``,
  ``ACCOUNT_LOCKED`` while locked, ``MALFORMED_CODE``); the guess that locks reports
  ``account_locked`` (reason ``ACCOUNT_LOCKED``, ``retry_after = lockout``) instead.
  A call that raises (``remember_device=True`` without a fingerprint) reports none.
  An event carries the figures of its result (``remaining`` for ``code_issued``,
  ``attempts_left`` for ``WRONG_CODE``, ``retry_after`` where the refusal has one),
  the ``device_id`` of the trusted or revoked device, the count for
  ``all_devices_revoked``, ``factor == "email"``, and ``at`` = the call's clock reading.

R10 (sending budgets), with the same list of codes and a plain list of every budget
entry kept:

* R10.1 the resend interval counts from the account's newest code, whatever became of
  it (used, replaced, burned, expired): refused while ``s < t_last + resend_interval``
  ("less than ``resend_interval`` after"), so exactly at ``t_last + resend_interval``
  a code is issued; ``retry_after = t_last + resend_interval - s``.
* R10.2 the day is sliding like the hour: a code issued at ``t`` counts in the day at
  every ``s < t + 24 h``, used or not; refused when ``max_codes_per_day`` codes count;
  ``retry_after`` = the oldest counting code's ``t + 24 h - s``. A refused request is
  not a code issued: it counts in neither the day nor the interval.
* Order (docs/rules.md R10; RULES.md does not say): the budgets first, in the order
  declared, then the lock, the hour (``TOO_MANY_CODES``), the day (``DAILY_LIMIT``),
  the resend interval (``TOO_SOON``); the first that refuses is the result.
* R10.3 a budget is a sliding window on its key (the one passed in ``budget_keys``,
  or its fixed ``key``): an entry made at ``t`` counts at every ``s < t + window``;
  it is full when ``limit`` entries count; the refusal is ``BUDGET_EXHAUSTED`` with
  ``budget`` = its name and ``retry_after`` = its oldest counting entry's
  ``t + window - s``. The model keeps an entry in every budget only for an issued
  code: a refused request (by a later budget or by the account) leaves none, which
  is what "taken first and given back" must amount to. Verifying the code does not
  give its budget entries back: RULES.md R10.3 gives entries back only for refusals
  (R1.4's "stops counting" is said of the account's window), and budgets count
  mails sent.
* R10 events: a refused request reports ``code_refused`` with the refusal's
  ``reason``, ``retry_after`` and (``BUDGET_EXHAUSTED`` only) ``budget``.
* R9.1 ``next_code_at`` with R10 on: the later of the end of every account rule that
  refuses now (lock, hour, day, resend interval; each end is when that rule stops
  refusing, none of them can start refusing again without a new code); budgets are
  on other keys and do not count (docs/support.md). ``codes_counting`` stays the
  hour's count (used codes excluded).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs

from ameli_otp import (
    AccountStatus,
    Budget,
    CodeStatus,
    Decision,
    Issued,
    Policy,
    Reason,
    Refused,
    TrustedDevice,
    Verified,
)

MS = timedelta(milliseconds=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DIGITS = frozenset("0123456789")

ACTIVE = "active"  # the newest code of its account, neither used nor burned
REPLACED = "replaced"  # a newer code was issued
BURNED = "burned"  # too many attempts, or the guess that locked the account
USED = "used"  # verified: its entry has left the window

#: the code recorded when the model expected a code the library did not issue
NOT_ISSUED = "<not issued>"
#: the token recorded when the model expected a token the library did not return
NO_TOKEN = "<no token>"
#: R10.2: the sliding day of ``max_codes_per_day``, ms
DAY = 24 * 60 * 60 * 1000


def to_ms(duration: timedelta) -> int:
    """A duration of whole milliseconds, as an int."""
    ms, rest = divmod(duration, MS)
    if rest:
        raise ValueError(f"the model works in whole milliseconds, got {duration!r}")
    return ms


def at(ms: int) -> datetime:
    """An aware UTC datetime for a time in milliseconds since the epoch."""
    return EPOCH + ms * MS


def normalize(typed: str, length: int) -> str | None:
    """R2.1: drop every space, tab and ``-``; the rest must be ``length`` ASCII digits."""
    kept = "".join(ch for ch in typed if ch not in (" ", "\t", "-"))
    if len(kept) != length or not all(ch in DIGITS for ch in kept):
        return None
    return kept


@dataclass
class SentCode:
    """One code issued by ``request_code``: it is an entry of its account's window."""

    account: str
    code: str
    at: int
    status: str = ACTIVE
    failures: int = 0


@dataclass
class Grant:
    """One device token returned by a successful ``verify_code(remember_device=True)``."""

    token: str
    account: str
    fingerprint: str
    at: int
    revoked: bool = False  # by forget_device(_id), forget_all_devices or the device cap
    device_id: str | None = None  # learned from the library's inspect (see the docstring)


@dataclass
class Expected:
    """One event the model expects (R9.3); ``account`` is the id (the test maps it to a ref)."""

    kind: str
    account: str
    at: int
    reason: Reason | None = None
    remaining: int | None = None
    attempts_left: int | None = None
    retry_after: timedelta | None = None
    grant: Grant | None = None  # the trusted or revoked device
    devices_revoked: int | None = None
    budget: str | None = None  # the exhausted budget of a BUDGET_EXHAUSTED refusal

    @property
    def device_id(self) -> str | None:
        return None if self.grant is None else self.grant.device_id


@dataclass
class Spent:
    """One entry an issued code keeps in a budget (R10.3): budget ``name``, on ``key``."""

    name: str
    key: str
    at: int


@dataclass
class Guard:
    """An account's consecutive failures and lock."""

    failures: int = 0
    last_failure: int | None = None
    locked_until: int | None = None


class CodesModel:
    """What ``SecurityCodes`` must answer, call by call (R1 to R3, R9, R10)."""

    def __init__(self, policy: Policy, budgets: Iterable[Budget] = ()) -> None:
        self.length = policy.code_length
        self.ttl = to_ms(policy.code_ttl)
        self.window = to_ms(policy.code_window)
        self.max_unused = policy.max_unused_codes
        self.max_per_code = policy.max_attempts_per_code
        self.max_failed = policy.max_failed_attempts
        self.lockout = to_ms(policy.lockout)
        self.trust = to_ms(policy.device_trust_ttl)
        self.max_devices = policy.max_trusted_devices
        # R10: None when off
        self.resend = None if policy.resend_interval is None else to_ms(policy.resend_interval)
        self.per_day = policy.max_codes_per_day
        #: R10.3: (name, limit, window ms, fixed key or None), in the order declared
        self.budgets = [(b.name, b.limit, to_ms(b.window), b.key) for b in budgets]
        self.spent: list[Spent] = []
        self.sent: list[SentCode] = []
        self.grants: list[Grant] = []
        self.guards: dict[str, Guard] = {}
        #: the events the calls so far must have reported, oldest first (the test drains it)
        self.events: list[Expected] = []
        #: grants tied in one millisecond of which the cap must forget ``n`` (see learn_devices)
        self.tied: tuple[list[Grant], int] | None = None

    # -- what the model knows ------------------------------------------------------------------
    def codes_of(self, account: str) -> list[SentCode]:
        """Every code issued to ``account``, oldest first."""
        return [c for c in self.sent if c.account == account]

    def newest(self, account: str) -> SentCode | None:
        """The last code issued to ``account``, whatever became of it."""
        mine = self.codes_of(account)
        return mine[-1] if mine else None

    def previous(self, account: str) -> SentCode | None:
        """The code issued before the last one (replaced by it), if any."""
        mine = self.codes_of(account)
        return mine[-2] if len(mine) >= 2 else None

    def active(self, account: str) -> SentCode | None:
        """The code ``verify_code`` compares with (R1.6), if the account has one."""
        newest = self.newest(account)
        return newest if newest is not None and newest.status == ACTIVE else None

    def counting(self, account: str, now: int) -> list[SentCode]:
        """R1.2/R1.4: the entries of ``account`` that count at ``now``."""
        return [
            c
            for c in self.sent
            if c.account == account and c.status != USED and now < c.at + self.window
        ]

    def of_day(self, account: str, now: int) -> list[SentCode]:
        """R10.2: the codes of ``account`` issued in the sliding day before ``now``, used or not."""
        return [c for c in self.sent if c.account == account and now < c.at + DAY]

    def spent_on(self, name: str, key: str, window: int, now: int) -> list[Spent]:
        """R10.3: the entries that count at ``now`` in budget ``name`` on ``key``."""
        return [e for e in self.spent if e.name == name and e.key == key and now < e.at + window]

    def account_blocks(self, account: str, now: int) -> list[tuple[Reason, int]]:
        """Every account rule that refuses a request at ``now``, in the order checked
        (R2.6 lock, R1.3 hour, R10.2 day, R10.1 resend), each with when it ends."""
        out = []
        left = self.lock_left(account, now)
        if left is not None:
            out.append((Reason.ACCOUNT_LOCKED, now + left))
        counting = self.counting(account, now)
        if len(counting) >= self.max_unused:
            out.append((Reason.TOO_MANY_CODES, min(c.at for c in counting) + self.window))
        if self.per_day is not None:
            day = self.of_day(account, now)
            if len(day) >= self.per_day:
                out.append((Reason.DAILY_LIMIT, min(c.at for c in day) + DAY))
        newest = self.newest(account)
        if self.resend is not None and newest is not None and now < newest.at + self.resend:
            out.append((Reason.TOO_SOON, newest.at + self.resend))
        return out

    def guard(self, account: str) -> Guard:
        return self.guards.setdefault(account, Guard())

    def lock_left(self, account: str, now: int) -> int | None:
        """Milliseconds left of the account's lock at ``now``, or None if not locked."""
        g = self.guards.get(account)
        if g is None or g.locked_until is None or now >= g.locked_until:
            return None
        return g.locked_until - now

    def tokens(self) -> list[Grant]:
        """Every token granted so far, oldest first."""
        return list(self.grants)

    def trusted(self, account: str, now: int) -> list[Grant]:
        """R3.2: the grants of ``account`` that trust a browser at ``now``, oldest first."""
        return [
            g
            for g in self.grants
            if g.account == account and not g.revoked and now < g.at + self.trust
        ]

    def emit(self, kind: str, account: str, now: int, **fields: Any) -> None:
        self.events.append(Expected(kind, account, now, **fields))

    def _refused(self, kind: str, account: str, now: int, result: Refused) -> Refused:
        self.emit(
            kind,
            account,
            now,
            reason=result.reason,
            attempts_left=result.attempts_left,
            retry_after=result.retry_after,
            budget=result.budget,
        )
        return result

    def edges(self) -> list[int]:
        """Every time at which an answer of the model may change (for clock moves)."""
        times: set[int] = set()
        for c in self.sent:
            times.update((c.at + self.ttl, c.at + self.window))
        for g in self.guards.values():
            if g.locked_until is not None:
                times.add(g.locked_until)
            if g.last_failure is not None:
                times.add(g.last_failure + self.lockout)
        for grant in self.grants:
            times.add(grant.at + self.trust)
        for c in self.sent:  # R10
            if self.per_day is not None:
                times.add(c.at + DAY)
            if self.resend is not None:
                times.add(c.at + self.resend)
        windows = {name: window for name, _, window, _ in self.budgets}
        for e in self.spent:
            times.add(e.at + windows[e.name])
        return sorted(times)

    # -- the calls --------------------------------------------------------------------------------
    def request_code(
        self,
        account: str,
        now: int,
        got_code: str | None,
        budget_keys: dict[str, str] | None = None,
    ) -> Issued | Refused:
        """The expected result of ``request_code(account, budget_keys=...)`` at ``now``.

        ``got_code`` is the code the library issued, if it issued one: the model cannot
        guess a random code, it records the one handed out. ``budget_keys`` must name
        the key of every budget without a fixed one (the library raises otherwise).
        """
        refused = "code_refused"
        keys = budget_keys or {}
        spend = []
        for name, limit, window, fixed in self.budgets:  # R10.3: the budgets first
            key = fixed if fixed is not None else keys[name]
            full = self.spent_on(name, key, window, now)
            if len(full) >= limit:
                wait = (min(e.at for e in full) + window - now) * MS
                exhausted = Refused(Reason.BUDGET_EXHAUSTED, retry_after=wait, budget=name)
                return self._refused(refused, account, now, exhausted)
            spend.append(Spent(name, key, now))
        blocks = self.account_blocks(account, now)
        if blocks:  # the first in the order checked
            reason, until = blocks[0]
            return self._refused(
                refused, account, now, Refused(reason, retry_after=(until - now) * MS)
            )
        counting = self.counting(account, now)
        replaced = self.active(account)
        if replaced is not None:
            replaced.status = REPLACED
        code = NOT_ISSUED if got_code is None else got_code
        self.sent.append(SentCode(account, code, now))
        self.spent.extend(spend)  # kept by an issued code only, used or not
        remaining = self.max_unused - (len(counting) + 1)
        self.emit("code_issued", account, now, remaining=remaining)
        return Issued(code=code, expires_at=at(now + self.ttl), remaining=remaining)

    def verify_code(
        self,
        account: str,
        typed: str,
        now: int,
        *,
        remember: bool = False,
        fingerprint: str | None = None,
        got_token: str | None = None,
    ) -> Verified | Refused:
        """The expected result of ``verify_code`` at ``now`` (R2, R3.1).

        ``remember=True`` needs a ``fingerprint`` (the library raises before this is asked).
        ``got_token`` is the token the library returned, if any: the model records it.
        """
        rejected = "code_rejected"
        digits = normalize(typed, self.length)
        if digits is None:  # R2.1
            return self._refused(rejected, account, now, Refused(Reason.MALFORMED_CODE))
        left = self.lock_left(account, now)
        if left is not None:  # R2.2
            locked = Refused(Reason.ACCOUNT_LOCKED, retry_after=left * MS)
            return self._refused(rejected, account, now, locked)
        code = self.active(account)
        if code is None or now >= code.at + self.window:  # R2.3
            return self._refused(rejected, account, now, Refused(Reason.NO_CODE))
        if now >= code.at + self.ttl:  # R2.4
            return self._refused(rejected, account, now, Refused(Reason.EXPIRED))
        g = self.guard(account)
        if g.last_failure is not None and now >= g.last_failure + self.lockout:
            g.failures = 0  # R2.6, last bullet
        if digits == code.code:  # R2.5
            code.status = USED
            g.failures = 0
            if not remember:
                self.emit("code_verified", account, now)
                return Verified(device_token=None)
            assert fingerprint is not None
            token = NO_TOKEN if got_token is None else got_token
            self._make_room(account, now)
            grant = Grant(token, account, fingerprint, now)
            self.grants.append(grant)
            self.emit("code_verified", account, now, grant=grant)
            return Verified(device_token=token)
        code.failures += 1  # R2.6
        g.failures += 1
        g.last_failure = now
        if g.failures >= self.max_failed:
            g.locked_until = now + self.lockout
            g.failures = 0
            code.status = BURNED
            locked = Refused(Reason.ACCOUNT_LOCKED, retry_after=self.lockout * MS)
            return self._refused("account_locked", account, now, locked)
        if code.failures >= self.max_per_code:
            code.status = BURNED
            return self._refused(rejected, account, now, Refused(Reason.TOO_MANY_ATTEMPTS))
        wrong = Refused(Reason.WRONG_CODE, attempts_left=self.max_per_code - code.failures)
        return self._refused(rejected, account, now, wrong)

    def _make_room(self, account: str, now: int) -> None:
        """The device cap: forget the oldest grants until one more may be trusted."""
        live = self.trusted(account, now)  # oldest first (grants are kept in grant order)
        excess = len(live) - self.max_devices + 1
        self.tied = None
        if excess <= 0:
            return
        cut = sorted(g.at for g in live)[excess - 1]
        older = [g for g in live if g.at < cut]
        tied = [g for g in live if g.at == cut]
        for g in older:
            g.revoked = True
        n = excess - len(older)
        if n == len(tied):
            for g in tied:
                g.revoked = True
        else:  # which of the tied ones goes is learned (learn_devices)
            self.tied = (tied, n)

    def learn_devices(self, account: str, listed: Iterable[str]) -> None:
        """After a grant: the device ids the library's ``inspect`` lists for ``account``.

        The one id no grant of the account has yet is the new grant's; when the cap had
        to choose among grants of one millisecond, the tied ones not listed are the ones
        it forgot (if they are not exactly as many as it had to forget, the model takes
        the first ones in grant order, and the comparison of the listing then fails).
        """
        listed = list(listed)
        mine = [g for g in self.grants if g.account == account]
        known = {g.device_id for g in mine if g.device_id is not None}
        fresh = [d for d in listed if d not in known]
        new = [g for g in mine if g.device_id is None]
        if new:
            new[-1].device_id = fresh[0] if len(fresh) == 1 else f"<not listed: {fresh!r}>"
        if self.tied is not None:
            tied, n = self.tied
            self.tied = None
            gone = [g for g in tied if g.device_id not in listed]
            for g in gone if len(gone) == n else tied[:n]:
                g.revoked = True

    def is_trusted_device(self, account: str, token: object, fingerprint: str, now: int) -> bool:
        """R3.2 and R3.4."""
        for grant in self.grants:
            if grant.token == token:
                return (
                    grant.account == account
                    and grant.fingerprint == fingerprint
                    and not grant.revoked
                    and now < grant.at + self.trust
                )
        return False

    def _revoke(self, account: str, grant: Grant | None, now: int) -> bool:
        if grant is None or grant.account != account:
            return False
        trusted = not grant.revoked and now < grant.at + self.trust
        grant.revoked = True
        if trusted:
            self.emit("device_revoked", account, now, grant=grant)
        return trusted

    def forget_device(self, account: str, token: object, now: int) -> bool:
        """R3.3, R9.2: revoke ``token`` only if it belongs to ``account``; True if it trusted."""
        found = next((g for g in self.grants if g.token == token), None)
        return self._revoke(account, found, now)

    def forget_device_id(self, account: str, device_id: str, now: int) -> bool:
        """R9.2: revoke the device ``inspect`` listed as ``device_id``; True if it trusted."""
        found = next((g for g in self.grants if g.device_id == device_id), None)
        return self._revoke(account, found, now)

    def forget_all_devices(self, account: str, now: int) -> int:
        """R3.3: revoke every token of ``account``; how many trusted a browser."""
        count = len(self.trusted(account, now))
        for grant in self.grants:
            if grant.account == account:
                grant.revoked = True
        if count:
            self.emit("all_devices_revoked", account, now, devices_revoked=count)
        return count

    def unlock(self, account: str, now: int) -> bool:
        """R2.7, R9.2: lift the lock and clear the failure count; True if either held."""
        g = self.guard(account)
        changed = self.lock_left(account, now) is not None or self.failures(account, now) > 0
        g.locked_until = None
        g.failures = 0
        if changed:
            self.emit("account_unlocked", account, now)
        return changed

    # -- R9.1 -------------------------------------------------------------------------------------
    def failures(self, account: str, now: int) -> int:
        """The consecutive failures of ``account`` that still count at ``now`` (R2.6)."""
        g = self.guards.get(account)
        if g is None or g.last_failure is None or now >= g.last_failure + self.lockout:
            return 0
        return g.failures

    def inspect(self, account: str, now: int) -> AccountStatus:
        """The expected ``inspect(account)`` at ``now`` (see the docstring's readings)."""
        left = self.lock_left(account, now)
        counting = self.counting(account, now)
        # ends of the account rules that refuse a request now (budgets are not the account's)
        blocked = [until for _, until in self.account_blocks(account, now)]
        code = self.active(account)
        listed = None
        if code is not None and now < code.at + self.window:
            listed = CodeStatus(
                issued_at=at(code.at),
                expires_at=at(code.at + self.ttl),
                attempts_left=self.max_per_code - code.failures,
            )
        devices = sorted(self.trusted(account, now), key=lambda g: g.at)
        return AccountStatus(
            locked_until=None if left is None else at(now + left),
            consecutive_failures=self.failures(account, now),
            codes_counting=len(counting),
            next_code_at=at(max(blocked)) if blocked else None,
            active_code=listed,
            devices=tuple(
                TrustedDevice(
                    device_id=g.device_id or "<never learned>",
                    granted_at=at(g.at),
                    expires_at=at(g.at + self.trust),
                )
                for g in devices
            ),
        )


def canonical(status: AccountStatus) -> AccountStatus:
    """``status`` with grants of one millisecond in one order, for an exact comparison.

    Raises ``AssertionError`` if the devices are not listed oldest grant first.
    """
    times = [d.granted_at for d in status.devices]
    assert times == sorted(times), f"devices not oldest grant first: {status.devices}"
    devices = tuple(sorted(status.devices, key=lambda d: (d.granted_at, d.device_id)))
    return attrs.evolve(status, devices=devices)


@dataclass
class Hit:
    """One entry a successful ``hit`` added."""

    key: str
    entry: str
    at: int
    gone: bool = False  # released, or its key was reset


class LimiterModel:
    """What ``SlidingWindowLimiter`` must answer (API.md, with R1.2 to R1.4's window)."""

    def __init__(self, limit: int, window: timedelta) -> None:
        self.limit = limit
        self.window = to_ms(window)
        self.hits: list[Hit] = []

    def counting(self, key: str, now: int) -> list[Hit]:
        return [h for h in self.hits if h.key == key and not h.gone and now < h.at + self.window]

    def entries(self) -> list[Hit]:
        """Every entry ever handed out, oldest first."""
        return list(self.hits)

    def edges(self) -> list[int]:
        return sorted({h.at + self.window for h in self.hits})

    def _refused(self, counting: list[Hit], now: int) -> Decision:
        oldest = min(h.at for h in counting)
        return Decision(False, 0, (oldest + self.window - now) * MS, None)

    def hit(self, key: str, now: int, got_entry: str | None) -> Decision:
        counting = self.counting(key, now)
        if len(counting) >= self.limit:
            return self._refused(counting, now)
        entry = NOT_ISSUED if got_entry is None else got_entry
        self.hits.append(Hit(key, entry, now))
        return Decision(True, self.limit - (len(counting) + 1), None, entry)

    def peek(self, key: str, now: int) -> Decision:
        counting = self.counting(key, now)
        if len(counting) >= self.limit:
            return self._refused(counting, now)
        return Decision(True, self.limit - len(counting), None, None)

    def release(self, key: str, entry: str | None) -> None:
        for h in self.hits:
            if h.key == key and h.entry == entry:
                h.gone = True

    def reset(self, key: str) -> None:
        for h in self.hits:
            if h.key == key:
                h.gone = True
