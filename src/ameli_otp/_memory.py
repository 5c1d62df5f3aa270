"""The in-memory store: one process, thread-safe, bounded by its live records.

Every primitive applies a transition of :mod:`ameli_otp._rules` under one
short lock. There is no sweeper thread: each record knows until when a rule
may need it (``until``, only ever pushed later), a heap orders the records by
when they come due (``until + SLACK_MS``, the slack the Redis store gives its
keys too), and every write reclaims a few records that are due, more than it
can create. ``reclaim()`` works in bounded slices, letting the lock go between
them. A store built with ``max_records`` refuses new records
(:class:`~ameli_otp.StoreFullError`) when it is full of live ones: evicting
one would silently reset someone's limit.

The store is one process's memory (RULES R8.4): a child made by ``fork`` gets a
copy whose every operation raises :class:`~ameli_otp.ConfigurationError`.
"""

from __future__ import annotations

import heapq
import itertools
import os
import threading
import time
import weakref
from typing import Any

from . import _factors as factors
from . import _rules as rules
from ._errors import ConfigurationError, StoreFullError
from ._policy import SLACK_MS, Limits, positive_int
from ._status import EMPTY, Raw, raw_of

__all__ = ["AsyncMemoryBackend", "MemoryBackend"]

_RECLAIM_PER_WRITE = 8  # > the one record a write can create: memory follows live records
# records a reclaim handles per hold of the lock (reclaim(), or a write on a full store):
# a fraction of a millisecond to a few, even on a heap of millions
_RECLAIM_PER_SLICE = 256
_FOREVER = 1 << 62  # ms: the "until" of what no rule lets expire (an authenticator)


class _Record:
    __slots__ = ("data", "span", "until")

    def __init__(self, data: Any) -> None:
        self.data = data
        self.until = 0  # a rule may need this record while now < until (at least)
        # a limiter window: its longest window length. Such a record's until is only set
        # at its first entry; the reclaim, when it comes due, pushes it to the newest
        # entry + span, so that the hot path does not update it at every hit.
        self.span = 0


class _Forked:
    """Stands in for the lock of a store that a child process inherited through ``fork``.

    Every operation of the store enters its lock first, so entering this one raises
    :class:`~ameli_otp.ConfigurationError` before the operation reads or writes anything.
    """

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message

    def __enter__(self) -> None:
        raise ConfigurationError(self.message)

    def __exit__(self, *exc_info: object) -> None:
        return None  # never reached: __enter__ raised


#: every MemoryBackend of this process, for the fork handler (weak: it keeps none alive)
_STORES: weakref.WeakSet[MemoryBackend] = weakref.WeakSet()


def _refuse_in_child() -> None:
    """After ``fork``, in the child: turn each inherited store's lock into a refusal.

    Runs in the child only, with one thread, before ``fork()`` returns there. It writes
    one attribute per store and leaves the records alone (touching them would copy the
    pages a preloading server means to share).
    """
    child = os.getpid()
    for store in list(_STORES):
        store._lock = _Forked(
            f"MemoryBackend built in process {store._pid} and used in process {child}, "
            "made by fork() since (a preloading server such as gunicorn --preload builds "
            "the store in the master, then forks workers): a forked process has a copy of "
            "the records, and each process would enforce the limits on its own (RULES "
            "R8.4). Build the store in the process that uses it, after the fork (each "
            "worker then counts alone: fine with one worker), or use RedisBackend to share "
            "the limits between processes."
        )


if hasattr(os, "register_at_fork"):  # POSIX; elsewhere there is no fork
    os.register_at_fork(after_in_child=_refuse_in_child)


class MemoryBackend:
    """A thread-safe store in this process's memory (RULES R6.1 by one lock per operation).

    ``max_records``: optional bound on the records held (accounts plus limiter keys);
    when it is reached and no record has expired, new records raise
    :class:`~ameli_otp.StoreFullError` (a ``BackendError``) instead of evicting live ones.

    **One process** (RULES R8.4). A child process made by ``fork`` (a preloading server
    such as ``gunicorn --preload`` builds the store in the master, then forks workers)
    would hold a copy of the records and enforce every limit on its own. So in the
    child, every operation of an inherited store raises
    :class:`~ameli_otp.ConfigurationError` (a ``ValueError``), ``reclaim()`` and
    ``dump()`` included: build the store after the fork, in the process that uses it,
    or share a ``RedisBackend`` between processes. ``len()`` still answers (it takes
    no lock and changes nothing: the count of records the child inherited). How: one
    ``os.register_at_fork`` handler, run in each child, replaces the lock of every live
    store (a module-level ``WeakSet``) with an object whose ``__enter__`` raises. The
    operations are unchanged (no ``os.getpid()`` per call), and a lock that another
    thread held at the fork, which would hang the child, is replaced too. A store built
    in the child is a store of the child, and works.

    **Reclaiming.** Each record is kept ``SLACK_MS`` past the last moment a rule could
    need it, as the Redis store keeps its keys: the store learns the time from the calls
    it serves, and a call from a clock ahead (or ``reclaim(now)`` with a time ahead) must
    not make it forget a lock, a window or a device that still holds once the clock is
    back (RULES R5.2). Reclaiming holds the lock for a bounded slice of records at a
    time: each write reclaims a few, ``reclaim()`` lets the lock go between slices.
    """

    def __init__(self, *, max_records: int | None = None) -> None:
        if max_records is not None:
            positive_int("max_records", max_records)
        self._max = max_records
        self._lock: threading.Lock | _Forked = threading.Lock()
        self._pid = os.getpid()  # for the message of a forked copy
        self._accounts: dict[str, _Record] = {}
        self._windows: dict[str, _Record] = {}
        self._factors: dict[str, _Record] = {}  # R11, R12: kept while they hold anything
        self._heap: list[tuple[int, int, dict[str, _Record], str, _Record]] = []
        self._seq = itertools.count(1)
        self._now = 0  # the latest time it reclaimed at (writes reclaim too), for reclaim()
        _STORES.add(self)

    def __len__(self) -> int:
        """The number of records held (accounts, limiter keys, authenticators and recovery
        codes), live or not yet reclaimed."""
        return len(self._accounts) + len(self._windows) + len(self._factors)

    def reclaim(self, now: float | None = None) -> int:
        """Drop every record no rule needs any more; return how many were dropped.

        ``now`` is a reading of the clock your facades use (seconds since the epoch);
        the store has no clock of its own, so by default it uses the latest time it saw.
        A record goes once ``now`` is ``SLACK_MS`` past the last moment a rule could need
        it. Writes already reclaim a few records each; this is for tests and for an idle
        process that wants its memory back at once: ``reclaim(time.time())``.

        It works in slices of a few hundred records, letting the lock go between them,
        so the other threads' operations go on while it runs. Raises
        :class:`~ameli_otp.ConfigurationError` in a child process after ``fork``.
        """
        at = None if now is None else rules.clock_ms(now)
        dropped = 0
        while True:  # one slice per hold of the lock
            with self._lock:
                if at is None:
                    at = self._now
                before = len(self)
                more = self._reclaim(at, _RECLAIM_PER_SLICE)
                dropped += before - len(self)
            if not more:
                return dropped
            # Let a thread that waits for the lock take it: threading.Lock is not fair, and
            # without giving up the GIL here this thread would take the lock back at once.
            time.sleep(0)

    # -- internals (called with the lock held) ---------------------------------------------
    def _create(self, table: dict[str, _Record], key: str, data: Any, now: int) -> _Record:
        if self._max is not None and len(self) >= self._max:
            more = self._reclaim(now, _RECLAIM_PER_SLICE)  # one slice: the lock stays short
            if len(self) >= self._max:
                held = "records, some due but not reclaimed yet" if more else "live records"
                raise StoreFullError(f"MemoryBackend is full: {self._max} {held} (max_records)")
        rec = table[key] = _Record(data)
        return rec

    def _keep(self, table: dict[str, _Record], key: str, rec: _Record, until: int) -> None:
        """Record that a rule needs ``rec`` until ``until``."""
        if until > rec.until:
            if rec.until == 0:
                heapq.heappush(self._heap, (until + SLACK_MS, next(self._seq), table, key, rec))
            rec.until = until

    def _reclaim(self, now: int, budget: int) -> bool:
        """Handle up to ``budget`` heap entries due at ``now``; return whether more are due.

        An entry comes due at its record's ``until + SLACK_MS``; the record then goes,
        unless its ``until`` was pushed later since (it is put back in the heap).
        """
        if now > self._now:
            self._now = now
        heap = self._heap
        while heap and heap[0][0] <= now:
            if not budget:
                return True
            budget -= 1
            _, _, table, key, rec = heapq.heappop(heap)
            if table.get(key) is not rec:
                continue  # reset or replaced since
            if rec.span and rec.data:  # a window: its newest entry counts until t + span
                rec.until = max(rec.until, rules.entry_time(rec.data[-1]) + rec.span)
            due = rec.until + SLACK_MS
            if due <= now:
                del table[key]
            else:
                heapq.heappush(heap, (due, next(self._seq), table, key, rec))
        return False

    def _account(self, account: str, now: int) -> _Record:
        rec = self._accounts.get(account)
        if rec is None:
            rec = self._create(self._accounts, account, rules.Account(), now)
        return rec

    # -- the limiter's window ----------------------------------------------------------------
    def window_hit(
        self, key: str, now: int, window: int, limit: int
    ) -> tuple[bool, int, str | None]:
        """See :class:`ameli_otp._store.Store`."""
        with self._lock:
            rec = self._windows.get(key)
            if rec is None:
                rec = self._create(self._windows, key, [], now)
            seq = next(self._seq)
            entry = rules.entry_of(now, seq)
            allowed, value = rules.window_hit(rec.data, now, window, limit, entry)
            if not allowed:
                return False, value, None
            if window > rec.span:  # a new record (or a longer window on this key)
                rec.span = window
                self._keep(self._windows, key, rec, now + window)
            if self._heap[0][0] <= now:  # skip the call when nothing is due (until + slack)
                self._reclaim(now, _RECLAIM_PER_WRITE)
        return True, value, hex(entry)

    def window_peek(self, key: str, now: int, window: int) -> tuple[int, int]:
        """See :class:`ameli_otp._store.Store`."""
        with self._lock:
            rec = self._windows.get(key)
            return rules.window_count(rec.data, now, window) if rec else (0, 0)

    def window_release(self, key: str, entry: str) -> None:
        """See :class:`ameli_otp._store.Store`."""
        with self._lock:  # first, like every operation (a forked copy raises even here)
            try:
                parsed = int(entry, 16)
            except ValueError:
                return  # not an entry of this store: nothing to release
            if hex(parsed) != entry:
                return  # a lookalike (case, leading zeros, "+"...): ids are compared exactly
            rec = self._windows.get(key)
            if rec is not None:
                rules.window_release(rec.data, parsed)

    def window_reset(self, key: str) -> None:
        """See :class:`ameli_otp._store.Store`."""
        with self._lock:
            rec = self._windows.get(key)
            if rec is not None:
                # Emptied, not dropped: its entry in the reclaim heap stays the only one (a
                # dropped record leaves a stale entry, and a new record a second one, per
                # reset: churn would grow the heap), and it goes when that entry comes due.
                rec.data.clear()

    # -- accounts ----------------------------------------------------------------------------
    def issue_code(
        self, account: str, now: int, limits: Limits, code_hash: bytes
    ) -> tuple[int, int]:
        """See :class:`ameli_otp._store.Store`."""
        with self._lock:
            rec = self._account(account, now)
            outcome = rules.issue(rec.data, now, limits, code_hash, next(self._seq))
            if outcome[0] == rules.ISSUED:
                self._keep(self._accounts, account, rec, now + rules.issue_span(limits))
            elif rec.until == 0:  # refused on a record made for this call: keep nothing
                del self._accounts[account]
            self._reclaim(now, _RECLAIM_PER_WRITE)
            return outcome

    def verify_code(
        self,
        account: str,
        now: int,
        limits: Limits,
        candidates: tuple[bytes, ...],
        device: str | None,
    ) -> tuple[int, int]:
        """See :class:`ameli_otp._store.Store`."""
        with self._lock:
            rec = self._accounts.get(account)
            if rec is None:
                return rules.NO_CODE, 0
            outcome = rules.verify(rec.data, now, limits, candidates, device)
            kind = outcome[0]
            if kind == rules.VERIFIED and device is not None:
                self._keep(self._accounts, account, rec, now + limits.device_trust_ttl)
            elif kind == rules.LOCKED_NOW:
                self._keep(self._accounts, account, rec, outcome[1])
            elif kind in (rules.WRONG_CODE, rules.TOO_MANY_ATTEMPTS):
                self._keep(self._accounts, account, rec, now + limits.lockout)
            self._reclaim(now, _RECLAIM_PER_WRITE)
            return outcome

    def device_trusted(self, account: str, now: int, trust_ttl: int, device: str) -> bool:
        """See :class:`ameli_otp._store.Store`."""
        with self._lock:
            rec = self._accounts.get(account)
            return rec is not None and rules.device_trusted(rec.data, now, trust_ttl, device)

    def forget_device(self, account: str, now: int, trust_ttl: int, device: str) -> bool:
        """See :class:`ameli_otp._store.Store`."""
        with self._lock:
            rec = self._accounts.get(account)
            return rec is not None and rules.forget_device(rec.data, now, trust_ttl, device)

    def forget_all_devices(self, account: str, now: int, trust_ttl: int) -> int:
        """See :class:`ameli_otp._store.Store`."""
        with self._lock:
            rec = self._accounts.get(account)
            return 0 if rec is None else rules.forget_all_devices(rec.data, now, trust_ttl)

    def unlock(self, account: str, now: int, lockout: int) -> bool:
        """See :class:`ameli_otp._store.Store`."""
        with self._lock:
            rec = self._accounts.get(account)
            return rec is not None and rules.unlock(rec.data, now, lockout)

    def inspect(self, account: str) -> Raw:
        """See :class:`ameli_otp._store.Store`."""
        with self._lock:
            rec = self._accounts.get(account)
            raw = EMPTY if rec is None else raw_of(rec.data)
            held = self._factors.get(account)
            if held is None:
                return raw
            f: factors.Factors = held.data
            return raw._replace(
                authenticator=f.confirmed is not None, recovery_codes=len(f.recovery)
            )

    # -- the other factors (R11, R12) -------------------------------------------------------
    def _held(self, account: str, now: int) -> _Record:
        rec = self._factors.get(account)
        if rec is None:
            rec = self._create(self._factors, account, factors.Factors(), now)
        return rec

    def _settle(self, account: str, rec: _Record, now: int, limits: Limits) -> None:
        """Keep a factors record as long as what it holds: for ever (an authenticator,
        recovery codes), until a pending enrollment expires, or not at all."""
        f: factors.Factors = rec.data
        if f.confirmed is not None or f.recovery:
            self._keep(self._factors, account, rec, _FOREVER)
        elif f.pending is not None:
            self._keep(self._factors, account, rec, f.pending_at + limits.code_ttl)
        else:
            del self._factors[account]

    def _checked(
        self,
        account: str,
        now: int,
        limits: Limits,
        outcome: tuple[int, int],
        acct: _Record,
        device: str | None,
    ) -> None:
        """Keep the account record as a verification of another factor left it."""
        kind = outcome[0]
        if kind == rules.VERIFIED and device is not None:
            self._keep(self._accounts, account, acct, now + limits.device_trust_ttl)
        elif kind == rules.LOCKED_NOW:
            self._keep(self._accounts, account, acct, outcome[1])
        elif kind == rules.WRONG_CODE:
            self._keep(self._accounts, account, acct, now + limits.lockout)
        elif acct.until == 0:  # made for this call and holding nothing a rule needs
            del self._accounts[account]

    def totp_read(self, account: str) -> tuple[str | None, str | None]:
        """See :class:`ameli_otp._store.Store`."""
        with self._lock:
            rec = self._factors.get(account)
            return (None, None) if rec is None else (rec.data.pending, rec.data.confirmed)

    def totp_enroll(self, account: str, now: int, limits: Limits, ref: str) -> None:
        """See :class:`ameli_otp._store.Store`."""
        with self._lock:
            rec = self._held(account, now)
            factors.enroll(rec.data, now, ref)
            self._settle(account, rec, now, limits)
            self._reclaim(now, _RECLAIM_PER_WRITE)

    def totp_confirm(
        self, account: str, now: int, limits: Limits, ref: str, step: int
    ) -> tuple[int, int]:
        """See :class:`ameli_otp._store.Store`."""
        with self._lock:
            held = self._factors.get(account)
            acct = self._account(account, now)
            outcome = factors.confirm(
                acct.data, held.data if held else factors.Factors(), now, limits, ref, step
            )
            if held is not None:
                self._settle(account, held, now, limits)
            self._checked(account, now, limits, outcome, acct, None)
            self._reclaim(now, _RECLAIM_PER_WRITE)
            return outcome

    def totp_verify(
        self, account: str, now: int, limits: Limits, ref: str, step: int, device: str | None
    ) -> tuple[int, int]:
        """See :class:`ameli_otp._store.Store`."""
        with self._lock:
            held = self._factors.get(account)
            acct = self._account(account, now)
            f = held.data if held else factors.Factors()
            outcome = factors.verify_totp(acct.data, f, now, limits, ref, step, device)
            self._checked(account, now, limits, outcome, acct, device)
            self._reclaim(now, _RECLAIM_PER_WRITE)
            return outcome

    def totp_remove(self, account: str, now: int, limits: Limits) -> bool:
        """See :class:`ameli_otp._store.Store`."""
        with self._lock:
            rec = self._factors.get(account)
            if rec is None:
                return False
            removed = factors.remove(rec.data, now, limits)
            if not rec.data:
                del self._factors[account]
            return removed

    def recovery_replace(self, account: str, hashes: tuple[bytes, ...]) -> None:
        """See :class:`ameli_otp._store.Store`."""
        with self._lock:
            rec = self._held(account, self._now)
            factors.replace_recovery(rec.data, hashes)
            self._keep(self._factors, account, rec, _FOREVER)

    def recovery_use(
        self,
        account: str,
        now: int,
        limits: Limits,
        candidates: tuple[bytes, ...],
        device: str | None,
    ) -> tuple[int, int]:
        """See :class:`ameli_otp._store.Store`."""
        with self._lock:
            held = self._factors.get(account)
            acct = self._account(account, now)
            f = held.data if held else factors.Factors()
            outcome = factors.use_recovery(acct.data, f, now, limits, candidates, device)
            if held is not None and not f:
                del self._factors[account]
            self._checked(account, now, limits, outcome, acct, device)
            self._reclaim(now, _RECLAIM_PER_WRITE)
            return outcome

    def dump(self) -> str:
        """A text dump of everything held, as an operator (or an attacker) would see it.

        For privacy audits: it must show no account id, code or fingerprint (RULES R4.2).
        It holds the lock for the whole dump: a diagnostic, not for a busy store.
        """
        with self._lock:
            lines = []
            for key, rec in self._windows.items():
                lines.append(f"window {key} until={rec.until} entries={rec.data!r}")
            for key, rec in self._accounts.items():
                a: rules.Account = rec.data
                code = a.code
                shown = None if code is None else (code.hash.hex(), code.issued, code.failures)
                lines.append(
                    f"account {key} until={rec.until} window={a.window!r} code={shown}"
                    f" failures={a.failures} last_failure={a.last_failure} "
                    f"lock_until={a.lock_until} devices={a.devices!r}"
                )
            return "\n".join(lines)


class AsyncMemoryBackend:
    """The memory store for the async face (``AsyncSecurityCodes``).

    Each primitive runs to its end under the store's short lock without yielding to
    the event loop, so a task cancelled around it sees it either whole or not at all.
    ``sync`` is the underlying :class:`MemoryBackend` (for ``len``, ``reclaim``, ``dump``).
    Like it, it is one process: used in a child after ``fork``, every coroutine raises
    :class:`~ameli_otp.ConfigurationError` (see :class:`MemoryBackend`). ``sync.reclaim()``
    lets other threads in between its slices, not other tasks: from the event loop, run
    it in a thread (``await asyncio.to_thread(store.sync.reclaim)``).
    """

    __slots__ = ("sync",)

    def __init__(self, *, max_records: int | None = None) -> None:
        self.sync = MemoryBackend(max_records=max_records)

    def __len__(self) -> int:
        return len(self.sync)

    async def window_hit(
        self, key: str, now: int, window: int, limit: int
    ) -> tuple[bool, int, str | None]:
        """See :class:`ameli_otp._store.AsyncStore`."""
        return self.sync.window_hit(key, now, window, limit)

    async def window_peek(self, key: str, now: int, window: int) -> tuple[int, int]:
        """See :class:`ameli_otp._store.AsyncStore`."""
        return self.sync.window_peek(key, now, window)

    async def window_release(self, key: str, entry: str) -> None:
        """See :class:`ameli_otp._store.AsyncStore`."""
        self.sync.window_release(key, entry)

    async def window_reset(self, key: str) -> None:
        """See :class:`ameli_otp._store.AsyncStore`."""
        self.sync.window_reset(key)

    async def issue_code(
        self, account: str, now: int, limits: Limits, code_hash: bytes
    ) -> tuple[int, int]:
        """See :class:`ameli_otp._store.AsyncStore`."""
        return self.sync.issue_code(account, now, limits, code_hash)

    async def verify_code(
        self,
        account: str,
        now: int,
        limits: Limits,
        candidates: tuple[bytes, ...],
        device: str | None,
    ) -> tuple[int, int]:
        """See :class:`ameli_otp._store.AsyncStore`."""
        return self.sync.verify_code(account, now, limits, candidates, device)

    async def device_trusted(self, account: str, now: int, trust_ttl: int, device: str) -> bool:
        """See :class:`ameli_otp._store.AsyncStore`."""
        return self.sync.device_trusted(account, now, trust_ttl, device)

    async def forget_device(self, account: str, now: int, trust_ttl: int, device: str) -> bool:
        """See :class:`ameli_otp._store.AsyncStore`."""
        return self.sync.forget_device(account, now, trust_ttl, device)

    async def forget_all_devices(self, account: str, now: int, trust_ttl: int) -> int:
        """See :class:`ameli_otp._store.AsyncStore`."""
        return self.sync.forget_all_devices(account, now, trust_ttl)

    async def unlock(self, account: str, now: int, lockout: int) -> bool:
        """See :class:`ameli_otp._store.AsyncStore`."""
        return self.sync.unlock(account, now, lockout)

    async def inspect(self, account: str) -> Raw:
        """See :class:`ameli_otp._store.AsyncStore`."""
        return self.sync.inspect(account)

    async def totp_read(self, account: str) -> tuple[str | None, str | None]:
        """See :class:`ameli_otp._store.AsyncStore`."""
        return self.sync.totp_read(account)

    async def totp_enroll(self, account: str, now: int, limits: Limits, ref: str) -> None:
        """See :class:`ameli_otp._store.AsyncStore`."""
        self.sync.totp_enroll(account, now, limits, ref)

    async def totp_confirm(
        self, account: str, now: int, limits: Limits, ref: str, step: int
    ) -> tuple[int, int]:
        """See :class:`ameli_otp._store.AsyncStore`."""
        return self.sync.totp_confirm(account, now, limits, ref, step)

    async def totp_verify(
        self, account: str, now: int, limits: Limits, ref: str, step: int, device: str | None
    ) -> tuple[int, int]:
        """See :class:`ameli_otp._store.AsyncStore`."""
        return self.sync.totp_verify(account, now, limits, ref, step, device)

    async def totp_remove(self, account: str, now: int, limits: Limits) -> bool:
        """See :class:`ameli_otp._store.AsyncStore`."""
        return self.sync.totp_remove(account, now, limits)

    async def recovery_replace(self, account: str, hashes: tuple[bytes, ...]) -> None:
        """See :class:`ameli_otp._store.AsyncStore`."""
        self.sync.recovery_replace(account, hashes)

    async def recovery_use(
        self,
        account: str,
        now: int,
        limits: Limits,
        candidates: tuple[bytes, ...],
        device: str | None,
    ) -> tuple[int, int]:
        """See :class:`ameli_otp._store.AsyncStore`."""
        return self.sync.recovery_use(account, now, limits, candidates, device)
