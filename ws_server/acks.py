"""
Record the notifications clients acknowledge, in batches, off the relay.

A client acknowledges the notifications it received (``ack``); the handler
hands the ids to :class:`Acknowledgements` and goes on. Every ``interval``
the pending acknowledgements are written in one trip to the ORM thread, one
UPDATE per few thousand (``services.record_deliveries``), so a broadcast to
ten thousand connections costs a few statements a second, not ten thousand,
and the relay never waits on it. Ids a client makes up cost the same, and
count for nothing: only the user's own undelivered rows change. Several processes write their own clients'
rows: the counts add up without coordination.

A burst fills the buffer faster than once a second (200 events to 1,000
connections is 200,000 acknowledgements): past ``flush_at`` pending, the
write starts at once instead of on the next tick. The buffer is bounded:
past ``limit`` pending (a database outage that lasts, or writes slower than
acknowledgements come) new ones are dropped and counted in the log; the
statistics then undercount, nothing else is affected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

from django.utils import timezone

from notifications import services
from notifications.wire import UserKey

from .db import DatabaseUnavailable, run_orm

__all__ = ["Acknowledgements"]

logger = logging.getLogger(__name__)


class Acknowledgements:
    def __init__(
        self, *, interval: float = 1.0, flush_at: int = 50_000, limit: int = 500_000
    ) -> None:
        self.interval = interval
        self.flush_at = flush_at
        self.limit = limit
        self._full = asyncio.Event()
        # Event id -> the users who acknowledged it since the last write.
        self._pending: dict[int, set[UserKey]] = {}
        self._size = 0
        self._dropped = 0

    def acknowledge(self, user_id: UserKey, event_ids: Iterable[int]) -> None:
        """Note that ``user_id`` received ``event_ids``; never waits."""
        for event_id in event_ids:
            if self._size >= self.limit:
                self._dropped += 1
                continue
            users = self._pending.setdefault(event_id, set())
            if user_id not in users:
                users.add(user_id)
                self._size += 1
        if self._size >= self.flush_at:
            self._full.set()

    async def run(self) -> None:
        """Write every interval until cancelled, then once more."""
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.interval):
                        await self._full.wait()
                self._full.clear()
                try:
                    await self.flush()
                except DatabaseUnavailable:  # logged by run_orm
                    # A full buffer must not retry in a tight loop.
                    await asyncio.sleep(self.interval)
        finally:
            with contextlib.suppress(DatabaseUnavailable, TimeoutError):
                await self.flush()

    async def flush(self) -> None:
        """Write what is pending; keep it for the next try if the database fails."""
        if self._dropped:
            logger.warning(
                "dropped %d delivery acknowledgement(s): too many pending",
                self._dropped,
            )
            self._dropped = 0
        if not self._pending:
            return
        pending, self._pending, size, self._size = self._pending, {}, self._size, 0
        try:
            await run_orm(
                services.record_deliveries, acknowledged=pending, at=timezone.now()
            )
        except BaseException:
            for event_id, users in pending.items():
                self.acknowledge_all(event_id, users)
            raise
        logger.debug("recorded %d delivery acknowledgement(s)", size)

    def acknowledge_all(self, event_id: int, user_ids: Iterable[UserKey]) -> None:
        for user_id in user_ids:
            self.acknowledge(user_id, (event_id,))
