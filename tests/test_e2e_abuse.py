"""
Abusive clients against a real runwsserver: floods of control frames, clients
that never read, never finish the handshake, open too many sockets or send
oversize headers. Each test asserts what the abusive client sees, the log
line the server writes about it, that no traceback was logged, and that a
well-behaved client is still served.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import os
import re
import resource
import socket
import subprocess
import threading
import time
from collections.abc import Sequence
from unittest import mock

import pytest
from django.conf import settings
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.frames import Frame, Opcode
from websockets.sync.client import connect

from notifications import services
from tests.clients import (
    close_of,
    logged_in_client,
    receive,
    send_json,
    session_key_of,
    subscriber,
    websocket,
)
from tests.factories import make_user
from tests.servers import WebSocketServerProcess
from ws_server.connection import Admission

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PING = Frame(Opcode.PING, b"").serialize(mask=True)
BIG_PING = Frame(Opcode.PING, b"x" * 125).serialize(mask=True)
HELLO = Frame(Opcode.TEXT, b'{"type": "hello"}').serialize(mask=True)


# Helpers.


def raw_connect(server: WebSocketServerProcess, **options: int) -> socket.socket:
    """A TCP connection to the server; ``options`` are SOL_SOCKET options."""
    sock = socket.socket()
    for name, value in options.items():
        sock.setsockopt(socket.SOL_SOCKET, getattr(socket, name), value)
    sock.settimeout(5)
    sock.connect(("127.0.0.1", server.port))
    return sock


def upgrade_request(headers: Sequence[tuple[str, str]] = ()) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        "GET /ws HTTP/1.1",
        "Host: 127.0.0.1",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        *(f"{name}: {value}" for name, value in headers),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_until(sock: socket.socket, marker: bytes, timeout: float = 5) -> bytes:
    """Read until ``marker`` arrives; fail past ``timeout``."""
    data = b""
    deadline = time.monotonic() + timeout
    while marker not in data:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        chunk = sock.recv(65536)
        assert chunk, f"closed before {marker!r}; got {data[:200]!r}"
        data += chunk
    return data


def wait_closed(sock: socket.socket, timeout: float = 5) -> None:
    """Read (and drop) until the server closes the connection."""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            sock.settimeout(max(deadline - time.monotonic(), 0.01))
            if not sock.recv(1 << 20):
                return
    except ConnectionResetError:
        return
    raise AssertionError(f"still open after {timeout}s")


def vm_rss(pid: int) -> int:
    """Resident memory of ``pid``, in bytes."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def assert_still_serving(server: WebSocketServerProcess, timeout: float = 3) -> None:
    """
    A well-behaved client gets an event within 1 s.

    Connecting is retried for ``timeout`` seconds: the server may not have
    seen the test's abusive sockets close yet.
    """
    user = make_user()
    deadline = time.monotonic() + timeout
    while True:
        connected = False
        try:
            with subscriber(server, user) as ws:
                connected = True
                event = services.send_event(title="still here")
                assert receive(ws, timeout=1)["id"] == event.pk
                return
        except (OSError, EOFError, InvalidHandshake, ConnectionClosed):
            if connected or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def assert_clean_log(server: WebSocketServerProcess, since: int) -> None:
    log = "\n".join(server.lines[since:])
    assert "Traceback" not in log
    assert "Too many open files" not in log


def logged(server: WebSocketServerProcess, pattern: str, since: int) -> list[str]:
    return [line for line in server.lines[since:] if re.search(pattern, line)]


@pytest.fixture(scope="module")
def guarded_server(django_db_setup, django_db_blocker, redis_prefix):
    """A server with a 1 s open timeout and at most 3 connections per address."""
    env = {
        "NOTIFICATIONS_WS_OPEN_TIMEOUT": "1",
        "NOTIFICATIONS_WS_MAX_CONNECTIONS_PER_ADDRESS": "3",
    }
    with WebSocketServerProcess(redis_prefix=redis_prefix, env=env) as server:
        yield server


class LowFdServer(WebSocketServerProcess):
    """A runwsserver started with a soft RLIMIT_NOFILE of ``fd_limit``."""

    def __init__(self, *, fd_limit: int, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.fd_limit = fd_limit

    def _limit(self) -> None:
        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.fd_limit, hard))

    def start(self, port: int = 0) -> None:
        popen = functools.partial(subprocess.Popen, preexec_fn=self._limit)
        with mock.patch.object(subprocess, "Popen", popen):
            super().start(port)


# Control frames.


def flood_once(server: WebSocketServerProcess) -> tuple[int, str]:
    """Open an unauthenticated socket, pour pings into it, return its close."""
    with websocket(server) as ws:
        try:
            for _ in range(16):
                ws.socket.sendall(PING * 10_000)
        except OSError:
            pass  # the client's own thread closed the socket on the server's EOF
        return close_of(ws)


def test_ping_flood_is_closed_and_others_keep_their_latency(ws_server):
    """Pings past the control-frame burst close the socket with 4008; others don't wait."""
    since = len(ws_server.lines)
    closes: list[tuple[int, str]] = []
    stop = threading.Event()

    def flood() -> None:
        while not stop.is_set():
            closes.append(flood_once(ws_server))

    latencies = []
    with subscriber(ws_server, make_user()) as bystander:
        flooder = threading.Thread(target=flood, daemon=True)
        flooder.start()
        try:
            for _ in range(4):
                time.sleep(0.2)
                start = time.monotonic()
                event = services.send_event(title="during the flood")
                assert receive(bystander, timeout=1)["id"] == event.pk
                latencies.append(time.monotonic() - start)
        finally:
            stop.set()
            flooder.join(timeout=10)
    assert closes, "no flood connection finished"
    assert set(closes) == {(4008, "rate limit exceeded")}
    assert max(latencies) < 0.5, latencies
    ws_server.wait_for_log(
        "(refused|closed) 127.0.0.1:\\d+: .*control frames over", since=since
    )
    refusals = logged(ws_server, "control frames over the rate limit", since)
    assert len(refusals) == len(closes)
    assert_clean_log(ws_server, since)
    assert_still_serving(ws_server)


def authenticated_raw(server: WebSocketServerProcess) -> socket.socket:
    """A raw socket past its welcome, with a small receive buffer, that won't read."""
    session_key = session_key_of(logged_in_client(make_user()))
    cookie = f"{settings.SESSION_COOKIE_NAME}={session_key}"
    sock = raw_connect(server, SO_RCVBUF=4096)
    sock.sendall(upgrade_request([("Cookie", cookie)]))
    assert read_until(sock, b"\r\n\r\n").startswith(b"HTTP/1.1 101")
    sock.sendall(HELLO)
    read_until(sock, b'"welcome"')
    return sock


def pour_pings(sock: socket.socket) -> None:
    """Send a batch of pings; return early when the server stops reading."""
    sock.settimeout(0.2)
    with contextlib.suppress(TimeoutError):
        sock.sendall(BIG_PING * 500)


#: Let the pings through: these tests are about the output bound.
NO_CONTROL_LIMIT = {
    "NOTIFICATIONS_WS_CONTROL_RATE_LIMIT": "1000000",
    "NOTIFICATIONS_WS_CONTROL_RATE_BURST": "1000000",
}


def test_client_that_never_reads_is_dropped_with_bounded_memory(redis_prefix):
    """Output over WS_MAX_BUFFER stops reading and aborts the client; memory stays flat."""
    with WebSocketServerProcess(
        redis_prefix=redis_prefix, env=NO_CONTROL_LIMIT
    ) as server:
        since = len(server.lines)
        with authenticated_raw(server) as sock:
            baseline = peak = vm_rss(server.process.pid)
            port = sock.getsockname()[1]
            # The close line, with the abort's cause.
            line = rf"closed 127\.0\.0\.1:{port}: .* 1006 .*: output buffer over 1048576 bytes"
            deadline = time.monotonic() + 10
            while not logged(server, line, since):
                assert time.monotonic() < deadline, "never closed"
                try:
                    pour_pings(sock)
                except OSError:
                    break
                peak = max(peak, vm_rss(server.process.pid))
            server.wait_for_log(line, since=since)
            wait_closed(sock)
        assert peak - baseline < 30 * 2**20, f"grew {(peak - baseline) >> 20} MB"
        assert len(logged(server, "output buffer over", since)) == 1
        assert_clean_log(server, since)
        assert_still_serving(server)


def test_unread_close_frame_does_not_hold_up_shutdown(redis_prefix):
    """A client that doesn't read its 1001 is dropped at the close timeout, not waited for."""
    env = {**NO_CONTROL_LIMIT, "NOTIFICATIONS_WS_MAX_BUFFER": str(2**30)}
    server = WebSocketServerProcess(redis_prefix=redis_prefix, env=env)
    server.start()
    try:
        with authenticated_raw(server) as sock:
            port = sock.getsockname()[1]
            flood_until = time.monotonic() + 1
            while time.monotonic() < flood_until:  # megabytes of pongs, never read
                pour_pings(sock)
            assert_still_serving(server)
            since = len(server.lines)
            start = time.monotonic()
            assert server.stop() == 0
            assert time.monotonic() - start < 6
    finally:
        if server.process is not None and server.process.poll() is None:
            server.kill()
    closes = logged(
        server, f"closed 127.0.0.1:{port}: .*: close frame not read in time", since
    )
    assert len(closes) == 1, server.lines[since:]
    assert "1001 (no reason) by server" in closes[0], closes
    assert_clean_log(server, since)


# Handshake.


def test_socket_that_never_upgrades_is_closed_after_the_open_timeout(guarded_server):
    """No request, or half of one, within WS_OPEN_TIMEOUT: closed and logged once."""
    since = len(guarded_server.lines)
    silent = raw_connect(guarded_server)
    slow = raw_connect(guarded_server)
    with silent, slow:
        slow.sendall(b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        start = time.monotonic()
        wait_closed(silent)
        wait_closed(slow)
        assert 0.8 < time.monotonic() - start < 3
        for sock in (silent, slow):
            port = sock.getsockname()[1]
            pattern = (
                f"refused 127.0.0.1:{port}: no complete handshake within 1\\.\\d+s"
            )
            guarded_server.wait_for_log(pattern, since=since)
            assert len(logged(guarded_server, f":{port}:", since)) == 1
    assert_clean_log(guarded_server, since)
    assert_still_serving(guarded_server)


def test_connections_per_address_are_capped_from_accept(guarded_server):
    """The 4th open TCP connection from one address (the 3rd mid-upgrade) is aborted."""
    since = len(guarded_server.lines)
    alice, bob = make_user(), make_user()
    with subscriber(guarded_server, alice), subscriber(guarded_server, bob):
        pending = raw_connect(guarded_server)
        pending_port = pending.getsockname()[1]
        with pending:
            pending.sendall(b"GET /ws HTTP/1.1\r\n")  # still in its upgrade
            fourth = raw_connect(guarded_server)
            with fourth:
                port = fourth.getsockname()[1]
                with contextlib.suppress(OSError):  # it may be gone already
                    fourth.sendall(upgrade_request())
                wait_closed(fourth)  # no HTTP response at all
            guarded_server.wait_for_log(
                f"refused 127.0.0.1:{port}: too many connections from this address",
                since=since,
            )
        # Its slot is free once the server has seen it go.
        guarded_server.wait_for_log(f"refused 127.0.0.1:{pending_port}", since=since)
        assert len(logged(guarded_server, f":{port}:", since)) == 1
        assert_clean_log(guarded_server, since)
        assert_still_serving(guarded_server)


def test_oversize_headers_get_431(ws_server):
    """128 headers of 8 KB (under websockets' own limits) exceed WS_MAX_HEADER_BYTES."""
    since = len(ws_server.lines)
    padding = [(f"X-Padding-{i}", "a" * 8000) for i in range(122)]
    with raw_connect(ws_server) as sock:
        port = sock.getsockname()[1]
        sock.sendall(upgrade_request(padding))
        response = read_until(sock, b"\r\n\r\n")
        assert response.startswith(b"HTTP/1.1 431 ")
    pattern = f"refused 127.0.0.1:{port}: request headers of \\d+ bytes, over 16384 \\(HTTP 431\\)"
    ws_server.wait_for_log(pattern, since=since)
    assert len(logged(ws_server, f":{port}:", since)) == 1
    assert_clean_log(ws_server, since)
    assert_still_serving(ws_server)


def test_two_cookie_headers_are_joined(ws_server):
    """A session cookie in the second of two Cookie headers authenticates (no HTTP 500)."""
    since = len(ws_server.lines)
    session_key = session_key_of(logged_in_client(make_user()))
    cookies = [
        ("Cookie", "theme=dark"),
        ("Cookie", f"{settings.SESSION_COOKIE_NAME}={session_key}"),
    ]
    with connect(
        ws_server.url, additional_headers=cookies, proxy=None, open_timeout=5
    ) as ws:
        send_json(ws, {"type": "hello"})
        assert receive(ws, timeout=5)["type"] == "welcome"
    assert_clean_log(ws_server, since)
    assert "process_request failed" not in "\n".join(ws_server.lines[since:])
    assert_still_serving(ws_server)


# File descriptors.


def test_connections_stop_short_of_the_file_descriptor_limit(redis_prefix):
    """Near RLIMIT_NOFILE the server warns once, then refuses past the reserve."""
    with LowFdServer(redis_prefix=redis_prefix, fd_limit=160) as server:
        since = len(server.lines)
        sockets: list[socket.socket] = []
        try:
            # 160 descriptors, 32 kept in reserve: room for 128 connections.
            for _ in range(128):
                sockets.append(raw_connect(server))
            server.wait_for_log(
                "connections open, 90% of the 128 the file descriptor limit allows",
                since=since,
            )
            refused = raw_connect(server)
            sockets.append(refused)
            wait_closed(refused)
            server.wait_for_log(
                r"refused 127\.0\.0\.1:\d+: too many open connections \(128, the "
                r"most the file descriptor limit of 160 allows with 32 kept in reserve\)",
                since=since,
            )
        finally:
            for sock in sockets:
                sock.close()
        assert len(logged(server, "90% of the 128", since)) == 1
        assert len(logged(server, "too many open connections", since)) == 1
        assert_clean_log(server, since)
        assert_still_serving(server)


def test_admission_warns_again_only_after_dropping_under_80_percent(caplog):
    """The capacity warning re-arms below 80%; the per-address cap counts each address."""
    admission = Admission(max_per_address=2, fd_limit=42, fd_reserve=32)

    def warnings() -> list[str]:
        return [r.message for r in caplog.records if "90% of the 10 " in r.message]

    for i in range(9):
        assert admission.admit(f"10.0.0.{i}") is None
    assert len(warnings()) == 1
    admission.release("10.0.0.8")  # 8 open: 80%, not under
    assert admission.admit("10.0.0.8") is None
    assert len(warnings()) == 1
    admission.release("10.0.0.8")
    admission.release("10.0.0.7")  # 7 open
    assert admission.admit("10.0.0.7") is None
    assert admission.admit("10.0.0.8") is None
    assert len(warnings()) == 2
    assert admission.admit("10.0.0.0") is None  # 10 open: full
    assert "too many open connections" in (admission.admit("10.0.0.9") or "")
    admission.release("10.0.0.1")
    assert admission.admit("10.0.0.0") == "too many connections from this address"
    assert len(admission) == 9
