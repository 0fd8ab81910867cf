"""
The one doorway from the event loop to the ORM.

Django's ORM is synchronous and its connections are per thread, so every query
runs in a worker thread, with stale connections closed around it as Django
does around a request. Every call is bounded, and a database that stops
answering is logged once when it goes and once when it comes back, however
many callers notice.

A call that times out keeps its thread until the database driver gives up,
which for a stalled connection or a table lock may be never: with every ORM
thread held that way the process can't authenticate, sweep or re-check, yet
its loop answers. So the calls in progress are tracked: readiness reports any
stuck past the timeout, and liveness fails once every ORM thread has been
stuck for ``WEDGED_FACTOR`` timeouts, so that an orchestrator restarts the
process (docs/operations.md says why threads aren't replaced instead).
"""

import asyncio
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

from django.db import Error as DatabaseError
from django.db import close_old_connections, connection, connections, transaction

from notifications.conf import settings

from . import metrics

__all__ = [
    "DatabaseUnavailable",
    "SessionStoreUnavailable",
    "one_snapshot",
    "run_orm",
    "start_orm_threads",
    "stuck_calls",
    "wedged",
]

logger = logging.getLogger(__name__)

# Threads that run queries, hence also the most database connections open.
ORM_THREADS = 4

#: Liveness fails once every ORM thread has been in one call this many
#: NOTIFICATIONS_DB_TIMEOUTs: long past any answer the callers could use,
#: and longer than the dependency outages the process rides out without a
#: restart (a session store hung for five timeouts:
#: tests/test_e2e_session_store_outage.py).
WEDGED_FACTOR = 6

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


class _Calls:
    """
    When each ORM thread's call in progress started, so that calls still
    holding their thread after their caller gave up can be counted.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started: dict[int, float] = {}

    def begin(self) -> None:
        with self._lock:
            self._started[threading.get_ident()] = time.monotonic()

    def end(self) -> None:
        with self._lock:
            self._started.pop(threading.get_ident(), None)

    def older_than(self, seconds: float) -> int:
        """How many calls in progress started more than ``seconds`` ago."""
        since = time.monotonic() - seconds
        with self._lock:
            return sum(started < since for started in self._started.values())


calls = _Calls()


def stuck_calls() -> int:
    """How many ORM calls still hold their thread past ``NOTIFICATIONS_DB_TIMEOUT``."""
    return calls.older_than(settings.DB_TIMEOUT)


def wedged() -> bool:
    """
    Whether every ORM thread has been stuck in one call for ``WEDGED_FACTOR``
    timeouts: no query can run, and none will until the driver gives up.
    """
    return calls.older_than(WEDGED_FACTOR * settings.DB_TIMEOUT) >= ORM_THREADS


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
    # Tracked from before the first close: closing a stalled connection
    # can hang as well as a query on it.
    calls.begin()
    try:
        close_old_connections()
        try:
            return func(*args, **kwargs)
        finally:
            close_old_connections()
    finally:
        calls.end()


@contextmanager
def one_snapshot() -> Iterator[None]:
    """
    Blocking: make every query in the block see the same commits.

    In a transaction, SQLite and MySQL's InnoDB read from the snapshot their
    first read takes; PostgreSQL's default isolation takes one snapshot a
    statement, so the block asks it for repeatable read (which only the
    outermost transaction can: nested in another, the block has its
    snapshots).
    """
    outermost = not connection.in_atomic_block
    with transaction.atomic(savepoint=False):  # it only reads
        if outermost and connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"
                )
        yield
