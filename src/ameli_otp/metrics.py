"""Event counters for Prometheus (RULES R9.4): what the operators' dashboards scrape.

Needs the ``metrics`` extra (``pip install 'ameli-otp[metrics]'``, which brings
``prometheus-client``)::

    from ameli_otp.events import logging_hook
    from ameli_otp.metrics import prometheus_hook

    codes = SecurityCodes(backend, secret=SECRET, on_event=[logging_hook(), prometheus_hook()])

and expose the registry as the service already does (``prometheus_client.make_wsgi_app()``,
``start_http_server(9100)``...). One counter, ``ameli_otp_events_total``, with the
labels ``kind`` (an :class:`~ameli_otp.events.EventKind`), ``reason`` (a
:class:`~ameli_otp.Reason`, ``""`` when the event has none) and ``factor``
(``"email"`` for the security codes). Every label takes a handful of values known
in advance, so the counter has a few dozen series at most, never one per account.

Why prometheus-client: it is what the dashboards of identity servers (Keycloak's
among them) scrape, it is small and pure Python, it ships its types, and its
counters are safe across threads. OpenTelemetry can read Prometheus metrics (its
collector scrapes them), and a hook of a few lines can feed an OpenTelemetry
meter directly: an event hook is just a callable (:mod:`ameli_otp.events`).
"""

from __future__ import annotations

import re
import threading
import weakref
from collections.abc import Callable

try:
    from prometheus_client import REGISTRY, CollectorRegistry, Counter
except ImportError as exc:  # the base install has only attrs
    raise ImportError(
        "ameli_otp.metrics needs prometheus-client: pip install 'ameli-otp[metrics]'"
    ) from exc

from .events import Event

__all__ = ["LABELS", "prometheus_hook"]

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")  # a classic metric name, as dashboards expect

#: the labels of ``<prefix>_events_total``, in this order
LABELS: tuple[str, ...] = ("kind", "reason", "factor")

# one counter per (registry, prefix): a second hook on the same registry counts into
# the same counter (a sync and an async face in one service) instead of raising
_counters: weakref.WeakKeyDictionary[CollectorRegistry, dict[str, Counter]] = (
    weakref.WeakKeyDictionary()
)
_lock = threading.Lock()


def _counter(registry: CollectorRegistry, prefix: str) -> Counter:
    with _lock:
        mine = _counters.setdefault(registry, {})
        counter = mine.get(prefix)
        if counter is None:
            counter = Counter(
                f"{prefix}_events",  # prometheus-client adds _total
                "Decisions of ameli_otp (one per call that changed an account or refused), "
                "by event kind, refusal reason and factor.",
                LABELS,
                registry=registry,
            )
            mine[prefix] = counter
        return counter


def prometheus_hook(
    registry: CollectorRegistry | None = None, prefix: str = "ameli_otp"
) -> Callable[[Event], None]:
    """A hook that counts each event in the counter ``<prefix>_events_total``.

    ``registry`` defaults to prometheus-client's global ``REGISTRY`` (what
    ``generate_latest()`` and ``start_http_server`` expose). Hooks made for the same
    registry and prefix share one counter. Raises ``TypeError`` if ``prefix`` is not
    a str, ``ValueError`` if it is not a classic metric name (``[a-zA-Z_:][a-zA-Z0-9_:]*``)
    or if another collector of that name is already in ``registry``.
    """
    if not isinstance(prefix, str):
        raise TypeError(f"prefix must be a str, not {type(prefix).__name__}")
    if not _NAME.fullmatch(prefix):
        raise ValueError(f"prefix must be a metric name ([a-zA-Z_:][a-zA-Z0-9_:]*), got {prefix!r}")
    counter = _counter(REGISTRY if registry is None else registry, prefix)

    def hook(event: Event) -> None:
        reason = "" if event.reason is None else str(event.reason)
        counter.labels(str(event.kind), reason, event.factor).inc()

    return hook
