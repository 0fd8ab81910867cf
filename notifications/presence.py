"""
Who is online now, across every ws_server process: for the admin and for
application code.

Each process keeps a hash of its connected users in Redis and refreshes it
every few seconds (``ws_server.presence``); a process that dies stops
counting within three ``NOTIFICATIONS_PRESENCE_INTERVAL`` (15 s). A read is two
round trips, whatever the number of processes. Presence is
advisory: with Redis unreachable these functions raise ``PresenceUnavailable``
after at most ``NOTIFICATIONS_PUBLISH_TIMEOUT``, and callers show "unknown".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from .broker import get_redis, presence_registry_key
from .usermodel import key_of
from .wire import UserKey

__all__ = ["Online", "PresenceUnavailable", "is_online", "online"]


class PresenceUnavailable(Exception):
    """Redis didn't answer: who is online is unknown."""


@dataclass(frozen=True, slots=True)
class Online:
    """Connections by user id, across ``processes`` ws_server processes."""

    connections: dict[UserKey, int]
    processes: int

    @property
    def users(self) -> int:
        return len(self.connections)

    @property
    def total_connections(self) -> int:
        return sum(self.connections.values())


def online() -> Online:
    """Who is connected now, and how many connections each has."""
    hashes = _ask_live_processes(lambda pipe, key: pipe.hgetall(key))
    connections: dict[UserKey, int] = {}
    for counts in hashes:
        for field, count in counts.items():
            user_id = key_of(field)
            connections[user_id] = connections.get(user_id, 0) + int(count)
    return Online(connections=connections, processes=len(hashes))


def is_online(user: Any) -> bool:
    """Tell whether ``user`` (an instance or a primary key) has a connection now."""
    user_id = str(key_of(user))
    return any(_ask_live_processes(lambda pipe, key: pipe.hget(key, user_id)))


def _ask_live_processes(command: Callable[[Any, str], object]) -> list[Any]:
    """Run ``command`` on each live process's hash in one pipeline; the answers."""
    try:
        client = get_redis()
        keys = client.zrangebyscore(presence_registry_key(), time.time(), "+inf")
        if not keys:
            return []
        pipe = client.pipeline(transaction=False)
        for key in keys:
            command(pipe, key)
        return pipe.execute()
    except redis.RedisError as exc:
        raise PresenceUnavailable(str(exc)) from exc
