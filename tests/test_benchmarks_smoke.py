"""The benchmark runner (``python -m benchmarks``) runs every case and writes whole outputs.

A few dozen calls per case: this checks the runner, never a timing.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

# limits (the benchmarks' peer) is in the bench extra, not the test one: its redis extra pins
# redis<8. CI runs this file in a venv of its own with both extras (.ci/matrix.sh bench).
pytest.importorskip(
    "limits", reason="limits is not installed: the benchmarks need pip install -e '.[bench]'"
)

from benchmarks.runner import main

CASE_KEYS = {
    "id", "store", "face", "workload", "concurrency", "subject", "op", "ops_per_s",
    "p50_us", "p99_us", "repeats_ops_per_s", "ops", "unexpected", "error",
}  # fmt: skip
OPS = {
    "hit_allowed", "hit_refused", "request_code", "verify_right", "verify_wrong",
    "trusted", "other_browser", "forged",
}  # fmt: skip


def run(tmp_path: Path, cases: str, *extra: str) -> dict[str, Any]:
    assert main(["--smoke", "--cases", cases, "--out", str(tmp_path), *extra]) == 0
    report: dict[str, Any] = json.loads((tmp_path / "latest.json").read_text())
    md = (tmp_path / "latest.md").read_text()
    for heading in ("## Machine", "## Targets", "## Ratios", "## Memory per account"):
        assert heading in md
    assert "## Where the time goes" in md
    assert set(report) >= {
        "schema", "meta", "cases", "targets", "ratios", "memory_per_account",
        "redis_benchmark", "profiles",
    }  # fmt: skip
    meta = report["meta"]
    for k in ("date", "cpu_model", "cores", "python", "redis_server", "mode", "command"):
        assert k in meta
    assert meta["mode"] == "smoke"
    for case in report["cases"]:
        assert set(case) >= CASE_KEYS, case["id"]
        assert case["error"] is None, case
        assert case["unexpected"] == 0, case  # the workload did what it meant to
        assert case["ops"] > 0, case
        assert case["ops_per_s"] > 0, case
    return report


def by_id(report: dict[str, Any]) -> dict[str, Any]:
    return {c["id"]: c for c in report["cases"]}


def test_memory(tmp_path: Path) -> None:
    report = run(tmp_path, "memory")
    if importlib.util.find_spec("matplotlib") is not None:
        assert (tmp_path / "latest.png").stat().st_size > 0
    cases = by_id(report)
    for face in ("sync", "async"):
        for op in OPS:
            assert f"memory/{face}/10k/single/ours/{op}" in cases
    for subject in ("limits_moving", "limits_counter", "floor_deque"):
        for path in ("hit_allowed", "hit_refused"):
            assert f"memory/sync/10k/single/{subject}/{path}" in cases
    assert "memory/sync/10k/threads16/ours/hit_allowed" in cases
    assert "memory/async/10k/tasks50/ours/request_code" in cases
    targets = {t["id"]: t for t in report["targets"]}
    for tid in ("memory_hit_allowed_vs_limits_moving", "memory_hit_refused_vs_floor_deque"):
        assert targets[tid]["status"] in ("met", "missed")
        assert targets[tid]["value"] > 0
        # a primary target's ratio comes from the tightly paired rounds
        assert targets[tid]["paired"]["rounds"] == 2
        assert targets[tid]["value"] == targets[tid]["paired"]["ratio"]
    assert targets["redis_sync_hit_allowed_vs_raw_evalsha"]["status"] == "not measured"
    assert report["memory_per_account"]["memory"]["ours_account_bytes"] > 0
    assert any(r["baseline"] == "limits_moving/hit_allowed" for r in report["ratios"])


@pytest.mark.redis
def test_redis(tmp_path: Path) -> None:
    report = run(tmp_path, "redis", "--no-chart")
    cases = by_id(report)
    for face in ("sync", "async"):
        for op in OPS:
            assert f"redis/{face}/10k/single/ours/{op}" in cases
        for floor in ("raw_evalsha", "raw_ping"):
            assert f"redis/{face}/10k/single/{floor}/floor" in cases
    assert "redis/sync/10k/single/limits_moving/hit_refused" in cases
    assert "redis/sync/10k/threads16/ours/hit_allowed" in cases
    assert "redis/async/10k/tasks50/raw_evalsha/floor" in cases
    assert "redis/sync/10k/single/ladder/L4_ours_hit" in cases
    targets = {t["id"]: t for t in report["targets"]}
    assert targets["redis_sync_request_code_vs_raw_evalsha"]["status"] in ("met", "missed")
    assert targets["redis_sync_request_code_vs_raw_evalsha"]["paired"]["rounds"] == 2
    assert targets["redis_async_request_code_vs_raw_evalsha"]["paired"] is None  # turns only
    assert targets["redis_bytes_per_account"]["status"] in ("met", "missed")
    assert report["meta"]["redis_server"]["redis"]
    bench = report["redis_benchmark"]["redis"]
    assert bench["measured"] or bench["why"].startswith("not measured")
