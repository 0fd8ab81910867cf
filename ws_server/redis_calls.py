"""
One Redis command from the ws_server's loops, with its failures as Redis errors.

Under uvloop, a command written on a connection that Redis has just reset
can fail with ``RuntimeError: unable to perform operation on
<TCPTransport closed=True ...>; the handler is closed``, which redis-py
doesn't turn into a ``ConnectionError``. Seen in the fault suite (Redis
killed and restarted) when it killed the relay, and with it the server. Only
the command is wrapped, so a RuntimeError from our own code stays loud.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError

__all__ = ["redis_call"]

T = TypeVar("T")


async def redis_call(command: Awaitable[T]) -> T:
    """Await a redis-py command; a closed transport raises ``ConnectionError``."""
    try:
        return await command
    except RuntimeError as exc:
        raise RedisConnectionError(f"connection closed: {exc}") from exc
