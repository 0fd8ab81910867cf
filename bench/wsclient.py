"""
A minimal WebSocket client protocol for the load client: just enough to open
a connection as a browser does and to count notification frames cheaply.

Why hand-rolled: at 100,000+ frames/s the load client shares two cores with
the server under test, so it must spend as little as possible per frame. A
full client (websockets' asyncio client) parses every frame through several
layers and queues; this one finds the frame boundaries, inflates when the
server compresses, and looks for the benchmark marker in the payload without
decoding JSON. It speaks enough of RFC 6455 to stay a correct peer: it masks
what it sends, answers pings and completes the closing handshake.

Stdlib only, so the load client imports nothing it doesn't need.
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
import zlib
from array import array
from typing import cast

__all__ = ["MARKER", "Connection", "handshake_request", "mask_frame"]

#: Event titles read ``bench:<seq>:<time.time() at the send_event call>``.
MARKER = b'"title":"bench:'
_MARKER_END = len(MARKER)

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10

#: What Chrome and Firefox offer (RFC 7692); the server picks the parameters.
DEFLATE_OFFER = "permessage-deflate; client_max_window_bits"
_DEFLATE_TRAILER = b"\x00\x00\xff\xff"


def handshake_request(
    host: str, port: int, path: str, headers: dict[str, str], *, deflate: bool
) -> bytes:
    """Build the HTTP Upgrade request a browser sends."""
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    if deflate:
        lines.append(f"Sec-WebSocket-Extensions: {DEFLATE_OFFER}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def mask_frame(opcode: int, payload: bytes) -> bytes:
    """Encode one final client frame; clients must mask (RFC 6455, 5.3)."""
    length = len(payload)
    header = bytearray([0x80 | opcode])
    if length < 126:
        header.append(0x80 | length)
    elif length < 1 << 16:
        header.append(0x80 | 126)
        header += length.to_bytes(2, "big")
    else:
        header.append(0x80 | 127)
        header += length.to_bytes(8, "big")
    key = os.urandom(4)
    repeated = (key * (length // 4 + 1))[:length]
    masked = (
        int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")
    ).to_bytes(length, "big")
    return bytes(header) + key + masked


class Connection(asyncio.Protocol):
    """
    One client connection.

    ``log`` is shared by every connection of the process: each notification
    frame appends ``(seq, connection index, receipt time)``, so the load
    client's only per-frame work is two ``find`` calls and three appends.
    """

    def __init__(
        self, index: int, request: bytes, hello: bytes, log: array[float]
    ) -> None:
        self.index = float(index)
        self.request = request
        self.hello = hello
        self.log = log
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.upgraded = False
        self.buffer = b""
        self.inflater: zlib._Decompress | None = None
        self.reset_inflater = False
        self.fragments: list[bytes] = []
        self.fragment_opcode = 0
        self.inflater_bits = 15
        self.close_code = 0
        self.close_sent = False

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        if self.buffer:
            data = self.buffer + data
            self.buffer = b""
        if not self.upgraded:
            data = self._read_response(data)
            if not data:
                return
        self._read_frames(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"connection lost: {exc}"))
        if not self.closed.done():
            self.closed.set_result(self.close_code or 1006)

    # Handshake

    def _read_response(self, data: bytes) -> bytes:
        end = data.find(b"\r\n\r\n")
        if end < 0:
            self.buffer = data
            return b""
        head, data = data[: end + 4].decode("latin-1"), data[end + 4 :]
        status, *header_lines = head.split("\r\n")
        if " 101 " not in status + " ":
            self._fail(f"handshake refused: {status}")
            return b""
        for line in header_lines:
            name, _, value = line.partition(":")
            if name.strip().lower() == "sec-websocket-extensions":
                self._accept_extension(value.strip())
        self.upgraded = True
        assert self.transport is not None
        self.transport.write(mask_frame(OP_TEXT, self.hello))
        return data

    def _accept_extension(self, value: str) -> None:
        params = [p.strip() for p in value.split(";")]
        if params[0] != "permessage-deflate":
            return
        bits = 15
        for param in params[1:]:
            name, _, arg = param.partition("=")
            if name == "server_max_window_bits" and arg:
                bits = int(arg)
            elif name == "server_no_context_takeover":
                self.reset_inflater = True
        self.inflater_bits = bits
        self.inflater = zlib.decompressobj(wbits=-bits)

    def _fail(self, reason: str) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(reason))
        assert self.transport is not None
        self.transport.abort()

    # Frames (server frames are never masked)

    def _read_frames(self, data: bytes) -> None:
        pos, size = 0, len(data)
        now = time.time()
        while size - pos >= 2:
            b0, length = data[pos], data[pos + 1] & 0x7F
            start = pos + 2
            if length == 126:
                if size - pos < 4:
                    break
                length, start = int.from_bytes(data[pos + 2 : pos + 4], "big"), pos + 4
            elif length == 127:
                if size - pos < 10:
                    break
                length, start = (
                    int.from_bytes(data[pos + 2 : pos + 10], "big"),
                    pos + 10,
                )
            end = start + length
            if end > size:
                break
            pos = end
            if b0 == 0x81:  # final, uncompressed text frame: the common case
                self._on_message(data[start:end], now)
            else:
                self._on_frame(b0, data[start:end], now)
        if pos < size:
            self.buffer = data[pos:]

    def _on_message(self, payload: bytes, now: float) -> None:
        i = payload.find(MARKER)
        if i >= 0:
            i += _MARKER_END
            log = self.log
            log.append(float(payload[i : payload.find(b":", i)]))
            log.append(self.index)
            log.append(now)
        elif not self.ready.done() and b'"welcome"' in payload:
            self.ready.set_result(None)

    def _on_frame(self, b0: int, payload: bytes, now: float) -> None:
        opcode = b0 & 0x0F
        if opcode in (OP_TEXT, OP_BINARY, OP_CONT):
            if opcode != OP_CONT:
                self.fragments, self.fragment_opcode = [], b0
            self.fragments.append(payload)
            if b0 & 0x80:
                message = b"".join(self.fragments)
                if self.fragment_opcode & 0x40:
                    message = self._inflate(message)
                self.fragments = []
                self._on_message(message, now)
        elif opcode == OP_PING:
            assert self.transport is not None
            self.transport.write(mask_frame(OP_PONG, payload))
        elif opcode == OP_CLOSE:
            self.close_code = int.from_bytes(payload[:2], "big") if payload else 1005
            assert self.transport is not None
            if not self.close_sent:
                self.close_sent = True
                self.transport.write(mask_frame(OP_CLOSE, payload[:2]))
            self.transport.close()

    def _inflate(self, message: bytes) -> bytes:
        if self.inflater is None:
            raise ConnectionError("compressed frame without permessage-deflate")
        if self.reset_inflater:
            self.inflater = zlib.decompressobj(wbits=-self.inflater_bits)
        return self.inflater.decompress(message + _DEFLATE_TRAILER)

    # Client side of the closing handshake

    def close(self) -> None:
        """Send a close frame; the server answers and closes the TCP stream."""
        if self.transport is not None and not self.transport.is_closing():
            if self.upgraded and not self.close_sent:
                self.close_sent = True
                self.transport.write(mask_frame(OP_CLOSE, (1000).to_bytes(2, "big")))
            else:
                self.transport.close()
