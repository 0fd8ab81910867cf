"""
The one doorway from the event loop to the ORM.

Django's ORM is synchronous and its connections are per thread, so every query
runs in a worker thread, with stale connections closed around it as Django
does around a request. Every call is bounded, and a database that stops
answering is logged once when it goes and once when it comes back, however
many callers notice.
"""

import asyncio
import functools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from django.db import Error as DatabaseError
from django.db import close_old_connections, connections

from notifications.conf import settings

from . import metrics

__all__ = [
    "DatabaseUnavailable",
    "SessionStoreUnavailable",
    "run_orm",
    "start_orm_threads",
]

logger = logging.getLogger(__name__)

# Threads that run queries, hence also the most database connections open.
ORM_THREADS = 4

P = ParamSpec("P")
T = TypeVar("T")


class DatabaseUnavailable(Exception):
    """
    The database, or the session store behind it, failed or didn't answer
    within ``NOTIFICATIONS_DB_TIMEOUT``.
    """


class SessionStoreUnavailable(Exception):
    """Raised in an ORM thread when the session store (a cache) failed."""


class _Health:
    """Log an outage once when it starts and once when it ends."""

    down = False

    def failed(self, reason: str) -> None:
        if not self.down:
            self.down = True
            logger.warning(
                "database unavailable (%s); retrying in the background", reason
            )

    def succeeded(self) -> None:
        if self.down:
            self.down = False
            logger.info("database connection restored")


health = _Health()


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

    Raise :exc:`DatabaseUnavailable` if the database fails or doesn't answer
    in time. A call that times out keeps its thread until the database
    driver gives up; the caller doesn't wait for that.

    Not ``asyncio.to_thread``: it runs each call in a copy of the caller's
    context, and Django keeps cache clients in an asgiref ``Local``, which is
    context-local, so every call would build a new cache client (with cached
    sessions, a new Redis connection per handshake). ``run_in_executor`` keeps
    each thread's own context and clients, as a WSGI worker thread does.
    """
    loop = asyncio.get_running_loop()
    call = functools.partial(_call, func, *args, **kwargs)
    try:
        async with asyncio.timeout(settings.DB_TIMEOUT):
            result = await loop.run_in_executor(None, call)
    except (DatabaseError, SessionStoreUnavailable, TimeoutError) as exc:
        reason = str(exc) or f"no answer within {settings.DB_TIMEOUT}s"
        health.failed(reason)
        metrics.DATABASE_ERRORS.inc()
        raise DatabaseUnavailable(reason) from exc
    health.succeeded()
    return result


def _call(func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    close_old_connections()
    try:
        return func(*args, **kwargs)
    finally:
        close_old_connections()
