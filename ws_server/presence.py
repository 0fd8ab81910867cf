"""
Tell Redis who is connected to this process, so anyone can ask who is online.

Every ``NOTIFICATIONS_PRESENCE_INTERVAL`` seconds the process writes one hash,
``<prefix>:presence:<process id>``, mapping each connected user id to its
number of connections here, gives it a time to live of three intervals
(``TTL_INTERVALS``), and scores
it in the registry (``<prefix>:presence``) with the time it expires, so
readers find the live hashes without scanning keys. A process that stops
deletes its hash; one that is killed or hung leaves it to expire, so nobody
stays online longer than that after their process died.
``notifications.presence`` reads them.

Presence is advisory: a Redis outage only makes the numbers stale (logged
once), never touches a connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import secrets
import socket
import time
from collections import Counter

from redis.asyncio import Redis
from redis.exceptions import RedisError

from notifications.broker import presence_key, presence_registry_key

from .core import Core
from .redis_calls import redis_call

__all__ = ["TTL_INTERVALS", "Presence"]

logger = logging.getLogger(__name__)

#: Intervals a process's presence outlives its last write.
TTL_INTERVALS = 3


class Presence:
    def __init__(self, core: Core, redis: Redis, *, interval: float) -> None:
        self.core = core
        self.redis = redis
        self.interval = interval
        self.ttl = TTL_INTERVALS * interval
        self.key = presence_key(
            f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        )
        self._failing = False

    async def run(self) -> None:
        """Publish presence forever; delete it when cancelled (shutdown)."""
        try:
            while True:
                await self.publish()
                await asyncio.sleep(self.interval)
        finally:
            with contextlib.suppress(RedisError, OSError):
                pipe = self.redis.pipeline(transaction=True)
                pipe.delete(self.key)
                pipe.zrem(presence_registry_key(), self.key)
                await redis_call(pipe.execute())

    async def publish(self) -> None:
        """Replace this process's hash with who is connected now."""
        counts = Counter(sub.principal.user_id for sub in self.core.subscribers())
        try:
            # execute() resets the pipeline itself, inside redis_call.
            pipe = self.redis.pipeline(transaction=True)
            pipe.delete(self.key)
            if counts:
                pipe.hset(
                    self.key,
                    mapping={str(user): count for user, count in counts.items()},
                )
                pipe.expire(self.key, math.ceil(self.ttl))
            now = time.time()
            pipe.zadd(presence_registry_key(), {self.key: now + self.ttl})
            # Killed processes' entries: every live process sweeps them.
            pipe.zremrangebyscore(presence_registry_key(), "-inf", now)
            await redis_call(pipe.execute())
        except (RedisError, OSError) as exc:
            if not self._failing:
                logger.warning("presence not published, Redis failed: %s", exc)
            self._failing = True
        else:
            if self._failing:
                logger.info("presence published again")
            self._failing = False
