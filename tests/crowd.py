"""
Background load for end-to-end tests: a crowd of real WebSocket connections
that read everything sent to them, and a thread that sends events at a
steady rate. They are the conditions a test runs under, not what it asserts
on: the test watches its own few clients (``tests.clients``) meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence

from django.conf import settings
from django.db import connection
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.servers import TEST_ORIGIN

__all__ = ["Crowd", "Traffic"]

#: Handshakes in flight at once while the crowd connects.
CONCURRENCY = 50
#: Seconds the whole crowd may take to connect (and to close).
OPEN_TIMEOUT = 60.0
CLOSE_TIMEOUT = 15.0


class Crowd:
    """
    One connection per session key in ``session_keys`` (repeat a key for
    several tabs), each authenticated by cookie and past its welcome when
    the ``with`` block starts, then reading and counting every frame, on an
    event loop of its own in a thread.

    ``closes`` counts the close codes the server sent before the block ended.
    """

    def __init__(self, url: str, session_keys: Sequence[str]) -> None:
        self.url = url
        self.session_keys = list(session_keys)
        self.frames = 0
        self.closes: Counter[tuple[int, str]] = Counter()
        self._leaving = False
        self._connections: list[ClientConnection] = []
        self._readers: list[asyncio.Task[None]] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> Crowd:
        self._thread.start()
        try:
            self._run(self._open_all(), timeout=OPEN_TIMEOUT)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._leaving = True
        try:
            self._run(self._close_all(), timeout=CLOSE_TIMEOUT)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
            self._loop.close()

    @property
    def open(self) -> int:
        """How many of the crowd's connections are still open."""
        return sum(1 for reader in self._readers if not reader.done())

    def _run(self, coroutine, *, timeout: float) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    async def _open_all(self) -> None:
        slots = asyncio.Semaphore(CONCURRENCY)

        async def open_one(session_key: str) -> None:
            async with slots:
                await self._open(session_key)

        async with asyncio.TaskGroup() as group:
            for session_key in self.session_keys:
                group.create_task(open_one(session_key))

    async def _open(self, session_key: str) -> None:
        ws = await connect(
            self.url,
            origin=TEST_ORIGIN,  # type: ignore[arg-type]
            additional_headers={
                "Cookie": f"{settings.SESSION_COOKIE_NAME}={session_key}"
            },
            proxy=None,
            compression=None,
            open_timeout=20,
            close_timeout=1,
        )
        self._connections.append(ws)
        await ws.send(json.dumps({"type": "hello", "last_id": None}))
        async with asyncio.timeout(20):
            while json.loads(await ws.recv())["type"] != "welcome":
                pass
        self._readers.append(asyncio.create_task(self._read(ws)))

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for _frame in ws:
                self.frames += 1
        except ConnectionClosed:
            pass
        if not self._leaving and ws.close_rcvd is not None:
            self.closes[ws.close_rcvd.code, ws.close_rcvd.reason] += 1

    async def _close_all(self) -> None:
        async with asyncio.timeout(CLOSE_TIMEOUT - 1):
            await asyncio.gather(*(ws.close() for ws in self._connections))
            await asyncio.gather(*self._readers)


class Traffic:
    """
    Call ``send`` ``rate`` times a second from a thread while the ``with``
    block runs; ``sent`` counts the calls. An exception in ``send`` stops the
    thread and is raised when the block ends.
    """

    def __init__(self, send: Callable[[int], object], *, rate: float) -> None:
        self.send = send
        self.rate = rate
        self.sent = 0
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        assert not self._thread.is_alive(), "the traffic thread is stuck"
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                started = time.monotonic()
                self.send(self.sent)
                self.sent += 1
                self._stop.wait(max(0.0, 1 / self.rate - (time.monotonic() - started)))
        except BaseException as error:
            self._error = error
        finally:
            connection.close()
