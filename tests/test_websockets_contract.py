"""
The websockets internals that ws_server relies on, each checked for the shape
we use, against real servers and clients where that is cheap.

The fan-out (``ws_server/delivery.py``) writes frames it serialized itself
straight to the transport, and the connection guard
(``ws_server/connection.py``) overrides and reads parts of websockets'
``Connection`` that its documentation doesn't promise. pyproject.toml bounds
websockets below the next major release; before raising the bound, run this
module on the new release: a failure names the internal that changed and
the module that relies on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import re
import tomllib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets
from packaging.requirements import Requirement
from websockets.asyncio.client import connect
from websockets.asyncio.messages import Assembler
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close, Frame, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

from notifications.wire import CloseCode
from ws_server.connection import ConnectionLimits, GuardedConnection, guarded_connection
from ws_server.delivery import Frames

DELIVERY = "ws_server/delivery.py"
CONNECTION = "ws_server/connection.py"
LIFECYCLE = "ws_server/lifecycle.py"

REPO_ROOT = Path(__file__).resolve().parent.parent

#: Seconds any one exchange with the local server may take.
TIMEOUT = 5.0

LIMITS = ConnectionLimits(
    control_rate=0.001, control_burst=2, max_buffer=1 << 20, max_per_address=0
)

TEXTS = ["first", "é" * 200, "x" * 70_000]  # 7-bit, 16-bit and 64-bit lengths


@contextlib.contextmanager
def relied_on(internal: str, module: str) -> Iterator[None]:
    """Turn any failure inside into one that names ``internal`` and its user."""
    try:
        yield
    except Exception as exc:
        pytest.fail(
            f"websockets changed {internal}: {module} relies on it ({exc!r})",
            pytrace=False,
        )


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(4 * TIMEOUT):
            await scenario()

    asyncio.run(bounded())


def recorded(limits: ConnectionLimits = LIMITS) -> Any:
    """A GuardedConnection class that keeps the connections it creates."""

    class Recorded(guarded_connection(limits)):
        created: list[GuardedConnection] = []
        made = asyncio.Event()

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.created.append(self)
            self.made.set()

    return Recorded


async def idle(connection: ServerConnection) -> None:
    """A handler that keeps the connection open and reads nothing."""
    await connection.wait_closed()


@contextlib.asynccontextmanager
async def server(
    handler: Callable[[ServerConnection], Awaitable[None]] = idle,
    limits: ConnectionLimits = LIMITS,
    **kwargs: Any,
) -> AsyncIterator[tuple[Server, Any, str]]:
    """A real server on port 0 with ``GuardedConnection``s; its URL."""
    factory = recorded(limits)
    async with serve(
        handler, "127.0.0.1", 0, create_connection=factory, **kwargs
    ) as running:
        port = running.sockets[0].getsockname()[1]
        yield running, factory, f"ws://127.0.0.1:{port}/"


async def served(factory: Any) -> Any:
    """The server side of the one connection the test opened."""
    async with asyncio.timeout(TIMEOUT):
        await factory.made.wait()
    return factory.created[0]


async def eventually(condition: Callable[[], bool]) -> bool:
    """Whether ``condition`` holds within TIMEOUT, looked at every 10 ms."""
    for _ in range(int(TIMEOUT / 0.01)):
        if condition():
            return True
        await asyncio.sleep(0.01)
    return condition()


def decoded_by_a_client(wire: bytes) -> list[Frame]:
    """The frames a websockets client in the OPEN state reads from ``wire``."""
    client = ClientProtocol(parse_uri("ws://localhost/"), state=State.OPEN)
    client.receive_data(wire)
    frames = client.events_received()
    assert client.state is State.OPEN, client.close_exc
    return [frame for frame in frames if isinstance(frame, Frame)]


# The version bound.


def test_the_pinned_release_is_inside_the_declared_bound():
    """requirements.txt pins a websockets that pyproject.toml allows, with an upper bound."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    (declared,) = (
        Requirement(line)
        for line in project["project"]["dependencies"]
        if line.startswith("websockets")
    )
    assert any(spec.operator == "<" for spec in declared.specifier), declared
    pins = re.findall(
        r"^websockets==(\S+)", (REPO_ROOT / "requirements.txt").read_text(), re.M
    )
    assert pins, "requirements.txt pins no websockets"
    for pin in pins:
        assert declared.specifier.contains(pin), (pin, str(declared))
    assert declared.specifier.contains(websockets.__version__)


# The fan-out: ws_server/delivery.py.


def test_a_frame_serialized_once_is_what_the_protocol_would_write():
    """Frame(TEXT, payload).serialize(mask=False) equals what an OPEN server
    protocol without extensions writes for send_text(payload)."""
    for text in TEXTS:
        payload = text.encode()
        with relied_on("Frame(Opcode.TEXT, payload).serialize(mask=False)", DELIVERY):
            ours = Frame(Opcode.TEXT, payload).serialize(mask=False)
        protocol = ServerProtocol(state=State.OPEN)
        with relied_on("ServerProtocol.send_text / data_to_send", DELIVERY):
            protocol.send_text(payload)
            assert protocol.data_to_send() == [ours]


def test_the_shared_frames_are_whole_unmasked_text_messages():
    """Frames.wire reads, for a client, as one final, unmasked, uncompressed
    text frame per message: never fragmented, so it can sit between any two
    messages of any connection."""
    frames = Frames(TEXTS)
    with relied_on("Frame.serialize(mask=False)", DELIVERY):
        decoded = decoded_by_a_client(frames.wire)
        assert [frame.data.decode() for frame in decoded] == TEXTS
        for frame in decoded:
            assert frame.opcode is Opcode.TEXT
            assert frame.fin
            assert (frame.rsv1, frame.rsv2, frame.rsv3) == (False, False, False)


def test_no_module_sends_fragments():
    """Nothing in ws_server starts a fragmented message, which Frames' shared
    bytes (and send_text in the per-connection path) could land inside."""
    for path in sorted((REPO_ROOT / "ws_server").rglob("*.py")):
        source = path.read_text()
        assert "fin=False" not in source, path
        assert "send_continuation" not in source, path


def test_send_text_writes_one_frame_per_message_with_deflate():
    """On a permessage-deflate connection, protocol.send_text and
    data_to_send produce one compressed final frame per message, which a real
    client decompresses, even between the connection's own sends."""

    async def scenario() -> None:
        async with (
            server(compression="deflate") as (_running, factory, url),
            connect(url, compression="deflate") as client,
        ):
            connection = await served(factory)
            protocol = connection.protocol
            with relied_on("ServerConnection.protocol.extensions", DELIVERY):
                assert protocol.extensions
            chunks: list[bytes] = []
            with relied_on("ServerProtocol.send_text / data_to_send", DELIVERY):
                for text in TEXTS:
                    protocol.send_text(text.encode())
                chunks = protocol.data_to_send()
                assert len(chunks) == len(TEXTS), [len(c) for c in chunks]
                assert all(chunks)  # no b"": that would be an EOF
                assert all(chunk[0] & 0xC0 == 0xC0 for chunk in chunks)  # FIN, RSV1
            await connection.send("before")
            connection.transport.write(b"".join(chunks))
            await connection.send("after")
            async with asyncio.timeout(TIMEOUT):
                received = [await client.recv() for _ in range(len(TEXTS) + 2)]
            with relied_on("ServerProtocol.send_text (deflate)", DELIVERY):
                assert received == ["before", *TEXTS, "after"]

    run(scenario)


@pytest.mark.parametrize("compression", [None, "deflate"])
def test_frames_written_to_a_connection_reach_a_real_client(compression):
    """Frames.write_to reaches a real client intact and in order between the
    connection's own sends, with and without permessage-deflate, and writes
    nothing to a closing connection."""

    async def scenario() -> None:
        async with (
            server(compression=compression) as (_running, factory, url),
            connect(url, compression=compression) as client,
        ):
            connection = await served(factory)
            with relied_on("ServerConnection.protocol.state / State.OPEN", DELIVERY):
                assert connection.protocol.state is State.OPEN
            with relied_on("ServerConnection.protocol.extensions", DELIVERY):
                assert bool(connection.protocol.extensions) == bool(compression)
            await connection.send("before")
            Frames(TEXTS).write_to(connection)
            await connection.send("after")
            async with asyncio.timeout(TIMEOUT):
                received = [await client.recv() for _ in range(len(TEXTS) + 2)]
            with relied_on("ServerConnection.transport", DELIVERY):
                assert received == ["before", *TEXTS, "after"]
            await client.close()
            await connection.wait_closed()
            Frames(["late"]).write_to(connection)  # closed: a no-op

    run(scenario)


# The connection guard: ws_server/connection.py, and ws_server/lifecycle.py.


@pytest.mark.parametrize(
    ("internal", "name", "parameters"),
    [
        ("ServerConnection.__init__", "__init__", ["protocol", "server"]),
        ("ServerConnection.connection_made", "connection_made", ["transport"]),
        ("ServerConnection.connection_lost", "connection_lost", ["exc"]),
        ("ServerConnection.data_received", "data_received", ["data"]),
        ("ServerConnection.process_event", "process_event", ["event"]),
        ("ServerConnection.pause_writing", "pause_writing", []),
        ("ServerConnection.send_data", "send_data", []),
        ("ServerConnection.set_connection_exc", "set_connection_exc", ["exc"]),
        (
            "ServerConnection.handshake",
            "handshake",
            ["process_request", "process_response", "server_header"],
        ),
    ],
)
def test_overridden_and_called_methods_keep_their_signatures(
    internal, name, parameters
):
    """The methods GuardedConnection overrides or calls take what it passes."""
    with relied_on(internal, CONNECTION):
        method = getattr(ServerConnection, name)
        found = list(inspect.signature(method).parameters)[1:]
        assert found[: len(parameters)] == parameters, found
    if name == "handshake":
        with relied_on(internal, CONNECTION):
            assert inspect.iscoroutinefunction(method)


def test_protocol_fail_takes_a_code_and_a_reason():
    """GuardedConnection._fail calls protocol.fail(code, reason)."""
    with relied_on("ServerProtocol.fail", CONNECTION):
        parameters = list(inspect.signature(ServerProtocol.fail).parameters)
        assert parameters[1:3] == ["code", "reason"], parameters


def test_an_open_connection_has_the_state_the_guard_reads():
    """A served connection exposes, with the types the guard and the
    connection log use, what they read and replace."""

    async def scenario() -> None:
        async with server() as (_running, factory, url), connect(url):
            connection = await served(factory)
            checks: list[tuple[str, Callable[[], bool]]] = [
                ("ServerConnection.loop", lambda: connection.loop.time() > 0),
                (
                    "ServerConnection.transport",
                    lambda: isinstance(connection.transport, asyncio.Transport),
                ),
                (
                    "ServerConnection.recv_messages",
                    lambda: isinstance(connection.recv_messages, Assembler),
                ),
                (
                    "ServerConnection.recv_messages.pause",
                    lambda: (
                        connection.recv_messages.pause == connection._update_reading
                    ),
                ),
                (
                    "ServerConnection.recv_messages.resume",
                    lambda: (
                        connection.recv_messages.resume == connection._update_reading
                    ),
                ),
                (
                    "ServerConnection.recv_messages.paused",
                    lambda: connection.recv_messages.paused is False,
                ),
                ("ServerConnection.paused", lambda: connection.paused is False),
                (
                    "ServerConnection.close_deadline",
                    lambda: connection.close_deadline is None,
                ),
                (
                    "ServerConnection.close_timeout",
                    lambda: isinstance(connection.close_timeout, int | float),
                ),
                (
                    "ServerConnection.protocol.handshake_exc",
                    lambda: connection.protocol.handshake_exc is None,
                ),
                (
                    "ServerConnection.request",
                    lambda: connection.request is not None,
                ),
                (
                    "ServerConnection.response",
                    lambda: (
                        connection.response is not None
                        and connection.response.status_code == 101
                    ),
                ),
                (
                    "ServerConnection.remote_address",
                    lambda: connection.remote_address[0] == "127.0.0.1",
                ),
                (
                    "ServerProtocol.close_sent / close_rcvd / close_rcvd_then_sent",
                    lambda: (
                        (
                            connection.protocol.close_sent,
                            connection.protocol.close_rcvd,
                            connection.protocol.close_rcvd_then_sent,
                        )
                        == (None, None, None)
                    ),
                ),
            ]
            for internal, check in checks:
                with relied_on(internal, CONNECTION):
                    assert check()

    run(scenario)


def test_a_full_receive_queue_pauses_reading_through_our_callbacks():
    """The Assembler calls recv_messages.pause and .resume, which the guard
    replaces, when its queue passes max_queue and drains."""

    async def scenario() -> None:
        async with (
            server(max_queue=1) as (_running, factory, url),
            connect(url) as client,
        ):
            connection = await served(factory)
            for number in range(4):
                await client.send(str(number))
            with relied_on("ServerConnection.recv_messages.pause", CONNECTION):
                assert await eventually(lambda: connection.recv_messages.paused)
                assert not connection.transport.is_reading()
            async with asyncio.timeout(TIMEOUT):
                for _ in range(4):
                    await connection.recv()
            with relied_on("ServerConnection.recv_messages.resume", CONNECTION):
                assert await eventually(connection.transport.is_reading)

    run(scenario)


def test_pause_writing_sets_the_flag_the_guard_reads():
    """Connection.pause_writing (called by the transport) sets ``paused``,
    which the guard's output watch reads."""

    async def scenario() -> None:
        async with server() as (_running, factory, url), connect(url):
            connection = await served(factory)
            with relied_on("ServerConnection.pause_writing / paused", CONNECTION):
                connection.pause_writing()
                assert connection.paused is True
                connection.resume_writing()
                assert connection.paused is False

    run(scenario)


def test_control_frames_reach_process_event_and_a_flood_fails_the_connection():
    """Pings arrive through process_event as Frames; failing the connection
    with protocol.fail, send_data and close_timeout closes it with 4008."""

    async def scenario() -> None:
        async with server() as (_running, factory, url), connect(url) as client:
            connection = await served(factory)
            with contextlib.suppress(ConnectionClosed):
                for _ in range(LIMITS.control_burst + 2):
                    await client.ping()
            async with asyncio.timeout(TIMEOUT):
                await client.wait_closed()
            with relied_on(
                "ServerConnection.process_event / ServerProtocol.fail", CONNECTION
            ):
                assert client.close_code == CloseCode.RATE_LIMITED
                assert connection.protocol.close_sent.code == CloseCode.RATE_LIMITED
                assert connection.refused  # never opened: logged as a refusal

    run(scenario)


def test_the_close_frames_are_where_the_connection_log_reads_them():
    """After a close the client started, protocol.close_rcvd holds its code
    and close_rcvd_then_sent says it came first; connection_lost runs."""

    async def scenario() -> None:
        async with server() as (_running, factory, url), connect(url) as client:
            connection = await served(factory)
            await client.close(1000, "bye")
            async with asyncio.timeout(TIMEOUT):
                await connection.wait_closed()
            protocol = connection.protocol
            with relied_on("ServerProtocol.close_rcvd / close_sent", LIFECYCLE):
                assert isinstance(protocol.close_rcvd, Close)
                assert (protocol.close_rcvd.code, protocol.close_rcvd.reason) == (
                    1000,
                    "bye",
                )
                assert isinstance(protocol.close_sent, Close)
                assert protocol.close_rcvd_then_sent is True
            with relied_on("ServerConnection.connection_lost", CONNECTION):
                assert connection.lost

    run(scenario)


def raw_client(url: str, request: bytes) -> Callable[[], Awaitable[bytes]]:
    """Send ``request`` on a plain TCP socket; what the server answers."""

    async def exchange() -> bytes:
        host, port = url.removeprefix("ws://").rstrip("/").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(request)
        try:
            async with asyncio.timeout(TIMEOUT):
                return await reader.read()
        finally:
            writer.close()

    return exchange


def test_a_bad_request_is_refused_with_its_handshake_exc():
    """websockets drops a request it can't parse, leaving why in
    protocol.handshake_exc and no request, for the guard's log line."""

    async def scenario() -> None:
        async with server() as (_running, factory, url):
            await raw_client(url, b"GET / HTTP/1.1\r\nbroken header\r\n\r\n")()
            connection = await served(factory)
            assert await eventually(lambda: connection.lost)
            with relied_on("ServerProtocol.handshake_exc", CONNECTION):
                assert connection.protocol.handshake_exc is not None
                assert connection.request is None
                assert connection.refused

    run(scenario)


def test_an_open_timeout_cancels_the_handshake_override():
    """serve()'s open_timeout cancels connection.handshake(), which the guard
    overrides to log the refusal, and request stays None."""

    async def scenario() -> None:
        async with server(open_timeout=0.2) as (_running, factory, url):
            answer = await raw_client(url, b"GET / HTTP/1.1\r\n")()
            connection = await served(factory)
            assert await eventually(lambda: connection.lost)
            with relied_on("ServerConnection.handshake (open_timeout)", CONNECTION):
                assert answer == b""
                assert connection.request is None
                assert connection.refused

    run(scenario)
