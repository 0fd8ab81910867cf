"""
The relay's canary: proof that what is published to the stream comes back.

A relay can read on, its XREAD answering on time and its pings flowing,
while nothing published reaches it: Redis refusing writes (``CLIENT PAUSE
WRITE``, as a failover does), the relay's long-lived connection left on a
server that no longer gets the writes, a read loop wedged behind its own
work. That is the failure users of other WebSocket servers report as
"sockets open, no events arriving", and no timeout sees it.

So while the relay reads, the process publishes a canary entry every
``NOTIFICATIONS_CANARY_INTERVAL`` seconds on a connection of its own, and
the relay notes each one it reads back. A canary unanswered for
``NOTIFICATIONS_CANARY_TIMEOUT`` seconds means events would not arrive
either: ``/readyz`` fails, and the relay reconnects and catches up from the
database. Every process reads every canary in the stream and drops the
others' (one small entry per process per interval).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import deque

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from notifications.wire import Canary as CanaryMessage
from notifications.wire import encode_canary

from .redis_calls import redis_call

__all__ = ["Canary", "CanaryLost"]

#: Canaries remembered while unanswered; the oldest is the one that counts.
MAX_UNANSWERED = 100


class CanaryLost(Exception):
    """The relay's canary didn't come back through the stream in time."""


class Canary:
    def __init__(
        self,
        redis: aioredis.Redis,
        stream: str,
        relay_connected: asyncio.Event,
        *,
        interval: float,
        timeout: float,
        maxlen: int,
    ) -> None:
        self.redis = redis
        self.stream = stream
        self.relay_connected = relay_connected
        self.interval = interval
        self.timeout = timeout
        self.maxlen = maxlen
        self.process = uuid.uuid4().hex
        self._sequence = 0
        # (sequence, when sent), oldest first.
        self._unanswered: deque[tuple[int, float]] = deque(maxlen=MAX_UNANSWERED)

    async def run(self) -> None:
        """Send a canary every interval while the relay reads; until cancelled."""
        while True:
            # One sent before the relay chose where to start reading would
            # never come back.
            await self.relay_connected.wait()
            await self.send()
            await asyncio.sleep(self.interval)

    async def send(self) -> None:
        self._sequence += 1
        self._unanswered.append((self._sequence, time.monotonic()))
        try:
            async with asyncio.timeout(self.timeout):
                await redis_call(
                    self.redis.xadd(
                        self.stream,
                        {"m": encode_canary(self.process, self._sequence)},
                        maxlen=self.maxlen,
                        approximate=True,
                    )
                )
        except (RedisError, OSError, TimeoutError):
            pass  # it stays unanswered, which says all there is to say

    def returned(self, message: CanaryMessage) -> None:
        """The relay read ``message``: this canary and every earlier one are back."""
        if message.process != self.process:
            return
        while self._unanswered and self._unanswered[0][0] <= message.sequence:
            self._unanswered.popleft()

    def overdue(self, *, sent_since: float = float("-inf")) -> bool:
        """
        Whether a canary sent at or after ``sent_since`` (a monotonic time)
        has gone unanswered for longer than the timeout.
        """
        now = time.monotonic()
        for _sequence, sent in self._unanswered:
            if sent >= sent_since:
                return now - sent > self.timeout
        return False
