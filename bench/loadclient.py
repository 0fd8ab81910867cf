"""
The load client: a separate process that opens connections the way browsers
do and records every notification frame it receives.

The orchestrator drives it with one JSON command per line on stdin and reads
one JSON answer per line on stdout, so several load clients can run side by
side and none of them shares a core's time with the Django side. Sockets
bind to several 127.0.0.x source addresses: one address has only ~28,000
ephemeral ports, and spreading keeps every run far from that limit.

Commands: ``connect`` (open a range of sessions' connections, wait for each
welcome), ``wait`` (until a number of notification frames arrived), ``dump``
(write the receipt log and clear it), ``stats``, ``close``, ``exit``.

With ``--ack`` every connection acknowledges the notifications it receives,
as the reference client does (``AcknowledgingConnection``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import time
from array import array
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.wsclient import OP_TEXT, Connection, handshake_request, mask_frame
from notifications.wire import MAX_ACK_IDS, NOTIFICATION

# Linux: bind the address now, choose the port at connect() time, so ports
# are shared across destinations instead of reserved per bind().
IP_BIND_ADDRESS_NO_PORT = 24

#: How a notification frame starts: ``encode_notification`` puts the type
#: first, and the event's fields start with its id (``event_payload``).
#: Pushes start otherwise and, as in live.js, are not acknowledged.
NOTIFICATION_ID = b'{"type":"%s","id":' % NOTIFICATION.encode()
_ID_START = len(NOTIFICATION_ID)
#: Seconds from the first unacknowledged notification to its ``ack`` (live.js).
ACK_DELAY = 0.25


class AcknowledgingConnection(Connection):
    """
    A connection that acknowledges notifications as live.js does: the ids
    received go in one ``ack`` ACK_DELAY after the first of them, and those
    of a replay wait for the ``welcome`` (live.js sends nothing before it).

    Frames are kept as they came and their ids cut out as bytes when the
    ``ack`` is sent, once per batch: the added per-frame work is a
    ``startswith`` and an append, and nothing is parsed or JSON-encoded.
    """

    def __init__(
        self, index: int, request: bytes, hello: bytes, log: array[float]
    ) -> None:
        super().__init__(index, request, hello, log)
        self.loop = asyncio.get_running_loop()
        #: Notification frames received since the last ``ack``.
        self.unacknowledged: list[bytes] = []
        self.ack_timer: asyncio.TimerHandle | None = None
        self.acks_sent = 0
        self.ready.add_done_callback(lambda _: self._send_acks())

    def _on_message(self, payload: bytes, now: float) -> None:
        Connection._on_message(self, payload, now)  # not super(): once a frame
        if payload.startswith(NOTIFICATION_ID):
            self.unacknowledged.append(payload)
            if self.ack_timer is None:
                self.ack_timer = self.loop.call_later(ACK_DELAY, self._send_acks)

    def _send_acks(self) -> None:
        """Send the queued ids, at most MAX_ACK_IDS a message, once welcomed."""
        if self.ack_timer is not None:
            self.ack_timer.cancel()
            self.ack_timer = None
        transport = self.transport
        if not self.ready.done() or transport is None or transport.is_closing():
            return
        ids = [p[_ID_START : p.find(b",", _ID_START)] for p in self.unacknowledged]
        self.unacknowledged = []
        for start in range(0, len(ids), MAX_ACK_IDS):
            chunk = b",".join(ids[start : start + MAX_ACK_IDS])
            transport.write(mask_frame(OP_TEXT, b'{"type":"ack","ids":[%s]}' % chunk))
            self.acks_sent += 1

    def close(self) -> None:
        """
        Send what is queued first: a page left open would have sent it within
        ACK_DELAY, and the measurement reads the acknowledgements back.
        """
        self._send_acks()
        super().close()


class LoadClient:
    """Connections of one load-client process, and the frames they received."""

    def __init__(self, options: argparse.Namespace, sessions: list[str]) -> None:
        url = urlsplit(options.url)
        self.host = url.hostname or "127.0.0.1"
        self.port = url.port or 80
        self.path = url.path or "/"
        self.origin = options.origin
        self.cookie_name = options.cookie_name
        self.deflate = options.deflate
        self.protocol = AcknowledgingConnection if options.ack else Connection
        self.addresses = options.addresses.split(",")
        self.sessions = sessions
        self.log: array[float] = array("d")
        self.connections: list[Connection] = []

    async def connect(
        self,
        start: int,
        count: int,
        concurrency: int,
        timeout: float,
        last_id: int | None = None,
    ) -> dict[str, Any]:
        """
        Open ``count`` connections with at most ``concurrency`` in flight.

        ``last_id`` is what ``hello`` says was seen last: a resuming client.
        """
        indexes = iter(range(start, start + count))
        errors: Counter[str] = Counter()
        hello = json.dumps({"type": "hello", "last_id": last_id}).encode()
        started = time.time()
        await asyncio.gather(
            *(self._worker(indexes, errors, timeout, hello) for _ in range(concurrency))
        )
        return {
            "ready": sum(
                1
                for c in self.connections
                if c.ready.done() and not c.ready.exception()
            ),
            "failed": sum(errors.values()),
            "errors": dict(errors),
            "started": started,
            "finished": time.time(),
        }

    async def _worker(
        self,
        indexes: Iterator[int],
        errors: Counter[str],
        timeout: float,
        hello: bytes,
    ) -> None:
        for index in indexes:
            try:
                self.connections.append(await self._open(index, timeout, hello))
            except (OSError, TimeoutError) as exc:
                errors[f"{type(exc).__name__}: {exc}"[:120]] += 1

    async def _open(self, index: int, timeout: float, hello: bytes) -> Connection:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            sock.bind((self.addresses[index % len(self.addresses)], 0))
            sock.setblocking(False)
            async with asyncio.timeout(timeout):
                await loop.sock_connect(sock, (self.host, self.port))
                request = self._request(self.sessions[index % len(self.sessions)])
                _, connection = await loop.create_connection(
                    lambda: self.protocol(index, request, hello, self.log), sock=sock
                )
                await connection.ready
        except BaseException:
            sock.close()
            raise
        return connection

    def _request(self, session_key: str) -> bytes:
        headers = {"Cookie": f"{self.cookie_name}={session_key}"}
        if self.origin:
            headers["Origin"] = self.origin
        return handshake_request(
            self.host, self.port, self.path, headers, deflate=self.deflate
        )

    async def wait(self, total: int, timeout: float) -> dict[str, Any]:
        """Wait until ``total`` notification frames arrived, or ``timeout``."""
        deadline = time.monotonic() + timeout
        while len(self.log) < 3 * total and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        return {
            "received": len(self.log) // 3,
            "last": self.log[-1] if self.log else None,
        }

    def dump(self, path: str) -> dict[str, Any]:
        """Write ``(seq, connection, time)`` triples as raw doubles; clear the log."""
        with Path(path).open("wb") as file:
            self.log.tofile(file)
        count = len(self.log) // 3
        del self.log[:]
        return {"frames": count}

    def stats(self) -> dict[str, Any]:
        closed = Counter(c.closed.result() for c in self.connections if c.closed.done())
        return {
            "open": len(self.connections) - sum(closed.values()),
            "closed": {str(code): n for code, n in closed.items()},
            "acks_sent": sum(
                c.acks_sent
                for c in self.connections
                if isinstance(c, AcknowledgingConnection)
            ),
        }

    async def close(self, timeout: float) -> dict[str, Any]:
        """Close every connection with the closing handshake, bounded in time."""
        for connection in self.connections:
            connection.close()
        pending = [c.closed for c in self.connections if not c.closed.done()]
        if pending:
            await asyncio.wait(pending, timeout=timeout)
        for connection in self.connections:
            if connection.transport is not None and not connection.closed.done():
                connection.transport.abort()
        count = len(self.connections)
        self.connections = []
        return {"closed": count}


async def serve_commands(client: LoadClient) -> None:
    """Answer the orchestrator's commands until ``exit`` or end of input."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
    )
    while line := await reader.readline():
        command = json.loads(line)
        name = command.pop("cmd")
        if name == "exit":
            break
        if name == "connect":
            answer = await client.connect(**command)
        elif name == "wait":
            answer = await client.wait(**command)
        elif name == "dump":
            answer = client.dump(**command)
        elif name == "stats":
            answer = client.stats()
        elif name == "close":
            answer = await client.close(**command)
        else:
            answer = {"error": f"unknown command {name!r}"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
    await client.close(timeout=2)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="ws://host:port/path")
    parser.add_argument(
        "--sessions", required=True, help="file: one session key a line"
    )
    parser.add_argument("--origin", default="", help="Origin header ('' sends none)")
    parser.add_argument("--cookie-name", default="sessionid")
    parser.add_argument("--addresses", default="127.0.0.2", help="source addresses")
    parser.add_argument(
        "--deflate", action="store_true", help="offer permessage-deflate"
    )
    parser.add_argument(
        "--ack", action="store_true", help="acknowledge notifications as live.js does"
    )
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="uvloop")
    return parser.parse_args()


def main() -> None:
    options = parse_args()
    sessions = Path(options.sessions).read_text().split()
    client = LoadClient(options, sessions)
    if options.loop == "uvloop":
        import uvloop

        uvloop.run(serve_commands(client))
    else:
        asyncio.run(serve_commands(client))


if __name__ == "__main__":
    main()
