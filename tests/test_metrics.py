"""``ameli_otp.metrics``: the Prometheus sink counts each event by kind, reason and factor."""

from __future__ import annotations

import asyncio
import importlib
import sys

import pytest

from ameli_otp import AsyncMemoryBackend, AsyncSecurityCodes, MemoryBackend, Reason, SecurityCodes
from ameli_otp.events import EventKind
from ameli_otp.testing import FakeClock

prometheus_client = pytest.importorskip("prometheus_client")
from ameli_otp.metrics import LABELS, prometheus_hook  # noqa: E402 - after the skip

SECRET = b"k" * 32
NIR = "1850775123456"


def count(registry: object, kind: str, reason: str = "", prefix: str = "ameli_otp") -> float:
    value = registry.get_sample_value(  # type: ignore[attr-defined]
        f"{prefix}_events_total", {"kind": kind, "reason": reason, "factor": "email"}
    )
    return 0.0 if value is None else value


def wrong(code: str) -> str:
    return str((int(code) + 1) % 10 ** len(code)).zfill(len(code))


def test_r9_4_a_flow_is_counted_by_kind_and_reason(clock: FakeClock) -> None:
    registry = prometheus_client.CollectorRegistry()
    codes = SecurityCodes(
        MemoryBackend(), secret=SECRET, clock=clock, on_event=prometheus_hook(registry)
    )
    issued = codes.request_code(NIR)
    assert codes.verify_code(NIR, "12").reason == Reason.MALFORMED_CODE  # type: ignore[union-attr]
    token = codes.verify_code(NIR, issued.code, remember_device=True, fingerprint="home")
    # ten wrong codes in a row lock the account; three per code, so four codes
    for guess in range(10):
        if guess % 3 == 0:
            issued = codes.request_code(NIR)
        codes.verify_code(NIR, wrong(issued.code))
    codes.request_code(NIR)  # refused: locked
    assert codes.unlock(NIR) is True
    assert codes.unlock(NIR) is False  # changes nothing: no event
    codes.inspect(NIR)  # a read: no event
    assert codes.forget_device(NIR, token.device_token) is True  # type: ignore[union-attr]

    assert count(registry, "code_issued") == 5
    assert count(registry, "code_verified") == 1
    assert count(registry, "code_rejected", "malformed_code") == 1
    assert count(registry, "code_rejected", "wrong_code") == 6
    assert count(registry, "code_rejected", "too_many_attempts") == 3
    assert count(registry, "account_locked", "account_locked") == 1
    assert count(registry, "code_refused", "account_locked") == 1
    assert count(registry, "account_unlocked") == 1
    assert count(registry, "device_revoked") == 1
    assert count(registry, "all_devices_revoked") == 0

    scrape = prometheus_client.generate_latest(registry).decode()
    assert "# TYPE ameli_otp_events_total counter" in scrape
    assert (
        'ameli_otp_events_total{factor="email",kind="account_locked",reason="account_locked"} 1.0'
        in scrape
    )
    # the labels take a few values known in advance: never an account, a ref or a code
    assert NIR not in scrape
    assert "account_ref" not in scrape


def test_every_kind_is_a_label_value(clock: FakeClock) -> None:
    registry = prometheus_client.CollectorRegistry()
    codes = SecurityCodes(
        MemoryBackend(), secret=SECRET, clock=clock, on_event=prometheus_hook(registry)
    )
    issued = codes.request_code(NIR)
    codes.verify_code(NIR, issued.code, remember_device=True, fingerprint="home")
    assert codes.forget_all_devices(NIR) == 1
    assert codes.forget_all_devices(NIR) == 0  # nothing: no event
    assert count(registry, "all_devices_revoked") == 1
    assert set(LABELS) == {"kind", "reason", "factor"}
    assert {str(k) for k in EventKind} >= {"all_devices_revoked", "code_issued"}


def test_hooks_on_one_registry_share_the_counter(clock: FakeClock) -> None:
    registry = prometheus_client.CollectorRegistry()
    first, second = prometheus_hook(registry), prometheus_hook(registry)
    a = SecurityCodes(MemoryBackend(), secret=SECRET, clock=clock, on_event=first)
    b = SecurityCodes(MemoryBackend(), secret=SECRET, clock=clock, on_event=second)
    a.request_code(NIR)
    b.request_code(NIR)
    assert count(registry, "code_issued") == 2


def test_the_async_face_counts_the_same(clock: FakeClock) -> None:
    registry = prometheus_client.CollectorRegistry()
    codes = AsyncSecurityCodes(
        AsyncMemoryBackend(), secret=SECRET, clock=clock, on_event=prometheus_hook(registry)
    )

    async def flow() -> None:
        issued = await codes.request_code(NIR)
        await codes.verify_code(NIR, wrong(issued.code))  # type: ignore[union-attr]

    asyncio.run(flow())
    assert count(registry, "code_issued") == 1
    assert count(registry, "code_rejected", "wrong_code") == 1


def test_a_prefix_of_your_own(clock: FakeClock) -> None:
    registry = prometheus_client.CollectorRegistry()
    codes = SecurityCodes(
        MemoryBackend(),
        secret=SECRET,
        clock=clock,
        on_event=prometheus_hook(registry, prefix="login"),
    )
    codes.request_code(NIR)
    assert count(registry, "code_issued", prefix="login") == 1
    assert count(registry, "code_issued") == 0


def test_the_default_registry(clock: FakeClock) -> None:
    prefix = "ameli_otp_test_default"
    codes = SecurityCodes(
        MemoryBackend(), secret=SECRET, clock=clock, on_event=prometheus_hook(prefix=prefix)
    )
    before = count(prometheus_client.REGISTRY, "code_issued", prefix=prefix)
    codes.request_code(NIR)
    assert count(prometheus_client.REGISTRY, "code_issued", prefix=prefix) == before + 1


def test_bad_prefixes_are_refused() -> None:
    registry = prometheus_client.CollectorRegistry()
    with pytest.raises(TypeError, match="prefix"):
        prometheus_hook(registry, prefix=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="metric name"):
        prometheus_hook(registry, prefix="not a name")


def test_a_name_taken_by_another_collector_is_refused() -> None:
    registry = prometheus_client.CollectorRegistry()
    prometheus_client.Counter("ameli_otp_events", "someone else's", registry=registry)
    with pytest.raises(ValueError, match="Duplicated"):
        prometheus_hook(registry)


def test_without_prometheus_client_the_import_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    monkeypatch.delitem(sys.modules, "ameli_otp.metrics")
    with pytest.raises(ImportError, match=r"pip install 'ameli-otp\[metrics\]'"):
        importlib.import_module("ameli_otp.metrics")
