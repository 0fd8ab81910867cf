"""
The fault proxy against the real Redis and against raw sockets the test holds
at both ends: each mode breaks the link the way end-to-end tests rely on.
"""

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.faultproxy import FaultProxy

REDIS = ("127.0.0.1", 6379)
TIMEOUT = 5.0
# How long "nothing arrives" must hold before a test believes it.
SILENCE = 0.3
DELAY = 0.3


@pytest.fixture(autouse=True)
def no_stray_threads() -> Iterator[None]:
    """Every test joins the threads it started, the proxy's included."""
    before = set(threading.enumerate())
    yield
    assert set(threading.enumerate()) <= before


@pytest.fixture
def proxy() -> Iterator[FaultProxy]:
    with FaultProxy(*REDIS) as proxy:
        yield proxy


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A server socket the test answers itself, to watch bytes arrive."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(TIMEOUT)
        yield listener


@pytest.fixture
def raw_proxy(listener: socket.socket) -> Iterator[FaultProxy]:
    with FaultProxy(*listener.getsockname()) as proxy:
        yield proxy


def redis_client(proxy: FaultProxy, timeout: float = TIMEOUT) -> redis.Redis:
    """Return a client without retries, so each failure shows at once."""
    return redis.Redis(
        host="127.0.0.1",
        port=proxy.port,
        socket_timeout=timeout,
        socket_connect_timeout=TIMEOUT,
        retry=Retry(NoBackoff(), 0),
    )


@contextlib.contextmanager
def raw_link(
    proxy: FaultProxy, listener: socket.socket
) -> Iterator[tuple[socket.socket, socket.socket]]:
    """Connect through the proxy and accept at the far end: (client, server)."""
    with socket.create_connection(proxy.address, timeout=TIMEOUT) as client:
        server, _ = listener.accept()
        with server:
            server.settimeout(TIMEOUT)
            yield client, server


def receive(sock: socket.socket, size: int) -> bytes:
    """Receive ``size`` bytes, or fewer at EOF; the socket's timeout bounds each wait."""
    data = bytearray()
    while len(data) < size and (chunk := sock.recv(size - len(data))):
        data += chunk
    return bytes(data)


def assert_silent(sock: socket.socket) -> None:
    sock.settimeout(SILENCE)
    with pytest.raises(TimeoutError):
        sock.recv(1)
    sock.settimeout(TIMEOUT)


def test_pass_through_forwards_commands(proxy):
    """A client talks to Redis through the proxy as if directly."""
    with redis_client(proxy) as client:
        assert client.ping()
        assert proxy.connections == 1


def test_cut_resets_connections_and_refuses_new_ones(proxy):
    """While cut, open and new connections fail fast; pass_through reconnects."""
    with redis_client(proxy) as client, redis_client(proxy) as newcomer:
        assert client.ping()
        proxy.cut()
        assert proxy.connections == 0
        started = time.monotonic()
        with pytest.raises(redis.ConnectionError):
            client.ping()
        with pytest.raises(redis.ConnectionError):
            newcomer.ping()
        # Well under socket_timeout: a reset, not a silence.
        assert time.monotonic() - started < 1
        proxy.pass_through()
        assert client.ping()


def test_hang_times_out_commands_until_pass_through(proxy):
    """While hung, a command times out and the connection stays open; afterwards commands work."""
    with redis_client(proxy, timeout=SILENCE) as client:
        assert client.ping()
        proxy.hang()
        with pytest.raises(redis.TimeoutError):
            client.ping()
        assert proxy.connections == 1
        proxy.pass_through()
        assert client.ping()


def test_hang_holds_bytes_both_ways_and_releases_them_in_order(raw_proxy, listener):
    """Bytes sent while hung arrive after pass_through, in order, in both directions."""
    with raw_link(raw_proxy, listener) as (client, server):
        client.sendall(b"before")
        assert receive(server, 6) == b"before"
        raw_proxy.hang()
        client.sendall(b"one")
        client.sendall(b"two")
        server.sendall(b"back")
        assert_silent(server)
        assert_silent(client)
        raw_proxy.pass_through()
        assert receive(server, 6) == b"onetwo"
        assert receive(client, 4) == b"back"


def test_hang_accepts_new_connections_without_reaching_the_server(raw_proxy, listener):
    """While hung, a client connects but the server sees nothing until pass_through."""
    raw_proxy.hang()
    with socket.create_connection(raw_proxy.address, timeout=TIMEOUT) as client:
        client.sendall(b"hello")
        listener.settimeout(SILENCE)
        with pytest.raises(TimeoutError):
            listener.accept()
        listener.settimeout(TIMEOUT)
        assert raw_proxy.connections == 1
        raw_proxy.pass_through()
        server, _ = listener.accept()
        with server:
            server.settimeout(TIMEOUT)
            assert receive(server, 5) == b"hello"


def test_hang_holds_a_bounded_amount_then_pushes_back(raw_proxy, listener):
    """While hung, the sender stalls after a bounded amount, and all of it arrives later."""
    block = os.urandom(1024 * 1024)
    with raw_link(raw_proxy, listener) as (client, server):
        raw_proxy.hang()
        sent = fill(client, block, limit=128 * len(block))
        # Without the proxy's bound the sender would reach the limit; what's
        # left is the proxy's 1 MiB plus the kernel's socket buffers.
        assert sent < 48 * len(block)
        raw_proxy.pass_through()
        expected = (block * (sent // len(block) + 1))[:sent]
        assert receive(server, sent) == expected


def fill(sock: socket.socket, block: bytes, limit: int) -> int:
    """Send ``block`` over and over until the socket stays full for a while."""
    sock.setblocking(False)
    sent = 0
    stalled_since: float | None = None
    deadline = time.monotonic() + TIMEOUT
    while sent < limit and time.monotonic() < deadline:
        try:
            sent += sock.send(memoryview(block)[sent % len(block) :])
            stalled_since = None
        except BlockingIOError:
            stalled_since = stalled_since or time.monotonic()
            if time.monotonic() - stalled_since > SILENCE:
                break
            time.sleep(0.01)
    sock.settimeout(TIMEOUT)
    return sent


def test_slow_delays_each_way(proxy):
    """While slow, a round trip takes at least the delay each way."""
    with redis_client(proxy) as client:
        assert client.ping()
        proxy.slow(DELAY)
        started = time.monotonic()
        assert client.ping()
        assert time.monotonic() - started >= 2 * DELAY


def test_slow_keeps_chunks_in_order(raw_proxy, listener):
    """While slow, separate chunks arrive late but in the order they were sent."""
    with raw_link(raw_proxy, listener) as (client, server):
        raw_proxy.slow(DELAY)
        started = time.monotonic()
        for chunk in (b"a", b"b", b"c"):
            client.sendall(chunk)
        assert receive(server, 3) == b"abc"
        assert time.monotonic() - started >= DELAY


def test_exit_closes_connections():
    """Leaving the context resets every proxied connection and stops the proxy."""
    with contextlib.ExitStack() as stack:
        # The client outlives the proxy, to see what leaving did to it.
        with FaultProxy(*REDIS) as proxy:
            client = stack.enter_context(redis_client(proxy))
            assert client.ping()
            assert proxy.connections == 1
        with pytest.raises(redis.ConnectionError):
            client.ping()
