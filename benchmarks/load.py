"""A service-level load test: ``python -m benchmarks.load [--quick] [--out DIR]``.

The library inside a real ASGI app (``benchmarks/load_app.py``, Starlette) under a real
``uvicorn`` on a free loopback port, with the ``from_url`` defaults, against a Valkey
server of its own (``tests/servers.py``). For each flavour (``async``, ``sync``) and
each worker count (1, 2), a fresh server and app, then, from one asyncio + httpx client:

- ``distinct``: N concurrent ``POST /code`` (all sent at once, ``gather``), N accounts;
- ``one``: N concurrent requests for one account: exactly 5 codes, the rest 429;
- ``dead``: N concurrent requests for N accounts, the Valkey process SIGKILLed once N/10
  of them have a code on the server (the HTTP answers lag the library by seconds on a
  small machine: the Nth/10 answer would come after the last call); then N more
  requests, all sent after the kill (``after``).

N is 1000 (``--quick``: 200). No warm-up: ``distinct`` meets cold workers (first
connections, the eviction-policy check, SCRIPT LOAD). The codes issued are counted on the
server too: the window entries (field ``w`` of each account's hash, see ``lua/_lib.lua``).
The script checks the Done-when of the issue and exits 1, naming what failed, if one does
not hold. It writes ``load.md`` and ``load.json`` into ``--out`` (default
``benchmarks/results``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
import redis

from . import _env

DEADLINE_S = 2.0  # a caller of a dead store must have its 503 within this
CODES = 5  # max_unused_codes of the default Policy
POOL = 50  # connections per httpx client
START_TIMEOUT = 30.0
#: what the HTTP side runs on (uvicorn's auto loop and http: uvloop and httptools if installed)
PACKAGES = ("starlette", "uvicorn", "httpx", "httpcore", "anyio", "sniffio", "h11", "httptools")


@dataclass
class Reply:
    """One request as the client saw it (``time.monotonic()``), with the app's call times."""

    start: float
    end: float
    status: int | None  # None: the request itself failed (``error``)
    error: str | None = None  # or the 503's BackendError, in short
    t0: float | None = None  # the app, just before request_code
    t1: float | None = None  # the app, just after

    def call_s(self, since: float = -math.inf) -> float | None:
        """How long the library call took in the app (from ``since`` if later)."""
        return None if self.t0 is None or self.t1 is None else self.t1 - max(self.t0, since)


def pct(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] if ordered else math.nan


def ms(values: list[float]) -> dict[str, float | None]:
    """p50 / p99 / max of durations in seconds, as ms (None: nothing was timed)."""
    if not values:
        return {"p50": None, "p99": None, "max": None}
    return {
        k: round(v * 1000, 1)
        for k, v in (("p50", pct(values, 50)), ("p99", pct(values, 99)), ("max", max(values)))
    }


def summary(replies: list[Reply]) -> dict[str, Any]:
    """Statuses, errors (not 200/429), HTTP latency and the library call's time in the app."""
    statuses = Counter(str(r.status or r.error) for r in replies)
    wall = max(r.end for r in replies) - min(r.start for r in replies)
    return {
        "requests": len(replies),
        "statuses": dict(sorted(statuses.items())),
        "errors": sum(1 for r in replies if r.status not in (200, 429)),
        "errors_by_kind": dict(Counter(r.error for r in replies if r.error)),
        "http_ms": ms([r.end - r.start for r in replies]),
        "call_ms": ms([d for r in replies if (d := r.call_s()) is not None]),
        "wall_s": round(wall, 2),
        "requests_per_s": round(len(replies) / wall),
        "all_sent_before_first_answer": max(r.start for r in replies) < min(r.end for r in replies),
    }


async def burst(base: str, accounts: list[str]) -> list[Reply]:
    """One request per account, all at once, each on a new connection (1000 callers, not
    one client reusing its connections).

    httpcore scans its whole pool for every request: one client of 1000 connections costs
    seconds of client CPU (O(n^2)); so ``POOL`` connections per client, as many clients as
    needed.
    """

    async def one(client: httpx.AsyncClient, account: str) -> Reply:
        start = time.monotonic()
        try:
            resp = await client.post("/code", data={"account": account})
        except httpx.HTTPError as exc:
            reply = Reply(start, time.monotonic(), None, type(exc).__name__)
        else:
            body = resp.json() if resp.headers.get("content-type") == "application/json" else {}
            reply = Reply(start, time.monotonic(), resp.status_code, body.get("error"))
            reply.t0, reply.t1 = body.get("t0"), body.get("t1")
        return reply

    limits = httpx.Limits(max_connections=POOL, max_keepalive_connections=POOL)
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(base_url=base, limits=limits, timeout=30.0)
            )
            for _ in range(math.ceil(len(accounts) / POOL))
        ]
        k = len(clients)
        return list(await asyncio.gather(*(one(clients[i % k], a) for i, a in enumerate(accounts))))


def codes_on_server(store: redis.Redis) -> list[int]:
    """The window entries of every account hash on the server (one int per account)."""
    windows = (str(store.hget(key, "w") or "") for key in store.scan_iter("*:s", 1000))
    return [len(w.split(",")) if w else 0 for w in windows]


@contextlib.contextmanager
def uvicorn(flavour: str, workers: int, redis_port: int, secret: str) -> Iterator[tuple[str, int]]:
    """``uvicorn benchmarks.load_app:app`` on a free loopback port, once every worker is up:
    its URL and pid."""
    port = _env.servers().free_port()
    log = Path(tempfile.mkstemp(prefix="ameli-otp-uvicorn-", suffix=".log")[1])
    env = {
        **os.environ,
        "AMELI_OTP_LOAD_FLAVOUR": flavour,
        "AMELI_OTP_LOAD_URL": f"redis://127.0.0.1:{redis_port}/0",
        "AMELI_OTP_LOAD_SECRET": secret,
    }
    args = [
        sys.executable, "-m", "uvicorn", "benchmarks.load_app:app", "--host", "127.0.0.1",
        "--port", str(port), "--workers", str(workers), "--no-access-log",
        "--timeout-keep-alive", "300",  # no keep-alive connection closes under the client
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(args, cwd=_env.ROOT, env=env, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while log.read_text().count("Application startup complete") < workers:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start:\n{log.read_text()}")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}", proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        tail = log.read_text()[-3000:]
        log.unlink()
        if "Traceback" in tail:
            print(f"uvicorn log ({flavour}, {workers} workers):\n{tail}", file=sys.stderr)


def cpu_s(pid: int, since: dict[str, float | None] | None = None) -> dict[str, float | None]:
    """CPU seconds (user + system) of this client and of the app (``pid`` and its workers,
    from Linux ``/proc``: None elsewhere), minus ``since``."""
    app: float | None = None
    with contextlib.suppress(OSError, ValueError):
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        ticks = 0
        for p in (pid, *map(int, kids)):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
        app = ticks / os.sysconf("SC_CLK_TCK")
    now, then = {"client": time.process_time(), "app": app}, since or {"client": 0.0, "app": 0.0}
    return {
        k: None if v is None or (w := then[k]) is None else round(v - w, 2) for k, v in now.items()
    }


def dead_case(before: list[Reply], after: list[Reply], kill: float, dead: float) -> dict[str, Any]:
    """What the callers got once the server was killed (``kill``: SIGKILL sent, ``dead``: reaped).

    A request answered after ``kill`` may still be a 200 if its script ran before: its call
    started before ``kill`` and Redis replied in time. A 200 whose call started after ``kill``
    is a code granted by a dead store: a failure. Times after the kill run from the kill, or
    from the start of the request (HTTP) or of the call (in the app), if later.
    """
    late = [r for r in before if r.end > kill]
    granted = [r for r in late if r.status == 200]
    failed = [r for r in late if r.status == 503 and r.t1 is not None and r.t1 >= kill]
    return {
        "requests": len(before),
        "answered_before_kill": dict(Counter(str(r.status) for r in before if r.end <= kill)),
        "kill_to_reaped_ms": round((dead - kill) * 1000, 2),
        "in_flight": len(late),
        "in_flight_statuses": summary(late)["statuses"] if late else {},
        "granted_call_started_before_kill": sum(1 for r in granted if (r.t0 or 0) < kill),
        "granted_call_ended_before_kill": sum(1 for r in granted if (r.t1 or 0) < kill),
        "granted_call_started_after_kill": sum(1 for r in granted if (r.t0 or 0) >= kill),
        "in_flight_other": sum(1 for r in late if r.status not in (200, 503)),
        "in_flight_failed_before_kill": sum(1 for r in late if r.status == 503) - len(failed),
        "http_ms_after_kill": ms([r.end - max(r.start, kill) for r in late]),
        "call_ms_after_kill": ms([d for r in failed if (d := r.call_s(kill)) is not None]),
        "after": summary(after),
    }


async def cases(base: str, pid: int, n: int, valkey: Any, tag: str) -> dict[str, Any]:
    """distinct, one and dead, on one app (the server is dead at the end)."""
    store = redis.Redis(port=valkey.port, decode_responses=True)
    out: dict[str, Any] = {"valkey": _env.server_version(store)}
    for case, accounts in (
        ("distinct", [f"{tag}-d{i}" for i in range(n)]),
        ("one", [f"{tag}-one"] * n),
    ):
        store.flushall()
        cpu = cpu_s(pid)
        out[case] = summary(await burst(base, accounts))
        out[case]["cpu_s"] = cpu_s(pid, cpu)
        out[case]["codes_per_account_on_server"] = dict(Counter(codes_on_server(store)))
    store.flushall()
    moments: list[float] = []  # SIGKILL sent, process reaped

    def kill_at_tenth() -> None:  # a thread: SIGKILL once a tenth of the accounts have a code
        deadline = time.monotonic() + START_TIMEOUT
        while store.dbsize() < n // 10 and time.monotonic() < deadline:
            time.sleep(0.002)
        moments.append(time.monotonic())
        valkey.process.kill()
        valkey.process.wait()
        moments.append(time.monotonic())

    killer = threading.Thread(target=kill_at_tenth)
    killer.start()
    before = await burst(base, [f"{tag}-k{i}" for i in range(n)])
    killer.join()
    store.close()
    cpu = cpu_s(pid)
    after = await burst(base, [f"{tag}-a{i}" for i in range(n)])
    out["dead"] = dead_case(before, after, *moments)
    out["dead"]["after"]["cpu_s"] = cpu_s(pid, cpu)
    return out


def checks(name: str, res: dict[str, Any], n: int) -> list[str]:
    """The Done-when of the issue for one (flavour, workers): what does not hold."""
    bad: list[str] = []
    d, o, k, a = res["distinct"], res["one"], res["dead"], res["dead"]["after"]
    if d["statuses"] != {"200": n}:
        bad.append(f"{name} distinct: {d['errors']} errors, statuses {d['statuses']}")
    if o["statuses"] != {"200": CODES, "429": n - CODES}:
        bad.append(f"{name} one: {o['errors']} errors, statuses {o['statuses']}")
    if o["codes_per_account_on_server"] != {CODES: 1}:
        bad.append(f"{name} one: window entries on the server {o['codes_per_account_on_server']}")
    if set(k["answered_before_kill"]) - {"200"} or k["in_flight_failed_before_kill"]:
        bad.append(
            f"{name} dead: errors while the server was up: {k['answered_before_kill']} answered "
            f"before the kill, {k['in_flight_failed_before_kill']} 503 from calls that ended before"
        )
    if k["granted_call_started_after_kill"] or k["in_flight_other"]:
        bad.append(
            f"{name} dead: {k['granted_call_started_after_kill']} granted after the kill, "
            f"{k['in_flight_other']} neither 200 nor 503: {k['in_flight_statuses']}"
        )
    if a["statuses"] != {"503": n}:
        bad.append(f"{name} dead, after: statuses {a['statuses']}")
    for case in ("distinct", "one"):
        if not res[case]["all_sent_before_first_answer"]:
            bad.append(f"{name} {case}: an answer came before every request was sent")
    for what, t in (("in flight", k["call_ms_after_kill"]), ("after", a["call_ms"])):
        if t["max"] is not None and t["max"] >= DEADLINE_S * 1000:  # None: no call failed
            bad.append(f"{name} dead, {what}: BackendError {t['max']} ms after the kill")
    return bad


def fmt(t: dict[str, float | None]) -> str:
    """``p50 / p99 / max``."""
    return " / ".join("-" if t[k] is None else f"{t[k]:.0f}" for k in ("p50", "p99", "max"))


def counts(statuses: dict[str, int]) -> str:
    """``200: 5, 429: 995``."""
    return ", ".join(f"{k}: {v}" for k, v in statuses.items()) or "none"


def table(results: dict[str, Any]) -> str:
    """The markdown tables of a run."""
    lines = [
        "| case | statuses | errors | HTTP p50 / p99 / max ms | call in app p50 / p99 / max ms"
        " | wall s | req/s | CPU s client / app | codes per account (server) |",
        "|" + " --- |" * 9,
    ]
    for name, res in results.items():
        for case in ("distinct", "one"):
            c = res[case]
            codes = ", ".join(f"{v} x {k}" for k, v in c["codes_per_account_on_server"].items())
            cpu = f"{c['cpu_s']['client']} / {c['cpu_s']['app']}"
            kinds = f" ({counts(c['errors_by_kind'])})" if c["errors_by_kind"] else ""
            lines.append(
                f"| {name} {case} | {counts(c['statuses'])} | {c['errors']}{kinds} | "
                f"{fmt(c['http_ms'])} | {fmt(c['call_ms'])} | {c['wall_s']} | "
                f"{c['requests_per_s']} | {cpu} | {codes} |"
            )
    lines += [
        "",
        "Server killed (SIGKILL) once a tenth of the burst had a code on it; `after`: as many "
        "requests again, all sent once it was dead. Times after the kill: from the kill (or "
        "from when the request, or the call in the app, began, if later) to the answer.",
        "",
        "| case | answered before kill | in flight at kill | of those granted: call began "
        "before (and ended before) / after the kill | HTTP ms after kill | call ms after kill "
        "| after: statuses | after: HTTP ms | after: call ms |",
        "|" + " --- |" * 9,
    ]
    for name, res in results.items():
        k, a = res["dead"], res["dead"]["after"]
        lines.append(
            f"| {name} | {counts(k['answered_before_kill'])} | {counts(k['in_flight_statuses'])} | "
            f"{k['granted_call_started_before_kill']} ({k['granted_call_ended_before_kill']}) / "
            f"{k['granted_call_started_after_kill']} | "
            f"{fmt(k['http_ms_after_kill'])} | {fmt(k['call_ms_after_kill'])} | "
            f"{counts(a['statuses'])} | {fmt(a['http_ms'])} | {fmt(a['call_ms'])} |"
        )
    return "\n".join(lines) + "\n"


def markdown(report: dict[str, Any]) -> str:
    """``load.md``: what ran, on what, the tables and the checks."""
    m = report["machine"]
    packages = ", ".join(f"{k} {v}" for k, v in m["packages"].items() if v)
    failed = report["failed"]
    verdict = (
        "every check held." if not failed else "FAILED:\n\n" + "\n".join(f"- {f}" for f in failed)
    )
    return (
        f"# Load test: `python -m benchmarks.load{' --quick' if report['quick'] else ''}`\n\n"
        f"{report['n']} concurrent `POST /code` a burst, `from_url` defaults, uvicorn on "
        f"loopback. {m['date']}, {m['cpu_model']}, {m['cores_usable']} usable cores (load "
        f"average {m['load_average_at_start']} at start, {m['load_average_at_end']} at end), "
        f"Python {m['python']}, {report['valkey']}; {packages}. Run time "
        f"{report['seconds']} s. HTTP: as the load client saw it; call in app: "
        f"`request_code` alone, timed in the app.\n\n"
        f"{table(report['results'])}\nChecks (the issue's Done-when): {verdict}\n"
    )


def main(argv: list[str] | None = None) -> int:
    """Run every case; print the tables; write load.md and load.json; 1 if a check fails."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="200 requests a burst (CI)")
    parser.add_argument("--out", type=Path, default=_env.ROOT / "benchmarks" / "results")
    opts = parser.parse_args(argv)
    n = 200 if opts.quick else 1000
    t0 = time.monotonic()
    machine = _env.machine()
    for dist in (*PACKAGES, "uvloop"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            machine["packages"][dist] = metadata.version(dist)
    secret = os.urandom(32).hex()
    results: dict[str, Any] = {}
    failed: list[str] = []
    valkey_version = "?"
    for flavour in ("async", "sync"):
        for workers in (1, 2):
            name = f"{flavour} {workers}w"
            print(f"[{time.monotonic() - t0:5.1f}s] {name}", file=sys.stderr, flush=True)
            with (
                _env.servers().standalone() as valkey,
                uvicorn(flavour, workers, valkey.port, secret) as (base, pid),
            ):
                results[name] = asyncio.run(cases(base, pid, n, valkey, f"{flavour}{workers}"))
            valkey_version = results[name].pop("valkey")
            failed += checks(name, results[name], n)
    machine["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report = {
        "quick": opts.quick,
        "n": n,
        "machine": machine,
        "valkey": valkey_version,
        "seconds": round(time.monotonic() - t0, 1),
        "results": results,
        "failed": failed,
    }
    opts.out.mkdir(parents=True, exist_ok=True)
    (opts.out / "load.json").write_text(json.dumps(report, indent=1) + "\n")
    (opts.out / "load.md").write_text(markdown(report))
    print(table(results))
    print("\n".join(f"FAILED: {f}" for f in failed) or "every check held")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
