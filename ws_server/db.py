"""
The one doorway from the event loop to the ORM.

Django's ORM is synchronous and its connections are per thread, so every query
runs in a worker thread, with stale connections closed around it as Django
does around a request.
"""

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from django.db import close_old_connections, connections

__all__ = ["run_orm", "start_orm_threads"]

# Threads that run queries, hence also the most database connections open.
ORM_THREADS = 4

P = ParamSpec("P")
T = TypeVar("T")


def start_orm_threads(loop: asyncio.AbstractEventLoop) -> None:
    """
    Give the loop a small pool of ORM threads with persistent connections.

    Django closes a connection after each request when CONN_MAX_AGE is 0,
    the default. Here "requests" are single queries, so that would mean a new
    database connection per query. The pool bounds how many connections stay
    open, and CONN_HEALTH_CHECKS replaces a connection the database dropped.
    """
    for alias in connections:
        if connections.settings[alias]["CONN_MAX_AGE"] == 0:
            connections.settings[alias]["CONN_MAX_AGE"] = None
    loop.set_default_executor(ThreadPoolExecutor(ORM_THREADS, thread_name_prefix="orm"))


async def run_orm(func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Run ``func`` in a worker thread and return its result."""
    return await asyncio.to_thread(_call, func, *args, **kwargs)


def _call(func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    close_old_connections()
    try:
        return func(*args, **kwargs)
    finally:
        close_old_connections()
