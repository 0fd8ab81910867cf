"""
Coalesce the lookups of many connections into one trip to the ORM thread.

Authenticating a connection costs a few queries, and building a query in
Django's ORM costs more CPU than running it. During a reconnect storm
thousands of handshakes ask the same questions about different users, so a
``Batcher`` collects the keys asked for while a lookup is running and answers
them all with the next lookup: a handful of queries for hundreds of
connections. A key asked for on an idle server is looked up at once, alone,
so batching never adds latency; it only removes work under load.

The queue is bounded: past ``max_queue`` waiting keys a new one is refused
at once (:exc:`QueueFull`), since it would wait longer than a handshake may.
A key whose caller gave up (its wait was cancelled) or no longer wants it
(its connection closed) is dropped before the lookup runs, so a crowd that
connects, says hello and leaves costs nothing.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from .db import run_orm

__all__ = ["Batcher", "Gone", "QueueFull"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class QueueFull(Exception):
    """Too many keys wait already: the caller should try again later."""


class Gone(Exception):
    """The caller no longer wanted its key when its batch was taken."""


def _always() -> bool:
    return True


@dataclass(slots=True)
class _Request(Generic[K, V]):
    key: K
    future: asyncio.Future[V]
    wanted: Callable[[], bool]

    @property
    def live(self) -> bool:
        """Whether someone still waits for this key (checked before the query)."""
        return not self.future.done() and self.wanted()


class Batcher(Generic[K, V]):
    """
    Answer ``await batcher.load(key)`` with ``load_many([key, ...])[key]``.

    ``load_many`` is blocking (it runs through ``run_orm``), gets distinct
    keys, at most ``max_batch`` of them, and must return a value for each.
    If it raises, every caller of that batch gets the exception. At most
    ``max_queue`` keys wait for a batch (default: ten batches' worth).
    """

    def __init__(
        self,
        load_many: Callable[[Sequence[K]], dict[K, V]],
        *,
        max_batch: int = 500,
        max_queue: int | None = None,
    ) -> None:
        self._load_many = load_many
        self._max_batch = max_batch
        self._max_queue = 10 * max_batch if max_queue is None else max_queue
        self._queue: deque[_Request[K, V]] = deque()
        self._worker: asyncio.Task[None] | None = None

    async def load(self, key: K, *, wanted: Callable[[], bool] = _always) -> V:
        """
        Look ``key`` up with the next batch.

        ``wanted`` is asked when the batch is taken: if it says no (the
        connection closed meanwhile), the key is not looked up and this
        raises :exc:`Gone`. Raise :exc:`QueueFull` if the queue is full.
        """
        if len(self._queue) >= self._max_queue:
            self._prune()
            if len(self._queue) >= self._max_queue:
                raise QueueFull(f"{len(self._queue)} lookups queued already")
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._queue.append(_Request(key, future, wanted))
        if self._worker is None:
            self._worker = asyncio.create_task(self._work(), name="batcher")
        return await future

    def _prune(self) -> None:
        """Drop the queued requests nobody waits for any more."""
        queue, self._queue = self._queue, deque()
        for request in queue:
            if self._keep(request):
                self._queue.append(request)

    def _take(self) -> list[_Request[K, V]]:
        """The next batch: up to ``max_batch`` requests someone still waits for."""
        batch: list[_Request[K, V]] = []
        while self._queue and len(batch) < self._max_batch:
            request = self._queue.popleft()
            if self._keep(request):
                batch.append(request)
        return batch

    @staticmethod
    def _keep(request: _Request[K, V]) -> bool:
        """Whether to look ``request`` up; if not, tell a caller still waiting."""
        if request.live:
            return True
        if not request.future.done():
            request.future.set_exception(Gone())
        return False

    async def _work(self) -> None:
        try:
            while self._queue:
                batch = self._take()
                if batch:
                    await self._run(batch)
        finally:
            self._worker = None
            # Only when cancelled (server shutdown): nobody is left to answer.
            for request in self._queue:
                request.future.cancel()
            self._queue.clear()

    async def _run(self, batch: list[_Request[K, V]]) -> None:
        keys = list(dict.fromkeys(request.key for request in batch))
        try:
            values = await run_orm(self._load_many, keys)
        except asyncio.CancelledError:
            for request in batch:
                request.future.cancel()
            raise
        except Exception as exc:  # handed to every caller, who decides
            for request in batch:
                if not request.future.done():
                    request.future.set_exception(exc)
            return
        for request in batch:
            # A caller that gave up (its connection closed) has a done future.
            if not request.future.done():
                request.future.set_result(values[request.key])
