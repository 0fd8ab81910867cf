"""
Coalesce the lookups of many connections into one trip to the ORM thread.

Authenticating a connection costs a few queries, and building a query in
Django's ORM costs more CPU than running it. During a reconnect storm
thousands of handshakes ask the same questions about different users, so a
``Batcher`` collects the keys asked for while a lookup is running and answers
them all with the next lookup: a handful of queries for hundreds of
connections. A key asked for on an idle server is looked up at once, alone,
so batching never adds latency; it only removes work under load.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable, Sequence
from typing import Generic, TypeVar

from .db import run_orm

__all__ = ["Batcher"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Batcher(Generic[K, V]):
    """
    Answer ``await batcher.load(key)`` with ``load_many([key, ...])[key]``.

    ``load_many`` is blocking (it runs through ``run_orm``), gets distinct
    keys, at most ``max_batch`` of them, and must return a value for each.
    If it raises, every caller of that batch gets the exception.
    """

    def __init__(
        self, load_many: Callable[[Sequence[K]], dict[K, V]], *, max_batch: int = 500
    ) -> None:
        self._load_many = load_many
        self._max_batch = max_batch
        self._queue: list[tuple[K, asyncio.Future[V]]] = []
        self._worker: asyncio.Task[None] | None = None

    async def load(self, key: K) -> V:
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._queue.append((key, future))
        if self._worker is None:
            self._worker = asyncio.create_task(self._work(), name="batcher")
        return await future

    async def _work(self) -> None:
        try:
            while self._queue:
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                await self._run(batch)
        finally:
            self._worker = None
            # Only when cancelled (server shutdown): nobody is left to answer.
            for _key, future in self._queue:
                future.cancel()
            self._queue.clear()

    async def _run(self, batch: list[tuple[K, asyncio.Future[V]]]) -> None:
        keys = list(dict.fromkeys(key for key, _future in batch))
        try:
            values = await run_orm(self._load_many, keys)
        except asyncio.CancelledError:
            for _key, future in batch:
                future.cancel()
            raise
        except Exception as exc:  # handed to every caller, who decides
            for _key, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for key, future in batch:
            # A caller that gave up (its connection closed) has a done future.
            if not future.done():
                future.set_result(values[key])
