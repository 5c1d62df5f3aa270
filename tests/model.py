"""A reference model of RULES.md R1 to R3 and of the limiter of API.md, for test_model.py.

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
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ameli_otp import Decision, Issued, Policy, Reason, Refused, Verified

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
    revoked: bool = False


@dataclass
class Guard:
    """An account's consecutive failures and lock."""

    failures: int = 0
    last_failure: int | None = None
    locked_until: int | None = None


class CodesModel:
    """What ``SecurityCodes`` must answer, call by call (R1 to R3)."""

    def __init__(self, policy: Policy) -> None:
        self.length = policy.code_length
        self.ttl = to_ms(policy.code_ttl)
        self.window = to_ms(policy.code_window)
        self.max_unused = policy.max_unused_codes
        self.max_per_code = policy.max_attempts_per_code
        self.max_failed = policy.max_failed_attempts
        self.lockout = to_ms(policy.lockout)
        self.trust = to_ms(policy.device_trust_ttl)
        self.sent: list[SentCode] = []
        self.grants: list[Grant] = []
        self.guards: dict[str, Guard] = {}

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
        return sorted(times)

    # -- the calls --------------------------------------------------------------------------------
    def request_code(self, account: str, now: int, got_code: str | None) -> Issued | Refused:
        """The expected result of ``request_code(account)`` at ``now``.

        ``got_code`` is the code the library issued, if it issued one: the model cannot
        guess a random code, it records the one handed out.
        """
        left = self.lock_left(account, now)
        if left is not None:
            return Refused(Reason.ACCOUNT_LOCKED, retry_after=left * MS)
        counting = self.counting(account, now)
        if len(counting) >= self.max_unused:
            oldest = min(c.at for c in counting)
            return Refused(Reason.TOO_MANY_CODES, retry_after=(oldest + self.window - now) * MS)
        replaced = self.active(account)
        if replaced is not None:
            replaced.status = REPLACED
        code = NOT_ISSUED if got_code is None else got_code
        self.sent.append(SentCode(account, code, now))
        return Issued(
            code=code,
            expires_at=at(now + self.ttl),
            remaining=self.max_unused - (len(counting) + 1),
        )

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
        digits = normalize(typed, self.length)
        if digits is None:  # R2.1
            return Refused(Reason.MALFORMED_CODE)
        left = self.lock_left(account, now)
        if left is not None:  # R2.2
            return Refused(Reason.ACCOUNT_LOCKED, retry_after=left * MS)
        code = self.active(account)
        if code is None or now >= code.at + self.window:  # R2.3
            return Refused(Reason.NO_CODE)
        if now >= code.at + self.ttl:  # R2.4
            return Refused(Reason.EXPIRED)
        g = self.guard(account)
        if g.last_failure is not None and now >= g.last_failure + self.lockout:
            g.failures = 0  # R2.6, last bullet
        if digits == code.code:  # R2.5
            code.status = USED
            g.failures = 0
            if not remember:
                return Verified(device_token=None)
            assert fingerprint is not None
            token = NO_TOKEN if got_token is None else got_token
            self.grants.append(Grant(token, account, fingerprint, now))
            return Verified(device_token=token)
        code.failures += 1  # R2.6
        g.failures += 1
        g.last_failure = now
        if g.failures >= self.max_failed:
            g.locked_until = now + self.lockout
            g.failures = 0
            code.status = BURNED
            return Refused(Reason.ACCOUNT_LOCKED, retry_after=self.lockout * MS)
        if code.failures >= self.max_per_code:
            code.status = BURNED
            return Refused(Reason.TOO_MANY_ATTEMPTS)
        return Refused(Reason.WRONG_CODE, attempts_left=self.max_per_code - code.failures)

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

    def forget_device(self, account: str, token: object) -> None:
        """R3.3: revoke ``token`` only if it belongs to ``account``."""
        for grant in self.grants:
            if grant.token == token and grant.account == account:
                grant.revoked = True

    def forget_all_devices(self, account: str) -> None:
        """R3.3: revoke every token of ``account``."""
        for grant in self.grants:
            if grant.account == account:
                grant.revoked = True

    def unlock(self, account: str) -> None:
        """R2.7: lift the lock and clear the failure count."""
        g = self.guard(account)
        g.locked_until = None
        g.failures = 0


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
