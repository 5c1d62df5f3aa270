"""``python -m benchmarks``: every case in one run, then latest.json, latest.md, latest.png.

Order of a run: the memory store (hot account, 10,000 accounts, 1,000,000 accounts,
threads, asyncio tasks, bytes per account), then a standalone server (the same, plus
``redis-benchmark``), then a 3-node cluster. Within one group the cases are measured in
turns (all cases once, then all again...) so that a slow moment of this shared
machine hits every case of a ratio alike; each case reports the median of its turns.
Targets that are missed get profiled while their store is still up.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import gc
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ameli_otp import (
    AsyncMemoryBackend,
    AsyncSecurityCodes,
    AsyncSlidingWindowLimiter,
    MemoryBackend,
    SecurityCodes,
    SlidingWindowLimiter,
)

from . import _env, _report
from ._footprint import memory_store_bytes, redis_bytes
from ._ladder import ladder_factories
from ._measure import (
    Budget,
    CaseResult,
    Chunk,
    measure_async,
    measure_sync,
    measure_tasks,
    measure_threads,
    throughput_sync,
)
from ._profile import profile_chunks, pyspy
from ._subjects import (
    LIMIT,
    WINDOW,
    CodesDriver,
    LimiterSubject,
    allowed_chunks,
    deque_floor,
    keys,
    limits_fill,
    ours_fill,
    partition,
    refused_chunks,
    same_chunks,
)

__all__ = ["MODES", "Mode", "main"]

STORES = ("memory", "redis", "cluster")
PAIR_SLICE_S = 0.04  # timed seconds of one side of a paired round
TEN_K = 10_000


@dataclass(frozen=True)
class Mode:
    """How long each kind of case runs."""

    name: str
    single: Budget  # one thread / one task, 10,000 accounts
    hot: Budget | None  # one account; None: not measured
    big: Budget | None  # 1,000,000 accounts; None: not measured
    conc: Budget  # 16 threads, 50 tasks
    footprint_memory: int  # accounts built for tracemalloc
    footprint_redis: int  # accounts built for MEMORY USAGE
    bench_requests: int  # redis-benchmark -n
    profile_ops_memory: int  # 0: no profiling
    profile_ops_redis: int
    pyspy_seconds: float  # 0: no py-spy
    big_n: int = 1_000_000
    threads: int = 16
    tasks: int = 50
    pairs: int = 0  # rounds of tightly paired slices for the primary targets (0: none)


MODES = {
    # a few dozen ops per case: checks that every case runs and the outputs are complete
    "smoke": Mode(
        "smoke", Budget(0.05, 40, 1), None, None, Budget(0.05, 4, 1),
        50, 20, 2000, 0, 0, 0, pairs=2,
    ),
    # CI: 10,000 accounts only, one turn per case; under a minute
    "quick": Mode(
        "quick", Budget(0.08, None, 1), None, None, Budget(0.15, None, 1),
        500, 200, 10_000, 5000, 300, 0, pairs=3,
    ),
    # the numbers of record: five turns per case, and the primary targets' ratios from 40
    # tightly paired rounds (see Runner.paired); about eight minutes on 2 cores, under ten
    "full": Mode(
        "full", Budget(0.15, None, 5), Budget(0.1, None, 3), Budget(0.15, None, 5),
        Budget(0.5, None, 2), 2000, 1000, 100_000, 30_000, 1500, 2.0, pairs=40,
    ),
}  # fmt: skip


@dataclass
class Case:
    """One measured case: its result and how to measure one more turn.

    ``settle`` (untimed) runs after each turn: it waits for what the subject left
    running in the background (limits' memory storage expiry timer), so that it does
    not steal time from the next case.
    """

    res: CaseResult
    step: Callable[[Budget], Any]
    settle: Callable[[], object] | None = None
    rate: Callable[[float], float] | None = None  # ops/s of one short slice (sync cases)


Factory = Callable[[str], Iterator[Chunk]]  # tag -> fresh chunks (tag keeps keys apart)


@dataclass
class Kit:
    """Everything measured on one store, by face (``sync`` / ``async``)."""

    store: str
    runner: asyncio.Runner
    chunk: int
    limiters: dict[str, dict[str, LimiterSubject]] = field(default_factory=dict)
    floors: dict[str, dict[str, Callable[[str], Any]]] = field(default_factory=dict)
    drivers: dict[str, CodesDriver] = field(default_factory=dict)
    server_clients: list[Any] = field(default_factory=list)
    settle: dict[str, Callable[[], object]] = field(default_factory=dict)  # by subject
    closers: list[Callable[[], object]] = field(default_factory=list)  # sync clients
    aclosers: list[Callable[[], Any]] = field(default_factory=list)  # asyncio clients

    def close(self) -> None:
        """Close every client (asyncio ones first, in the kit's loop)."""

        async def aclose() -> None:
            for close in self.aclosers:
                with contextlib.suppress(Exception):
                    await close()

        self.runner.run(aclose())
        for close in self.closers:
            with contextlib.suppress(Exception):
                close()


class Run:
    """One run of the benchmarks."""

    def __init__(self, mode: Mode, stores: list[str], out: Path, argv: list[str]) -> None:
        self.mode = mode
        self.stores = stores
        self.out = out
        self.argv = argv
        self.results: list[CaseResult] = []
        self.recipes: dict[str, tuple[Kit, str, Factory]] = {}
        self.footprint: dict[str, Any] = {}
        self.bench: dict[str, Any] = {}
        self.profiles: dict[str, Any] = {}
        self.notes: list[str] = []
        self.prefill: dict[str, float] = {}
        self.servers: dict[str, str] = {}
        self.secret = os.urandom(32)
        self.mint = SecurityCodes(MemoryBackend(), secret=self.secret)
        self.minted: dict[str, str] = {}  # account -> a genuine token, valid for every store
        self.t0 = time.perf_counter()
        self.machine = _env.machine()

    def log(self, msg: str) -> None:
        """Progress on stderr."""
        print(f"[{time.perf_counter() - self.t0:6.1f}s] {msg}", file=sys.stderr, flush=True)

    # -- cases ------------------------------------------------------------------------------
    def case(
        self, kit: Kit, face: str, wl: str, conc: str, subject: str, op: str, factory: Factory
    ) -> Case:
        """A single-thread (or single-task) case."""
        res = CaseResult(kit.store, face, wl, conc, subject, op)
        chunks = factory("")
        self.recipes[res.key] = (kit, face, factory)
        settle = kit.settle.get(subject)
        if face == "sync":
            return Case(
                res,
                lambda b: measure_sync(chunks, b, res),
                settle,
                lambda seconds: throughput_sync(chunks, seconds),
            )
        return Case(res, lambda b: kit.runner.run(measure_async(chunks, b, res)), settle)

    def interleave(self, cases: list[Case], budget: Budget, what: str) -> None:
        """Measure ``cases`` in turns; keep their results."""
        self.log(f"{what}: {len(cases)} cases x {budget.repeats} turns")
        warm = Budget(min(budget.seconds / 4, 0.03), 8 if budget.max_ops else 256, 1)
        for c in cases:  # connections, scripts loaded on each node, caches: untimed
            c.step(warm)
            if c.settle is not None:
                c.settle()
            c.res.rates.clear()
            del c.res.lat_ns[:]
            c.res.ops = c.res.unexpected = 0
        one = replace(budget, repeats=1)
        for _ in range(budget.repeats):
            for c in cases:
                if c.res.error is None:
                    # the collector stays on (a case pays for its own garbage), but the
                    # objects alive before its turn (other cases' stores, the harness) are
                    # frozen: no case pays for scanning what another one built
                    gc.collect()
                    gc.freeze()
                    t0 = time.perf_counter()
                    c.step(one)
                    if c.settle is not None:
                        c.settle()
                    wall = c.res.extra.get("wall_s", 0.0) + time.perf_counter() - t0
                    c.res.extra["wall_s"] = round(wall, 2)
        gc.unfreeze()
        for c in cases:
            if c.res.error:
                self.log(f"  ! {c.res.key}: {c.res.error}")
            elif c.res.unexpected:
                self.log(f"  ! {c.res.key}: {c.res.unexpected} unexpected results")
        self.results.extend(c.res for c in cases)

    def paired(self, cases: list[Case], rounds: int, what: str) -> None:
        """The primary targets' ratios again, from tightly alternated short slices.

        Turns put seconds between two cases of a ratio, and this shared machine's speed
        moves on that scale (the raw EVALSHA floor's turns spread over 2x). Here each
        round times a slice of ours, then a slice of the baseline, then ours again
        (ABA: the baseline sits between the two halves of ours), ``rounds`` times;
        the ratio is the median over the rounds, stored on ours' case as ``paired``.
        """
        by_id = {c.res.key: c for c in cases}
        pairs = [
            (t["num"], t["den"])
            for t in _report.targets(dict.fromkeys(by_id), {}, {})
            if t["primary"] and t["num"] in by_id and t["den"] in by_id
        ]
        self.log(f"{what}: {len(pairs)} ratios x {rounds} paired rounds")
        for num, den in pairs:
            a, b = by_id[num], by_id[den]
            if a.rate is None or b.rate is None or a.res.error or b.res.error:
                continue

            def timed(c: Case, seconds: float) -> float:
                assert c.rate is not None  # checked above
                rate = c.rate(seconds)
                if c.settle is not None:  # untimed: what it left running in the background
                    c.settle()
                return rate

            ratios = []
            for _ in range(rounds):
                first = timed(a, PAIR_SLICE_S / 2)
                base = timed(b, PAIR_SLICE_S)
                second = timed(a, PAIR_SLICE_S / 2)
                if first and base and second:
                    ratios.append((first + second) / 2 / base)
            if ratios:
                q = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
                a.res.extra.setdefault("paired", {})[den] = {
                    "ratio": round(statistics.median(ratios), 3),
                    "q1": round(q[0], 3),
                    "q3": round(q[2], 3),
                    "rounds": len(ratios),
                }

    def single_cases(self, kit: Kit, wl: str, n: int) -> list[Case]:
        """Every call of every subject, one thread or task, ``n`` accounts round-robin."""
        size, cases = kit.chunk, []
        for face, subjects in kit.limiters.items():
            f = face[0]
            for name, s in subjects.items():
                cases.append(
                    self.case(
                        kit, face, wl, "single", name, "hit_allowed",
                        lambda t, s=s, f=f: allowed_chunks(s, keys(f"{t}a{f}{wl}", n), size),
                    )
                )  # fmt: skip
                cases.append(
                    self.case(
                        kit, face, wl, "single", name, "hit_refused",
                        lambda t, s=s: refused_chunks(s, keys(f"{t}r", n), size),
                    )
                )  # fmt: skip
        for face, floors in kit.floors.items():
            for name, fn in floors.items():
                cases.append(
                    self.case(
                        kit, face, wl, "single", name, "floor",
                        lambda t, fn=fn: same_chunks(fn, keys(f"{t}f", n), size),
                    )
                )  # fmt: skip
        for face, d in kit.drivers.items():
            f = face[0]
            ops: dict[str, Factory] = {
                "request_code": lambda t, d=d, f=f: d.request(f"{t}q{f}{wl}", keys("", n), size),
                "verify_right": lambda t, d=d, f=f: d.verify_right(keys(f"{t}v{f}{wl}", n), size),
                "verify_wrong": lambda t, d=d, f=f: d.verify_wrong(keys(f"{t}w{f}{wl}", n), size),
                "trusted": lambda t, d=d: d.trusted(keys(f"{t}t{wl}", n), size, "trusted"),
                "other_browser": lambda t, d=d: d.trusted(keys(f"{t}t{wl}", n), size, "other"),
                "forged": lambda t, d=d: d.trusted(keys(f"{t}t{wl}", n), size, "forged"),
            }
            for op, factory in ops.items():
                cases.append(self.case(kit, face, wl, "single", "ours", op, factory))
        return cases

    def concurrent(self, kit: Kit, n: int) -> None:
        """16 threads on the sync face, 50 tasks on the async face, ``n`` accounts."""
        mode = self.mode
        size = 2 if mode.conc.max_ops else 16  # small chunks: workers stop soon after the bell
        cases = []
        for face, subjects in kit.limiters.items():
            workers = mode.threads if face == "sync" else mode.tasks
            conc = f"threads{workers}" if face == "sync" else f"tasks{workers}"
            parts = partition(keys(f"c{face[0]}", n), workers)
            units: list[tuple[str, str, list[Iterator[Chunk]]]] = []
            for name, s in subjects.items():
                if name == "limits_counter":
                    continue
                units.append((name, "hit_allowed", [allowed_chunks(s, p, size) for p in parts]))
            for name, fn in kit.floors.get(face, {}).items():
                units.append((name, "floor", [same_chunks(fn, p, size) for p in parts]))
            d = kit.drivers.get(face)
            if d is not None:
                ids = partition(keys("", n), workers)
                units.append(
                    ("ours", "request_code", [d.request(f"cq{face[0]}", p, size) for p in ids])
                )
            for name, op, workers_chunks in units:
                res = CaseResult(kit.store, face, "10k", conc, name, op)
                if face == "sync":
                    step = lambda b, w=workers_chunks, r=res: measure_threads(w, b, r)  # noqa: E731
                else:
                    step = lambda b, w=workers_chunks, r=res: kit.runner.run(  # noqa: E731
                        measure_tasks(w, b, r)
                    )
                cases.append(Case(res, step, kit.settle.get(name)))
        self.interleave(cases, mode.conc, f"{kit.store}: threads and tasks")

    # -- stores -----------------------------------------------------------------------------
    def memory(self) -> None:
        """The memory store, both faces, against limits' memory storage and the floor."""
        from limits import RateLimitItemPerHour
        from limits.storage import storage_from_string
        from limits.strategies import MovingWindowRateLimiter, SlidingWindowCounterRateLimiter

        with asyncio.Runner() as runner:
            kit = Kit("memory", runner, 256)
            sync_lim = SlidingWindowLimiter(MemoryBackend(), limit=LIMIT, window=WINDOW)
            ab = AsyncMemoryBackend()
            async_lim = AsyncSlidingWindowLimiter(ab, limit=LIMIT, window=WINDOW)
            twin = SlidingWindowLimiter(ab.sync, limit=LIMIT, window=WINDOW)
            item = RateLimitItemPerHour(LIMIT)
            mw = MovingWindowRateLimiter(storage_from_string("memory://"))
            swc = SlidingWindowCounterRateLimiter(storage_from_string("memory://"))
            hit, reset, _ = deque_floor()
            kit.settle = {
                "limits_moving": lambda: _settle_limits(mw),
                "limits_counter": lambda: _settle_limits(swc),
            }
            kit.limiters = {
                "sync": {
                    "ours": _ours_subject(sync_lim, sync_lim, set()),
                    "limits_moving": _limits_subject(mw, mw, item, set()),
                    "limits_counter": _limits_subject(swc, swc, item, set()),
                    "floor_deque": LimiterSubject(
                        "floor_deque", hit, _is_true, reset, _floor_fill(hit), set()
                    ),
                },
                "async": {"ours": _ours_subject(async_lim, twin, set())},
            }
            codes = SecurityCodes(MemoryBackend(), secret=self.secret)
            ab2 = AsyncMemoryBackend()
            acodes = AsyncSecurityCodes(ab2, secret=self.secret)
            kit.drivers = {
                "sync": CodesDriver(codes, codes, self.mint, {}, self.minted),
                "async": CodesDriver(
                    acodes, SecurityCodes(ab2.sync, secret=self.secret), self.mint, {}, self.minted
                ),
            }
            self.run_store(kit)
            if self.mode.big is not None:
                self.memory_big()
            self.log("memory: bytes per account (tracemalloc)")
            self.footprint["memory"] = memory_store_bytes(self.mode.footprint_memory, self.secret)
            self.profile_misses(kit)

    def run_store(self, kit: Kit) -> None:
        """Hot account, 10,000 accounts, threads and tasks."""
        mode = self.mode
        if mode.hot is not None:
            self.interleave(self.single_cases(kit, "hot", 1), mode.hot, f"{kit.store}: hot")
        single = self.single_cases(kit, "10k", TEN_K)
        self.interleave(single, mode.single, f"{kit.store}: 10k")
        if mode.pairs:
            self.paired(single, mode.pairs, f"{kit.store}: 10k")
        self.concurrent(kit, TEN_K)

    def memory_big(self) -> None:
        """1,000,000 accounts in the memory store: one library at a time in the process."""
        from limits import RateLimitItemPerHour

        mode = self.mode
        assert mode.big is not None
        n, size = mode.big_n, 256
        names = keys("m", n)
        builders: dict[str, Callable[[], tuple[LimiterSubject, Any]]] = {
            "ours": lambda: (_ours_subject(_mem_limiter(), None, set()), None),
            "limits_moving": lambda: _limits_memory_subject(RateLimitItemPerHour(LIMIT)),
            "floor_deque": lambda: (_floor_subject(), None),
        }
        for name, build in builders.items():
            subject, lim = build()
            self.log(f"memory: 1m, prefill {name}")
            t0 = time.perf_counter()
            for k in names:
                subject.hit(k)
            self.prefill[f"memory/{name}"] = round(time.perf_counter() - t0, 1)
            chunks = allowed_chunks(subject, names, size, start_pass=1)
            res = CaseResult("memory", "sync", "1m", "single", name, "hit_allowed")
            settle = None if lim is None else (lambda lim=lim: _settle_limits(lim))
            self.interleave(
                [Case(res, lambda b, c=chunks, r=res: measure_sync(c, b, r), settle)],
                mode.big,
                f"memory: 1m {name}",
            )
            if lim is not None:  # free its 1,000,000 keys, and stop its expiry scans
                lim.storage.reset()
                _settle_limits(lim)
            del subject, chunks, lim
            gc.collect()
        self.notes.append(
            "memory 1m: the limiter only (ours, limits' moving window, the floor), each alone "
            "in the process with its 1,000,000 keys; the SecurityCodes calls at 1,000,000 "
            "accounts are measured on Redis"
        )

    def redis(self, cluster: bool) -> None:
        """A standalone server or a 3-node cluster, both faces, against limits and floors."""
        import redis
        import redis.asyncio
        import redis.asyncio.cluster
        from limits import RateLimitItemPerHour
        from limits.aio.strategies import MovingWindowRateLimiter as AioMovingWindow
        from limits.aio.strategies import SlidingWindowCounterRateLimiter as AioCounter
        from limits.storage import storage_from_string
        from limits.strategies import MovingWindowRateLimiter, SlidingWindowCounterRateLimiter

        from ameli_otp import AsyncRedisBackend, RedisBackend

        servers = _env.servers()
        store = "cluster" if cluster else "redis"
        self.log(f"{store}: starting server(s)")
        ctx = servers.cluster() if cluster else servers.standalone()
        with ctx as up, asyncio.Runner() as runner:
            nodes = up if cluster else [up]
            port = nodes[0].port
            node_clients = [redis.Redis(port=s.port) for s in nodes]
            if cluster:
                client: Any = redis.cluster.RedisCluster(host="127.0.0.1", port=port)
                aclient: Any = redis.asyncio.cluster.RedisCluster(host="127.0.0.1", port=port)
                scheme = "redis+cluster"
            else:
                client = redis.Redis(port=port)
                aclient = redis.asyncio.Redis(port=port)
                scheme = "redis"
            self.servers[store] = _env.server_version(node_clients[0])
            kit = Kit(store, runner, 64, server_clients=node_clients)
            sync_lim = SlidingWindowLimiter(RedisBackend(client), limit=LIMIT, window=WINDOW)
            async_lim = AsyncSlidingWindowLimiter(
                AsyncRedisBackend(aclient), limit=LIMIT, window=WINDOW
            )
            url = f"{scheme}://127.0.0.1:{port}"
            mw_item = RateLimitItemPerHour(LIMIT, namespace="MW")
            swc_item = RateLimitItemPerHour(LIMIT, namespace="SWC")
            mw = MovingWindowRateLimiter(storage_from_string(url))
            swc = SlidingWindowCounterRateLimiter(storage_from_string(url))
            kit.closers += [client.close, *(c.close for c in node_clients)]
            kit.closers += [mw.storage.storage.close, swc.storage.storage.close]
            kit.aclosers.append(aclient.aclose)
            filled: dict[str, set[str]] = {"ours": set(), "mw": set(), "swc": set()}
            kit.limiters = {
                "sync": {
                    "ours": _ours_subject(sync_lim, sync_lim, filled["ours"]),
                    "limits_moving": _limits_subject(mw, mw, mw_item, filled["mw"]),
                    "limits_counter": _limits_subject(swc, swc, swc_item, filled["swc"]),
                },
                "async": {"ours": _ours_subject(async_lim, sync_lim, filled["ours"])},
            }
            try:
                aurl = f"async+{url}"
                amw = AioMovingWindow(storage_from_string(aurl, implementation="redispy"))
                aswc = AioCounter(storage_from_string(aurl, implementation="redispy"))
                kit.aclosers += [
                    amw.storage.bridge.storage.aclose,
                    aswc.storage.bridge.storage.aclose,
                ]
                kit.limiters["async"]["limits_moving"] = _limits_subject(
                    amw, mw, mw_item, filled["mw"]
                )
                kit.limiters["async"]["limits_counter"] = _limits_subject(
                    aswc, swc, swc_item, filled["swc"]
                )
            except Exception as exc:  # limits' async storage is optional here
                self.notes.append(f"{store}: limits async storage not measured: {exc}")
            sha = client.script_load("return 1")
            for c in node_clients:
                c.script_load("return 1")
            kit.floors = {
                "sync": _raw_floors(client, sha, cluster),
                "async": _raw_floors(aclient, sha, cluster),
            }
            codes = SecurityCodes(RedisBackend(client), secret=self.secret)
            acodes = AsyncSecurityCodes(AsyncRedisBackend(aclient), secret=self.secret)
            tokens: dict[str, str] = {}
            kit.drivers = {
                "sync": CodesDriver(codes, codes, self.mint, tokens, self.minted),
                "async": CodesDriver(acodes, codes, self.mint, tokens, self.minted),
            }
            self.run_store(kit)
            if not cluster:
                self.ladder(kit, client, sync_lim)
            self.log(f"{store}: redis-benchmark")
            self.bench[store] = _env.redis_benchmark(port, sha, self.mode.bench_requests)
            if cluster:
                self.bench[store]["note"] = "one node of the cluster (EVALSHA with no key)"
            if not cluster:
                self.log("redis: bytes per account (MEMORY USAGE)")
                mem_client = redis.Redis(port=port, db=1)
                mem_url = f"redis://127.0.0.1:{port}/1"
                self.footprint["redis"] = redis_bytes(
                    mem_client, mem_url, self.mode.footprint_redis, self.secret
                )
                mem_client.flushdb()
                mem_client.close()
            self.profile_misses(kit)
            if not cluster and self.mode.big is not None:
                client.flushall()
                self.redis_big(kit, client, mw, mw_item, filled)
            kit.close()

    def ladder(self, kit: Kit, client: Any, lim: SlidingWindowLimiter) -> None:
        """The steps from the raw EVALSHA floor to our hit (see ``_ladder``)."""
        try:
            factories = ladder_factories(client, lim, kit.chunk, TEN_K)
        except Exception as exc:  # a diagnostic: the run goes on without it
            self.notes.append(f"ladder not measured: {type(exc).__name__}: {exc}")
            return
        cases = [
            self.case(kit, "sync", "10k", "single", "ladder", step, f)
            for step, f in factories.items()
        ]
        self.interleave(cases, self.mode.single, f"{kit.store}: ladder")

    def redis_big(self, kit: Kit, client: Any, mw: Any, item: Any, filled: Any) -> None:
        """1,000,000 accounts resident on the standalone server, round-robin over 1,000,000."""
        mode = self.mode
        assert mode.big is not None
        n = mode.big_n
        self.log("redis: 1m, filler accounts (Lua, server side)")
        t0 = time.perf_counter()
        fill = client.register_script(_FILLER)
        step = 100_000
        for first in range(0, n, step):
            fill(args=[first, min(step, n - first)])
        self.prefill["redis/filler_accounts"] = round(time.perf_counter() - t0, 1)
        self.notes.append(
            f"redis 1m: the server holds {n:,} filler accounts (one hash each, shaped like "
            f"an account with 5 codes in its window, {client.dbsize():,} keys in all); the "
            "measured calls go round-robin over 1,000,000 other accounts, each met for the "
            "first time"
        )
        size = kit.chunk
        sync = kit.limiters["sync"]
        d = kit.drivers["sync"]
        factories: list[tuple[str, str, Factory]] = [
            ("ours", "hit_allowed", lambda t: allowed_chunks(sync["ours"], keys(f"{t}B", n), size)),
            (
                "limits_moving",
                "hit_allowed",
                lambda t: allowed_chunks(sync["limits_moving"], keys(f"{t}B", n), size),
            ),
            ("ours", "request_code", lambda t: d.request(f"{t}Q", keys("", n), size)),
            ("ours", "verify_right", lambda t: d.verify_right(keys(f"{t}V", n), size)),
            ("ours", "trusted", lambda t: d.trusted(keys(f"{t}T", n), size, "trusted")),
        ]
        for name, fn in kit.floors["sync"].items():
            factories.append((name, "floor", lambda t, fn=fn: same_chunks(fn, keys("F", n), size)))
        cases = [self.case(kit, "sync", "1m", "single", s, op, f) for s, op, f in factories]
        self.interleave(cases, mode.big, "redis: 1m")
        client.flushall()

    # -- profiles ---------------------------------------------------------------------------
    def profile_misses(self, kit: Kit) -> None:
        """Profile the cases behind this store's missed targets."""
        mode = self.mode
        ops = mode.profile_ops_memory if kit.store == "memory" else mode.profile_ops_redis
        if not ops:
            return
        table = {r.key: r.to_json() for r in self.results}
        todo: list[str] = []
        for t in _report.targets(table, self.footprint, self.bench):
            num = t.get("num") or ""
            if not t["primary"] or t["status"] != "missed" or not num.startswith(kit.store):
                continue
            for key in (num, t.get("den") or ""):
                wanted = key == num or "raw_evalsha" in key  # ours, and the Redis floor
                fresh = key not in todo and key not in self.profiles
                if wanted and fresh and key in self.recipes:
                    todo.append(key)
        for key in todo:
            kit_, face, factory = self.recipes[key]
            self.log(f"profile {key}")
            try:
                self.profiles[key] = profile_chunks(
                    factory("p"),
                    ops,
                    runner=None if face == "sync" else kit_.runner,
                    server_clients=kit_.server_clients or None,
                )
            except Exception as exc:  # a failed profile is reported
                self.profiles[key] = {"error": f"{type(exc).__name__}: {exc}"}
        if mode.pyspy_seconds and any(k.endswith("/ours/hit_allowed") for k in todo):
            store = "memory" if kit.store == "memory" else "redis"
            if kit.store != "cluster":
                self.log(f"py-spy {store} hit_allowed")
                args = ["--store", store, "--op", "hit_allowed"]
                if store == "redis":
                    port = kit.server_clients[0].connection_pool.connection_kwargs["port"]
                    args += ["--port", str(port)]
                self.profiles[f"py-spy/{store}/sync/10k/single/ours/hit_allowed"] = pyspy(
                    args, mode.pyspy_seconds
                )

    # -- all --------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Every store asked for, then the outputs."""
        if "memory" in self.stores:
            self.memory()
        if "redis" in self.stores:
            self.redis(cluster=False)
        if "cluster" in self.stores:
            self.redis(cluster=True)
        gc.collect()
        table = {r.key: r.to_json() for r in self.results}
        meta = {
            **self.machine,
            "mode": self.mode.name,
            "stores": self.stores,
            "command": " ".join(["python -m benchmarks", *self.argv]),
            "redis_server": self.servers,
            "duration_s": round(time.perf_counter() - self.t0, 1),
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
            "settings": {
                "limit": f"{LIMIT} per hour",
                "single": asdict(self.mode.single),
                "hot": None if self.mode.hot is None else asdict(self.mode.hot),
                "big": None if self.mode.big is None else asdict(self.mode.big),
                "concurrency": asdict(self.mode.conc),
                "threads": self.mode.threads,
                "tasks": self.mode.tasks,
            },
            "prefill_seconds": self.prefill,
            "notes": self.notes,
        }
        return _report.assemble(meta, table, self.footprint, self.bench, self.profiles)


# -- subjects -----------------------------------------------------------------------------------
def _is_true(r: Any) -> bool:
    return r is True


def _allowed(d: Any) -> bool:
    return bool(d.allowed)


def _ours_subject(lim: Any, twin: SlidingWindowLimiter | None, filled: set[str]) -> LimiterSubject:
    """Our limiter; ``twin`` (sync, same data) does the untimed work (default: ``lim``)."""
    twin = lim if twin is None else twin
    return LimiterSubject("ours", lim.hit, _allowed, twin.reset, ours_fill(twin.hit), filled)


def _mem_limiter() -> SlidingWindowLimiter:
    return SlidingWindowLimiter(MemoryBackend(), limit=LIMIT, window=WINDOW)


def _limits_memory_subject(item: Any) -> tuple[LimiterSubject, Any]:
    from limits.storage import storage_from_string
    from limits.strategies import MovingWindowRateLimiter

    lim = MovingWindowRateLimiter(storage_from_string("memory://"))
    return _limits_subject(lim, lim, item, set()), lim


def _limits_subject(lim: Any, twin: Any, item: Any, filled: set[str]) -> LimiterSubject:
    timed = functools.partial(lim.hit, item)  # C-level: no extra Python frame per hit

    def reset(key: str) -> None:
        twin.clear(item, key)

    return LimiterSubject(
        "limits", timed, lambda r: r is True, reset, limits_fill(twin, item), filled
    )


def _settle_limits(lim: Any) -> None:
    """Wait for the expiry timer of a limits memory storage (it scans every key)."""
    timer = getattr(lim.storage, "timer", None)
    if timer is not None:
        timer.join()


def _floor_fill(hit: Callable[[str], bool]) -> Callable[[str], None]:
    def fill(key: str) -> None:
        while hit(key):
            pass

    return fill


def _floor_subject() -> LimiterSubject:
    hit, reset, _ = deque_floor()
    return LimiterSubject("floor_deque", hit, _is_true, reset, _floor_fill(hit), set())


def _raw_floors(client: Any, sha: str, cluster: bool) -> dict[str, Callable[[str], Any]]:
    """EVALSHA of ``return 1`` and PING, on the client ours uses."""
    evalsha, ping = client.evalsha, client.ping
    if not cluster:

        def raw_evalsha(key: str) -> Any:  # the floor ignores the account
            return evalsha(sha, 0)

        def raw_ping(key: str) -> Any:  # the floor ignores the account
            return ping()

    else:  # a key routes the call to the account's node, as ours does
        node_of = client.get_node_from_key

        def raw_evalsha(key: str) -> Any:
            return evalsha(sha, 1, "{" + key + "}")

        def raw_ping(key: str) -> Any:
            return ping(target_nodes=node_of("{" + key + "}"))

    return {"raw_evalsha": raw_evalsha, "raw_ping": raw_ping}


_FILLER = """
-- bench filler: ARGV[1] first index, ARGV[2] count; account-like keys, never touched again
local first, n = tonumber(ARGV[1]), tonumber(ARGV[2])
for i = first, first + n - 1 do
    local key = 'bench-filler:{' .. string.format('%016d', i) .. '}:s'
    redis.call('HSET', key, 'h', '0123456789abcdef', 't', '1700000000000', 'f', '1',
        'w', '18bcfe56800,18bcfe56801,18bcfe56802,18bcfe56803,18bcfe56804',
        'n', '1', 'l', '1700000000000', 'd:AAAAAAAAAAAAAAAAAAAAAA', '1700000000000')
end
return n
"""


# -- command line -------------------------------------------------------------------------------
def parse(argv: list[str]) -> argparse.Namespace:
    """The options of ``python -m benchmarks``."""
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="10,000 accounts only (CI, < 1 min)")
    size.add_argument("--smoke", action="store_true", help="~100 ops per case (tests, seconds)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="output folder")
    p.add_argument(
        "--cases",
        default=",".join(STORES),
        help="stores to measure, comma-separated among memory,redis,cluster (default: all)",
    )
    p.add_argument("--no-chart", action="store_true", help="skip latest.png")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks; write latest.json, latest.md and latest.png into ``--out``."""
    argv = sys.argv[1:] if argv is None else argv
    opts = parse(argv)
    stores = [s.strip() for s in opts.cases.split(",") if s.strip()]
    unknown = sorted(set(stores) - set(STORES))
    if unknown:
        print(f"unknown --cases {unknown}: choose among {', '.join(STORES)}", file=sys.stderr)
        return 2
    mode = MODES["smoke" if opts.smoke else "quick" if opts.quick else "full"]
    run = Run(mode, stores, opts.out, argv)
    report = run.run()
    opts.out.mkdir(parents=True, exist_ok=True)
    (opts.out / "latest.json").write_text(json.dumps(report, indent=1) + "\n")
    (opts.out / "latest.md").write_text(_report.markdown(report))
    if not opts.no_chart:
        note = _report.chart(report, opts.out / "latest.png")
        if note:
            run.log(note)
    run.log(f"wrote {opts.out}/latest.json, latest.md" + ("" if opts.no_chart else ", latest.png"))
    print(_report.summary(report))
    return 0
