"""
Run the WebSocket server: handshake checks, the relay, and a clean shutdown.

Shutdown order: stop accepting and close every connection with 1001 (going
away; clients reconnect elsewhere and resume), then stop the relay, then close
Redis. SIGINT and SIGTERM only set an event.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import logging
import signal
from collections.abc import Sequence

import redis.asyncio as aioredis
from django.conf import settings as django_settings
from django.http.cookie import parse_cookie
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response
from websockets.typing import Origin

from notifications.broker import stream_key
from notifications.conf import settings

from .delivery import Dispatcher
from .handler import Handler, HandlerConfig
from .hub import Hub
from .relay import Relay

__all__ = ["run_server"]

logger = logging.getLogger(__name__)

WEBSOCKET_PATH = "/ws"
HEALTH_PATH = "/healthz"


def process_request(connection: ServerConnection, request: Request) -> Response | None:
    """Answer health checks, refuse unknown paths, note the session cookie."""
    path = request.path.partition("?")[0]
    if path == HEALTH_PATH:
        return connection.respond(http.HTTPStatus.OK, "OK\n")
    if path != WEBSOCKET_PATH:
        return connection.respond(http.HTTPStatus.NOT_FOUND, "Not Found\n")
    cookies = parse_cookie(request.headers.get("Cookie", ""))
    # Checked in the handler, once the Origin check has passed.
    connection.session_key = cookies.get(django_settings.SESSION_COOKIE_NAME)  # type: ignore[attr-defined]
    return None


def allowed_origins() -> Sequence[Origin | None]:
    """Browsers always send Origin; clients without one can't hijack a cookie."""
    return [Origin(origin) for origin in settings.WS_ORIGINS] + [None]


async def run_server(host: str, port: int) -> None:
    """Serve until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    hub = Hub()
    dispatcher = Dispatcher(
        hub, max_buffer=settings.WS_MAX_BUFFER, pending_limit=settings.WS_PENDING_LIMIT
    )
    await dispatcher.start()
    relay = Relay(django_settings.REDIS_URL, stream_key(), dispatcher)
    redis = aioredis.Redis.from_url(django_settings.REDIS_URL, socket_connect_timeout=2)
    handler = Handler(
        hub,
        redis,
        HandlerConfig(
            auth_timeout=settings.AUTH_TIMEOUT, resume_limit=settings.RESUME_LIMIT
        ),
    )
    try:
        async with serve(
            handler,
            host,
            port,
            process_request=process_request,
            origins=allowed_origins(),
            compression="deflate" if settings.WS_COMPRESSION else None,
            max_size=settings.WS_MAX_MESSAGE_SIZE,
        ) as server:
            _log_listening(server)
            await _serve_until_stopped(relay, stop)
            logger.info("shutting down: closing %d connection(s)", len(hub))
    finally:
        await redis.aclose()
    logger.info("stopped")


async def _serve_until_stopped(relay: Relay, stop: asyncio.Event) -> None:
    relay_task = asyncio.create_task(relay.run(), name="relay")
    stop_task = asyncio.create_task(stop.wait(), name="stop")
    try:
        await asyncio.wait({relay_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        if relay_task.done():
            # The relay only returns by failing: let the process die loudly
            # rather than serve clients who would never get an event.
            relay_task.result()
    finally:
        for task in (relay_task, stop_task):
            task.cancel()
        for task in (relay_task, stop_task):
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _log_listening(server: Server) -> None:
    for sock in server.sockets:
        host, port = sock.getsockname()[:2]
        logger.info("listening on ws://%s:%d%s", host, port, WEBSOCKET_PATH)
