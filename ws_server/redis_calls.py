"""
One Redis command from the ws_server's loops, with its failures as Redis errors.

Under uvloop, a command written on a connection that Redis has just reset
can fail with ``RuntimeError: unable to perform operation on
<TCPTransport closed=True ...>; the handler is closed``, which redis-py
doesn't turn into a ``ConnectionError``. Seen in the fault suite (Redis
killed and restarted) when it killed the relay, and with it the server. Only
the command is wrapped, so a RuntimeError from our own code stays loud.

redis-py can also report a read that was cancelled as a failed one (a
``ConnectionError`` or ``TimeoutError``), or a blocking XREAD can answer as
if it hadn't been cancelled at all: a loop that rides out Redis failures
would then lose its own cancellation and never stop (the relay's test saw
it). A command that ends while its task is being cancelled raises the
cancellation it is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

__all__ = ["cancelling", "redis_call"]

T = TypeVar("T")


async def redis_call(command: Awaitable[T]) -> T:
    """Await a redis-py command; a closed transport raises ``ConnectionError``."""
    try:
        result = await command
    except (RedisError, OSError, RuntimeError) as exc:
        if cancelling():
            raise asyncio.CancelledError from exc
        if isinstance(exc, RuntimeError):
            raise RedisConnectionError(f"connection closed: {exc}") from exc
        raise
    if cancelling():
        # A blocking read can even swallow the cancellation and answer.
        raise asyncio.CancelledError
    return result


def cancelling() -> bool:
    """Tell whether the current task is being cancelled."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
