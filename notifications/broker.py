"""
Redis from Django's side: one client per process, and the key names.

Every key starts with ``NOTIFICATIONS_REDIS_PREFIX`` so that several projects
(or test runs) can share one Redis server without seeing each other's events.
"""

import functools

import redis
from django.conf import settings as django_settings

from .conf import settings

__all__ = ["get_redis", "stream_key", "ticket_key"]


@functools.cache
def get_redis() -> redis.Redis:
    """Return this process's client; short timeouts keep requests snappy."""
    return redis.Redis.from_url(
        django_settings.REDIS_URL,
        socket_connect_timeout=1,
        socket_timeout=1,
        health_check_interval=30,
        decode_responses=True,
    )


def stream_key() -> str:
    """The stream every ws_server process reads events and controls from."""
    return f"{settings.REDIS_PREFIX}:stream"


def ticket_key(nonce: str) -> str:
    """Where a ticket's nonce maps to the session it was issued from."""
    return f"{settings.REDIS_PREFIX}:ticket:{nonce}"
