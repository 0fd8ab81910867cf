"""
SIGTERM with 500 open connections on a real runwsserver: every one closed
with 1001, the closes spread over the drain instead of all in one
millisecond, exit 0 within the drain time, and every client resumes on a
second process with nothing lost, events sent during the drain included.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import pytest
from django.conf import settings
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from notifications import services
from tests.clients import logged_in_client, session_key_of
from tests.factories import make_user
from tests.servers import TEST_ORIGIN, WebSocketServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CONNECTIONS = 500
#: The drain: closes spread over half of it (SHUTDOWN_SPREAD).
SHUTDOWN_TIMEOUT = 4.0
SPREAD = SHUTDOWN_TIMEOUT / 2
SERVER_ENV = {
    "NOTIFICATIONS_SHUTDOWN_TIMEOUT": str(SHUTDOWN_TIMEOUT),
    "NOTIFICATIONS_WS_MAX_CONNECTIONS_PER_USER": str(2 * CONNECTIONS),
}


@dataclass
class Client:
    """One browser's socket: what it saw, and how it was closed."""

    ids: set[int] = field(default_factory=set)
    cursor: int | None = None
    closed_at: float | None = None
    close_code: int | None = None


class Fleet:
    """Many WebSocket clients on one asyncio loop, in a thread of its own."""

    def __init__(self, cookie: str) -> None:
        self.headers = {"Cookie": f"{settings.SESSION_COOKIE_NAME}={cookie}"}
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.readers: list[asyncio.Future[None]] = []
        self.sockets: list[ClientConnection] = []
        self.notified = asyncio.Event()  # a client got a notification

    def run(self, coroutine, timeout: float):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        """Close every socket still open, then the loop."""
        with contextlib.suppress(TimeoutError):
            self.run(self._disconnect(), timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        self.loop.close()

    async def _disconnect(self) -> None:
        await asyncio.gather(*(socket.close() for socket in self.sockets))
        await asyncio.gather(*self.readers)

    async def open(self, url: str, clients: list[Client]) -> None:
        """Connect each client and read its frames until the server closes it."""
        gate = asyncio.Semaphore(50)

        async def one(client: Client) -> None:
            async with gate:
                socket = await connect(
                    url,
                    origin=TEST_ORIGIN,
                    additional_headers=self.headers,
                    compression=None,
                    open_timeout=10,
                )
                await socket.send(
                    json.dumps({"type": "hello", "last_id": client.cursor})
                )
                while self.receive(client, await socket.recv()) != "welcome":
                    pass
            self.sockets.append(socket)
            self.readers.append(asyncio.ensure_future(self.read(socket, client)))

        await asyncio.gather(*(one(client) for client in clients))

    async def read(self, socket: ClientConnection, client: Client) -> None:
        try:
            async for message in socket:
                self.receive(client, message)
        except ConnectionClosed:
            pass
        client.closed_at = time.monotonic()
        client.close_code = socket.close_code

    def receive(self, client: Client, message: str | bytes) -> str:
        frame = json.loads(message)
        if isinstance(frame.get("cursor"), int):
            client.cursor = max(client.cursor or 0, frame["cursor"])
        if frame["type"] == "notification":
            client.ids.add(frame["id"])
            self.notified.set()
        return frame["type"]

    async def missing(self, clients: list[Client], ids: list[int]) -> list[set[int]]:
        """Wait up to 10 s for every client to have ``ids``; what each still lacks."""
        expected = set(ids)
        deadline = self.loop.time() + 10
        while True:
            lacking = [expected - c.ids for c in clients if not expected <= c.ids]
            if not lacking or self.loop.time() > deadline:
                return lacking
            self.notified.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self.notified.wait(), deadline - self.loop.time()
                )

    async def closed(self) -> None:
        await asyncio.gather(*self.readers)
        self.readers.clear()


def test_sigterm_spreads_the_closes_and_clients_resume_elsewhere(redis_prefix):
    session = session_key_of(logged_in_client(make_user()))
    clients = [Client() for _ in range(CONNECTIONS)]
    fleet = Fleet(session)
    try:
        with (
            WebSocketServerProcess(
                redis_prefix=redis_prefix, env=SERVER_ENV
            ) as leaving,
            WebSocketServerProcess(
                redis_prefix=redis_prefix, env=SERVER_ENV
            ) as staying,
        ):
            fleet.run(fleet.open(leaving.url, clients), timeout=60)
            before = [services.send_event(title=f"before {n}").pk for n in range(3)]

            terminated_at = time.monotonic()
            leaving.process.terminate()
            during = [services.send_event(title=f"during {n}").pk for n in range(5)]
            fleet.run(fleet.closed(), timeout=SHUTDOWN_TIMEOUT + 5)
            assert leaving.process.wait(timeout=SHUTDOWN_TIMEOUT + 5) == 0
            exited_after = time.monotonic() - terminated_at

            codes = Counter(client.close_code for client in clients)
            assert codes == {1001: CONNECTIONS}, codes
            closes = sorted(client.closed_at - terminated_at for client in clients)
            span = closes[-1] - closes[0]
            busiest = max(Counter(int(at * 10) for at in closes).values())
            # The drain's own bound, and what a process exit adds (Redis, threads).
            assert exited_after < SHUTDOWN_TIMEOUT + 2.5, exited_after
            assert span > 0.6 * SPREAD, f"closes spanned {span:.2f} s"
            assert busiest < 0.15 * CONNECTIONS, f"{busiest} closes in one 100 ms"

            # Every client comes back, to the other process, from its cursor.
            fleet.run(fleet.open(staying.url, clients), timeout=60)
            missing = fleet.run(fleet.missing(clients, before + during), timeout=15)
            assert not missing, f"{len(missing)} clients missed events: {missing[:3]}"
    finally:
        fleet.close()
