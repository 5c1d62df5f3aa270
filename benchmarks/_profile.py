"""Where the time goes: cProfile over the timed calls only, Redis server time, py-spy.

``profile_chunks`` runs a fresh chunk iterator of a case with cProfile enabled only
around the timed calls (not the untimed preparation) and, for Redis, reads ``INFO
commandstats`` around them, so that the server's share (the Lua script) is known.
``pyspy`` samples a separate process running one case (``benchmarks._spy``), which
also sees the time spent in C (sockets, hashing) under the Python line that called it.
"""

from __future__ import annotations

import asyncio
import cProfile
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ._measure import Chunk

__all__ = ["profile_chunks", "pyspy"]

TOP = 14


def _where(filename: str) -> str:
    """Which layer a function belongs to."""
    f = filename.replace("\\", "/")
    if "/ameli_otp/" in f:
        return "ameli_otp"
    if "/redis/" in f:
        return "redis-py"
    if "/limits/" in f:
        return "limits"
    if "/benchmarks/" in f:
        return "benchmark loop"
    if f.startswith("<attrs generated"):
        return "attrs (generated __init__)"
    if f in ("~", ""):
        return "builtins (C)"
    return "stdlib/other"


def _label(func: tuple[str, int, str]) -> str:
    filename, line, name = func
    if filename == "~":
        return name
    parts = filename.replace("\\", "/").split("/")
    for anchor in ("ameli_otp", "redis", "limits", "benchmarks", "asyncio"):
        if anchor in parts:
            parts = parts[parts.index(anchor) :]
            break
    else:
        parts = parts[-1:]
    return f"{'/'.join(parts)}:{line}({name})"


def _stats_summary(prof: cProfile.Profile, ops: int) -> dict[str, Any]:
    st = pstats.Stats(prof)
    raw: dict[Any, Any] = st.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw.values()) or 1e-12  # tottime summed: the profiled time
    rows = sorted(raw.items(), key=lambda kv: kv[1][2], reverse=True)
    top = [
        {
            "function": _label(func),
            "self_us_per_op": round(v[2] / ops * 1e6, 3),
            "self_share": round(v[2] / total, 4),
            "cum_us_per_op": round(v[3] / ops * 1e6, 3),
            "calls_per_op": round(v[1] / ops, 2),
        }
        for func, v in rows[:TOP]
    ]
    layers: Counter[str] = Counter()
    for (filename, _, name), v in raw.items():
        layer = _where(filename)
        if layer == "builtins (C)" and ("socket" in name or "select" in name or "poll" in name):
            layer = "socket I/O (send, wait, recv)"
        layers[layer] += v[2]
    return {
        "profiled_us_per_op": round(total / ops * 1e6, 2),
        "by_layer": {k: round(v / total, 4) for k, v in layers.most_common()},
        "top": top,
    }


def _commandstats(clients: list[Any]) -> dict[str, tuple[int, int]]:
    out: dict[str, tuple[int, int]] = {}
    for c in clients:
        for name, row in c.info("commandstats").items():
            calls, usec = out.get(name, (0, 0))
            out[name] = (calls + int(row["calls"]), usec + int(row["usec"]))
    return out


def _server_summary(
    before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]], ops: int
) -> dict[str, Any]:
    delta = {}
    for name, (calls, usec) in after.items():
        c0, u0 = before.get(name, (0, 0))
        if calls - c0 > 0 and not name.startswith(("cmdstat_info", "cmdstat_config")):
            delta[name.removeprefix("cmdstat_")] = (calls - c0, usec - u0)
    script = delta.get("evalsha", (0, 0))
    return {
        "server_us_per_op": round(script[1] / ops, 2) if script[0] else None,
        "commands_per_op": {
            k: {"calls_per_op": round(c / ops, 2), "us_per_op": round(u / ops, 2)}
            for k, (c, u) in sorted(delta.items(), key=lambda kv: -kv[1][1])
        },
    }


def profile_chunks(
    chunks: Iterator[Chunk],
    ops: int,
    *,
    runner: asyncio.Runner | None = None,
    server_clients: list[Any] | None = None,
) -> dict[str, Any]:
    """cProfile (and Redis commandstats) over about ``ops`` timed calls of a case."""
    prof = cProfile.Profile()
    done, wall = 0, 0.0
    stats_before = _commandstats(server_clients) if server_clients else None
    stats_acc: dict[str, tuple[int, int]] = {}
    while done < ops:
        c = next(chunks)
        items = c.prepare() if c.prepare is not None else c.items
        if asyncio.iscoroutine(items):  # pragma: no cover - no async prepare today
            assert runner is not None
            items = runner.run(items)
        before = _commandstats(server_clients) if server_clients else None
        t0 = time.perf_counter()
        if runner is None:
            fn = c.fn
            prof.enable()
            if c.star:
                for x in items:
                    fn(*x)
            else:
                for x in items:
                    fn(x)
            prof.disable()
        else:
            runner.run(_run_async(prof, c, items))
        wall += time.perf_counter() - t0
        if server_clients:
            after = _commandstats(server_clients)
            for name, (calls, usec) in after.items():
                c0, u0 = before.get(name, (0, 0))  # type: ignore[union-attr]
                a0, b0 = stats_acc.get(name, (0, 0))
                stats_acc[name] = (a0 + calls - c0, b0 + usec - u0)
        if c.after is not None:
            r = c.after()
            if asyncio.iscoroutine(r):
                assert runner is not None
                runner.run(r)
        done += len(items)
    out = _stats_summary(prof, done)
    out["ops"] = done
    out["wall_us_per_op_under_profile"] = round(wall / done * 1e6, 2)
    if stats_before is not None:
        out["server"] = _server_summary({}, stats_acc, done)
    return out


async def _run_async(prof: cProfile.Profile, c: Chunk, items: Any) -> None:
    prof.enable()
    for x in items:
        await (c.fn(*x) if c.star else c.fn(x))
    prof.disable()


def pyspy(args: list[str], seconds: float) -> dict[str, Any]:
    """Sample ``python -m benchmarks._spy ARGS`` with py-spy; top functions by own time.

    Returns ``{"measured": False, "why": ...}`` when py-spy is missing or fails.
    """
    exe = shutil.which("py-spy")
    if exe is None:
        return {"measured": False, "why": "py-spy is not installed"}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "raw.txt"
        cmd = [
            exe, "record", "--idle", "-r", "400", "-f", "raw", "-o", str(out), "--",
            sys.executable, "-m", "benchmarks._spy", "--seconds", str(seconds), *args,
        ]  # fmt: skip
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
        try:
            subprocess.run(
                cmd, capture_output=True, text=True, timeout=seconds + 60, check=True, env=env
            )
        except (OSError, subprocess.SubprocessError) as exc:
            err = getattr(exc, "stderr", "") or ""
            return {"measured": False, "why": f"{type(exc).__name__}: {exc} {err[-300:]}"}
        return _spy_summary(out.read_text())


def _spy_summary(raw: str) -> dict[str, Any]:
    own: Counter[str] = Counter()
    inside: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        if not any(f.startswith("loop_timed ") for f in frames):
            continue  # start-up and set-up, not the measured loop
        n = int(count)
        total += n
        own[_spy_frame(frames[-1])] += n
        for f in {_spy_frame(f) for f in frames}:
            inside[f] += n
    if not total:
        return {"measured": False, "why": "no sample inside the measured loop"}
    return {
        "measured": True,
        "samples": total,
        "top_own": [{"function": f, "share": round(n / total, 4)} for f, n in own.most_common(TOP)],
        "top_inclusive": [
            {"function": f, "share": round(n / total, 4)}
            for f, n in inside.most_common(TOP + 6)
            if "_spy.py" not in f and "<module>" not in f and "runpy" not in f
        ][:TOP],
    }


def _spy_frame(frame: str) -> str:
    # "hit (ameli_otp/_facade.py:154)" -> "ameli_otp/_facade.py(hit)" (lines vary by sample)
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    path = where.rsplit(":", 1)[0].replace("\\", "/")
    for anchor in ("ameli_otp/", "redis/", "limits/", "benchmarks/", "asyncio/"):
        i = path.find(anchor)
        if i >= 0:
            path = path[i:]
            break
    else:
        path = path.rsplit("/", 1)[-1]
    return f"{path}({name})"
