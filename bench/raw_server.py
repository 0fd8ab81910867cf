"""
The ceiling: the least a websockets server can do for the same fan-out.

No authentication, no database, no hub: every connection that says ``hello``
gets a ``welcome`` and then every event (notification or push) read from the
project's Redis stream, sent with ``broadcast()``. It reads the same stream
the ws_server reads, in the same way (XREAD, batches of 512), and decodes
entries with the project's wire module, so both servers send byte-identical
frames and receive the same publishes. It runs on uvloop, as the issue's reference numbers did.

    python -m bench.raw_server --port 8002 --redis-url redis://... --stream KEY
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

import redis.asyncio as aioredis
from websockets.asyncio.server import ServerConnection, broadcast, serve

from notifications.wire import (
    EventMessage,
    decode_redis,
    encode_frame,
    encode_welcome,
)

logger = logging.getLogger("bench.raw_server")

WELCOME = encode_welcome(user_id=0, username="anonymous", unread=0, cursor=0)


class Broadcaster:
    """The set of connections, and the loop that relays the stream to them."""

    def __init__(self, redis_url: str, stream: str) -> None:
        self.clients: set[ServerConnection] = set()
        # Longer than XREAD's block: redis-py 8's default read timeout (5 s)
        # would race with a 5 s block and kill the relay on an idle stream.
        self.redis = aioredis.Redis.from_url(redis_url, socket_timeout=15)
        self.stream = stream

    async def handler(self, connection: ServerConnection) -> None:
        await connection.recv()  # hello
        await connection.send(WELCOME)
        self.clients.add(connection)
        try:
            await connection.wait_closed()
        finally:
            self.clients.discard(connection)

    async def relay(self) -> None:
        newest = await self.redis.xrevrange(self.stream, count=1)
        last = newest[0][0] if newest else b"0-0"
        logger.info("raw server ready, reading %s", self.stream)
        while True:
            response = await self.redis.xread(
                {self.stream: last}, count=512, block=5000
            )
            for _stream, entries in response:
                for entry_id, fields in entries:
                    last = entry_id
                    message = decode_redis(fields[b"m"])
                    if isinstance(message, EventMessage):
                        frame = encode_frame(message, cursor=message.event_id)
                        broadcast(self.clients, frame)


async def run(host: str, port: int, redis_url: str, stream: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    broadcaster = Broadcaster(redis_url, stream)
    # The same accept backlog as ws_server: with the default (100), the
    # reconnect storm measures SYN retries, not the server.
    async with serve(
        broadcaster.handler, host, port, compression=None, max_size=4096, backlog=2048
    ):
        relay = asyncio.create_task(broadcaster.relay(), name="relay")
        stopping = asyncio.create_task(stop.wait(), name="stop")
        try:
            await asyncio.wait({relay, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if relay.done():
                relay.result()  # the relay only ends by failing: fail loudly
        finally:
            for task in (relay, stopping):
                task.cancel()
            await asyncio.gather(relay, stopping, return_exceptions=True)
    await broadcaster.redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--stream", required=True)
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="uvloop")
    options = parser.parse_args()
    logging.basicConfig(
        format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO
    )
    coroutine = run(options.host, options.port, options.redis_url, options.stream)
    if options.loop == "uvloop":
        import uvloop

        uvloop.run(coroutine)
    else:
        asyncio.run(coroutine)


if __name__ == "__main__":
    main()
