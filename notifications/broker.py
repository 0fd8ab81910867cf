"""
Redis from Django's side: one client per process, and the key names.

Every key starts with ``NOTIFICATIONS_REDIS_PREFIX`` so that several projects
(or test runs) can share one Redis server without seeing each other's events.
"""

import functools
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .breaker import CircuitBreaker
from .conf import settings

__all__ = [
    "GuardedRedis",
    "get_redis",
    "presence_key",
    "presence_registry_key",
    "stream_key",
    "ticket_key",
]


class GuardedRedis(redis.Redis):
    """
    A client whose every command goes through a circuit breaker.

    While the breaker is open a command raises ``CircuitOpen`` (a
    ``redis.ConnectionError``) without touching the network. Pipelines and
    pub/sub bypass it; Django's side uses neither.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.breaker = CircuitBreaker(lambda: settings.PUBLISH_COOLDOWN)
        super().__init__(*args, **kwargs)

    def execute_command(self, *args: Any, **options: Any) -> Any:
        return self.breaker.call(super().execute_command, *args, **options)


@functools.cache
def get_redis() -> GuardedRedis:
    """
    Return this process's client, sized for running inside requests.

    Connecting and each answer wait at most ``NOTIFICATIONS_PUBLISH_TIMEOUT``,
    redis-py never retries a command (a retry after a timeout would double
    the wait), and after a failure the breaker skips Redis for
    ``NOTIFICATIONS_PUBLISH_COOLDOWN`` seconds. Settings are read when the
    client is made: call ``get_redis.cache_clear()`` after changing them.
    """
    return GuardedRedis.from_url(
        settings.REDIS_URL,
        socket_connect_timeout=settings.PUBLISH_TIMEOUT,
        socket_timeout=settings.PUBLISH_TIMEOUT,
        retry=Retry(NoBackoff(), retries=0),
        health_check_interval=30,
        decode_responses=True,
    )


def stream_key() -> str:
    """The stream every ws_server process reads events and controls from."""
    return f"{settings.REDIS_PREFIX}:stream"


def presence_key(process: str) -> str:
    """Where one ws_server process keeps who is connected to it."""
    return f"{settings.REDIS_PREFIX}:presence:{process}"


def presence_registry_key() -> str:
    """The sorted set of presence hashes, each scored with when it expires."""
    return f"{settings.REDIS_PREFIX}:presence"


def ticket_key(nonce: str) -> str:
    """Where a ticket's nonce maps to the session it was issued from."""
    return f"{settings.REDIS_PREFIX}:ticket:{nonce}"
