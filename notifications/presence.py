"""
Who is online now, across every ws_server process: for the admin and for
application code.

Each process keeps a hash of its connected users in Redis and refreshes it
every few seconds (``ws_server.presence``); a process that dies stops
counting within three ``NOTIFICATIONS_PRESENCE_INTERVAL`` (15 s). A read is two
round trips, whatever the number of processes. Presence is
advisory, so it never fails its caller: with Redis unreachable or slow these
functions answer within ``NOTIFICATIONS_PUBLISH_TIMEOUT`` per round trip
(at once while the client's circuit breaker is open) that nobody is known to
be online (``is_online`` False, ``online().available`` False, which the admin
shows as "unknown"), and log the outage once when it starts and once when it
ends.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from .broker import get_redis, presence_registry_key
from .usermodel import key_of
from .wire import UserKey

__all__ = ["Online", "PresenceUnavailable", "is_online", "online"]

logger = logging.getLogger(__name__)


class PresenceUnavailable(Exception):
    """
    Redis didn't answer: who is online is unknown.

    No longer raised to callers (see the module's docstring); kept so that
    code written against the earlier API still imports.
    """


@dataclass(frozen=True, slots=True)
class Online:
    """Connections by user id, across ``processes`` ws_server processes."""

    connections: dict[UserKey, int]
    processes: int
    #: False when Redis didn't answer: then nobody is known to be online.
    available: bool = True

    @property
    def users(self) -> int:
        return len(self.connections)

    @property
    def total_connections(self) -> int:
        return sum(self.connections.values())


def online() -> Online:
    """
    Who is connected now, and how many connections each has; with Redis
    unavailable, nobody and ``available`` False.
    """
    try:
        hashes = _ask_live_processes(lambda pipe, key: pipe.hgetall(key))
    except PresenceUnavailable:
        return Online(connections={}, processes=0, available=False)
    connections: dict[UserKey, int] = {}
    for counts in hashes:
        for field, count in counts.items():
            user_id = key_of(field)
            connections[user_id] = connections.get(user_id, 0) + int(count)
    return Online(connections=connections, processes=len(hashes))


def is_online(user: Any) -> bool:
    """
    Tell whether ``user`` (an instance or a primary key) has a connection
    now; False when Redis can't say, since presence is only advisory.
    """
    user_id = str(key_of(user))
    try:
        return any(_ask_live_processes(lambda pipe, key: pipe.hget(key, user_id)))
    except PresenceUnavailable:
        return False


def _ask_live_processes(command: Callable[[Any, str], object]) -> list[Any]:
    """Run ``command`` on each live process's hash in one pipeline; the answers."""
    try:
        client = get_redis()
        keys = client.zrangebyscore(presence_registry_key(), time.time(), "+inf")
        pipe = client.pipeline(transaction=False)
        for key in keys:
            command(pipe, key)
        # An empty pipeline returns [] without a round trip.
        answers = pipe.execute()
    except redis.RedisError as exc:
        _outage.failed(exc)
        raise PresenceUnavailable(str(exc)) from exc
    _outage.ended()
    return answers


class _Outage:
    """
    Log a presence outage once when it starts and once when it ends.

    The admin's page and application code may ask on every request: a line
    per request would bury the one that says Redis went away.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._down = False

    def failed(self, exc: Exception) -> None:
        with self._lock:
            if self._down:
                return
            self._down = True
        logger.warning("presence unknown: Redis didn't answer (%s)", exc)

    def ended(self) -> None:
        with self._lock:
            if not self._down:
                return
            self._down = False
        logger.info("presence known again: Redis answers")


_outage = _Outage()
