"""
Run the WebSocket server: handshake checks, the relay, and a clean shutdown.

Shutdown order: stop the background loops (relay, sweep, re-check,
presence, which removes this process from Redis), stop
accepting and close every connection with 1001 (going away; clients
reconnect elsewhere and resume) within ``NOTIFICATIONS_SHUTDOWN_TIMEOUT``,
then close Redis. SIGINT and SIGTERM only set an event.
"""

from __future__ import annotations

import asyncio
import functools
import http
import logging
import math
import signal
from collections.abc import Coroutine, Sequence
from typing import Any

import redis.asyncio as aioredis
from django.conf import settings as django_settings
from django.http.cookie import parse_cookie
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.frames import CloseCode
from websockets.http11 import Request, Response
from websockets.typing import Origin

from notifications.broker import stream_key
from notifications.conf import settings

from . import lifecycle, metrics
from .acks import Acknowledgements
from .canary import Canary
from .connection import ConnectionLimits, guarded, guarded_connection
from .core import Core
from .db import start_orm_threads
from .delivery import Dispatcher, initial_ledger
from .handler import Handler, HandlerConfig
from .maintenance import Rechecker
from .presence import Presence
from .readiness import Readiness
from .reconcile import Sweeper
from .relay import Relay
from .revocations import Revocations

__all__ = ["run_server"]

logger = logging.getLogger(__name__)

WEBSOCKET_PATH = "/ws"
HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"
METRICS_PATH = "/metrics"


#: Seconds a revocation is remembered for connections still authenticating
#: (at least twice the bound on their database lookup).
REVOCATION_HORIZON = 60.0

#: A connection in doubt (see ws_server.core) whose re-checks keep failing
#: is closed with "try again later" after this many database timeouts:
#: two re-check attempts and the wait between them.
DOUBT_TIMEOUT_FACTOR = 2.5

#: Pending connections the kernel queues for us (capped by net.core.somaxconn).
ACCEPT_BACKLOG = 2048
# At shutdown the open connections are closed a batch every
# SHUTDOWN_BATCH_INTERVAL seconds, over this share of SHUTDOWN_TIMEOUT: their
# clients reconnect to the other processes spread over seconds instead of all
# in one millisecond (jitter on the client only spreads what arrives at
# once). The rest of the timeout is for the last closing handshakes.
SHUTDOWN_SPREAD = 0.5
SHUTDOWN_BATCH_INTERVAL = 0.1
# Seconds the background loops get to finish once cancelled at shutdown.
CANCEL_TIMEOUT = 2.0


def process_request(
    connection: ServerConnection, request: Request, *, readiness: Readiness
) -> Response | None:
    """
    Refuse oversize headers and unknown paths, answer health checks and
    metrics, note cookies.
    """
    connection = guarded(connection)
    # websockets accepts 128 headers of 8 KB; each connection would keep them.
    size = sum(len(name) + len(value) for name, value in request.headers.raw_items())
    if size > settings.WS_MAX_HEADER_BYTES:
        lifecycle.refused(
            connection,
            "headers_too_large",
            f"request headers of {size} bytes, over {settings.WS_MAX_HEADER_BYTES}",
            status=http.HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
        )
        return connection.respond(
            http.HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
            "Request Header Fields Too Large\n",
        )
    path = request.path.partition("?")[0]
    if path == HEALTH_PATH:
        if readiness.alive():
            return connection.respond(http.HTTPStatus.OK, "OK\n")
        return connection.respond(
            http.HTTPStatus.SERVICE_UNAVAILABLE, "ORM threads wedged\n"
        )
    if path == READY_PATH:
        ready, body = readiness.report()
        status = http.HTTPStatus.OK if ready else http.HTTPStatus.SERVICE_UNAVAILABLE
        return _respond(connection, status, body, "application/json")
    if path == METRICS_PATH and not settings.METRICS_PORT:
        text = metrics.exposition().decode()
        return _respond(connection, http.HTTPStatus.OK, text, metrics.CONTENT_TYPE)
    if path != WEBSOCKET_PATH:
        return connection.respond(http.HTTPStatus.NOT_FOUND, "Not Found\n")
    # Clients and proxies may split cookies over several headers (HTTP/2 does).
    cookies = parse_cookie("; ".join(request.headers.get_all("Cookie")))
    # Checked in the handler, once the Origin check has passed.
    connection.session_key = cookies.get(django_settings.SESSION_COOKIE_NAME)
    return None


def process_response(
    connection: ServerConnection, request: Request, response: Response
) -> None:
    """Log handshakes that websockets refused, such as a disallowed Origin."""
    refusal = connection.protocol.handshake_exc
    if refusal is not None:
        lifecycle.refused(
            guarded(connection),
            "handshake",
            str(refusal),
            status=response.status_code,
        )


def _respond(
    connection: ServerConnection, status: http.HTTPStatus, text: str, content_type: str
) -> Response:
    """An HTTP response with ``text`` as ``content_type``, in UTF-8."""
    response = connection.respond(status, text)
    # respond() set text/plain; Headers would keep both.
    del response.headers["Content-Type"]
    response.headers["Content-Type"] = content_type
    return response


def allowed_origins() -> Sequence[Origin | None]:
    """Browsers always send Origin; clients without one can't hijack a cookie."""
    return [Origin(origin) for origin in settings.WS_ORIGINS] + [None]


async def run_server(host: str, port: int, *, reuse_port: bool = False) -> None:
    """Serve until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    start_orm_threads(loop)

    core = Core(
        ledger=await initial_ledger(),
        revocations=Revocations(
            horizon=max(REVOCATION_HORIZON, 2 * settings.DB_TIMEOUT)
        ),
        pending_limit=settings.WS_PENDING_LIMIT,
        resume_limit=settings.RESUME_LIMIT,
        doubt_timeout=DOUBT_TIMEOUT_FACTOR * settings.DB_TIMEOUT,
    )
    dispatcher = Dispatcher(core, max_buffer=settings.WS_MAX_BUFFER)
    rechecker = Rechecker(dispatcher, interval=settings.RECHECK_INTERVAL)
    sweeper = Sweeper(
        dispatcher,
        asyncio.Event(),
        interval=settings.SWEEP_INTERVAL,
        gap_timeout=settings.GAP_TIMEOUT,
    )
    redis = aioredis.Redis.from_url(
        settings.REDIS_URL,
        socket_connect_timeout=settings.REDIS_TIMEOUT,
        socket_timeout=settings.REDIS_TIMEOUT,
    )
    stream = stream_key()
    canary = Canary(
        redis,
        stream,
        sweeper.relay_connected,
        interval=settings.CANARY_INTERVAL,
        timeout=settings.CANARY_TIMEOUT,
        maxlen=settings.STREAM_MAXLEN,
    )
    relay = Relay(settings.REDIS_URL, stream, dispatcher, sweeper, canary)
    acknowledgements = Acknowledgements()
    handler = Handler(
        dispatcher,
        redis,
        HandlerConfig(
            auth_timeout=settings.AUTH_TIMEOUT,
            # Each lookup is bounded by DB_TIMEOUT; the handshake as a whole,
            # queues included, by the same.
            handshake_timeout=settings.DB_TIMEOUT,
            resume_limit=settings.RESUME_LIMIT,
            rate_limit=settings.WS_RATE_LIMIT,
            rate_burst=settings.WS_RATE_BURST,
            max_connections_per_user=settings.WS_MAX_CONNECTIONS_PER_USER,
        ),
        acknowledgements,
    )
    try:
        async with serve(
            handler,
            host,
            port,
            process_request=functools.partial(
                process_request, readiness=Readiness(sweeper, canary)
            ),
            process_response=process_response,
            origins=allowed_origins(),
            compression="deflate" if settings.WS_COMPRESSION else None,
            max_size=settings.WS_MAX_MESSAGE_SIZE,
            # A client we close for flooding has its close frame queued behind
            # frames we no longer read: don't wait long for it.
            close_timeout=2,
            ping_interval=settings.WS_PING_INTERVAL,
            # Sockets that never finish the HTTP upgrade; "hello" has its own.
            open_timeout=settings.WS_OPEN_TIMEOUT,
            # Bounds below the handler: connections per address and per file
            # descriptor limit, ping/pong rate, buffered output.
            create_connection=guarded_connection(
                ConnectionLimits(
                    control_rate=settings.WS_CONTROL_RATE_LIMIT,
                    control_burst=settings.WS_CONTROL_RATE_BURST,
                    max_buffer=settings.WS_MAX_BUFFER,
                    max_per_address=settings.WS_MAX_CONNECTIONS_PER_ADDRESS,
                )
            ),
            reuse_port=reuse_port,
            # After a restart every browser comes back at once: a short accept
            # queue would drop their SYNs and make them retry a second later.
            backlog=ACCEPT_BACKLOG,
        ) as server:
            _log_listening(server)
            await _serve_until_stopped(
                {
                    "relay": relay.run(),
                    "canary": canary.run(),
                    "sweep": sweeper.run(),
                    "recheck": rechecker.run(),
                    "acks": acknowledgements.run(),
                    "presence": Presence(
                        core, redis, interval=settings.PRESENCE_INTERVAL
                    ).run(),
                },
                stop,
            )
            logger.info("shutting down: closing %d connection(s)", len(core))
            await _drain(server)
    finally:
        await redis.aclose()
    logger.info("stopped")


async def _serve_until_stopped(
    loops: dict[str, Coroutine[Any, Any, None]], stop: asyncio.Event
) -> None:
    """Run the background loops until a stop is requested or one of them fails."""
    workers: list[asyncio.Task[object]] = [
        asyncio.create_task(loop, name=name) for name, loop in loops.items()
    ]
    stop_task = asyncio.create_task(stop.wait(), name="stop")
    tasks: list[asyncio.Task[object]] = [*workers, stop_task]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for worker in workers:
            if worker.done():
                # The loops ride out Redis and database outages; one that
                # ends has a bug: die loudly rather than serve clients who
                # would never get an event.
                worker.result()
    finally:
        for task in tasks:
            task.cancel()
        # Bounded: a loop that swallowed its cancellation must not keep the
        # process from draining and exiting; it is named instead.
        _done, stuck = await asyncio.wait(tasks, timeout=CANCEL_TIMEOUT)
        for task in stuck:
            logger.error(
                "the %s loop ignored its cancellation; leaving it", task.get_name()
            )


async def _drain(server: Server) -> None:
    """
    Stop accepting, close every connection with 1001 in batches spread over
    part of the timeout, and drop whoever lingers past the timeout.
    """
    timeout = settings.SHUTDOWN_TIMEOUT
    try:
        async with asyncio.timeout(timeout):
            await _close_spread(server, over=timeout * SHUTDOWN_SPREAD)
            server.close()
            await server.wait_closed()
    except TimeoutError:
        lingering = server.connections
        logger.warning(
            "%d connection(s) still open after %ss; dropping them",
            len(lingering),
            timeout,
        )
        for connection in lingering:
            connection.transport.abort()


async def _close_spread(server: Server, *, over: float) -> None:
    """Close the open connections with 1001, a batch at a time, within ``over``."""
    server.server.close()  # no new connections
    connections = list(server.connections)
    batches = max(1, math.floor(over / SHUTDOWN_BATCH_INTERVAL))
    size = max(1, math.ceil(len(connections) / batches))
    closing = []
    for start in range(0, len(connections), size):
        if start:
            await asyncio.sleep(SHUTDOWN_BATCH_INTERVAL)
        for connection in connections[start : start + size]:
            lifecycle.closing(guarded(connection), CloseCode.GOING_AWAY)
            closing.append(asyncio.create_task(connection.close(CloseCode.GOING_AWAY)))
    if closing:
        await asyncio.wait(closing)


def _log_listening(server: Server) -> None:
    loop = type(asyncio.get_running_loop()).__module__.partition(".")[0]
    for sock in server.sockets:
        host, port = sock.getsockname()[:2]
        logger.info(
            "listening on ws://%s:%d%s (event loop: %s)",
            host,
            port,
            WEBSOCKET_PATH,
            loop,
        )
