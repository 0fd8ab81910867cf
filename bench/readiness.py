"""
When a server under test is up: what a client would find, not its log.

ws_server answers ``GET /readyz``: 200 once its relay reads the stream, its
canary comes back and the database answered. With ``--workers`` the workers
share the port and the kernel hands each new connection to one of them, so a
200 speaks for one worker: wait until every worker listens, then for 200 on
``PROBES_PER_WORKER`` new connections per worker in a row (a worker still
unready would be missed with odds of (1 - 1/w) ** (8 w), under 1 in 2,900).

The raw server and Channels have no such endpoint: one is up when a client
is welcomed (handshake with the session cookie and Origin, ``hello``,
``welcome``), as the load client's connections will be. That proves the
handshake path, not that the raw server's relay reads yet; a relay that
didn't would show up as losses in the measurement, not pass unseen.
"""

from __future__ import annotations

import json

import psutil
from django.conf import settings
from websockets.exceptions import WebSocketException
from websockets.sync.client import connect

from bench.processes import Child
from bench.servers import ServerSpec
from scripts.probes import Answer, http_ok

__all__ = ["wait_until_serving"]

#: Seconds a server may take to serve, first imports included.
SERVE_TIMEOUT = 30.0
PROBES_PER_WORKER = 8
HOST = "127.0.0.1"


def wait_until_serving(
    server: Child,
    spec: ServerSpec,
    port: int,
    *,
    origin: str,
    session_key: str,
    slowdown: float = 1,
) -> None:
    """
    Return once ``server`` serves on ``port``; raise with its log otherwise.
    ``slowdown``: how many times slower than usual it runs (under valgrind).
    """
    if spec.readiness == "readyz":
        server.wait_until(
            lambda: _every_worker_ready(server, port, spec.workers),
            what="never answered 200 on GET /readyz",
            timeout=SERVE_TIMEOUT * slowdown,
        )
    else:
        server.wait_until(
            lambda: _welcomed(port, origin=origin, session_key=session_key),
            what="never welcomed a client",
            timeout=SERVE_TIMEOUT * slowdown,
        )


def _every_worker_ready(server: Child, port: int, workers: int) -> Answer:
    listening = _listeners(server, port)
    if listening < workers:
        return False, f"{listening} of {workers} processes listen on port {port}"
    for _ in range(PROBES_PER_WORKER * workers):
        ready, answer = http_ok(HOST, port, "/readyz")
        if not ready:
            return False, answer
    return True, answer


def _listeners(server: Child, port: int) -> int:
    """How many processes of the child's tree listen on ``port``."""
    count = 0
    for process in server.tree():
        try:
            sockets = process.net_connections(kind="tcp")
        except psutil.Error:
            continue  # gone, or not ours to inspect
        count += any(
            s.status == psutil.CONN_LISTEN and s.laddr.port == port for s in sockets
        )
    return count


def _welcomed(port: int, *, origin: str, session_key: str) -> Answer:
    """Whether a client is welcomed on ``port``, and what it got."""
    try:
        with connect(
            f"ws://{HOST}:{port}/ws",
            origin=origin,
            additional_headers={
                "Cookie": f"{settings.SESSION_COOKIE_NAME}={session_key}"
            },
            open_timeout=2,
            close_timeout=1,
        ) as websocket:
            websocket.send(json.dumps({"type": "hello"}))
            frame = websocket.recv(timeout=2)
    except (OSError, TimeoutError, WebSocketException) as error:
        return False, f"{type(error).__name__}: {error}"
    welcomed = json.loads(frame).get("type") == "welcome"
    return welcomed, str(frame)[:200]
