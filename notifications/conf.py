"""
App settings with their defaults, in one place.

Every setting is read from ``django.conf.settings`` under a ``NOTIFICATIONS_``
prefix at access time, so tests can override them with ``override_settings``.
"""

from typing import Any

from django.conf import settings as django_settings

__all__ = ["settings"]

#: Where Redis is when neither NOTIFICATIONS_REDIS_URL nor REDIS_URL says.
LOCAL_REDIS_URL = "redis://127.0.0.1:6379/0"

DEFAULTS: dict[str, Any] = {
    # The Redis that carries events from Django to every WebSocket process.
    # Empty: the project-wide REDIS_URL setting, else LOCAL_REDIS_URL.
    "REDIS_URL": "",
    # Prefix of every Redis key this app uses; tests give each run its own.
    "REDIS_PREFIX": "notifications",
    # Approximate cap on the Redis stream's length (XADD MAXLEN ~).
    "STREAM_MAXLEN": 10_000,
    # Public WebSocket URL for browsers; "" means the page's host on WS_PORT.
    "WS_URL": "",
    # The port runwsserver binds unless --port says otherwise, and the one
    # pages connect to when WS_URL is empty: one setting moves both.
    "WS_PORT": 8001,
    # Origins allowed to open a WebSocket (cross-site WebSocket hijacking).
    "WS_ORIGINS": [],
    # Lifetime of a WebSocket ticket, in seconds.
    "TICKET_MAX_AGE": 30,
    # Seconds an unauthenticated socket may wait before sending "hello".
    "AUTH_TIMEOUT": 5.0,
    # Most events replayed on resume before the server asks for a resync.
    "RESUME_LIMIT": 200,
    # Largest client message accepted, in bytes (larger: close 1009).
    "WS_MAX_MESSAGE_SIZE": 4_096,
    # permessage-deflate: off by default; notification frames are small and
    # compressing each frame per connection costs memory and CPU on broadcast.
    "WS_COMPRESSION": False,
    # Bytes queued for one client before it is closed as too slow (4010).
    "WS_MAX_BUFFER": 1_048_576,
    # Live frames held for a client while it replays what it missed.
    "WS_PENDING_LIMIT": 1_000,
    # Client messages allowed per second on one connection, and the burst
    # allowed above that rate before the connection is closed (4008).
    "WS_RATE_LIMIT": 10.0,
    "WS_RATE_BURST": 30,
    # Open connections allowed per user on one ws_server process (4009).
    "WS_MAX_CONNECTIONS_PER_USER": 20,
    # Seconds between the server's pings on an idle connection: keepalive for
    # proxies that close quiet sockets (nginx after 60 s), and how a dead
    # client is noticed.
    "WS_PING_INTERVAL": 20.0,
    # Seconds a new TCP connection has to finish the WebSocket handshake.
    "WS_OPEN_TIMEOUT": 10.0,
    # Open TCP connections allowed from one client address (0: no cap). Behind
    # a proxy every client has the proxy's address: raise it or set 0 there.
    "WS_MAX_CONNECTIONS_PER_ADDRESS": 1_000,
    # Total bytes of the handshake's request headers (larger: HTTP 431).
    "WS_MAX_HEADER_BYTES": 16_384,
    # Control frames (ping, pong) a client may send per second, and the burst
    # allowed above that rate before the connection is closed (4008).
    "WS_CONTROL_RATE_LIMIT": 5.0,
    # Most control frames a client may send in one burst before 4008.
    "WS_CONTROL_RATE_BURST": 20,
    # Django -> Redis: seconds one publish may wait (connect or answer), and
    # seconds publishing is skipped after a failure (the circuit breaker), so
    # a sick Redis costs one request at most this long. The ws_server
    # reconciles from the database whatever was not published.
    "PUBLISH_TIMEOUT": 0.1,
    "PUBLISH_COOLDOWN": 5.0,
    # ws_server: seconds between two canaries the relay publishes to the
    # stream, and seconds one may take to come back through it before the
    # relay counts its read as dead (/readyz fails, the relay reconnects).
    "CANARY_INTERVAL": 1.0,
    "CANARY_TIMEOUT": 3.0,
    # ws_server: seconds between reconciliation sweeps of the event table.
    "SWEEP_INTERVAL": 0.5,
    # Seconds an event id below the newest one seen may stay uncommitted (a
    # transaction still open, or rolled back) before reconciliation stops
    # waiting for it.
    "GAP_TIMEOUT": 60.0,
    # Seconds within which every open connection is authenticated again, to
    # catch changes no signal announced (QuerySet.update, raw SQL, a lost
    # message). Spread over the interval in batches.
    "RECHECK_INTERVAL": 60.0,
    # Bounds on the ws_server's waits: one database lookup (handshake, resume
    # catch-up, re-check), one Redis command (ticket redemption), and the
    # drain of open connections at shutdown.
    "DB_TIMEOUT": 10.0,
    "REDIS_TIMEOUT": 2.0,
    "SHUTDOWN_TIMEOUT": 10.0,
    # Seconds between two writes of a ws_server's presence (who is connected)
    # to Redis; a killed process stops counting 3 intervals after its last.
    "PRESENCE_INTERVAL": 5.0,
    # ws_server: the port of GET /metrics (Prometheus); 0 serves it on the
    # WebSocket port, any other on that port of METRICS_HOST only.
    "METRICS_PORT": 0,
    "METRICS_HOST": "127.0.0.1",
    # Event types application code may push (notifications.live), by name:
    # {"order.status": {"delivery": "durable", "check": "app.module.func"}}.
    "EVENT_TYPES": {},
    # The admin's activity stream (notifications.activity): off unless set.
    # On, every admin action reaches the staff who may view it in the admin.
    "ACTIVITY": False,
    # Most staff checked one by one (their request through the ModelAdmin's
    # get_queryset and view permission) for an action on a model whose
    # admin restricts what staff see; the most recently logged in first.
    "ACTIVITY_MAX_VIEWERS": 100,
    # Largest push payload, in bytes of JSON (larger: InvalidPayload).
    "PUSH_MAX_BYTES": 8_192,
    # Seconds a durable push is kept for resuming clients; the purgepushes
    # command deletes older ones.
    "PUSH_RETENTION": 86_400,
}


class AppSettings:
    @property
    def REDIS_URL(self) -> str:
        """NOTIFICATIONS_REDIS_URL, else the project's REDIS_URL, else local."""
        return (
            getattr(django_settings, "NOTIFICATIONS_REDIS_URL", "")
            or getattr(django_settings, "REDIS_URL", "")
            or LOCAL_REDIS_URL
        )

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"unknown notifications setting: {name}")
        return getattr(django_settings, f"NOTIFICATIONS_{name}", DEFAULTS[name])


settings = AppSettings()
