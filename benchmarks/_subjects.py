"""What is measured: limiters (ours, limits', the floors) and the ``SecurityCodes`` calls.

Every workload is a ring of keys (or accounts) walked round-robin in chunks; a
pass is one walk over the whole ring. A limiter subject is its timed ``hit`` plus a
synchronous twin for the untimed work (``reset`` a key, ``fill`` it so that hits are
refused), which talks to the very same data (for an async subject on Redis, a sync
client on the same server and keys; for ours on the async memory store, its ``sync``
store).

The limiter workload is the same for every subject: limit 5 per hour, the same key
names, the real clock (``time.time()``, as ``limits`` reads it); on the allowed path
each key takes 5 hits (passes 0 to 4) and is reset, untimed, before pass 5; on the
refused path each key is filled (untimed) the first time it is met.
"""

from __future__ import annotations

import base64
import itertools
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from ameli_otp import Reason, SecurityCodes

from ._measure import Chunk

__all__ = [
    "FINGERPRINT",
    "LIMIT",
    "OTHER_FINGERPRINT",
    "WINDOW",
    "CodesDriver",
    "LimiterSubject",
    "allowed_chunks",
    "deque_floor",
    "forged_tokens",
    "keys",
    "refused_chunks",
    "ring",
    "same_chunks",
]

LIMIT = 5
WINDOW = timedelta(hours=1)
FINGERPRINT = "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0 fp:7f3a9c"
OTHER_FINGERPRINT = "Mozilla/5.0 (Macintosh) Safari/17.4 fp:a01b44"


def keys(tag: str, n: int) -> list[str]:
    """``n`` key names of one ring, all of one length."""
    return [f"{tag}-{i:07d}" for i in range(n)]


def ring(
    names: Sequence[str],
    size: int,
    make: Callable[[list[str], int], Chunk],
    start_pass: int = 0,
) -> Iterator[Chunk]:
    """Walk ``names`` round-robin in chunks of ``size``; ``make(chunk, pass number)``.

    A chunk never crosses the end of a pass, so it never holds a name twice.
    """
    n, pos, passno = len(names), 0, start_pass
    size = max(1, min(size, n))
    while True:
        end = min(pos + size, n)
        yield make(list(names[pos:end]), passno)
        pos = end
        if pos >= n:
            pos, passno = 0, passno + 1


def cycle(items: Sequence[Any], size: int, make: Callable[[list[Any]], Chunk]) -> Iterator[Chunk]:
    """Walk ``items`` round-robin in chunks of exactly ``size`` (wrapping around, so a
    one-item ring gives chunks of that one item): for work that has no passes."""
    n, pos = len(items), 0
    while True:
        chunk = [items[(pos + i) % n] for i in range(size)]
        pos = (pos + size) % n
        yield make(chunk)


def partition(names: Sequence[str], workers: int) -> list[list[str]]:
    """Split a ring among ``workers`` (each owns its keys: no two workers share one)."""
    return [list(names[w::workers]) for w in range(workers)]


# -- limiters ---------------------------------------------------------------------------------
@dataclass
class LimiterSubject:
    """One limiter as the benchmark drives it.

    ``hit(key)`` is the timed call (sync or async); ``allowed(result)`` reads its
    result; ``reset(key)`` and ``fill(key)`` are synchronous and untimed. ``filled``
    is shared by the subjects that see the same data (the sync and async faces of one
    store), so that a key is filled once.
    """

    name: str
    hit: Callable[[str], Any]
    allowed: Callable[[Any], bool]
    reset: Callable[[str], object]
    fill: Callable[[str], object]
    filled: set[str]


def _is_true(r: Any) -> bool:
    return r is True


def _is_false(r: Any) -> bool:
    return r is False


def allowed_chunks(
    subject: LimiterSubject, names: Sequence[str], size: int, start_pass: int = 0
) -> Iterator[Chunk]:
    """Hits that stay allowed: each key takes passes 0-4, then is reset (untimed).

    With one key (the hot account) a chunk is its 5 hits, after a reset.
    """
    check = subject.allowed

    def expect(r: Any) -> bool:
        return check(r)

    if len(names) == 1:
        key = names[0]

        def reset_one() -> list[str]:
            subject.reset(key)
            return [key] * LIMIT

        return iter(lambda: Chunk(subject.hit, prepare=reset_one, expect=expect), None)

    def make(chunk: list[str], passno: int) -> Chunk:
        if passno and passno % LIMIT == 0:

            def prepare(chunk: list[str] = chunk) -> list[str]:
                for k in chunk:
                    subject.reset(k)
                return chunk

            return Chunk(subject.hit, prepare=prepare, expect=expect)
        return Chunk(subject.hit, chunk, expect=expect)

    return ring(names, size, make, start_pass)


def refused_chunks(subject: LimiterSubject, names: Sequence[str], size: int) -> Iterator[Chunk]:
    """Hits that are refused: each key is filled (untimed) the first time it is met."""
    check, filled = subject.allowed, subject.filled

    def expect(r: Any) -> bool:
        return not check(r)

    def make(chunk: list[str]) -> Chunk:
        todo = [k for k in set(chunk) if k not in filled]
        if todo:

            def prepare(chunk: list[str] = chunk, todo: list[str] = todo) -> list[str]:
                for k in todo:
                    subject.fill(k)
                    filled.add(k)
                return chunk

            return Chunk(subject.hit, prepare=prepare, expect=expect)
        return Chunk(subject.hit, chunk, expect=expect)

    return cycle(names, size, make)


def same_chunks(fn: Callable[[Any], Any], items: Sequence[Any], size: int) -> Iterator[Chunk]:
    """A floor: ``fn(item)`` over a ring of items, nothing to prepare."""
    return cycle(items, size, lambda chunk: Chunk(fn, chunk))


def deque_floor() -> tuple[Callable[[str], bool], Callable[[str], object], dict[str, deque[float]]]:
    """The most pure Python can do: a locked dict of deques, one sliding log per key.

    Returns ``(hit, reset, logs)``; ``hit(key)`` is True when allowed (limit 5 per hour,
    ``time.time()``, thread-safe by one lock), like the limiters it is compared with.
    """
    lock = threading.Lock()
    logs: dict[str, deque[float]] = {}
    clock = time.time
    limit, window = LIMIT, WINDOW.total_seconds()

    def hit(key: str) -> bool:
        now = clock()
        with lock:
            log = logs.get(key)
            if log is None:
                logs[key] = deque((now,))
                return True
            cut = now - window
            while log and log[0] <= cut:
                log.popleft()
            if len(log) >= limit:
                return False
            log.append(now)
            return True

    def reset(key: str) -> None:
        with lock:
            logs.pop(key, None)

    return hit, reset, logs


def ours_fill(hit: Callable[[str], Any]) -> Callable[[str], None]:
    """Fill a key of one of our sync limiters: hit until refused."""

    def fill(key: str) -> None:
        for _ in range(LIMIT + 1):
            if not hit(key).allowed:
                return
        raise RuntimeError(f"key {key!r} still allowed after {LIMIT + 1} hits")

    return fill


def limits_fill(limiter: Any, item: Any) -> Callable[[str], None]:
    """Fill a key of a ``limits`` limiter: one hit of cost ``limit``, then check."""

    def fill(key: str) -> None:
        limiter.hit(item, key, cost=LIMIT)
        if limiter.test(item, key):
            raise RuntimeError(f"limits key {key!r} still allowed after a hit of cost {LIMIT}")

    return fill


# -- SecurityCodes ------------------------------------------------------------------------------
def forged_tokens(n: int = 16) -> list[str]:
    """Well-formed device tokens (version 1, right length) that no secret signed."""
    out = []
    for _ in range(n):
        raw = b"\x01" + int(time.time() * 1000).to_bytes(8, "big") + os.urandom(40)
        out.append(base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii"))
    return out


def wrong_code(code: str) -> str:
    return f"{(int(code) + 1) % 10 ** len(code):0{len(code)}d}"


def _ok(r: Any) -> bool:
    return r.ok is True


def _wrong_code(r: Any) -> bool:
    return r.ok is False and r.reason is Reason.WRONG_CODE


class CodesDriver:
    """The workloads of the ``SecurityCodes`` calls over one face of one store.

    ``face`` is the measured object (``SecurityCodes`` or ``AsyncSecurityCodes``);
    ``prep`` a sync ``SecurityCodes`` over the same data and secret, for the untimed
    work (requesting the code a verification checks, trusting a device); ``mint`` a
    ``SecurityCodes`` over a throwaway memory store with the same secret, which signs
    tokens that are valid for any store (enough for the paths that never reach it).
    ``tokens`` (account -> token trusted in this store) is shared by the faces of one
    store, ``minted`` (account -> token signed by ``mint``) by every driver of one secret.
    """

    def __init__(
        self,
        face: Any,
        prep: SecurityCodes,
        mint: SecurityCodes,
        tokens: dict[str, str],
        minted: dict[str, str] | None = None,
    ) -> None:
        self.face = face
        self.prep = prep
        self.mint = mint
        self.tokens = tokens
        self.minted: dict[str, str] = {} if minted is None else minted
        self.forged = forged_tokens()

    def _code(self, account: str) -> str:
        r = self.prep.request_code(account)
        if not r.ok:
            raise RuntimeError(f"could not prepare a code for {account!r}: {r!r}")
        return r.code

    def _token(self, codes: SecurityCodes, account: str) -> str:
        r = codes.request_code(account)
        if not r.ok:
            raise RuntimeError(f"could not prepare a code for {account!r}: {r!r}")
        v = codes.verify_code(account, r.code, remember_device=True, fingerprint=FINGERPRINT)
        if not v.ok or v.device_token is None:
            raise RuntimeError(f"could not trust a device of {account!r}: {v!r}")
        return v.device_token

    def request(
        self, tag: str, ids: Sequence[str], size: int, start_pass: int = 0
    ) -> Iterator[Chunk]:
        """``request_code``: each account takes 5 codes (passes 0-4), then the ring moves on
        to fresh account names (there is no call that forgets an account's window).

        ``ids`` are suffixes (``keys("", n)``); pass ``g`` asks for ``{tag}{g // 5}{id}``.
        """
        fn = self.face.request_code
        if len(ids) == 1:  # the hot account: a chunk is the 5 codes of one generation
            return (
                Chunk(fn, [f"{tag}{gen}{ids[0]}"] * LIMIT, expect=_ok) for gen in itertools.count()
            )

        def make(chunk: list[str], passno: int) -> Chunk:
            gen = passno // LIMIT
            return Chunk(fn, [f"{tag}{gen}{i}" for i in chunk], expect=_ok)

        return ring(ids, size, make, start_pass)

    def verify_right(self, names: Sequence[str], size: int) -> Iterator[Chunk]:
        """``verify_code`` with the right code (requested untimed just before)."""
        fn = self.face.verify_code

        def make(chunk: list[str], _: int) -> Chunk:
            def prepare(chunk: list[str] = chunk) -> list[tuple[str, str]]:
                return [(a, self._code(a)) for a in chunk]

            return Chunk(fn, prepare=prepare, star=True, expect=_ok)

        return ring(names, size, make)

    def verify_wrong(self, names: Sequence[str], size: int) -> Iterator[Chunk]:
        """``verify_code`` with a wrong code, twice per code (the third would burn it);
        then, untimed, the right code, which clears the failure count."""
        fn, prep = self.face.verify_code, self.prep

        def make(chunk: list[str], _: int) -> Chunk:
            codes: list[str] = []

            def prepare(chunk: list[str] = chunk) -> list[tuple[str, str]]:
                codes[:] = [self._code(a) for a in chunk]
                guesses = [(a, wrong_code(c)) for a, c in zip(chunk, codes, strict=True)]
                return guesses + guesses

            def after(chunk: list[str] = chunk) -> None:
                for a, c in zip(chunk, codes, strict=True):
                    if not prep.verify_code(a, c).ok:
                        raise RuntimeError(f"the right code of {a!r} was refused")

            return Chunk(fn, prepare=prepare, after=after, star=True, expect=_wrong_code)

        return ring(names, size, make)

    def trusted(self, names: Sequence[str], size: int, how: str) -> Iterator[Chunk]:
        """``is_trusted_device``: ``how`` is ``trusted`` (its own token and browser),
        ``other_browser`` (a genuine token shown by another browser) or ``forged``."""
        fn, forged = self.face.is_trusted_device, self.forged
        expected = how == "trusted"

        def expect(r: Any) -> bool:
            return r is expected

        if how == "trusted":
            table, source, fp = self.tokens, self.prep, FINGERPRINT
        else:  # signed for the account, never stored: this path does not reach the store
            table, source, fp = self.minted, self.mint, OTHER_FINGERPRINT

        def make(chunk: list[str]) -> Chunk:
            if how == "forged":
                items = [(a, forged[i % len(forged)], FINGERPRINT) for i, a in enumerate(chunk)]
                return Chunk(fn, items, star=True, expect=expect)
            missing = [a for a in chunk if a not in table]
            if not missing:
                return Chunk(fn, [(a, table[a], fp) for a in chunk], star=True, expect=expect)

            def prepare(chunk: list[str] = chunk, missing: list[str] = missing) -> list[Any]:
                for a in missing:
                    if a not in table:
                        table[a] = self._token(source, a)
                return [(a, table[a], fp) for a in chunk]

            return Chunk(fn, prepare=prepare, star=True, expect=expect)

        return cycle(names, size, make)
