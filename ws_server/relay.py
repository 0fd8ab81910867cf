"""
Read the Redis stream that Django publishes to, and survive Redis outages.

Every ws_server process reads the whole stream (each must reach its own
clients), starting from the newest entry when it starts. It remembers the id
of the last entry it read: when the connection drops, it reconnects with
exponential backoff and full jitter, logs the outage once and the recovery
once, then asks the dispatcher to catch up from the database (which has every
committed event, including those whose publish failed while Redis was down)
before reading the stream again from where it stopped.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import cast

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from notifications.wire import RedisMessage, UnknownVersion, decode_redis

from .delivery import Dispatcher

__all__ = ["Relay"]

logger = logging.getLogger(__name__)

StreamEntries = list[tuple[bytes, dict[bytes, bytes]]]

# XREAD blocks this long per call; an idle connection still proves it's alive.
BLOCK_MS = 5_000
BATCH = 512


class Backoff:
    """Exponential backoff with full jitter: 0 to min(cap, base * 2**n)."""

    def __init__(self, base: float = 0.1, cap: float = 5.0) -> None:
        self.base = base
        self.cap = cap
        self.attempts = 0

    def next_delay(self) -> float:
        delay = random.uniform(0, min(self.cap, self.base * 2**self.attempts))
        self.attempts += 1
        return delay

    def reset(self) -> None:
        self.attempts = 0


class Relay:
    def __init__(self, redis_url: str, stream: str, dispatcher: Dispatcher) -> None:
        self.redis_url = redis_url
        self.stream = stream
        self.dispatcher = dispatcher
        self.connected = asyncio.Event()
        self._last_entry: str | None = None

    async def run(self) -> None:
        """Relay until cancelled, reconnecting whenever Redis goes away."""
        backoff = Backoff()
        outage = False
        while True:
            redis = aioredis.Redis.from_url(
                self.redis_url,
                socket_connect_timeout=2,
                # Longer than BLOCK_MS: a silent socket means a dead server.
                socket_timeout=BLOCK_MS / 1000 + 5,
                socket_keepalive=True,
            )
            try:
                await self._connect(redis, recovering=outage)
                if outage:
                    logger.info("Redis connection restored; relaying again")
                else:
                    logger.info("relay connected to Redis, reading %s", self.stream)
                outage = False
                backoff.reset()
                await self._read_forever(redis)
            except (RedisError, OSError) as exc:
                self.connected.clear()
                if not outage:
                    logger.warning(
                        "Redis connection lost (%s); retrying in the background", exc
                    )
                outage = True
                await asyncio.sleep(backoff.next_delay())
            finally:
                await redis.aclose()

    async def _connect(self, redis: aioredis.Redis, *, recovering: bool) -> None:
        if self._last_entry is None:
            # Start after the newest entry: older ones are in the database,
            # and clients resume them with their last id.
            newest = cast(StreamEntries, await redis.xrevrange(self.stream, count=1))
            self._last_entry = newest[0][0].decode() if newest else "0-0"
        else:
            await redis.ping()
        self.connected.set()
        if recovering:
            caught_up = await self.dispatcher.catch_up()
            logger.info("caught up %d event(s) from the database", caught_up)

    async def _read_forever(self, redis: aioredis.Redis) -> None:
        assert self._last_entry is not None
        while True:
            response = cast(
                list[tuple[bytes, StreamEntries]],
                await redis.xread(
                    {self.stream: self._last_entry}, count=BATCH, block=BLOCK_MS
                ),
            )
            messages = []
            for _stream, entries in response:
                for entry_id, fields in entries:
                    self._last_entry = entry_id.decode()
                    message = _decode(fields.get(b"m", b""))
                    if message is not None:
                        messages.append(message)
            await self.dispatcher.dispatch(messages)


def _decode(raw: bytes) -> RedisMessage | None:
    """Decode a stream entry; log and skip one this version can't read."""
    try:
        return decode_redis(raw)
    except UnknownVersion as exc:
        logger.warning("dropped a Redis message: %s", exc)
    except (ValueError, KeyError, TypeError):
        logger.warning("dropped a malformed Redis message", exc_info=True)
    return None
