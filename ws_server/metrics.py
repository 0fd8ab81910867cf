"""
Prometheus metrics of the WebSocket server, in the text exposition format.

``GET /metrics`` on the WebSocket port answers them, or, with
``NOTIFICATIONS_METRICS_PORT`` set, a separate port bound to
``NOTIFICATIONS_METRICS_HOST`` does (and the WebSocket port says 404).

``runwsserver --workers N`` runs prometheus-client's multiprocess mode: the
supervisor gives every worker one ``PROMETHEUS_MULTIPROC_DIR`` (its own
temporary directory unless the environment names one), each worker writes
its values to files there, and whoever serves ``/metrics`` adds them up, so
any worker's answer covers all of them. The directory must be set before
this module is imported, which is why the supervisor sets it in the
workers' environment rather than at run time.

Updates happen where a batch already is: a fan-out counts its deliveries
once per run of frames, not once per client.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.multiprocess import MultiProcessCollector

__all__ = [
    "AUTHENTICATIONS",
    "CATCHUPS",
    "CLOSES",
    "CONNECTIONS",
    "CONTENT_TYPE",
    "DATABASE_ERRORS",
    "DELIVERIES",
    "EVENTS_RELAYED",
    "HANDSHAKE_SECONDS",
    "MULTIPROCESS_DIR",
    "REDIS_RECONNECTS",
    "REFUSALS",
    "RELAY_LAG_SECONDS",
    "exposition",
    "multiprocess_dir",
    "serve_separately",
]

#: The environment variable prometheus-client's multiprocess mode reads.
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"

CONTENT_TYPE = CONTENT_TYPE_LATEST

CONNECTIONS = Gauge(
    "notifications_connections",
    "Authenticated WebSocket connections open now.",
    multiprocess_mode="livesum",
)
AUTHENTICATIONS = Counter(
    "notifications_authentications",
    "Hellos answered, by result: ok, failed (bad or expired credentials), "
    "unavailable (database or Redis down: 1013).",
    ["result"],
)
REFUSALS = Counter(
    "notifications_refusals",
    "Connections refused before they were served, by reason.",
    ["reason"],
)
HANDSHAKE_SECONDS = Histogram(
    "notifications_handshake_seconds",
    "Seconds from TCP accept to the welcome frame.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
CLOSES = Counter(
    "notifications_closes",
    "Connections the server closed or refused with a close code, by code "
    "(slow clients, limits, revocations, shutdown; 1006: aborted without "
    "a close frame).",
    ["code"],
)
EVENTS_RELAYED = Counter(
    "notifications_events_relayed",
    "Events read from the Redis stream and handed to the fan-out.",
)
DELIVERIES = Counter(
    "notifications_deliveries",
    "Event frames written to connections (one per event and recipient).",
)
CATCHUPS = Counter(
    "notifications_catchups",
    "Events delivered from the database because the stream did not bring "
    "them (reconciliation).",
)
HOLDS = Counter(
    "notifications_holds",
    "Times a connection was held until a re-check settled its rights: a "
    "user or group change read, a lost stretch of the stream, or a "
    "handshake whose lookup predates either.",
)
RELAY_LAG_SECONDS = Histogram(
    "notifications_relay_lag_seconds",
    "Seconds from the publish reaching Redis (right after the commit) to "
    "the event's frames being written; Redis's clock against this host's.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0),
)
REDIS_RECONNECTS = Counter(
    "notifications_redis_reconnects",
    "Times the relay connected to Redis again after losing it.",
)
DATABASE_ERRORS = Counter(
    "notifications_database_errors",
    "Database calls that failed or timed out.",
)


def _registry() -> CollectorRegistry:
    """The registry to expose: this process's, or every worker's added up."""
    if MULTIPROCESS_DIR not in os.environ:
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


def exposition() -> bytes:
    """The metrics in the text format, for ``GET /metrics``."""
    return generate_latest(_registry())


def serve_separately(host: str, port: int) -> None:
    """Serve ``/metrics`` on ``host:port`` from a thread of this process."""
    start_http_server(port, addr=host, registry=_registry())


@contextmanager
def multiprocess_dir() -> Iterator[str]:
    """
    The directory the workers share, named in this process's environment so
    that they inherit it: the one ``PROMETHEUS_MULTIPROC_DIR`` names, emptied
    (values of an earlier run would be added to this one's), or a new
    temporary one, removed at the end.
    """
    given = os.environ.get(MULTIPROCESS_DIR)
    if given:
        for name in os.listdir(given):
            if name.endswith(".db"):
                os.remove(os.path.join(given, name))
        yield given
        return
    path = tempfile.mkdtemp(prefix="runwsserver-metrics-")
    os.environ[MULTIPROCESS_DIR] = path
    try:
        yield path
    finally:
        del os.environ[MULTIPROCESS_DIR]
        shutil.rmtree(path, ignore_errors=True)
