"""
A fault-injecting TCP proxy for end-to-end tests.

Put it between a real process and a real server (Redis, PostgreSQL) to cut,
hang or slow that one link while the shared server keeps serving everyone
else. Tests drive it from synchronous code; it runs its own asyncio loop in a
daemon thread.

Each direction of each connection is read into a small bounded queue and
written out when the current mode allows, so holding a link costs at most
``HELD_LIMIT`` per direction and TCP backpressure stalls the sender beyond it.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import math
import socket
import struct
import threading
from concurrent.futures import Future
from types import TracebackType
from typing import Self
from urllib.parse import quote

__all__ = ["FaultProxy"]

logger = logging.getLogger(__name__)

LISTEN_HOST = "127.0.0.1"
CHUNK_SIZE = 64 * 1024
HELD_LIMIT = 1024 * 1024
CONNECT_TIMEOUT = 5.0
START_TIMEOUT = 5.0
CLOSE_TIMEOUT = 2.0
# A mode change may reset every connection and wait for them to unwind, so it
# gets longer than the unwinding itself.
CALL_TIMEOUT = 5.0
STOP_TIMEOUT = 5.0
# SO_LINGER on with a zero timeout: close() sends a RST instead of a FIN.
LINGER_ZERO = struct.pack("ii", 1, 0)

# (arrival time on the loop's clock, data); b"" marks the end of the stream.
Chunk = tuple[float, bytes]


class Mode(enum.Enum):
    """What the proxy does with the bytes it reads; one mode for all connections."""

    PASS_THROUGH = "pass-through"
    CUT = "cut"
    HANG = "hang"
    SLOW = "slow"


class FaultProxy:
    """
    Forward 127.0.0.1:<free port> to ``host:port`` and break that link on demand.

    Use it as a context manager; switch modes with :meth:`pass_through`,
    :meth:`cut`, :meth:`hang` and :meth:`slow` from any thread, at any time
    while it runs. Each change applies at once to open and new connections.
    """

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.port = 0
        self._thread: threading.Thread | None = None
        self._relay: Relay | None = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def address(self) -> tuple[str, int]:
        """Where clients connect instead of the real server."""
        return (LISTEN_HOST, self.port)

    @property
    def connections(self) -> int:
        """How many proxied connections are open (held ones included)."""
        # len() of a set is atomic under the GIL: a snapshot, safe from any thread.
        return 0 if self._relay is None else len(self._relay.connections)

    def redis_url(self, db: int = 0) -> str:
        """Return a Redis URL that goes through the proxy."""
        return f"redis://{LISTEN_HOST}:{self.port}/{db}"

    def postgres_url(self, database: str, user: str = "postgres") -> str:
        """Return a PostgreSQL URL (no password) that goes through the proxy."""
        return f"postgres://{quote(user, safe='')}@{LISTEN_HOST}:{self.port}/{quote(database, safe='')}"

    def start(self) -> None:
        """Listen on a free port from a daemon thread; return once listening."""
        if self._thread is not None:
            raise RuntimeError("FaultProxy is already running")
        relay = Relay(*self.upstream)
        listening: Future[int] = Future()
        thread = threading.Thread(
            target=asyncio.run,
            args=(relay.serve(listening),),
            name=f"faultproxy-{self.upstream[0]}:{self.upstream[1]}",
            daemon=True,
        )
        thread.start()
        self.port = listening.result(timeout=START_TIMEOUT)
        self._thread, self._relay = thread, relay

    def stop(self) -> None:
        """Reset every connection, stop listening and join the thread, bounded."""
        if self._thread is None or self._relay is None:
            return
        thread, relay = self._thread, self._relay
        self._thread = self._relay = None
        relay.loop.call_soon_threadsafe(relay.stopping.set)
        thread.join(timeout=STOP_TIMEOUT)
        if thread.is_alive():
            raise RuntimeError(f"{thread.name} did not stop in {STOP_TIMEOUT} s")

    def pass_through(self) -> None:
        """Forward both ways; release whatever a hang held, in order."""
        self._set_mode(Mode.PASS_THROUGH)

    def cut(self) -> None:
        """Reset every connection and refuse new ones, like a dead server."""
        self._set_mode(Mode.CUT)

    def hang(self) -> None:
        """Hold every byte both ways, like a stopped server: silence, no error."""
        self._set_mode(Mode.HANG)

    def slow(self, seconds: float) -> None:
        """Delay each chunk by ``seconds`` each way, so a round trip takes twice that."""
        if seconds < 0:
            raise ValueError(f"a delay can't be negative: {seconds}")
        self._set_mode(Mode.SLOW, seconds)

    def _set_mode(self, mode: Mode, delay: float = 0.0) -> None:
        """Apply a mode on the proxy's loop and wait until it took effect."""
        if self._relay is None:
            raise RuntimeError("FaultProxy is not running")
        future = asyncio.run_coroutine_threadsafe(
            self._relay.set_mode(mode, delay), self._relay.loop
        )
        try:
            future.result(timeout=CALL_TIMEOUT)
        except TimeoutError:
            # Don't let a late change land after the caller gave up on it.
            future.cancel()
            raise


class Relay:
    """
    The loop-side half of a proxy: the listener, the mode and the open connections.

    Everything here runs on the proxy's loop; ``FaultProxy`` reaches it only
    through ``call_soon_threadsafe`` (directly or via ``run_coroutine_threadsafe``).
    """

    loop: asyncio.AbstractEventLoop  # set by serve() before it reports the port

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.connections: dict[Connection, asyncio.Task[None]] = {}
        self.stopping = asyncio.Event()
        self._mode = Mode.PASS_THROUGH
        self._delay = 0.0
        self._changed = asyncio.Condition()

    async def serve(self, listening: Future[int]) -> None:
        """Listen, report the port, serve until stopping is set, then reset the rest."""
        self.loop = asyncio.get_running_loop()
        try:
            server = await asyncio.start_server(self.handle, LISTEN_HOST, 0)
        except OSError as exc:
            listening.set_exception(exc)
            return
        async with server:
            port = server.sockets[0].getsockname()[1]
            logger.info(
                "fault proxy on %s:%d for %s:%d",
                LISTEN_HOST,
                port,
                self.host,
                self.port,
            )
            listening.set_result(port)
            await self.stopping.wait()
            # Refuse newcomers first, or one could slip in after the reset.
            server.close()
            await self.reset_all()
        logger.info("fault proxy for %s:%d stopped", self.host, self.port)

    async def handle(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Accept one client: refuse it while the link is cut, else start proxying it."""
        if self._mode is Mode.CUT:
            logger.debug("refused %s: link is cut", writer.get_extra_info("peername"))
            reset(writer)
            return
        connection = Connection(self, reader, writer)
        # Run it in a task the relay owns, not in this handler's: Python 3.11
        # logs a spurious error when a stream handler's task is cancelled.
        task = asyncio.create_task(connection.run())
        self.connections[connection] = task
        task.add_done_callback(lambda _: self.connections.pop(connection))

    async def set_mode(self, mode: Mode, delay: float) -> None:
        """Switch mode and wake every held chunk so it re-checks at once."""
        async with self._changed:
            self._mode, self._delay = mode, delay
            self._changed.notify_all()
        logger.info("fault proxy for %s:%d: %s", self.host, self.port, mode.value)
        if mode is Mode.CUT:
            await self.reset_all()

    async def reset_all(self) -> None:
        """Reset every connection, then wait (bounded) for their tasks to unwind."""
        tasks = []
        for connection, task in self.connections.items():
            connection.reset()
            task.cancel()
            tasks.append(task)
        if tasks:
            # Each task leaves the registry in its done callback, which runs
            # before wait() returns: the caller sees an empty registry.
            await asyncio.wait(tasks, timeout=CLOSE_TIMEOUT)

    async def wait_for_turn(self, arrived: float) -> None:
        """Return once a chunk read at ``arrived`` may go out under the current mode."""
        async with self._changed:
            while (hold := self._hold(arrived)) > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(None if math.isinf(hold) else hold):
                        await self._changed.wait()

    def _hold(self, arrived: float) -> float:
        """How much longer a chunk read at ``arrived`` must wait (inf: until a change)."""
        # A cut connection is being reset; nothing may slip through meanwhile.
        if self._mode in (Mode.HANG, Mode.CUT):
            return math.inf
        return arrived + self._delay - self.loop.time()


class Connection:
    """
    One client's link to the server: two directions, each read into a bounded
    queue and written out when the relay's mode lets it.
    """

    def __init__(
        self,
        relay: Relay,
        client_reader: asyncio.StreamReader,
        client_writer: asyncio.StreamWriter,
    ) -> None:
        self.relay = relay
        self.peer = client_writer.get_extra_info("peername")
        self._client_reader = client_reader
        self._client_writer = client_writer
        self._server_writer: asyncio.StreamWriter | None = None

    async def run(self) -> None:
        """Forward until both directions ended; on an error, reset both sides."""
        try:
            async with asyncio.TaskGroup() as group:
                upstream: asyncio.Queue[Chunk] = bounded_queue()
                group.create_task(read_into(self._client_reader, upstream))
                # Reach the server only once the link flows: a hung link's SYN
                # doesn't get through either, and the server can't time it out.
                await self.relay.wait_for_turn(self.relay.loop.time())
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    server_reader, server_writer = await asyncio.open_connection(
                        self.relay.host, self.relay.port
                    )
                self._server_writer = server_writer
                downstream: asyncio.Queue[Chunk] = bounded_queue()
                group.create_task(self._write_from(upstream, server_writer))
                group.create_task(read_into(server_reader, downstream))
                group.create_task(self._write_from(downstream, self._client_writer))
        except* OSError as errors:
            # Pass a reset on to the other side, as the dead end would.
            logger.debug("connection from %s failed: %r", self.peer, errors.exceptions)
            self.reset()
        finally:
            for writer in self._writers():
                writer.close()
            logger.debug("connection from %s closed", self.peer)

    def reset(self) -> None:
        """Reset both sides, as a dead server or a cut cable would."""
        for writer in self._writers():
            reset(writer)

    async def _write_from(
        self, queue: asyncio.Queue[Chunk], writer: asyncio.StreamWriter
    ) -> None:
        """Write chunks out in order, each when its turn comes; half-close at EOF."""
        while True:
            arrived, data = await queue.get()
            await self.relay.wait_for_turn(arrived)
            if not data:
                writer.write_eof()
                return
            writer.write(data)
            await writer.drain()

    def _writers(self) -> list[asyncio.StreamWriter]:
        if self._server_writer is None:
            return [self._client_writer]
        return [self._client_writer, self._server_writer]


def bounded_queue() -> asyncio.Queue[Chunk]:
    """Return a queue that holds at most ``HELD_LIMIT`` bytes of full chunks."""
    return asyncio.Queue(maxsize=HELD_LIMIT // CHUNK_SIZE)


async def read_into(reader: asyncio.StreamReader, queue: asyncio.Queue[Chunk]) -> None:
    """Read until EOF, stamping each chunk; a full queue pauses reading (backpressure)."""
    loop = asyncio.get_running_loop()
    while True:
        data = await reader.read(CHUNK_SIZE)
        await queue.put((loop.time(), data))
        if not data:
            return


def reset(writer: asyncio.StreamWriter) -> None:
    """Abort with a TCP RST, so the peer fails at once instead of reading a clean EOF."""
    # Already closed: there is nothing left to reset, abort() is a no-op too.
    with contextlib.suppress(OSError):
        writer.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, LINGER_ZERO
        )
    writer.transport.abort()
