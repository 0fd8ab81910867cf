"""
The one doorway from the event loop to the ORM.

Django's ORM is synchronous and its connections are per thread, so every query
runs in a worker thread, with stale connections closed around it as Django
does around a request.
"""

import asyncio
import functools
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
    """
    Run ``func`` in an ORM thread and return its result.

    Not ``asyncio.to_thread``: it runs each call in a copy of the caller's
    context, and Django keeps cache clients in an asgiref ``Local``, which is
    context-local, so every call would build a new cache client (with cached
    sessions, a new Redis connection per handshake). ``run_in_executor`` keeps
    each thread's own context and clients, as a WSGI worker thread does.
    """
    loop = asyncio.get_running_loop()
    call = functools.partial(_call, func, *args, **kwargs)
    return await loop.run_in_executor(None, call)


def _call(func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    close_old_connections()
    try:
        return func(*args, **kwargs)
    finally:
        close_old_connections()
