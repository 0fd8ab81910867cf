"""
Read the Redis stream that Django publishes to, and survive Redis faults.

Every ws_server process reads the whole stream (each must reach its own
clients), starting from the newest entry when it starts: older events are in
the database, and the sweep (``ws_server.reconcile``) delivers any it
missed. The relay remembers the id of the last entry it read. When Redis
fails or stops answering (a read that doesn't return within its block time
plus a margin means a hung server), it reconnects with exponential backoff
and full jitter, logs the outage once and the recovery once, and reads on
from where it stopped.

A read that answers on time can still be dead (nothing published reaches
it): the canary (``ws_server.canary``) notices, and the relay reconnects as
after any other fault.

Revocations published while the stream was out of reach are lost, and so
are entries trimmed before this relay read them: in both cases every
connection is held until it is re-checked against the database, so no
backlog reaches a socket that was revoked meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import cast

import redis.asyncio as aioredis
from redis.backoff import FullJitterBackoff
from redis.exceptions import RedisError

from notifications.wire import Canary as CanaryMessage
from notifications.wire import (
    EventMessage,
    RedisMessage,
    UnknownVersion,
    decode_redis,
)

from . import metrics
from .canary import Canary, CanaryLost
from .db import DatabaseUnavailable
from .delivery import Dispatcher
from .reconcile import Sweeper
from .redis_calls import cancelling, redis_call

__all__ = ["Relay"]

logger = logging.getLogger(__name__)

StreamEntries = list[tuple[bytes, dict[bytes, bytes]]]

# XREAD blocks this long per call; no answer within it plus a margin means a
# hung Redis (a live one answers an idle XREAD when the block time is up).
BLOCK_MS = 1_000
HANG_MARGIN = 2.0
BATCH = 512


class Relay:
    def __init__(
        self,
        redis_url: str,
        stream: str,
        dispatcher: Dispatcher,
        sweeper: Sweeper,
        canary: Canary,
    ) -> None:
        self.redis_url = redis_url
        self.stream = stream
        self.dispatcher = dispatcher
        self.sweeper = sweeper
        self.canary = canary
        # Set while the relay reads the stream; the sweep hurries when not.
        self.connected = sweeper.relay_connected
        self._last_entry: str | None = None
        # When the current connection started reading: only canaries sent
        # since then can condemn it.
        self._reading_since = 0.0

    async def run(self) -> None:
        """Relay until cancelled, reconnecting whenever Redis goes away."""
        backoff = FullJitterBackoff(cap=5.0, base=0.1)
        failures = 0
        while True:
            redis = aioredis.Redis.from_url(
                self.redis_url,
                socket_connect_timeout=2,
                socket_timeout=BLOCK_MS / 1000 + HANG_MARGIN,
                socket_keepalive=True,
            )
            try:
                await self._connect(redis, recovering=failures > 0)
                if failures:
                    metrics.REDIS_RECONNECTS.inc()
                    logger.info("Redis connection restored; relaying again")
                else:
                    logger.info("relay connected to Redis, reading %s", self.stream)
                failures = 0
                await self._read_forever(redis)
            except (RedisError, OSError, CanaryLost) as exc:
                if cancelling():
                    # redis-py can report a cancelled read as a failed one.
                    raise asyncio.CancelledError from exc
                self.connected.clear()
                if not failures:
                    logger.warning(
                        "Redis connection lost (%s); retrying in the background", exc
                    )
                failures += 1
                await asyncio.sleep(backoff.compute(failures))
            finally:
                await redis.aclose()

    async def _connect(self, redis: aioredis.Redis, *, recovering: bool) -> None:
        # A round trip before saying "connected": redis-py connects lazily,
        # and a relay that last read an empty stream has nothing else to ask
        # here, so it used to report a hung Redis as restored.
        await redis_call(redis.ping())
        if self._last_entry is None:
            # Start after the newest entry: the sweep covers what came before.
            newest = cast(
                StreamEntries, await redis_call(redis.xrevrange(self.stream, count=1))
            )
            self._last_entry = newest[0][0].decode() if newest else "0-0"
        elif await self._trimmed(redis) or recovering:
            await self._recover()
        self._reading_since = time.monotonic()
        self.connected.set()

    async def _recover(self) -> None:
        """
        Whatever was published meanwhile may be lost, revocations included:
        hold every connection until it is re-checked, deliver what the
        database has, and only then what the stream has.

        Nothing here waits for the re-checks: the core holds each
        connection's frames until its own re-check settles it, so the relay
        reads on at once.
        """
        now = time.monotonic()
        core = self.dispatcher.core
        logger.info("re-checking %d connection(s)", len(core))
        self.dispatcher.apply(core.doubt_everyone(now))
        try:
            caught_up = await self.sweeper.catch_up(missing_since=now)
        except DatabaseUnavailable:
            return  # the sweep goes on in the background
        logger.info("caught up %d event(s) from the database", caught_up)

    async def _recover_between_reads(self) -> None:
        """
        Recover with the stream's reading paused, as after a reconnection.

        The relay reads nothing while it catches up from the database, so a
        canary sent meanwhile can't come back however healthy Redis is: a
        recovery longer than the canary timeout used to condemn the
        connection and run a second recovery. So, while it lasts, the relay
        counts as not reading (the canary waits, readiness says why), and
        the canary's clock restarts when reading does.
        """
        self.connected.clear()
        await self._recover()
        self._reading_since = time.monotonic()
        self.connected.set()

    async def _read_forever(self, redis: aioredis.Redis) -> None:
        assert self._last_entry is not None
        while True:
            response = cast(
                list[tuple[bytes, StreamEntries]],
                await redis_call(
                    redis.xread(
                        {self.stream: self._last_entry}, count=BATCH, block=BLOCK_MS
                    )
                ),
            )
            entries = [
                entry
                for _stream, stream_entries in response
                for entry in stream_entries
            ]
            if entries and await self._trimmed(redis):
                # Fell behind the stream's MAXLEN: what was trimmed is lost.
                await self._recover_between_reads()
            messages = []
            published = []  # when Redis took each event, in ms since the epoch
            for entry_id, fields in entries:
                self._last_entry = entry_id.decode()
                message = _decode(fields.get(b"m", b""))
                if isinstance(message, CanaryMessage):
                    self.canary.returned(message)
                elif message is not None:
                    messages.append(message)
                    if isinstance(message, EventMessage):
                        published.append(_entry_id(self._last_entry)[0])
            self.dispatcher.dispatch(messages)
            _measure(published)
            if self.canary.overdue(sent_since=self._reading_since):
                raise CanaryLost(
                    f"no canary came back through the stream within "
                    f"{self.canary.timeout}s"
                )

    async def _trimmed(self, redis: aioredis.Redis) -> bool:
        """
        Tell whether entries after the last one read may have been trimmed.

        Conservative: true whenever the oldest entry left is newer than the
        last one read (which may itself have gone, with nothing after it).
        One extra round trip per read. A stream that was empty when the
        relay started has no last entry to compare with.
        """
        assert self._last_entry is not None
        if self._last_entry == "0-0":
            return False
        oldest = cast(
            StreamEntries, await redis_call(redis.xrange(self.stream, count=1))
        )
        if not oldest or _entry_id(oldest[0][0].decode()) <= _entry_id(
            self._last_entry
        ):
            return False
        logger.warning(
            "the stream was trimmed past this relay (read up to %s, oldest is %s); "
            "re-checking every connection",
            self._last_entry,
            oldest[0][0].decode(),
        )
        return True


def _measure(published: list[int]) -> None:
    """Count relayed events and how long each took from Redis to the sockets."""
    if not published:
        return
    metrics.EVENTS_RELAYED.inc(len(published))
    now_ms = time.time() * 1000
    for milliseconds in published:
        metrics.RELAY_LAG_SECONDS.observe(max(now_ms - milliseconds, 0) / 1000)


def _entry_id(entry: str) -> tuple[int, int]:
    milliseconds, _dash, sequence = entry.partition("-")
    return int(milliseconds), int(sequence or 0)


def _decode(raw: bytes) -> RedisMessage | None:
    """Decode a stream entry; log and skip one this version can't read."""
    try:
        return decode_redis(raw)
    except UnknownVersion as exc:
        logger.warning("dropped a Redis message: %s", exc)
    except ValueError as exc:
        # Bad input the wire format names (an id out of range, bad JSON):
        # the reason is the whole story, a traceback would only add noise.
        logger.warning("dropped a malformed Redis message: %s", exc)
    except (KeyError, TypeError, ArithmeticError):
        # ArithmeticError: int() of a JSON number like 1e400 (infinity).
        logger.warning("dropped a malformed Redis message", exc_info=True)
    return None
