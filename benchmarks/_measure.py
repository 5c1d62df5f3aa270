"""How one case is timed: chunks of operations, untimed preparation, per-op latencies.

A case is an endless iterator of :class:`Chunk`: a few operations to time, with an
optional untimed ``prepare`` (request the code a ``verify_code`` will check, fill a
key so that hits are refused, reset keys every fifth pass...) and an untimed
``after``. Measuring a case is, for each repeat:

1. a throughput phase: each chunk's plain loop is timed as a whole (no per-op timer
   in the loop), until ``seconds`` of timed work; ops/s = ops / timed seconds;
2. a latency phase: every op timed on its own (``perf_counter_ns``), half as long;
   each result is also checked against the case's expectation (allowed, refused,
   verified...), so that a workload that drifted (a key that filled up, a code that
   expired) shows up as ``unexpected`` in the results instead of as a fast number.

The concurrent runs (threads, asyncio tasks) time every op and count ops over the
wall-clock time of the whole run.
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Budget",
    "CaseResult",
    "Chunk",
    "measure_async",
    "measure_sync",
    "measure_tasks",
    "measure_threads",
    "throughput_sync",
]


@dataclass(slots=True)
class Chunk:
    """A few operations of one case.

    ``fn`` is called once per item (``fn(*item)`` when ``star``); ``prepare`` (untimed)
    returns the items when they depend on state (a fresh code to verify); ``after``
    (untimed) runs once the chunk is done; ``expect`` tells whether one result is the
    one the workload is meant to produce.
    """

    fn: Callable[..., Any]
    items: Sequence[Any] = ()
    prepare: Callable[[], Sequence[Any]] | None = None
    after: Callable[[], object] | None = None
    star: bool = False
    expect: Callable[[Any], bool] | None = None


@dataclass(frozen=True, slots=True)
class Budget:
    """How long one phase lasts: timed seconds, and optionally at most ``max_ops``."""

    seconds: float
    max_ops: int | None = None
    repeats: int = 1

    def done(self, timed: float, ops: int) -> bool:
        """True when the phase has timed enough."""
        return timed >= self.seconds or (self.max_ops is not None and ops >= self.max_ops)


@dataclass
class CaseResult:
    """What one case measured, over its repeats."""

    store: str  # memory | redis | cluster
    face: str  # sync | async
    workload: str  # hot | 10k | 1m
    concurrency: str  # single | threads16 | tasks50
    subject: str  # ours | limits_moving | limits_counter | floor_deque | raw_evalsha | raw_ping
    op: str  # hit_allowed | hit_refused | request_code | verify_right | ...
    rates: list[float] = field(default_factory=list)  # ops/s of each repeat
    lat_ns: array = field(default_factory=lambda: array("q"))
    ops: int = 0
    unexpected: int = 0
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """A stable id: ``store/face/workload/concurrency/subject/op``."""
        return "/".join(
            (self.store, self.face, self.workload, self.concurrency, self.subject, self.op)
        )

    @property
    def ops_per_s(self) -> float | None:
        """The median throughput of the repeats (None if nothing was measured)."""
        return statistics.median(self.rates) if self.rates else None

    def percentile_us(self, q: float) -> float | None:
        """The ``q`` quantile (0..1) of the per-op latencies, in microseconds."""
        if not self.lat_ns:
            return None
        data = sorted(self.lat_ns)
        i = min(len(data) - 1, max(0, round(q * (len(data) - 1))))
        return data[i] / 1000

    def to_json(self) -> dict[str, Any]:
        """The JSON record of this case."""
        rate = self.ops_per_s
        return {
            "id": self.key,
            "store": self.store,
            "face": self.face,
            "workload": self.workload,
            "concurrency": self.concurrency,
            "subject": self.subject,
            "op": self.op,
            "ops_per_s": None if rate is None else round(rate, 1),
            "p50_us": _round(self.percentile_us(0.5)),
            "p99_us": _round(self.percentile_us(0.99)),
            "repeats_ops_per_s": [round(r, 1) for r in self.rates],
            "ops": self.ops,
            "latency_samples": len(self.lat_ns),
            "unexpected": self.unexpected,
            "error": self.error,
            **self.extra,
        }


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


def _wall_guard(seconds: float) -> float:
    # untimed preparation may cost more than the timed ops (a Redis key filled with five
    # hits before each refused one): bound the wall-clock time of a phase all the same
    return max(6 * seconds, seconds + 3.0)


# -- one thread -------------------------------------------------------------------------------
def _sync_phase(chunks: Iterator[Chunk], budget: Budget, res: CaseResult, latency: bool) -> float:
    pc, pcn = time.perf_counter, time.perf_counter_ns
    lat = res.lat_ns
    timed, ops = 0.0, 0
    wall_end = pc() + _wall_guard(budget.seconds)
    seconds = budget.seconds / 2 if latency else budget.seconds
    phase = Budget(seconds, None if budget.max_ops is None else max(1, budget.max_ops // 2))
    while not phase.done(timed, ops) and (ops == 0 or pc() < wall_end):
        c = next(chunks)
        items = c.prepare() if c.prepare is not None else c.items
        fn = c.fn
        if not latency:
            if c.star:
                t0 = pc()
                for x in items:
                    fn(*x)
                timed += pc() - t0
            else:
                t0 = pc()
                for x in items:
                    fn(x)
                timed += pc() - t0
        else:
            expect, star, bad, spent = c.expect, c.star, 0, 0
            for x in items:
                t0 = pcn()
                r = fn(*x) if star else fn(x)
                t1 = pcn()
                lat.append(t1 - t0)
                spent += t1 - t0
                if expect is not None and not expect(r):
                    bad += 1
            res.unexpected += bad
            timed += spent / 1e9
        if c.after is not None:
            c.after()
        ops += len(items)
    res.ops += ops
    return ops / timed if timed > 0 else 0.0


def throughput_sync(chunks: Iterator[Chunk], seconds: float) -> float:
    """Ops/s of one short throughput phase, recorded nowhere (for paired slices)."""
    scratch = CaseResult("", "", "", "", "", "")
    return _sync_phase(chunks, Budget(seconds), scratch, latency=False)


def measure_sync(chunks: Iterator[Chunk], budget: Budget, res: CaseResult) -> CaseResult:
    """Time a synchronous case on this thread (see the module docstring)."""
    try:
        for _ in range(budget.repeats):
            res.rates.append(_sync_phase(chunks, budget, res, latency=False))
            _sync_phase(chunks, budget, res, latency=True)
    except Exception as exc:  # a failing case is reported, the run goes on
        res.error = f"{type(exc).__name__}: {exc}"
    return res


# -- one asyncio task ---------------------------------------------------------------------------
async def _async_phase(
    chunks: Iterator[Chunk], budget: Budget, res: CaseResult, latency: bool
) -> float:
    pc, pcn = time.perf_counter, time.perf_counter_ns
    lat = res.lat_ns
    timed, ops = 0.0, 0
    wall_end = pc() + _wall_guard(budget.seconds)
    seconds = budget.seconds / 2 if latency else budget.seconds
    phase = Budget(seconds, None if budget.max_ops is None else max(1, budget.max_ops // 2))
    while not phase.done(timed, ops) and (ops == 0 or pc() < wall_end):
        c = next(chunks)
        items = c.prepare() if c.prepare is not None else c.items
        if asyncio.iscoroutine(items):
            items = await items
        fn = c.fn
        if not latency:
            if c.star:
                t0 = pc()
                for x in items:
                    await fn(*x)
                timed += pc() - t0
            else:
                t0 = pc()
                for x in items:
                    await fn(x)
                timed += pc() - t0
        else:
            expect, star, bad, spent = c.expect, c.star, 0, 0
            for x in items:
                t0 = pcn()
                r = await (fn(*x) if star else fn(x))
                t1 = pcn()
                lat.append(t1 - t0)
                spent += t1 - t0
                if expect is not None and not expect(r):
                    bad += 1
            res.unexpected += bad
            timed += spent / 1e9
        if c.after is not None:
            done = c.after()
            if asyncio.iscoroutine(done):
                await done
        ops += len(items)
    res.ops += ops
    return ops / timed if timed > 0 else 0.0


async def measure_async(chunks: Iterator[Chunk], budget: Budget, res: CaseResult) -> CaseResult:
    """Time an asyncio case in one task of the running loop."""
    try:
        for _ in range(budget.repeats):
            res.rates.append(await _async_phase(chunks, budget, res, latency=False))
            await _async_phase(chunks, budget, res, latency=True)
    except Exception as exc:  # a failing case is reported, the run goes on
        res.error = f"{type(exc).__name__}: {exc}"
    return res


# -- many threads, many tasks -------------------------------------------------------------------
def measure_threads(workers: list[Iterator[Chunk]], budget: Budget, res: CaseResult) -> CaseResult:
    """Run one chunk iterator per thread at once; ops/s over the wall-clock time."""
    for _ in range(budget.repeats):
        _threads_once(workers, budget, res)
        if res.error:
            break
    return res


def _threads_once(workers: list[Iterator[Chunk]], budget: Budget, res: CaseResult) -> None:
    # each worker watches the clock itself: a main thread starved of the GIL by busy
    # workers would ring the bell late
    began = [0.0]
    start = threading.Barrier(
        len(workers) + 1, action=lambda: began.__setitem__(0, time.perf_counter())
    )
    counts = [0] * len(workers)
    finished = [0.0] * len(workers)
    lats = [array("q") for _ in workers]
    bads = [0] * len(workers)
    errors: list[str] = []

    def work(i: int) -> None:
        chunks, lat, pc, pcn, n, bad = (
            workers[i],
            lats[i],
            time.perf_counter,
            time.perf_counter_ns,
            0,
            0,
        )
        try:
            start.wait()
            end = began[0] + budget.seconds
            while pc() < end and (budget.max_ops is None or n < budget.max_ops):
                c = next(chunks)
                items = c.prepare() if c.prepare is not None else c.items
                fn, star, expect = c.fn, c.star, c.expect
                for x in items:
                    t0 = pcn()
                    r = fn(*x) if star else fn(x)
                    lat.append(pcn() - t0)
                    if expect is not None and not expect(r):
                        bad += 1
                if c.after is not None:
                    c.after()
                n += len(items)
        except Exception as exc:  # reported with the case
            errors.append(f"{type(exc).__name__}: {exc}")
        counts[i], bads[i], finished[i] = n, bad, time.perf_counter()

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(len(workers))]
    for t in threads:
        t.start()
    start.wait()
    for t in threads:
        t.join()
    _collect(res, counts, bads, lats, max(finished) - began[0])
    if errors:
        res.error = errors[0]


def _collect(
    res: CaseResult, counts: list[int], bads: list[int], lats: list[array], elapsed: float
) -> None:
    total = sum(counts)
    res.rates.append(total / elapsed if elapsed > 0 else 0.0)
    res.ops += total
    res.unexpected += sum(bads)
    for lat in lats:
        res.lat_ns.extend(lat)


async def measure_tasks(
    workers: list[Iterator[Chunk]], budget: Budget, res: CaseResult
) -> CaseResult:
    """Run one chunk iterator per asyncio task at once; ops/s over the wall-clock time.

    A task only lets the others run when it awaits real I/O: on the memory store its
    coroutines never suspend, so the first task does the work of all (as it would in a
    real service: the store adds no concurrency of its own).
    """
    for _ in range(budget.repeats):
        await _tasks_once(workers, budget, res)
        if res.error:
            break
    return res


async def _tasks_once(workers: list[Iterator[Chunk]], budget: Budget, res: CaseResult) -> None:
    pc, pcn = time.perf_counter, time.perf_counter_ns
    counts = [0] * len(workers)
    bads = [0] * len(workers)
    lats = [array("q") for _ in workers]
    end = pc() + budget.seconds

    async def work(i: int) -> None:
        chunks, lat, n, bad = workers[i], lats[i], 0, 0
        while pc() < end and (budget.max_ops is None or n < budget.max_ops):
            c = next(chunks)
            items = c.prepare() if c.prepare is not None else c.items
            fn, star, expect = c.fn, c.star, c.expect
            for x in items:
                t0 = pcn()
                r = await (fn(*x) if star else fn(x))
                lat.append(pcn() - t0)
                if expect is not None and not expect(r):
                    bad += 1
            n += len(items)
        counts[i], bads[i] = n, bad

    t0 = pc()
    outcome = await asyncio.gather(*(work(i) for i in range(len(workers))), return_exceptions=True)
    _collect(res, counts, bads, lats, pc() - t0)
    failed = [o for o in outcome if isinstance(o, BaseException)]
    if failed:
        res.error = f"{type(failed[0]).__name__}: {failed[0]}"
